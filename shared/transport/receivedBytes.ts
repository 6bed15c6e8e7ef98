/**
 * Received file bytes on their way to storage or a local file, held in blocks that go round
 * instead of one fresh buffer per socket read.
 *
 * A socket that reads into one shared buffer (SharedBufferReads) hands the decoder views that are
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

/**
 * One stream's received bytes not yet written: appended as they arrive, taken by each write.
 *
 * What it holds is what it reports (`heldBytes`, and `onHeld` on every change): whole blocks, and
 * the bytes of chunks kept as they are. A take ends the block being filled, so a stream whose
 * bytes are all written holds nothing, and a few bytes are copied into a buffer of their own
 * rather than a block until DEFAULTS.receivedOwnBufferBytes (at most a quarter block) have gathered: a stream kept a 256 KiB block for its
 * first byte for as long as it lived, so 1 byte on each of 256 streams held 64 MiB, counted as 256
 * bytes against the upload backlog's marks.
 */
export class ReceivedBytes {
  readonly #pool: BlockPool;
  readonly #onHeld: ((deltaBytes: number) => void) | undefined;
  /** The block being filled, and how far. */
  #current: Block | undefined;
  #filled = 0;
  /** Appended, not yet taken: runs of blocks (block undefined: a buffer of its own). */
  #queued: Array<{ chunk: Buffer; block: Block | undefined }> = [];
  #queuedBytes = 0;
  #heldBytes = 0;
  /** Below this much gathered (and no block being filled), bytes go into a buffer of their own. */
  readonly #ownBufferBytes: number;

  /** @param onHeld told of every change in the memory this stream holds (bytes, + or −). */
  constructor(pool: BlockPool, onHeld?: (deltaBytes: number) => void) {
    this.#pool = pool;
    this.#onHeld = onHeld;
    this.#ownBufferBytes = Math.min(DEFAULTS.receivedOwnBufferBytes, pool.blockBytes / 4);
  }

  /** Bytes appended and not yet taken. */
  get byteLength(): number {
    return this.#queuedBytes;
  }

  /** Memory held: blocks in use (being filled, queued or in a write not yet over) and own buffers. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Keeps `payload`: copied (into blocks, or a small buffer of its own) when it is `borrowed`
   * (valid only until the caller returns), kept as it is otherwise.
   */
  append(payload: Buffer, borrowed: boolean): void {
    if (payload.length === 0) return;
    this.#queuedBytes += payload.length;
    if (!borrowed || (this.#current === undefined && this.#queuedBytes < this.#ownBufferBytes)) {
      const chunk = borrowed ? Buffer.from(payload) : payload;
      this.#queued.push({ chunk, block: undefined });
      this.#held(chunk.length);
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

  /**
   * Everything appended so far, for one write; the caller releases it when the write is over.
   * The block being filled ends here: once the write is over, it goes back.
   */
  take(): TakenBytes {
    this.#endCurrent();
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
        for (const run of runs) {
          if (run.block !== undefined) this.#drop(run.block);
          else this.#held(-run.chunk.length);
        }
      },
    };
  }

  /** The stream is over: what was never taken goes back, and so does the block being filled. */
  dispose(): void {
    this.take().release();
  }

  #endCurrent(): void {
    if (this.#current !== undefined) this.#drop(this.#current);
    this.#current = undefined;
  }

  #blockWithRoom(): Block {
    const current = this.#current;
    if (current !== undefined && this.#filled < current.memory.length) return current;
    this.#endCurrent();
    const block = { memory: this.#pool.acquire(), holders: 1 };
    this.#held(block.memory.length);
    this.#current = block;
    this.#filled = 0;
    return block;
  }

  #drop(block: Block): void {
    block.holders--;
    if (block.holders === 0) {
      this.#pool.release(block.memory);
      this.#held(-block.memory.length);
    }
  }

  #held(deltaBytes: number): void {
    this.#heldBytes += deltaBytes;
    this.#onHeld?.(deltaBytes);
  }
}

/** The process's blocks: every receiving stream, server or client, takes from these. */
export const receivedBlocks = new BlockPool(DEFAULTS.receivedBlockBytes, DEFAULTS.receivedBlocksFreeBytes);
