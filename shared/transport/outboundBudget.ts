import { HEADER_BYTES } from '../protocol/constants.js';

/**
 * File data held for peers by all of a process's outbound queues together: the server's bound on
 * what slow readers can make it hold. Each queue already stops its producers at its own high-water
 * mark; past this budget, a queue that holds anything stops them too, and a queue holding nothing
 * may still take one small chunk (at most `trickleBytes`), which keeps every connection moving
 * however many there are. So the total stays within `limitBytes + connections × trickleBytes`
 * (256 MiB + 10,000 × 64 KiB by default). A full 1 MiB chunk each made that 10 GiB at 10,000
 * connections that open a download and never read.
 */
export class OutboundBudget {
  readonly limitBytes: number;
  /** Past the limit, the largest chunk (frame bytes, header included) a queue holding nothing may take. */
  readonly trickleBytes: number;
  #heldBytes = 0;
  /** Queues refused for the budget, called back once it has room again. */
  readonly #waiting = new Set<() => void>();

  constructor(limitBytes: number, trickleBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 1)
      throw new RangeError(`outbound budget must be a positive integer of bytes, got ${limitBytes}`);
    if (!Number.isSafeInteger(trickleBytes) || trickleBytes <= HEADER_BYTES)
      throw new RangeError(
        `outbound trickle must be an integer of bytes above a frame header (${HEADER_BYTES}), got ${trickleBytes}`,
      );
    this.limitBytes = limitBytes;
    this.trickleBytes = trickleBytes;
  }

  /** Bytes held now, all queues together. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  hasRoomFor(bytes: number): boolean {
    return this.#heldBytes + bytes <= this.limitBytes;
  }

  take(bytes: number): void {
    this.#heldBytes += bytes;
  }

  give(bytes: number): void {
    this.#heldBytes -= bytes;
    // A quarter of the budget free before waking anyone, so that waking is not once per frame.
    if (this.#waiting.size > 0 && this.#heldBytes <= (this.limitBytes * 3) / 4) {
      const waiting = [...this.#waiting];
      this.#waiting.clear();
      for (const wake of waiting) wake();
    }
  }

  waitForRoom(wake: () => void): void {
    this.#waiting.add(wake);
  }

  cancelWait(wake: () => void): void {
    this.#waiting.delete(wake);
  }
}
