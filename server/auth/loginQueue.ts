/**
 * Password checks run a few at a time, in the order their attempts came. scrypt runs on libuv's
 * thread pool (4 threads by default), which the disk calls that may not run on the loop share
 * (fdatasync, rename, unlink, readdir): each connection may have one attempt in flight before it
 * has logged in, so without a bound 300 connections from one unauthenticated host held every
 * thread for 14 s, and every logged-in user's upload waited that long for its commit. Bounded,
 * the rest of the pool stays free for the disk, and an attempt whose turn comes after its address
 * was refused (loginGuard.ts) or its connection closed costs no scrypt at all.
 */
export class LoginQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  /** `concurrency`: checks run at once (at least 1). */
  constructor(private readonly concurrency: number) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new TypeError(`LoginQueue: concurrency must be a positive integer, got ${String(concurrency)}`);
    }
  }

  /** Runs `check` once fewer than `concurrency` others run, after those that came before it. */
  async run<T>(check: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await check();
    } finally {
      // The slot passes straight to the next in line, so `running` counts it throughout.
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.running--;
    }
  }

  /** Attempts waiting for their turn. */
  get waitingCount(): number {
    return this.waiting.length;
  }
}
