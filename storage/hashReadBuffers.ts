/**
 * The buffers stored files are read into to be hashed (fileDigest, hashKept, a resumed get's
 * prefix in downloadStream.ts): a few for the whole process (DEFAULTS.hashReadBuffers), reused;
 * a reader past them waits its turn, in order, and one owner (a connection) holds at most
 * DEFAULTS.hashReadBuffersPerOwner of them, so one client hashing many large files leaves buffers
 * to the others. Each reader took a 1 MiB buffer of its
 * own before, bounded only by the open-file cap: 1,024 digests of large files at once held 1 GiB
 * outside `--max-buffered`. Hashing is CPU-bound on the one loop, so more readers at once than
 * this would not go faster.
 */
import { DEFAULTS } from '../shared/defaults.js';

/** How a reader borrows: what ends its wait or its lease, who it reads for, who hears it wait. */
export interface BorrowOptions {
  /** Aborted: a wait ends (rejecting with its reason); a lease's slot goes to the next reader. */
  signal?: AbortSignal;
  /** Told true when the reader waits for a buffer, false when it goes on. */
  onWaiting?: (waiting: boolean) => void;
  /** Whom it reads for (a connection): an owner holds at most `perOwner` at once. */
  owner?: object;
}

interface Waiter {
  owner: object | undefined;
  take: (buffer: Buffer) => void;
}

export class HashReadBuffers {
  readonly max: number;
  readonly perOwner: number;
  readonly bufferBytes: number;
  readonly #free: Buffer[] = [];
  #lent = 0;
  readonly #lentTo = new Map<object, number>();
  readonly #waiting: Waiter[] = [];

  constructor(max: number, bufferBytes: number, perOwner = max) {
    this.max = max;
    this.bufferBytes = bufferBytes;
    this.perOwner = perOwner;
  }

  /** Buffers lent now, and readers waiting for one. */
  get lent(): number {
    return this.#lent;
  }

  get waitingCount(): number {
    return this.#waiting.length;
  }

  /**
   * A buffer for reading `bytes` of a file: one of its own when that is small
   * (DEFAULTS.hashReadUnsharedBytes), else a shared one once there is one free that its owner may
   * take. `release()` gives it back (once). Aborted while lent (the reader's stream is over, a
   * read of it maybe hung on a dying disk), its slot goes to the next reader at once, with a
   * buffer of its own: the late read may still write into this one, which release() then drops
   * (memory then bounded by the hung reads, each holding a file).
   */
  async borrow(
    bytes: number,
    { signal, onWaiting, owner }: BorrowOptions = {},
  ): Promise<{ buffer: Buffer; release: () => void }> {
    if (bytes <= DEFAULTS.hashReadUnsharedBytes)
      return { buffer: Buffer.allocUnsafe(Math.max(bytes, 1)), release: noop };
    signal?.throwIfAborted();
    let buffer: Buffer;
    if (this.#lent < this.max && this.#mayTake(owner)) {
      this.#lend(owner);
      buffer = this.#free.pop() ?? Buffer.allocUnsafe(this.bufferBytes);
    } else {
      buffer = await this.#wait(owner, signal, onWaiting);
    }
    if (signal?.aborted === true) {
      // Over while its turn came: not lent at all.
      this.#endLease(owner, buffer);
      throw signal.reason;
    }
    let lent = true;
    const writeOff = (): void => {
      if (!lent) return;
      lent = false;
      this.#endLease(owner, undefined);
    };
    signal?.addEventListener('abort', writeOff, { once: true });
    return {
      buffer,
      release: () => {
        signal?.removeEventListener('abort', writeOff);
        if (!lent) return;
        lent = false;
        this.#endLease(owner, buffer);
      },
    };
  }

  #mayTake(owner: object | undefined): boolean {
    return owner === undefined || (this.#lentTo.get(owner) ?? 0) < this.perOwner;
  }

  #lend(owner: object | undefined): void {
    this.#lent++;
    if (owner !== undefined) this.#lentTo.set(owner, (this.#lentTo.get(owner) ?? 0) + 1);
  }

  /**
   * A lease of `owner`'s ends, its buffer back (or written off: undefined): the first reader
   * waiting whose owner may take one more gets the slot, else it stays free.
   */
  #endLease(owner: object | undefined, buffer: Buffer | undefined): void {
    this.#lent--;
    if (owner !== undefined) {
      const held = (this.#lentTo.get(owner) ?? 1) - 1;
      if (held === 0) this.#lentTo.delete(owner);
      else this.#lentTo.set(owner, held);
    }
    if (buffer !== undefined) this.#free.push(buffer);
    const at = this.#waiting.findIndex((waiter) => this.#mayTake(waiter.owner));
    if (at < 0) return;
    const [next] = this.#waiting.splice(at, 1);
    this.#lend(next!.owner);
    next!.take(this.#free.pop() ?? Buffer.allocUnsafe(this.bufferBytes));
  }

  #wait(
    owner: object | undefined,
    signal: AbortSignal | undefined,
    onWaiting: ((waiting: boolean) => void) | undefined,
  ): Promise<Buffer> {
    onWaiting?.(true);
    return new Promise<Buffer>((resolve, reject) => {
      const waiter: Waiter = {
        owner,
        take: (buffer) => {
          signal?.removeEventListener('abort', onAbort);
          onWaiting?.(false);
          resolve(buffer);
        },
      };
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        onWaiting?.(false);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }
}

const noop = (): void => {};

/** The process's buffers for hashing stored files. */
export const hashReadBuffers = new HashReadBuffers(
  DEFAULTS.hashReadBuffers,
  DEFAULTS.hashReadBufferBytes,
  DEFAULTS.hashReadBuffersPerOwner,
);
