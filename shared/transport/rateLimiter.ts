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

/** Called back when a sender that had to wait may send (Throttle.mayGo). */
export type ThrottleWaiter = () => void;

/**
 * Several limits that all apply (a connection's and its user's): the slowest decides. The streams
 * sending under it take turns: one that must wait joins a queue and is called back in the order
 * they asked, each after the one before it took its piece, so that no stream waits behind others
 * taking piece after piece. (A timer per stream, as before, let the stream whose timer fired first
 * take the tokens every time: one of two downloads ran at four times the other's rate.)
 */
export class Throttle {
  private readonly limiters: readonly RateLimiter[];
  /** Largest piece to send at once: a burst of the strictest limit. */
  readonly maxChunkBytes: number;
  /** Senders waiting for their turn, in the order they asked (a Set keeps insertion order). */
  private readonly waiting = new Set<ThrottleWaiter>();
  /** The sender being called back: it goes before those still waiting. */
  private turn: ThrottleWaiter | undefined;
  private timer: NodeJS.Timeout | undefined;

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

  /**
   * Whether `waiter` may send now (then it takes what it sends). If not, it waits in line and is
   * called back once it is its turn and the limits allow; asking again meanwhile keeps its place.
   */
  mayGo(waiter: ThrottleWaiter): boolean {
    const first = this.turn === undefined ? this.waiting.size === 0 : this.turn === waiter;
    if (first && this.delayMs() === 0) return true;
    // Having had its turn, it waits behind the others.
    this.waiting.add(waiter);
    this.schedule();
    return false;
  }

  /** Leaves the line (a stream that ended while it waited). */
  cancel(waiter: ThrottleWaiter): void {
    this.waiting.delete(waiter);
    if (this.waiting.size === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private schedule(): void {
    if (this.timer !== undefined || this.waiting.size === 0) return;
    this.timer = setTimeout(this.onTimer, Math.max(1, this.delayMs()));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    while (this.waiting.size > 0 && this.delayMs() === 0) {
      const waiter: ThrottleWaiter = this.waiting.values().next().value!;
      this.waiting.delete(waiter);
      this.turn = waiter;
      try {
        waiter();
      } finally {
        this.turn = undefined;
      }
    }
    this.schedule();
  };
}
