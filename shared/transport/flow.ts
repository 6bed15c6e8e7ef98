/**
 * A stream's flow-control credit (docs/PROTOCOL.md "Flow control"), one small type per direction
 * as Go's x/net/http2 flow.go has `inflow` and `outflow`. Both sides use them: the receiver of a
 * stream's DATA holds an InboundWindow (server put, client get), the sender an OutboundCredit
 * (server get, client put). The arithmetic lives only here.
 */
import { ProtocolError } from '../errors.js';
import { MAX_CREDIT } from '../protocol/constants.js';

/**
 * The receiving side: how much credit the peer still has, and how much has been consumed but not
 * yet granted back. Credit goes back half a window at a time (ssh2 and yamux do the same), so a
 * stream holds at most one window of the peer's bytes and WINDOW frames stay few.
 */
export class InboundWindow {
  readonly streamId: number;
  /** Bytes the peer may have in flight; a field, not a constant, so a window can be resized. */
  #size: number;
  /** Credit the peer still has. */
  #available = 0;
  /** Bytes consumed (written on) and not yet granted back. */
  #unsent = 0;

  constructor(streamId: number, size: number) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CREDIT) {
      throw new RangeError(`window size must be an integer from 1 to ${MAX_CREDIT}, got ${size}`);
    }
    this.streamId = streamId;
    this.#size = size;
  }

  get size(): number {
    return this.#size;
  }

  /** Credit the peer has left. */
  get available(): number {
    return this.#available;
  }

  /** The first grant: the whole window. Returns the increment for the WINDOW frame. */
  open(): number {
    const increment = this.#size - this.#available - this.#unsent;
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
  }

  /**
   * `bytes` were consumed (handed on, so they no longer take memory here). Returns the increment
   * to grant now in a WINDOW frame, or 0 while less than half a window waits to go back.
   */
  consumed(bytes: number): number {
    this.#unsent += bytes;
    if (this.#unsent < this.#size / 2) return 0;
    const increment = this.#unsent;
    this.#unsent = 0;
    this.#available += increment;
    return increment;
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
