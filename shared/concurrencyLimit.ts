/**
 * A cap on operations in flight, first come first served: the CLI's transfers and planning
 * requests (the server refuses more than its maxStreams, and every open upload holds a file
 * handle), and the server's password checks (scrypt shares libuv's thread pool with the disk
 * calls: DEFAULTS.maxConcurrentLoginChecks). Tasks run with a `group` wait in line with their
 * group, and the groups take turns: the server's password checks go by address group, so one
 * address queueing check after check (a valid password is never refused for failures) delays
 * another's by one of its checks per turn, not by all of them.
 */
export class ConcurrencyLimit {
  readonly max: number;
  private active = 0;
  /** Waiting tasks by group, groups in turn order: the next to run is the first group's first. */
  private readonly waiting = new Map<string, Array<() => void>>();
  private waitingTotal = 0;

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError(`concurrency limit must be a positive integer, got ${String(max)}`);
    }
    this.max = max;
  }

  /**
   * Runs `task` once fewer than `max` others run, after those of its `group` that came before it
   * and, past them, in turn with the other groups' (tasks without a group are all one). Once
   * `signal` is aborted while it waits, it leaves the line at once and never runs (rejecting with
   * the signal's reason): what gave up on it holds no place there.
   */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal, group = ''): Promise<T> {
    if (this.active < this.max) {
      this.active++;
    } else {
      // The finishing task hands its slot straight over, so `active` stays put.
      await this.waitTurn(signal, group);
    }
    try {
      return await task();
    } finally {
      const next = this.takeNext();
      if (next) next();
      else this.active--;
    }
  }

  /**
   * `task` for each item, results in the items' order, as `Promise.all(items.map((item) =>
   * limit.run(...)))` gives them, but each item's call is made only once it is among `max`:
   * at most `max` of them wait in line at once, so a tree of 100,000 files holds no 100,000
   * suspended calls (about a kilobyte each). The first rejection rejects the whole and no
   * further item starts.
   */
  async map<T, R>(items: readonly T[], task: (item: T, index: number) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < items.length) {
        const index = next++;
        try {
          results[index] = await this.run(() => task(items[index]!, index));
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.max, items.length) }, worker));
    return results;
  }

  /** The first group's first waiting task, that group then going to the end of the turn order. */
  private takeNext(): (() => void) | undefined {
    const first = this.waiting.entries().next();
    if (first.done === true) return undefined;
    const [group, line] = first.value;
    const next = line.shift()!;
    this.waiting.delete(group);
    if (line.length > 0) this.waiting.set(group, line);
    this.waitingTotal--;
    return next;
  }

  private waitTurn(signal: AbortSignal | undefined, group: string): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const start = (): void => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = (): void => {
        const line = this.waiting.get(group);
        const at = line?.indexOf(start) ?? -1;
        if (at >= 0) {
          line!.splice(at, 1);
          this.waitingTotal--;
          if (line!.length === 0) this.waiting.delete(group);
        }
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', leave, { once: true });
      const line = this.waiting.get(group);
      if (line === undefined) this.waiting.set(group, [start]);
      else line.push(start);
      this.waitingTotal++;
    });
  }

  /** Tasks waiting for their turn. */
  get waitingCount(): number {
    return this.waitingTotal;
  }

  /** Tasks running now. */
  get runningCount(): number {
    return this.active;
  }
}
