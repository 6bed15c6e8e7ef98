/**
 * Received file bytes on their way to storage or a local file, held in blocks that go round
 * instead of one fresh buffer per socket read.
 *
 * A socket that reads into one shared buffer (SharedReadBuffer) hands the decoder views that are
 * valid only until the next read, so a stream copies what it must keep here, and gives the blocks
 * back once the write that took them has finished. Fresh memory per read is what makes V8 run a
 * major garbage collection every few dozen MiB received and the kernel fault in new pages
 * (bench/README.md); one copy into warm blocks costs less than either. Bytes that are not borrowed
 * (an in-memory pair's) are already the receiver's own and are kept as they are.
 */

import { DEFAULTS } from '../defaults.js';

/** Blocks of one size, kept between uses up to a bound; shared by all streams of a process. */
export class BlockPool {
  readonly blockBytes: number;
  readonly #maxFree: number;
  readonly #free: Buffer[] = [];

  constructor(blockBytes: number, maxFreeBytes: number) {
    if (!Number.isSafeInteger(blockBytes) || blockBytes <= 0) {
      throw new RangeError(`blockBytes must be a positive integer, got ${blockBytes}`);
    }
    this.blockBytes = blockBytes;
    this.#maxFree = Math.max(0, Math.floor(maxFreeBytes / blockBytes));
  }

  acquire(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.blockBytes);
  }

  release(block: Buffer): void {
    if (this.#free.length < this.#maxFree) this.#free.push(block);
  }

  /** Blocks waiting to be used again. */
  get freeCount(): number {
    return this.#free.length;
  }
}

interface Block {
  memory: Buffer;
  /** Holders: the writer while it fills the block, and each taken or queued run of its bytes. */
  holders: number;
}

/** Runs of received bytes, taken together by one write; `release()` once that write is over. */
export interface TakenBytes {
  chunks: Buffer[];
  bytes: number;
  release(): void;
}

const NOTHING: TakenBytes = { chunks: [], bytes: 0, release: () => {} };

/** One stream's received bytes not yet written: appended as they arrive, taken by each write. */
export class ReceivedBytes {
  readonly #pool: BlockPool;
  /** The block being filled, and how far. */
  #current: Block | undefined;
  #filled = 0;
  /** Appended, not yet taken: runs of blocks (block undefined: a buffer kept as it was). */
  #queued: Array<{ chunk: Buffer; block: Block | undefined }> = [];
  #queuedBytes = 0;

  constructor(pool: BlockPool) {
    this.#pool = pool;
  }

  /** Bytes appended and not yet taken. */
  get byteLength(): number {
    return this.#queuedBytes;
  }

  /**
   * Keeps `payload`: copied into blocks when it is `borrowed` (valid only until the caller
   * returns), kept as it is otherwise.
   */
  append(payload: Buffer, borrowed: boolean): void {
    if (payload.length === 0) return;
    this.#queuedBytes += payload.length;
    if (!borrowed) {
      this.#queued.push({ chunk: payload, block: undefined });
      return;
    }
    let copied = 0;
    while (copied < payload.length) {
      const block = this.#blockWithRoom();
      const start = this.#filled;
      const n = payload.copy(block.memory, start, copied);
      this.#filled += n;
      copied += n;
      const last = this.#queued.at(-1);
      // Extends the previous run when it ends where this copy started (one chunk per block run).
      if (last !== undefined && last.block === block && last.chunk.byteOffset + last.chunk.length === start) {
        last.chunk = block.memory.subarray(last.chunk.byteOffset, start + n);
      } else {
        block.holders++;
        this.#queued.push({ chunk: block.memory.subarray(start, start + n), block });
      }
    }
  }

  /** Everything appended so far, for one write; the caller releases it when the write is over. */
  take(): TakenBytes {
    if (this.#queued.length === 0) return NOTHING;
    const runs = this.#queued;
    const bytes = this.#queuedBytes;
    this.#queued = [];
    this.#queuedBytes = 0;
    let released = false;
    return {
      chunks: runs.map((run) => run.chunk),
      bytes,
      release: () => {
        if (released) return;
        released = true;
        for (const run of runs) if (run.block !== undefined) this.#drop(run.block);
      },
    };
  }

  /** The stream is over: what was never taken goes back, and so does the block being filled. */
  dispose(): void {
    this.take().release();
    if (this.#current !== undefined) this.#drop(this.#current);
    this.#current = undefined;
  }

  #blockWithRoom(): Block {
    const current = this.#current;
    if (current !== undefined && this.#filled < current.memory.length) return current;
    if (current !== undefined) this.#drop(current);
    const block = { memory: this.#pool.acquire(), holders: 1 };
    this.#current = block;
    this.#filled = 0;
    return block;
  }

  #drop(block: Block): void {
    block.holders--;
    if (block.holders === 0) this.#pool.release(block.memory);
  }
}

/** The process's blocks: every receiving stream, server or client, takes from these. */
export const receivedBlocks = new BlockPool(DEFAULTS.receivedBlockBytes, DEFAULTS.receivedBlocksFreeBytes);
