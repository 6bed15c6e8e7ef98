/**
 * A cap on operations in flight, first come first served: the CLI's transfers and planning
 * requests (the server refuses more than its maxStreams, and every open upload holds a file
 * handle), and the server's password checks (scrypt shares libuv's thread pool with the disk
 * calls: DEFAULTS.maxConcurrentLoginChecks).
 */
export class ConcurrencyLimit {
  readonly max: number;
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError(`concurrency limit must be a positive integer, got ${String(max)}`);
    }
    this.max = max;
  }

  /** Runs `task` once fewer than `max` others run, after those that came before it. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.max) {
      this.active++;
    } else {
      // The finishing task hands its slot straight over, so `active` stays put.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Tasks waiting for their turn. */
  get waitingCount(): number {
    return this.waiting.length;
  }
}
