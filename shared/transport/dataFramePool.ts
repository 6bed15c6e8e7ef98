/**
 * Buffers for outgoing DATA frames, used again once the socket has taken their bytes instead of
 * allocated per chunk. Each fresh 256 KiB–1 MiB buffer is memory outside V8's heap: one per chunk
 * drives V8 into a major garbage collection every few dozen MiB sent, and the kernel into
 * faulting in fresh pages; a few buffers going round avoid both (bench/README.md).
 *
 * A frame never sits in a buffer more than twice its size: buffers come in a few sizes (the
 * largest, then halves), and a frame too small for the smallest is allocated on its own. What
 * the outbound queues count (a frame's length) is then what they hold within a factor of two; a
 * 1-byte frame in a 1 MiB buffer made a peer granting tiny credit hold megabytes per byte counted.
 *
 * Only frames whose bytes the kernel has copied may come back (a TCP or TLS socket's write
 * callback says so); a frame given up while a file read may still be filling it never does.
 */
import { FrameType, HEADER_BYTES } from '../protocol/constants.js';
import { allocDataFrame, writeHeader } from '../protocol/encoder.js';

/** Buffer sizes: the largest, then halves, down to 1/16 of it (1 MiB frames: down to 64 KiB). */
const SIZE_CLASSES = 5;

export class DataFramePool {
  /** Buffer sizes, largest first: header and payload of the largest frame, then halves. */
  readonly #sizes: number[] = [];
  readonly #maxFreeBytes: number;
  #freeBytes = 0;
  /** Free buffers by their size. */
  readonly #free = new Map<number, ArrayBuffer[]>();
  readonly #mine = new WeakSet<ArrayBuffer>();

  /**
   * @param maxPayloadBytes the payload of the largest pooled frame; larger frames are allocated as before.
   * @param maxFreeBytes at most this much is kept between uses (at least one largest buffer).
   */
  constructor(maxPayloadBytes: number, maxFreeBytes: number) {
    const capacity = HEADER_BYTES + maxPayloadBytes;
    for (let k = 0; k < SIZE_CLASSES; k++) {
      const size = Math.ceil(capacity / 2 ** k);
      if (size <= HEADER_BYTES) break;
      this.#sizes.push(size);
      this.#free.set(size, []);
    }
    this.#maxFreeBytes = Math.max(capacity, maxFreeBytes);
  }

  /** A DATA frame with its header written and `payloadLength` bytes of payload left to fill. */
  frame(streamId: number, payloadLength: number): Buffer {
    const length = HEADER_BYTES + payloadLength;
    const size = this.#sizeFor(length);
    if (size === undefined) return allocDataFrame(streamId, payloadLength);
    let memory = this.#free.get(size)!.pop();
    if (memory === undefined) {
      memory = new ArrayBuffer(size);
      this.#mine.add(memory);
    } else {
      this.#freeBytes -= size;
    }
    const frame = Buffer.from(memory, 0, length);
    writeHeader(frame, FrameType.DATA, 0, streamId, payloadLength);
    return frame;
  }

  /** The smallest buffer size that holds `length` bytes in at most twice their room, if any. */
  #sizeFor(length: number): number | undefined {
    const sizes = this.#sizes;
    if (length > sizes[0]! || length * 2 < sizes.at(-1)!) return undefined;
    let k = 0;
    while (k + 1 < sizes.length && sizes[k + 1]! >= length) k++;
    return sizes[k];
  }

  /** Takes back a frame the socket has written (any other buffer is left to the GC). */
  recycle(frame: Buffer): void {
    const memory = frame.buffer as ArrayBuffer;
    if (frame.byteOffset !== 0 || !this.#mine.has(memory)) return;
    const size = memory.byteLength;
    if (this.#freeBytes + size > this.#maxFreeBytes) return;
    this.#free.get(size)!.push(memory);
    this.#freeBytes += size;
  }

  /** Buffers waiting to be used again. */
  get freeCount(): number {
    let count = 0;
    for (const free of this.#free.values()) count += free.length;
    return count;
  }
}
