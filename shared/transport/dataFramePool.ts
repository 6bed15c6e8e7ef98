/**
 * Buffers for outgoing DATA frames, used again once the socket has taken their bytes instead of
 * allocated per chunk. Each fresh 256 KiB–1 MiB buffer is memory outside V8's heap: one per chunk
 * drives V8 into a major garbage collection every few dozen MiB sent, and the kernel into
 * faulting in fresh pages; a few buffers going round avoid both (bench/README.md).
 *
 * Only frames whose bytes the kernel has copied may come back (a TCP or TLS socket's write
 * callback says so); a frame given up while a file read may still be filling it never does.
 */
import { FrameType, HEADER_BYTES } from '../protocol/constants.js';
import { allocDataFrame, writeHeader } from '../protocol/encoder.js';

export class DataFramePool {
  /** Header and the largest payload a pooled buffer holds. */
  readonly #capacity: number;
  readonly #maxFree: number;
  readonly #free: ArrayBuffer[] = [];
  readonly #mine = new WeakSet<ArrayBuffer>();

  /**
   * @param maxPayloadBytes the payload of a pooled frame; larger frames are allocated as before.
   * @param maxFreeBytes at most this much is kept between uses.
   */
  constructor(maxPayloadBytes: number, maxFreeBytes: number) {
    this.#capacity = HEADER_BYTES + maxPayloadBytes;
    this.#maxFree = Math.max(1, Math.floor(maxFreeBytes / this.#capacity));
  }

  /** A DATA frame with its header written and `payloadLength` bytes of payload left to fill. */
  frame(streamId: number, payloadLength: number): Buffer {
    const length = HEADER_BYTES + payloadLength;
    if (length > this.#capacity) return allocDataFrame(streamId, payloadLength);
    let memory = this.#free.pop();
    if (memory === undefined) {
      memory = new ArrayBuffer(this.#capacity);
      this.#mine.add(memory);
    }
    const frame = Buffer.from(memory, 0, length);
    writeHeader(frame, FrameType.DATA, 0, streamId, payloadLength);
    return frame;
  }

  /** Takes back a frame the socket has written (any other buffer is left to the GC). */
  recycle(frame: Buffer): void {
    const memory = frame.buffer as ArrayBuffer;
    if (frame.byteOffset !== 0 || !this.#mine.has(memory) || this.#free.length >= this.#maxFree) return;
    this.#free.push(memory);
  }

  /** Buffers waiting to be used again. */
  get freeCount(): number {
    return this.#free.length;
  }
}
