/**
 * The buffers stored files are read into to be hashed (fileDigest, hashKept): a few for the whole
 * process (DEFAULTS.hashReadBuffers), reused; a reader past them waits its turn, in order. Each
 * reader took a 1 MiB buffer of its own before, bounded only by the open-file cap: 1,024 digests
 * of large files at once held 1 GiB outside `--max-buffered`. Hashing is CPU-bound on the one
 * loop, so more readers at once than this would not go faster.
 */
import { DEFAULTS } from '../shared/defaults.js';

export class HashReadBuffers {
  readonly max: number;
  readonly bufferBytes: number;
  readonly #free: Buffer[] = [];
  #lent = 0;
  readonly #waiting: Array<(buffer: Buffer) => void> = [];

  constructor(max: number, bufferBytes: number) {
    this.max = max;
    this.bufferBytes = bufferBytes;
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
   * (DEFAULTS.hashReadUnsharedBytes), else a shared one once there is one free. Aborting `signal`
   * rejects with its reason and leaves the line. `release()` gives it back (once). Aborted while
   * lent (the reader's stream is over, a read of it maybe hung on a dying disk), its slot goes to
   * the next reader at once, with a buffer of its own: the late read may still write into this
   * one, which release() then drops (memory then bounded by the hung reads, each holding a file).
   */
  async borrow(
    bytes: number,
    signal?: AbortSignal,
    onWaiting?: (waiting: boolean) => void,
  ): Promise<{ buffer: Buffer; release: () => void }> {
    if (bytes <= DEFAULTS.hashReadUnsharedBytes)
      return { buffer: Buffer.allocUnsafe(Math.max(bytes, 1)), release: noop };
    signal?.throwIfAborted();
    let buffer: Buffer;
    if (this.#lent < this.max) {
      this.#lent++;
      buffer = this.#free.pop() ?? Buffer.allocUnsafe(this.bufferBytes);
    } else {
      buffer = await this.#wait(signal, onWaiting);
    }
    if (signal?.aborted === true) {
      // Over while its turn came: not lent at all.
      this.#giveBack(buffer);
      throw signal.reason;
    }
    let lent = true;
    const writeOff = (): void => {
      if (!lent) return;
      lent = false;
      this.#freeSlot();
    };
    signal?.addEventListener('abort', writeOff, { once: true });
    return {
      buffer,
      release: () => {
        signal?.removeEventListener('abort', writeOff);
        if (!lent) return;
        lent = false;
        this.#giveBack(buffer);
      },
    };
  }

  /** A slot frees without its buffer (written off): the next reader waiting gets a fresh one. */
  #freeSlot(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next(this.#free.pop() ?? Buffer.allocUnsafe(this.bufferBytes));
    else this.#lent--;
  }

  #wait(
    signal: AbortSignal | undefined,
    onWaiting: ((waiting: boolean) => void) | undefined,
  ): Promise<Buffer> {
    onWaiting?.(true);
    return new Promise<Buffer>((resolve, reject) => {
      const take = (buffer: Buffer): void => {
        signal?.removeEventListener('abort', onAbort);
        onWaiting?.(false);
        resolve(buffer);
      };
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(take);
        if (at >= 0) this.#waiting.splice(at, 1);
        onWaiting?.(false);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(take);
    });
  }

  /** The next reader waiting gets it, else it is kept for the next. */
  #giveBack(buffer: Buffer): void {
    const next = this.#waiting.shift();
    if (next !== undefined) {
      next(buffer);
      return;
    }
    this.#lent--;
    this.#free.push(buffer);
  }
}

const noop = (): void => {};

/** The process's buffers for hashing stored files. */
export const hashReadBuffers = new HashReadBuffers(DEFAULTS.hashReadBuffers, DEFAULTS.hashReadBufferBytes);
