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
 *
 * A client that took the handshake's initial upload window may send bytes with any OPEN, so a
 * connection of such a client holding nothing brings in up to one socket read when it opens an
 * upload (then it has one open and stops). While the total is under the ceiling, a quarter of the
 * mark above it, such uploads are taken; past the ceiling (full) the connection refuses them
 * (SERVER_BUSY; their bytes are dropped as they come) and is still read and answered, until the
 * budget is released. An upload that declined the initial window brings nothing until credited:
 * it is taken, and its connection stops. So the server holds at most the ceiling plus the rest of
 * one read, however many connections there are.
 */
export class UploadBacklogBudget {
  readonly highWaterBytes: number;
  /** Past this, uploads that may bring bytes with their OPEN (an initial window) are refused. */
  readonly ceilingBytes: number;
  #totalBytes = 0;
  #held = false;
  #full = false;
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
    this.ceilingBytes = highWaterBytes + Math.floor(highWaterBytes / 4);
  }

  /** The total passed the high-water mark and has not yet fallen to half of it. */
  get held(): boolean {
    return this.#held;
  }

  /** Held, and the total passed the ceiling since: no new upload may bring bytes with its OPEN. */
  get full(): boolean {
    return this.#full;
  }

  add(deltaBytes: number): void {
    this.#totalBytes += deltaBytes;
    if (this.#totalBytes > this.highWaterBytes) {
      if (!this.#held) {
        this.#held = true;
        for (const onHold of [...this.#watching]) onHold();
      }
      if (this.#totalBytes > this.ceilingBytes) this.#full = true;
    } else if (this.#held && this.#totalBytes <= this.highWaterBytes / 2) {
      this.#held = false;
      this.#full = false;
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
