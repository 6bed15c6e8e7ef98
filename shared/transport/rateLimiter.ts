/**
 * Bandwidth limits as token buckets that never block the loop: a sender asks whether it may send
 * (`Throttle.mayGo`); if not, it waits in line and is called back, and once it may, it takes what
 * it sends. A bucket may go into debt by one chunk, which the rate then pays back, so the long-run
 * rate is the configured one and a burst is at most `burstBytes` plus one chunk.
 *
 * Senders take turns in the order they asked, at each level: the streams of a connection in its
 * Throttle's line, and the connections of a user in the line of the user's bucket, which they
 * share. (A timer per sender let the one whose timer fired first take the tokens every time: of
 * two downloads, one had a quarter of the other's bytes when it ended; of a user's two
 * connections, one had none.)
 */
import { timerDelay } from '../timerDelay.js';

/** Called back when a sender that had to wait may send. */
export type Waiter = () => void;

/** Waiters in the order they asked (a Set keeps insertion order); the one called back goes first. */
class Line {
  private readonly waiting = new Set<Waiter>();
  /** The waiter being called back. */
  private turn: Waiter | undefined;

  get size(): number {
    return this.waiting.size;
  }

  /** It holds the turn, or no one does and no one waits. */
  isFirst(waiter: Waiter): boolean {
    return this.turn === undefined ? this.waiting.size === 0 : this.turn === waiter;
  }

  /** Joins at the back; one waiting already keeps its place. */
  join(waiter: Waiter): void {
    this.waiting.add(waiter);
  }

  leave(waiter: Waiter): void {
    this.waiting.delete(waiter);
  }

  has(waiter: Waiter): boolean {
    return this.waiting.has(waiter);
  }

  /** Calls back the first waiter, which holds the turn meanwhile. */
  callNext(): void {
    const next: Waiter | undefined = this.waiting.values().next().value;
    if (next === undefined) return;
    this.waiting.delete(next);
    this.turn = next;
    try {
      next();
    } finally {
      this.turn = undefined;
    }
  }
}

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
  /** Senders waiting for the bucket: the Throttles of the connections that share it. */
  private readonly line = new Line();
  private timer: NodeJS.Timeout | undefined;

  constructor(options: RateLimiterOptions) {
    const { bytesPerSecond } = options;
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) {
      throw new TypeError(`RateLimiter: bytesPerSecond must be positive, got ${String(bytesPerSecond)}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    // Within 2^53 however high the rate (a burst past it would be refused below, as if given).
    this.burstBytes =
      options.burstBytes ??
      Math.min(Number.MAX_SAFE_INTEGER, Math.max(MIN_BURST_BYTES, Math.round(bytesPerSecond / 10)));
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

  /**
   * Whether `waiter` may send now under this limit. If not, it waits in line behind those that
   * asked before it, and is called back once the bucket has refilled and its turn has come.
   */
  admits(waiter: Waiter): boolean {
    if (this.line.isFirst(waiter) && this.delayMs() === 0) return true;
    this.line.join(waiter);
    this.schedule();
    return false;
  }

  /** Leaves the line. */
  cancel(waiter: Waiter): void {
    this.line.leave(waiter);
    if (this.line.size === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private schedule(): void {
    if (this.timer !== undefined || this.line.size === 0) return;
    // A debt past it (a very low rate) is waited out one longest timer at a time.
    this.timer = setTimeout(this.onTimer, timerDelay(Math.max(1, this.delayMs())));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    while (this.line.size > 0 && this.delayMs() === 0) this.line.callNext();
    this.schedule();
  };

  private refill(): void {
    const now = this.now();
    const earned = ((now - this.updatedAt) * this.bytesPerSecond) / 1000;
    this.updatedAt = now;
    this.tokens = Math.min(this.burstBytes, this.tokens + earned);
  }
}

/**
 * Several limits that all apply (a connection's and its user's): the slowest decides. The streams
 * sending under it take turns in its line; the Throttle waits in the line of each limit that
 * refuses, and wakes its first stream when every limit admits it.
 */
export class Throttle {
  private readonly limiters: readonly RateLimiter[];
  /** Largest piece to send at once: a burst of the strictest limit. */
  readonly maxChunkBytes: number;
  /** The streams waiting for their turn. */
  private readonly line = new Line();

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

  take(bytes: number): void {
    for (const limiter of this.limiters) limiter.take(bytes);
  }

  /**
   * Whether `waiter` may send now (then it takes what it sends). If not, it waits in line and is
   * called back once it is its turn and the limits allow; asking again meanwhile keeps its place,
   * and one that had its turn waits behind the others.
   */
  mayGo(waiter: Waiter): boolean {
    if (this.line.isFirst(waiter) && this.limitsAdmit()) return true;
    this.line.join(waiter);
    return false;
  }

  /** `waiter` waits in line: held by the limits, not by its peer. */
  holds(waiter: Waiter): boolean {
    return this.line.has(waiter);
  }

  /** Leaves the line (a stream that ended while it waited). */
  cancel(waiter: Waiter): void {
    this.line.leave(waiter);
    if (this.line.size === 0) for (const limiter of this.limiters) limiter.cancel(this.onTurn);
  }

  /** Every limit admits this connection's next piece; the first that does not calls back onTurn. */
  private limitsAdmit(): boolean {
    for (const limiter of this.limiters) if (!limiter.admits(this.onTurn)) return false;
    return true;
  }

  private readonly onTurn = (): void => {
    while (this.line.size > 0 && this.limitsAdmit()) this.line.callNext();
  };
}
