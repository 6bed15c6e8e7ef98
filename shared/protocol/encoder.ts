/**
 * Pure frame encoders: no sockets, no state, so tests build their input with them.
 * Header layout (docs/PROTOCOL.md): type u8 | flags u8 | reserved u16 = 0 | stream id u32 | length u32.
 */
import { ALGORITHM_WIRE_ID, DIGEST_BYTES, type IntegrityAlgorithm } from '../integrity/algorithms.js';
import {
  END_PAYLOAD_BYTES,
  Flags,
  FrameType,
  HEADER_BYTES,
  PING_PAYLOAD_BYTES,
  WINDOW_PAYLOAD_BYTES,
} from './constants.js';
import type { AuthRequest, AuthResult, ErrorPayload, Hello, Request, Welcome } from './messages.js';

export function writeHeader(
  target: Buffer,
  type: number,
  flags: number,
  streamId: number,
  length: number,
  offset = 0,
): void {
  target[offset] = type;
  target[offset + 1] = flags;
  target.writeUInt16BE(0, offset + 2);
  target.writeUInt32BE(streamId, offset + 4);
  target.writeUInt32BE(length, offset + 8);
}

/** One buffer holding header and payload. */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const length = payload?.length ?? 0;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  writeHeader(frame, type, flags, streamId, length);
  if (payload) frame.set(payload, HEADER_BYTES);
  return frame;
}

export function encodeJsonFrame(type: number, streamId: number, value: object, flags = 0): Buffer {
  return encodeFrame(type, flags, streamId, Buffer.from(JSON.stringify(value), 'utf8'));
}

export const encodeHello = (hello: Hello): Buffer => encodeJsonFrame(FrameType.HELLO, 0, hello);
export const encodeWelcome = (welcome: Welcome): Buffer => encodeJsonFrame(FrameType.WELCOME, 0, welcome);
export const encodeAuth = (auth: AuthRequest | AuthResult): Buffer =>
  encodeJsonFrame(FrameType.AUTH, 0, auth);
export const encodeOpen = (streamId: number, request: Request): Buffer =>
  encodeJsonFrame(FrameType.OPEN, streamId, request);
export const encodeReply = (streamId: number, result: object, more = false): Buffer =>
  encodeJsonFrame(FrameType.REPLY, streamId, result, more ? Flags.MORE : 0);
export const encodeError = (streamId: number, error: ErrorPayload): Buffer =>
  encodeJsonFrame(FrameType.ERROR, streamId, error);
export const encodeCancel = (streamId: number): Buffer => encodeFrame(FrameType.CANCEL, 0, streamId);
export const encodeData = (streamId: number, payload: Uint8Array): Buffer =>
  encodeFrame(FrameType.DATA, 0, streamId, payload);

/**
 * A DATA frame whose payload area (from HEADER_BYTES on) is left for the caller to fill, so file
 * bytes can be read straight into the frame without a copy.
 */
export function allocDataFrame(streamId: number, payloadLength: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payloadLength);
  writeHeader(frame, FrameType.DATA, 0, streamId, payloadLength);
  return frame;
}

/** A PING (`ack`: the answer to one), carrying `payload`'s eight bytes. */
export function encodePing(payload: Uint8Array, ack = false): Buffer {
  if (payload.length !== PING_PAYLOAD_BYTES)
    throw new RangeError(`PING payload must be ${PING_PAYLOAD_BYTES} bytes`);
  return encodeFrame(FrameType.PING, ack ? Flags.ACK : 0, 0, payload);
}

/** WINDOW payload: u32 credit increment. */
export function encodeWindow(streamId: number, increment: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + WINDOW_PAYLOAD_BYTES);
  writeHeader(frame, FrameType.WINDOW, 0, streamId, WINDOW_PAYLOAD_BYTES);
  frame.writeUInt32BE(increment, HEADER_BYTES);
  return frame;
}

/**
 * END payload (41 bytes):
 *   u64 total size | u8 algorithm (1 xxh128, 2 sha256) | 32-byte field: the content digest D,
 *   then zero bytes (xxh128's D is 16 bytes).
 */
export function encodeEnd(
  streamId: number,
  size: number,
  algorithm: IntegrityAlgorithm,
  digest: Uint8Array,
): Buffer {
  if (digest.length !== DIGEST_BYTES[algorithm]) {
    throw new RangeError(`${algorithm} digest must be ${DIGEST_BYTES[algorithm]} bytes`);
  }
  const frame = Buffer.alloc(HEADER_BYTES + END_PAYLOAD_BYTES);
  writeHeader(frame, FrameType.END, 0, streamId, END_PAYLOAD_BYTES);
  frame.writeBigUInt64BE(BigInt(size), HEADER_BYTES);
  frame[HEADER_BYTES + 8] = ALGORITHM_WIRE_ID[algorithm];
  frame.set(digest, HEADER_BYTES + 9);
  return frame;
}
