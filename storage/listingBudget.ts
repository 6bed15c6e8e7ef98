/**
 * Memory the names of directories being listed hold, across a storage and all its views: a
 * listing holds its directory's names, sorted, until the last of them is sent, and a client that
 * reads none keeps them held. A big listing takes its share first, waiting (holding nothing) in
 * the order it came while others hold the budget; one bigger than the whole budget goes alone.
 */
export class ListingBudget {
  readonly totalBytes: number;
  #freeBytes: number;
  readonly #waiting: Array<{ bytes: number; grant: () => void }> = [];

  /** Shares waited for now. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  constructor(totalBytes: number) {
    this.totalBytes = totalBytes;
    this.#freeBytes = totalBytes;
  }

  /** What a share of `bytes` takes: all of the budget at most. */
  #share(bytes: number): number {
    return Math.min(bytes, this.totalBytes);
  }

  /** Takes a share of `bytes` now if it fits and no one waits before it; false otherwise. */
  tryTake(bytes: number): boolean {
    const share = this.#share(bytes);
    if (this.#waiting.length > 0 || share > this.#freeBytes) return false;
    this.#freeBytes -= share;
    return true;
  }

  /**
   * Takes a share of `bytes` once it fits, after those that waited before it. Aborting `signal`
   * rejects with its reason and leaves the line (a listing its client cancelled waited on,
   * holding its connection's turn, until the clients ahead let go).
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    if (this.tryTake(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        bytes: this.#share(bytes),
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        // Those behind it may fit now.
        this.#grantWaiting();
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** Gives back a share taken for `bytes`; those waiting whose shares now fit go, in order. */
  give(bytes: number): void {
    this.#freeBytes += this.#share(bytes);
    this.#grantWaiting();
  }

  /** Those waiting whose shares fit go, in order. */
  #grantWaiting(): void {
    while (this.#waiting.length > 0 && this.#waiting[0]!.bytes <= this.#freeBytes) {
      const next = this.#waiting.shift()!;
      this.#freeBytes -= next.bytes;
      next.grant();
    }
  }
}

/** What listing `names` holds in memory, about: each name as a string, its slot, what reading it cost. */
export function namesBytes(names: readonly string[]): number {
  let bytes = 0;
  for (const name of names) bytes += 2 * name.length + 64;
  return bytes;
}
