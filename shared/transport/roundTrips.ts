/**
 * A connection's round-trip sampler, for receive windows that grow to the path (gRPC's BDP
 * estimator is the model). While DATA arrives it sends a PING of its own, one at a time and at
 * most one every `intervalMs`, and when the ACK comes back every window it sampled learns how much
 * of its stream arrived in that round trip. A stream that received two thirds of its window or
 * more in one round trip was held back by its window, not by the path (a path's bandwidth times
 * its delay above the window), so its window may grow (InboundWindow).
 *
 * Without one (a peer that does not answer PING) a window grows only when it sees the peer run
 * out of credit, which a receiver granting half a window at a time rarely does: a window that
 * fills every round trip on a long path was left at its first size.
 */

/** A window that learns how much of its stream arrived in each round trip. */
export interface SampledWindow {
  roundTripStarted(): void;
  roundTripEnded(): void;
}

/** What a PING of a sampler carries first: its ACK is told from the keepalive's and the liveness check's. */
const MARK = 0x62; // 'b'

export class RoundTripSampler {
  readonly #sendPing: (payload: Buffer) => void;
  readonly #intervalMs: number;
  readonly #windows = new Set<SampledWindow>();
  #inFlight: Buffer | undefined;
  #nextAt = 0;
  #rounds = 0;

  constructor(sendPing: (payload: Buffer) => void, intervalMs: number) {
    this.#sendPing = sendPing;
    this.#intervalMs = intervalMs;
  }

  add(window: SampledWindow): void {
    this.#windows.add(window);
  }

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
    for (const window of this.#windows) window.roundTripStarted();
    this.#sendPing(payload);
  }

  /** A PING ACK arrived: true when it ends this sampler's round trip (the caller looks no further). */
  acked(payload: Uint8Array, now = performance.now()): boolean {
    if (this.#inFlight === undefined || !this.#inFlight.equals(payload)) return false;
    this.#inFlight = undefined;
    this.#nextAt = now + this.#intervalMs;
    for (const window of this.#windows) window.roundTripEnded();
    return true;
  }
}
