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

  /**
   * Runs `task` once fewer than `max` others run, after those that came before it. Once `signal`
   * is aborted while it waits, it leaves the line at once and never runs (rejecting with the
   * signal's reason): what gave up on it holds no place there.
   */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.active < this.max) {
      this.active++;
    } else {
      // The finishing task hands its slot straight over, so `active` stays put.
      await this.waitTurn(signal);
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  private waitTurn(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const start = (): void => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = (): void => {
        const at = this.waiting.indexOf(start);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.waiting.push(start);
    });
  }

  /** Tasks waiting for their turn. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Tasks running now. */
  get runningCount(): number {
    return this.active;
  }
}
