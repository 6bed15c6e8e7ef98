/**
 * File data held for peers by all of a process's outbound queues together: the server's bound on
 * what slow readers can make it hold. Each queue already stops its producers at its own high-water
 * mark; past this budget, a queue that holds anything stops them too, so the total stays within
 * the budget plus at most one chunk per connection (a queue holding nothing may always take one,
 * which keeps every connection moving however many there are).
 */
export class OutboundBudget {
  readonly limitBytes: number;
  #heldBytes = 0;
  /** Queues refused for the budget, called back once it has room again. */
  readonly #waiting = new Set<() => void>();

  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 1)
      throw new RangeError(`outbound budget must be a positive integer of bytes, got ${limitBytes}`);
    this.limitBytes = limitBytes;
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
