/**
 * A DATA frame whose payload is a view of bytes held elsewhere (a file of in-memory storage):
 * the queue writes its header and then the view, back to back in one writev, so the bytes reach
 * the socket without first being copied into a frame. Its length counts like any frame's.
 */
import { FrameType, HEADER_BYTES } from '../protocol/constants.js';
import { writeHeader } from '../protocol/encoder.js';

export class DataFrameView {
  readonly header: Buffer;
  readonly payload: Buffer;

  constructor(streamId: number, payload: Buffer) {
    this.header = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(this.header, FrameType.DATA, 0, streamId, payload.length);
    this.payload = payload;
  }

  get length(): number {
    return HEADER_BYTES + this.payload.length;
  }
}

/** What a producer hands the outbound queue: a whole frame, or a DATA frame over a view. */
export type OutgoingFrame = Buffer | DataFrameView;
