/**
 * Bytes that all of a server's connections hold together, against one limit; connections that
 * stopped for it are called back once a quarter of it is free again, so that waking is not once
 * per frame. OutboundBudget (file data) and ControlFrameBudget (the other frames) are the two.
 */
export class HeldBytesBudget {
  readonly limitBytes: number;
  #heldBytes = 0;
  /** Connections that stopped for the budget, called back once it has room again. */
  readonly #waiting = new Set<() => void>();

  /** `name`: what the budget is, for the error a bad limit gets. */
  constructor(limitBytes: number, name: string) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 1)
      throw new RangeError(`${name} must be a positive integer of bytes, got ${limitBytes}`);
    this.limitBytes = limitBytes;
  }

  /** Bytes held now, all connections together. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  take(bytes: number): void {
    this.#heldBytes += bytes;
  }

  give(bytes: number): void {
    this.#heldBytes -= bytes;
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
