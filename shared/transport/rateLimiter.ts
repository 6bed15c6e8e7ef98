/**
 * Bandwidth limits as token buckets that never block the loop: a sender asks how long to wait
 * (`delayMs`), waits with a timer when it must, then takes what it sends. A bucket may go into
 * debt by one chunk, which the rate then pays back, so the long-run rate is the configured one
 * and a burst is at most `burstBytes` plus one chunk.
 */

export interface RateLimiterOptions {
  /** Sustained rate, bytes per second. */
  bytesPerSecond: number;
  /** Bytes that may go at once after a pause. Default a tenth of a second at the rate (at least 16 KiB). */
  burstBytes?: number;
  /** Clock in ms, for tests. Default performance.now. */
  now?: () => number;
}

const MIN_BURST_BYTES = 16 * 1024;

export class RateLimiter {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  private readonly now: () => number;
  private tokens: number;
  private updatedAt: number;

  constructor(options: RateLimiterOptions) {
    const { bytesPerSecond } = options;
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) {
      throw new TypeError(`RateLimiter: bytesPerSecond must be positive, got ${String(bytesPerSecond)}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = options.burstBytes ?? Math.max(MIN_BURST_BYTES, Math.round(bytesPerSecond / 10));
    if (!Number.isSafeInteger(this.burstBytes) || this.burstBytes <= 0) {
      throw new TypeError('RateLimiter: burstBytes must be a positive integer');
    }
    this.now = options.now ?? (() => performance.now());
    this.tokens = this.burstBytes;
    this.updatedAt = this.now();
  }

  /** Milliseconds until something may be sent (0: now). */
  delayMs(): number {
    this.refill();
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.bytesPerSecond);
  }

  /** Accounts for `bytes` sent (or credit granted); the bucket may go into debt. */
  take(bytes: number): void {
    this.refill();
    this.tokens -= bytes;
  }

  private refill(): void {
    const now = this.now();
    const earned = ((now - this.updatedAt) * this.bytesPerSecond) / 1000;
    this.updatedAt = now;
    this.tokens = Math.min(this.burstBytes, this.tokens + earned);
  }
}

/** Several limits that all apply (a connection's and its user's): the slowest decides. */
export class Throttle {
  private readonly limiters: readonly RateLimiter[];
  /** Largest piece to send at once: a burst of the strictest limit. */
  readonly maxChunkBytes: number;

  constructor(limiters: readonly RateLimiter[]) {
    if (limiters.length === 0) throw new TypeError('Throttle: at least one limiter');
    this.limiters = limiters;
    this.maxChunkBytes = Math.min(...limiters.map((l) => l.burstBytes));
  }

  /** A Throttle over the limits that are set, or undefined when none is. */
  static of(limiters: ReadonlyArray<RateLimiter | undefined>): Throttle | undefined {
    const set = limiters.filter((l): l is RateLimiter => l !== undefined);
    return set.length === 0 ? undefined : new Throttle(set);
  }

  delayMs(): number {
    let delay = 0;
    for (const limiter of this.limiters) delay = Math.max(delay, limiter.delayMs());
    return delay;
  }

  take(bytes: number): void {
    for (const limiter of this.limiters) limiter.take(bytes);
  }
}
