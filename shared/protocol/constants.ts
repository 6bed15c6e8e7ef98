/** Wire constants of protocol version 2; docs/PROTOCOL.md is the normative text. */

/** HELLO's `protocol` field: a peer that is not muxftp is told so rather than misread. */
export const PROTOCOL_NAME = 'muxftp';
/** Version 2 (issue #11): negotiated integrity algorithm, block digests, END names its algorithm. */
export const PROTOCOL_VERSION = 2;
/** Version 1 (one SHA-256 over the stream) is not spoken: a v1 peer gets VERSION_MISMATCH. */
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

export const HEADER_BYTES = 12;
export const WINDOW_PAYLOAD_BYTES = 4;
/** PING: eight opaque bytes, echoed in the answer. */
export const PING_PAYLOAD_BYTES = 8;
/** END's digest field: the largest digest (sha256), a shorter one is followed by zero bytes. */
const END_DIGEST_FIELD_BYTES = 32;
/** END: u64 size | u8 algorithm | digest field. Fixed, so it is checked from the header alone. */
export const END_PAYLOAD_BYTES = 8 + 1 + END_DIGEST_FIELD_BYTES;
/** Credit on a stream may never exceed this (as HTTP/2's 2^31-1). */
export const MAX_CREDIT = 2 ** 31 - 1;
export const MAX_STREAM_ID = 2 ** 32 - 1;
/** A peer may not announce a maxFramePayload below this. */
export const MIN_FRAME_PAYLOAD_BYTES = 16 * 1024;
/**
 * An ERROR's message is cut to this many UTF-16 code units: JSON-escaped (6 bytes each at worst)
 * it stays within the smallest maxFramePayload a peer may announce, two 4,096-byte paths of
 * quotes included.
 */
export const MAX_ERROR_MESSAGE_CHARS = 2_000;

/**
 * Block digests a REPLY to `peerMaxFramePayload` may list (get with `offset`, `partial`): at most
 * `maxBlocks`, and no more than fit the peer's frame limit beside the reply's other fields (under
 * 200 bytes of JSON), each digest in hex with its quotes and comma. 16 KiB holds 460 xxh128 or
 * 240 sha256 digests; a REPLY is never split.
 */
export function blockDigestsFitting(
  peerMaxFramePayload: number,
  digestBytes: number,
  maxBlocks: number,
): number {
  const replyFieldsBytes = 256;
  return Math.min(maxBlocks, Math.floor((peerMaxFramePayload - replyFieldsBytes) / (2 * digestBytes + 3)));
}

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
  /**
   * Stream 0: "are you there?", answered at once with the same payload and ACK (as HTTP/2's). Sent
   * only to a peer whose WELCOME says `ping` (older ones close the connection on a type they do
   * not know).
   */
  PING: 0x0b,
} as const;

export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(FrameType).map(([name, value]) => [value, name]),
);

export const Flags = {
  /** REPLY only: more REPLY frames of the same result follow. */
  MORE: 0x01,
  /** PING only: the answer to a PING. */
  ACK: 0x01,
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
  [FrameType.PING]: Flags.ACK,
};
