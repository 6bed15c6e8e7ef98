/**
 * Incremental frame decoder (after ws's Receiver): a state machine over a list of buffered
 * chunks. It never assumes one TCP read is one frame, and it rejects a frame from its header alone
 * (length, type, flags, stream id) before holding a byte of its payload. DATA payloads are passed
 * on piece by piece as they arrive (slices of the input, never copied; see Frame), since they are
 * most of the bytes; control payloads are gathered whole.
 */
import { ProtocolError } from '../errors.js';
import {
  ALLOWED_FLAGS,
  END_PAYLOAD_BYTES,
  FRAME_TYPE_NAMES,
  FrameType,
  HEADER_BYTES,
  JSON_FRAME_TYPES,
  PING_PAYLOAD_BYTES,
  WINDOW_PAYLOAD_BYTES,
} from './constants.js';
import type { Frame } from './frame.js';

export interface DecoderOptions {
  /** Largest payload accepted (the limit this side announced). */
  maxFramePayloadBytes: number;
  /** Largest JSON payload accepted. */
  maxControlPayloadBytes: number;
}

enum State {
  Header,
  /** Gathering a control frame's payload. */
  Payload,
  /** Passing on a DATA frame's payload as it arrives. */
  Data,
  Failed,
}

const CONNECTION_FRAMES: ReadonlySet<number> = new Set([
  FrameType.HELLO,
  FrameType.WELCOME,
  FrameType.AUTH,
  FrameType.PING,
]);
const FIXED_LENGTH: Readonly<Record<number, number>> = {
  [FrameType.WINDOW]: WINDOW_PAYLOAD_BYTES,
  [FrameType.PING]: PING_PAYLOAD_BYTES,
  [FrameType.END]: END_PAYLOAD_BYTES,
  [FrameType.CANCEL]: 0,
};

export class FrameDecoder {
  private options: DecoderOptions;
  private readonly onFrame: (frame: Frame) => void;
  private readonly chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private state = State.Header;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  private payloadLength = 0;
  /** Of a DATA frame's payload, the bytes not yet passed on. */
  private dataRemaining = 0;
  /** The input being decoded is valid only during push (see push). */
  private borrowed = false;

  constructor(options: DecoderOptions, onFrame: (frame: Frame) => void) {
    this.options = options;
    this.onFrame = onFrame;
  }

  /** From the next frame header on, JSON payloads may be at most `bytes` (the server raises it after login). */
  setMaxControlPayloadBytes(bytes: number): void {
    this.options = { ...this.options, maxControlPayloadBytes: bytes };
  }

  /** Input stopped inside a frame: part of one has arrived, not all of it. */
  get midFrame(): boolean {
    return this.bufferedBytes > 0 || this.state === State.Payload || this.state === State.Data;
  }

  get failed(): boolean {
    return this.state === State.Failed;
  }

  /**
   * Feeds bytes in. Delivers every complete frame to `onFrame`. A ProtocolError (from the
   * decoder or thrown by `onFrame`) is final: it is rethrown and all later input is ignored.
   *
   * `borrowed` input (a shared read buffer's) is valid only until push returns: DATA pieces are
   * delivered as views marked `borrowed`, control payloads are copied, and an unfinished frame's
   * bytes are copied before returning.
   */
  push(chunk: Buffer, borrowed = false): void {
    if (this.state === State.Failed) return;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    this.borrowed = borrowed;
    try {
      this.run();
    } catch (err) {
      this.destroy();
      throw err;
    }
    if (borrowed && this.chunks.length > 0) {
      const rest = Buffer.concat(this.chunks, this.bufferedBytes);
      this.chunks.length = 0;
      this.chunks.push(rest);
    }
    this.borrowed = false;
  }

  /** Stops decoding for good and drops buffered input (the connection is going away). */
  destroy(): void {
    this.state = State.Failed;
    this.chunks.length = 0;
    this.bufferedBytes = 0;
  }

  private run(): void {
    for (;;) {
      if (this.state === State.Header) {
        if (this.bufferedBytes < HEADER_BYTES) return;
        this.readHeader(this.consume(HEADER_BYTES, false));
        if (this.type === FrameType.DATA && this.payloadLength > 0) {
          this.state = State.Data;
          this.dataRemaining = this.payloadLength;
        } else {
          this.state = State.Payload;
        }
      }
      if (this.state === State.Data) {
        if (!this.passDataOn()) return;
        continue;
      }
      if (this.state !== State.Payload || this.bufferedBytes < this.payloadLength) return;
      const payload = this.consume(this.payloadLength, this.borrowed);
      this.state = State.Header;
      this.onFrame({ type: this.type, flags: this.flags, streamId: this.streamId, payload });
      // onFrame may have failed us (e.g. destroyed the connection): stop delivering.
      if (this.state !== State.Header) return;
    }
  }

