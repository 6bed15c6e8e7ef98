/** Wire constants of protocol version 1; docs/PROTOCOL.md is the normative text. */

export const PROTOCOL_NAME = 'muxftp';
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

export const HEADER_BYTES = 12;
export const WINDOW_PAYLOAD_BYTES = 4;
export const SHA256_BYTES = 32;
export const END_PAYLOAD_BYTES = 8 + SHA256_BYTES;
/** Credit on a stream may never exceed this (as HTTP/2's 2^31-1). */
export const MAX_CREDIT = 2 ** 31 - 1;
export const MAX_STREAM_ID = 2 ** 32 - 1;
/** A peer may not announce a maxFramePayload below this. */
export const MIN_FRAME_PAYLOAD_BYTES = 16 * 1024;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  OPEN: 0x03,
  REPLY: 0x04,
  DATA: 0x05,
  WINDOW: 0x06,
  END: 0x07,
  ERROR: 0x08,
  CANCEL: 0x09,
  /** Login, both ways on stream 0: credentials from the client, the outcome from the server. */
  AUTH: 0x0a,
} as const;

export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(FrameType).map(([name, value]) => [value, name]),
);

export const Flags = {
  /** REPLY only: more REPLY frames of the same result follow. */
  MORE: 0x01,
} as const;

/** Frame types whose payload is a JSON object. */
export const JSON_FRAME_TYPES: ReadonlySet<number> = new Set([
  FrameType.HELLO,
  FrameType.WELCOME,
  FrameType.OPEN,
  FrameType.REPLY,
  FrameType.ERROR,
  FrameType.AUTH,
]);

/** Flags each type may carry; any other bit is a protocol error. */
export const ALLOWED_FLAGS: Readonly<Record<number, number>> = {
  [FrameType.REPLY]: Flags.MORE,
};
