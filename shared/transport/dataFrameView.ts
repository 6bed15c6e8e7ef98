/**
 * A DATA frame whose payload is a view of bytes held elsewhere (a file of in-memory storage):
 * the queue writes its header and then the view, back to back in one writev, so the bytes reach
 * the socket without first being copied into a frame. Its length counts like any frame's. A view
 * keeps the whole buffer it views alive (a removed file's too) until the socket is done with it:
 * released() says so (written, or dropped with the socket or unsent), once.
 */
import { FrameType, HEADER_BYTES } from '../protocol/constants.js';
import { writeHeader } from '../protocol/encoder.js';

export class DataFrameView {
  readonly header: Buffer;
  readonly payload: Buffer;
  #onReleased: (() => void) | undefined;

  constructor(streamId: number, payload: Buffer, onReleased?: () => void) {
    this.header = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(this.header, FrameType.DATA, 0, streamId, payload.length);
    this.payload = payload;
    this.#onReleased = onReleased;
  }

  /** Nothing will hold the view any more (the socket wrote or dropped it, or it was never sent). */
  released(): void {
    const onReleased = this.#onReleased;
    this.#onReleased = undefined;
    onReleased?.();
  }

  get length(): number {
    return HEADER_BYTES + this.payload.length;
  }
}

/** What a producer hands the outbound queue: a whole frame, or a DATA frame over a view. */
export type OutgoingFrame = Buffer | DataFrameView;
