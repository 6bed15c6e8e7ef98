/**
 * A connection's round-trip sampler, for receive windows that grow to the path (gRPC's BDP
 * estimator is the model). While DATA arrives it sends a PING of its own, one at a time and at
 * most one every `intervalMs`, and when the ACK comes back every window it sampled learns how much
 * of its stream arrived in that round trip. A stream that received two thirds of its window or
 * more in one round trip was held back by its window, not by the path (a path's bandwidth times
 * its delay above the window), so its window may grow (InboundWindow). What arrived is scaled by
 * the least round trip seen over this one's: a PING queued behind bytes already in the socket
 * (loopback, a busy peer) took longer than the path, and what arrived meanwhile says nothing of
 * the window (windows grew on loopback for it, with no gain).
 *
 * Without one (a peer that does not answer PING) a window grows only when it sees the peer run
 * out of credit, which a receiver granting half a window at a time rarely does: a window that
 * fills every round trip on a long path was left at its first size.
 */

/** A window that learns how much of its stream arrived in each round trip. */
export interface SampledWindow {
  roundTripStarted(): void;
  /**
   * `pathShare`: the least round trip seen over this one's (0–1]: the part of it the path took,
   * the rest being time queued behind bytes already sent (a socket's buffer on loopback).
   */
  roundTripEnded(pathShare: number): void;
}

/** What a PING of a sampler carries first: its ACK is told from the keepalive's and the liveness check's. */
const MARK = 0x62; // 'b'

export class RoundTripSampler {
  readonly #sendPing: (payload: Buffer) => void;
  readonly #intervalMs: number;
  readonly #windows = new Set<SampledWindow>();
  #inFlight: Buffer | undefined;
  #sentAt = 0;
  /** The least round trip seen: the path's own, as BBR keeps it, without the queues' time. */
  #leastMs = Number.POSITIVE_INFINITY;
  #nextAt = 0;
  #rounds = 0;

  constructor(sendPing: (payload: Buffer) => void, intervalMs: number) {
    this.#sendPing = sendPing;
    this.#intervalMs = intervalMs;
  }

  /** Samples `window` from the next round trip on, until delete(). */
  add(window: SampledWindow): void {
    this.#windows.add(window);
  }

  /** Samples `window` no more (its stream ended). */
  delete(window: SampledWindow): void {
    this.#windows.delete(window);
  }

  /** DATA arrived: a round trip is sampled from now, unless one is under way or the last was too recent. */
  dataArrived(now = performance.now()): void {
    if (this.#inFlight !== undefined || now < this.#nextAt || this.#windows.size === 0) return;
    const payload = Buffer.alloc(8);
    payload[0] = MARK;
    payload.writeUInt32BE(++this.#rounds >>> 0, 4);
    this.#inFlight = payload;
    this.#sentAt = now;
    for (const window of this.#windows) window.roundTripStarted();
    this.#sendPing(payload);
  }

  /** A PING ACK arrived: true when it ends this sampler's round trip (the caller looks no further). */
  acked(payload: Uint8Array, now = performance.now()): boolean {
    if (this.#inFlight === undefined || !this.#inFlight.equals(payload)) return false;
    this.#inFlight = undefined;
    this.#nextAt = now + this.#intervalMs;
    const tookMs = Math.max(now - this.#sentAt, 1e-3);
    this.#leastMs = Math.min(this.#leastMs, tookMs);
    const pathShare = this.#leastMs / tookMs;
    for (const window of this.#windows) window.roundTripEnded(pathShare);
    return true;
  }
}
