/**
 * Received upload bytes waiting for the disk, all connections together. Each connection already
 * stops reading past its own `uploadBacklogHighWaterBytes`; this bounds the sum, so that a stalled
 * disk under many uploading connections cannot take the server's memory with it. Once the total
 * passes the high-water mark, every connection still holding bytes for the disk stops reading
 * until the total is back at half of it, and so does every connection with an upload open that
 * could still bring bytes in (told at once through watchHold()): one read's worth each of N such
 * connections was N × 256 KiB past the mark. A connection without uploads keeps reading (its
 * requests, a listing, a download), so the server stays answerable; an upload it opens meanwhile
 * gets no credit before it is set up, and it stops reading then too.
 */
export class UploadBacklogBudget {
  readonly highWaterBytes: number;
  #totalBytes = 0;
  #held = false;
  /** Connections that stopped reading for the budget, each to be woken when it is released. */
  readonly #waiting = new Set<() => void>();
  /** Connections with uploads open, told when the budget becomes held. */
  readonly #watching = new Set<() => void>();

  constructor(highWaterBytes: number) {
    if (!Number.isSafeInteger(highWaterBytes) || highWaterBytes < 1)
      throw new RangeError(
        `upload backlog high-water mark must be a positive integer, got ${highWaterBytes}`,
      );
    this.highWaterBytes = highWaterBytes;
  }

  get totalBytes(): number {
    return this.#totalBytes;
  }

  /** The total passed the high-water mark and has not yet fallen to half of it. */
  get held(): boolean {
    return this.#held;
  }

  add(deltaBytes: number): void {
    this.#totalBytes += deltaBytes;
    if (this.#totalBytes > this.highWaterBytes) {
      if (this.#held) return;
      this.#held = true;
      for (const onHold of [...this.#watching]) onHold();
    } else if (this.#held && this.#totalBytes <= this.highWaterBytes / 2) {
      this.#held = false;
      const waiting = [...this.#waiting];
      this.#waiting.clear();
      for (const wake of waiting) wake();
    }
  }

  /** Calls `wake` once the budget is released (at once if it is not held). */
  waitForRelease(wake: () => void): void {
    if (this.#held) this.#waiting.add(wake);
    else wake();
  }

  /** Forgets a waiter (its connection closed). */
  cancelWait(wake: () => void): void {
    this.#waiting.delete(wake);
  }

  /** Calls `onHold` each time the budget becomes held, until unwatchHold(). */
  watchHold(onHold: () => void): void {
    this.#watching.add(onHold);
  }

  unwatchHold(onHold: () => void): void {
    this.#watching.delete(onHold);
  }
}
