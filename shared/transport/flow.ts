/**
 * A stream's flow-control credit (docs/PROTOCOL.md "Flow control"), one small type per direction
 * as Go's x/net/http2 flow.go has `inflow` and `outflow`. Both sides use them: the receiver of a
 * stream's DATA holds an InboundWindow (server put, client get), the sender an OutboundCredit
 * (server get, client put). The arithmetic lives only here.
 */
import { ProtocolError } from '../errors.js';
import { MAX_CREDIT } from '../protocol/constants.js';
import type { RoundTripSampler, SampledWindow } from './roundTrips.js';

/**
 * What a connection's windows may grow by, together: growth is taken from it and given back when
 * a stream ends, so however many streams are starved, the credit one connection hands out stays
 * bounded (initial windows plus this).
 */
export class WindowBudget {
  readonly limitBytes: number;
  #used = 0;

  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) {
      throw new RangeError(`window budget must be a non-negative integer, got ${limitBytes}`);
    }
    this.limitBytes = limitBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }

  /** Takes up to `bytes`; returns how many it could. */
  take(bytes: number): number {
    const taken = Math.max(0, Math.min(bytes, this.limitBytes - this.#used));
    this.#used += taken;
    return taken;
  }

  give(bytes: number): void {
    this.#used -= bytes;
  }
}

/** How a window may grow: up to maxSize, drawing on a shared budget; `roundTrips`: the connection's sampler, when the peer answers PING. */
export interface WindowGrowth {
  maxSize: number;
  budget: WindowBudget;
  roundTrips?: RoundTripSampler | undefined;
}

/**
 * The receiving side: how much credit the peer still has, and how much has been consumed but not
 * yet granted back. Credit goes back half a window at a time (ssh2 and yamux do the same), so a
 * stream holds at most one window of the peer's bytes and WINDOW frames stay few.
 *
 * With `growth`, the window autotunes as TCP's receive window and gRPC's BDP estimate do: when the
 * window held the stream back — the peer ran out of credit since the last grant, or two thirds of
 * the window or more arrived in one round trip (`growth.roundTrips`) — while this side kept up (at
 * most a quarter of the window received and not yet consumed), the window doubles — up to
 * maxSize, as far as the shared budget allows — and the extra goes out with the grant.
 */
export class InboundWindow implements SampledWindow {
  readonly streamId: number;
  /** Bytes the peer may have in flight; a field, not a constant, so a window can be resized. */
  #size: number;
  /** Credit the peer still has. */
  #available = 0;
  /** Bytes consumed (written on) and not yet granted back. */
  #unsent = 0;
  /** Bytes received and not yet consumed. */
  #held = 0;
  /** The peer used up its credit since the last grant. */
  #starved = false;
  /** Bytes received since the round trip being sampled began; undefined when none is. */
  #roundTripBytes: number | undefined;
  /** A round trip since the last grant brought two thirds of the window or more. */
  #filledRoundTrip = false;
  /**
   * Initial credit beyond the window (grantInitial): consumed but never granted back, so the
   * window is its size again once the peer has used it.
   */
  #surplus = 0;
  readonly #growth: WindowGrowth | undefined;
  /** What this window took from the budget. */
  #grown = 0;

  constructor(streamId: number, size: number, growth?: WindowGrowth) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CREDIT) {
      throw new RangeError(`window size must be an integer from 1 to ${MAX_CREDIT}, got ${size}`);
    }
    this.streamId = streamId;
    this.#size = size;
    this.#growth = growth;
    growth?.roundTrips?.add(this);
  }

  get size(): number {
    return this.#size;
  }

  /** Credit the peer has left. */
  get available(): number {
    return this.#available;
  }

  /**
   * Credit the peer holds from the start without a WINDOW (the handshake's initial upload window,
   * docs/PROTOCOL.md "Flow control"): counted as granted, so open() sends only the rest of the
   * window. Credit beyond the window (a window kept small under a bandwidth limit) is a one-off.
   */
  grantInitial(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_CREDIT) {
      throw new RangeError(`initial credit must be an integer from 0 to ${MAX_CREDIT}, got ${bytes}`);
    }
    this.#available += bytes;
    this.#surplus += Math.max(0, bytes - this.#size);
  }

  /**
   * The first grant: the rest of the whole window, less what the peer holds or has sent on its
   * initial credit. Returns the increment for the WINDOW frame.
   */
  open(): number {
    const increment = Math.max(0, this.#size - this.#available - this.#held - this.#unsent);
    this.#available += increment;
    return increment;
  }

  /** DATA of `bytes` arrived: it must fit the credit the peer was given. */
  take(bytes: number): void {
    if (bytes > this.#available) {
      throw new ProtocolError(
        'FLOW_CONTROL_ERROR',
        `stream ${this.streamId}: ${bytes} bytes of DATA with ${this.#available} bytes of credit`,
      );
    }
    this.#available -= bytes;
    this.#held += bytes;
    if (this.#available === 0 && bytes > 0) this.#starved = true;
    // As gRPC's estimator, the DATA that starts a round trip counts in it.
    this.#growth?.roundTrips?.dataArrived();
    if (this.#roundTripBytes !== undefined) this.#roundTripBytes += bytes;
  }

  /** The connection's sampler began a round trip: bytes count from here (RoundTripSampler). */
  roundTripStarted(): void {
    this.#roundTripBytes = 0;
  }

  /** It ended: two thirds of the window or more in it, as far as the path took it, and the window held the stream back. */
  roundTripEnded(pathShare: number): void {
    if (this.#roundTripBytes !== undefined && this.#roundTripBytes * pathShare * 3 >= this.#size * 2)
      this.#filledRoundTrip = true;
    this.#roundTripBytes = undefined;
  }

  /**
   * `bytes` were consumed (handed on, so they no longer take memory here). Returns the increment
   * to grant now in a WINDOW frame, or 0 while less than half a window waits to go back.
   */
  consumed(bytes: number): number {
    this.#held -= bytes;
    const absorbed = Math.min(bytes, this.#surplus);
    this.#surplus -= absorbed;
    this.#unsent += bytes - absorbed;
    if (this.#unsent < this.#size / 2) return 0;
    let increment = this.#unsent;
    this.#unsent = 0;
    if ((this.#starved || this.#filledRoundTrip) && this.#held <= this.#size / 4) increment += this.#grow();
    this.#starved = false;
    this.#filledRoundTrip = false;
    this.#available += increment;
    return increment;
  }

  /** Gives what the window grew by back to the budget (the stream has ended). Idempotent. */
  release(): void {
    this.#growth?.budget.give(this.#grown);
    this.#grown = 0;
    this.#growth?.roundTrips?.delete(this);
  }

  #grow(): number {
    const growth = this.#growth;
    if (growth === undefined) return 0;
    const wanted = Math.min(this.#size, growth.maxSize - this.#size, MAX_CREDIT - this.#size);
    if (wanted <= 0) return 0;
    const extra = growth.budget.take(wanted);
    this.#size += extra;
    this.#grown += extra;
    return extra;
  }
}

/** The sending side: the credit the peer granted and this side has not used yet. */
export class OutboundCredit {
  readonly streamId: number;
  #available = 0;

  constructor(streamId: number) {
    this.streamId = streamId;
  }

  get available(): number {
    return this.#available;
  }

  /**
   * A WINDOW frame granted `increment`. Credit may never exceed 2^31 − 1 (docs/PROTOCOL.md; the
   * same bound as HTTP/2's, RFC 9113 §6.9.1): beyond it is the peer's FLOW_CONTROL_ERROR.
   */
  add(increment: number): void {
    if (this.#available + increment > MAX_CREDIT) {
      throw new ProtocolError('FLOW_CONTROL_ERROR', `credit on stream ${this.streamId} would exceed 2^31-1`);
    }
    this.#available += increment;
  }

  /** Spends `bytes` of credit on a DATA frame; taking more than there is is a bug here, not the peer's. */
  take(bytes: number): void {
    if (bytes > this.#available) {
      throw new RangeError(`stream ${this.streamId}: took ${bytes} bytes of credit with ${this.#available}`);
    }
    this.#available -= bytes;
  }
}
