import { DEFAULTS } from '../shared/defaults.js';

/**
 * A cap on operations in flight. The client multiplexes any number of streams over one
 * connection, but the server refuses more than its maxStreams and every open upload holds a
 * file handle, so the CLI runs at most `max` at a time, first come first served.
 */
export class ConcurrencyLimit {
  readonly max: number;
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`concurrency limit must be a positive integer, got ${String(max)}`);
    }
    this.max = max;
  }

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
}

/**
 * The cap for a command's planning requests (stat, listing, mkdir): DEFAULTS.planningRequests, or
 * `parallel` if higher, within the server's maxStreams.
 */
export function planningLimit(
  parallel: number,
  client: { serverInfo: { limits: { maxStreams: number } } },
): ConcurrencyLimit {
  return new ConcurrencyLimit(
    Math.min(Math.max(parallel, DEFAULTS.planningRequests), client.serverInfo.limits.maxStreams),
  );
}