  /**
   * Delivers the buffered part of the current DATA payload, one piece per input chunk. True when
   * the payload is complete (back to Header), false when more input is needed or delivery stopped.
   */
  private passDataOn(): boolean {
    while (this.dataRemaining > 0) {
      const first = this.chunks[0];
      if (first === undefined) return false;
      const piece = first.length <= this.dataRemaining ? first : first.subarray(0, this.dataRemaining);
      if (piece === first) this.chunks.shift();
      else this.chunks[0] = first.subarray(piece.length);
      this.bufferedBytes -= piece.length;
      // Flow control counts the whole frame, on its first piece (creditTaken()).
      const frameLength = this.dataRemaining === this.payloadLength ? this.payloadLength : 0;
      this.dataRemaining -= piece.length;
      const partial = this.dataRemaining > 0;
      if (!partial) this.state = State.Header;
      this.onFrame({
        type: FrameType.DATA,
        flags: this.flags,
        streamId: this.streamId,
        payload: piece,
        partial,
        frameLength,
        borrowed: this.borrowed,
      });
      // onFrame may have failed us (e.g. destroyed the connection): stop delivering.
      if (this.state === State.Failed) return false;
    }
    return true;
  }

  private readHeader(header: Buffer): void {
    const type = header[0]!;
    const flags = header[1]!;
    const reserved = header.readUInt16BE(2);
    const streamId = header.readUInt32BE(4);
    const length = header.readUInt32BE(8);
    const name = FRAME_TYPE_NAMES[type];

    if (name === undefined) {
      throw new ProtocolError(
        'UNKNOWN_FRAME_TYPE',
        `unknown frame type 0x${type.toString(16).padStart(2, '0')}`,
      );
    }
    if (reserved !== 0)
      throw new ProtocolError('PROTOCOL_ERROR', `${name}: reserved header bits are not zero`);
    if (length > this.options.maxFramePayloadBytes) {
      throw new ProtocolError(
        'FRAME_TOO_LARGE',
        `${name} payload of ${length} bytes exceeds the limit of ${this.options.maxFramePayloadBytes}`,
      );
    }
    if (JSON_FRAME_TYPES.has(type) && length > this.options.maxControlPayloadBytes) {
      throw new ProtocolError(
        'FRAME_TOO_LARGE',
        `${name} payload of ${length} bytes exceeds the control limit of ${this.options.maxControlPayloadBytes}`,
      );
    }
    const fixed = FIXED_LENGTH[type];
    if (fixed !== undefined && length !== fixed) {
      throw new ProtocolError('PROTOCOL_ERROR', `${name} payload must be ${fixed} bytes, got ${length}`);
    }
    if ((flags & ~(ALLOWED_FLAGS[type] ?? 0)) !== 0) {
      throw new ProtocolError('PROTOCOL_ERROR', `${name}: invalid flags 0x${flags.toString(16)}`);
    }
    const connectionFrame = CONNECTION_FRAMES.has(type);
    if (connectionFrame && streamId !== 0)
      throw new ProtocolError('PROTOCOL_ERROR', `${name} must use stream 0`);
    if (!connectionFrame && type !== FrameType.ERROR && streamId === 0) {
      throw new ProtocolError('PROTOCOL_ERROR', `${name} must not use stream 0`);
    }

    this.type = type;
    this.flags = flags;
    this.streamId = streamId;
    this.payloadLength = length;
  }

  /** Takes n buffered bytes; copies when they span chunks or must outlive borrowed input (`keep`). */
  private consume(n: number, keep: boolean): Buffer {
    this.bufferedBytes -= n;
    const first = this.chunks[0];
    if (n === 0 || first === undefined) return Buffer.alloc(0);
    if (first.length === n) {
      this.chunks.shift();
      return keep ? Buffer.from(first) : first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return keep ? Buffer.from(first.subarray(0, n)) : first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const take = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, take);
      filled += take;
      if (take === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(take);
    }
    return out;
  }
}

/**
 * Wraps a frame handler for tools and tests that want each DATA frame whole, as it was sent:
 * gathers a DATA frame's pieces (copying them) and delivers one frame with the whole payload.
 */
export function wholeFrames(onFrame: (frame: Frame) => void): (frame: Frame) => void {
  let pieces: Buffer[] = [];
  return (frame) => {
    if (frame.type !== FrameType.DATA) {
      onFrame(frame);
      return;
    }
    pieces.push(frame.borrowed === true ? Buffer.from(frame.payload) : frame.payload);
    if (frame.partial === true) return;
    const payload = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    pieces = [];
    // Whole again: no piece fields (creditTaken() is then the payload's length).
    onFrame({ type: frame.type, flags: frame.flags, streamId: frame.streamId, payload });
  };
}
