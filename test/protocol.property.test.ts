/**
 * Property-based tests of the frame decoder (fast-check): random valid frame sequences split at
 * random points decode to themselves; random bytes and byte-level mutations of valid input never
 * crash it, and every rejection is one of the documented header errors, checked against an
 * independent model of docs/PROTOCOL.md's header rules. Runs are bounded in count and time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MuxftpError, ProtocolError } from '../shared/errors.js';
import {
  END_PAYLOAD_BYTES,
  FrameType,
  HEADER_BYTES,
  PING_PAYLOAD_BYTES,
  WINDOW_PAYLOAD_BYTES,
} from '../shared/protocol/constants.js';
import { FrameDecoder, wholeFrames } from '../shared/protocol/decoder.js';
import { encodeFrame } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { parseEnd, parseErrorPayload, parseHello } from '../shared/protocol/messages.js';
import { parseRequest } from '../shared/protocol/operations.js';

const LIMITS = { maxFramePayloadBytes: 4096, maxControlPayloadBytes: 1024 };
/** Bounded so that `npm test` stays fast: a few hundred cases, never more than a few seconds. */
const RUNS = { numRuns: 500, interruptAfterTimeLimit: 4_000 } as const;

const JSON_TYPES = new Set<number>([
  FrameType.HELLO,
  FrameType.WELCOME,
  FrameType.OPEN,
  FrameType.REPLY,
  FrameType.ERROR,
  FrameType.AUTH,
]);

/** Frames on stream 0 only (ERROR may use either). */
const CONNECTION_TYPES = new Set<number>([
  FrameType.HELLO,
  FrameType.WELCOME,
  FrameType.AUTH,
  FrameType.PING,
]);

/**
 * The header rules of docs/PROTOCOL.md ("Checks a receiver makes from the header alone"), written
 * out again independently of the decoder: the set of codes a header violates, empty when valid.
 */
function headerViolations(header: Buffer): Set<string> {
  const type = header[0]!;
  const flags = header[1]!;
  const reserved = header.readUInt16BE(2);
  const streamId = header.readUInt32BE(4);
  const length = header.readUInt32BE(8);
  const codes = new Set<string>();
  if (type < FrameType.HELLO || type > FrameType.PING) {
    codes.add('UNKNOWN_FRAME_TYPE');
    return codes;
  }
  if (reserved !== 0) codes.add('PROTOCOL_ERROR');
  if (length > LIMITS.maxFramePayloadBytes) codes.add('FRAME_TOO_LARGE');
  if (JSON_TYPES.has(type) && length > LIMITS.maxControlPayloadBytes) codes.add('FRAME_TOO_LARGE');
  if (type === FrameType.WINDOW && length !== WINDOW_PAYLOAD_BYTES) codes.add('PROTOCOL_ERROR');
  if (type === FrameType.END && length !== END_PAYLOAD_BYTES) codes.add('PROTOCOL_ERROR');
  if (type === FrameType.CANCEL && length !== 0) codes.add('PROTOCOL_ERROR');
  if (type === FrameType.PING && length !== PING_PAYLOAD_BYTES) codes.add('PROTOCOL_ERROR');
  // MORE on REPLY, ACK on PING.
  const allowedFlags = type === FrameType.REPLY || type === FrameType.PING ? 0x01 : 0;
  if ((flags & ~allowedFlags) !== 0) codes.add('PROTOCOL_ERROR');
  const connectionFrame = CONNECTION_TYPES.has(type);
  if (connectionFrame && streamId !== 0) codes.add('PROTOCOL_ERROR');
  if (!connectionFrame && type !== FrameType.ERROR && streamId === 0) codes.add('PROTOCOL_ERROR');
  return codes;
}

interface Outcome {
  frames: Frame[];
  error: unknown;
}

/** Feeds `input` cut at `cuts`; records the frames and the first error, then keeps pushing. */
function decode(input: Buffer, cuts: number[]): Outcome {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(
    LIMITS,
    wholeFrames((frame) => frames.push({ ...frame, payload: Buffer.from(frame.payload) })),
  );
  let error: unknown;
  let start = 0;
  const ends = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  for (const end of [...ends, input.length]) {
    try {
      decoder.push(input.subarray(start, end));
    } catch (err) {
      // Fatal errors are final: exactly one, and the decoder is failed from then on.
      if (error !== undefined) throw new Error('decoder threw twice');
      error = err;
      expect(decoder.failed).toBe(true);
    }
    start = end;
  }
  return { frames, error };
}

/** A frame that satisfies every header rule, of any type, with a payload of a legal size. */
const validFrame: fc.Arbitrary<Buffer> = fc
  .record({
    type: fc.integer({ min: FrameType.HELLO, max: FrameType.PING }),
    streamId: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
    more: fc.boolean(),
    payload: fc.uint8Array({ maxLength: 300 }),
  })
  .map(({ type, streamId, more, payload }) => {
    const id = CONNECTION_TYPES.has(type) ? 0 : streamId;
    const flags = (type === FrameType.REPLY || type === FrameType.PING) && more ? 0x01 : 0;
    const fixed =
      type === FrameType.WINDOW
        ? WINDOW_PAYLOAD_BYTES
        : type === FrameType.END
          ? END_PAYLOAD_BYTES
          : type === FrameType.CANCEL
            ? 0
            : type === FrameType.PING
              ? PING_PAYLOAD_BYTES
              : undefined;
    const body = Buffer.alloc(fixed ?? payload.length);
    body.set(payload.subarray(0, body.length));
    return encodeFrame(type, flags, id, body);
  });

const cuts = fc.array(fc.nat(), { maxLength: 8 });

/**
 * A valid frame with one header field pushed to an edge (a value just past a limit, a legal
 * one, or anything): random bytes alone rarely get that close to the rules.
 */
const edgyFrame: fc.Arbitrary<Buffer> = fc
  .tuple(
    validFrame,
    fc.oneof(
      fc.record({ field: fc.constant(0), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ field: fc.constant(1), value: fc.constantFrom(0, 1, 2, 0x80) }),
      fc.record({
        field: fc.constant(2),
        value: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 0xffff })),
      }),
      fc.record({ field: fc.constant(4), value: fc.constantFrom(0, 1, 2 ** 32 - 1) }),
      {
        weight: 4,
        arbitrary: fc.record({
          field: fc.constant(8),
          value: fc.constantFrom(
            1,
            WINDOW_PAYLOAD_BYTES,
            END_PAYLOAD_BYTES - 1,
            LIMITS.maxControlPayloadBytes + 1,
            LIMITS.maxFramePayloadBytes,
            LIMITS.maxFramePayloadBytes + 1,
            2 ** 32 - 1,
          ),
        }),
      },
    ),
  )
  .map(([frame, { field, value }]) => {
    const header = Buffer.from(frame.subarray(0, HEADER_BYTES));
    if (field === 0 || field === 1) header[field] = value;
    else if (field === 2) header.writeUInt16BE(value, 2);
    else header.writeUInt32BE(value, field);
    // The payload its header declares (capped just past the limit): random filler.
    const length = Math.min(header.readUInt32BE(8), LIMITS.maxFramePayloadBytes + 1);
    return Buffer.concat([header, Buffer.alloc(length, frame.length % 251)]);
  });

/** Arbitrary input: plain random bytes, one frame just off the rules, or valid and edgy frames mixed. */
const hostileInput: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 2_000 }).map((b) => Buffer.from(b)),
  edgyFrame,
  fc.array(fc.oneof(validFrame, edgyFrame), { maxLength: 8 }).map((parts) => Buffer.concat(parts)),
);

function frameBytes(frame: Frame): Buffer {
  return encodeFrame(frame.type, frame.flags, frame.streamId, frame.payload);
}

/** Every documented header error, the only thing the decoder may throw. */
function expectDocumentedError(error: unknown): asserts error is ProtocolError {
  expect(error).toBeInstanceOf(ProtocolError);
  const err = error as ProtocolError;
  expect(['PROTOCOL_ERROR', 'FRAME_TOO_LARGE', 'UNKNOWN_FRAME_TYPE']).toContain(err.code);
  expect(err.fatal).toBe(true);
}

describe('frame decoder properties', () => {
  it('decodes any sequence of valid frames, cut anywhere, to exactly those frames', () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 20 }), cuts, (frames, at) => {
        const { frames: decoded, error } = decode(Buffer.concat(frames), at);
        expect(error).toBeUndefined();
        expect(decoded.map(frameBytes)).toEqual(frames);
      }),
      RUNS,
    );
  });

  it('on random and near-valid bytes, delivers only frames the rules allow and fails only with the error the model predicts', () => {
    fc.assert(
      fc.property(hostileInput, cuts, (input, at) => {
        const { frames, error } = decode(input, at);
        // Walk the input with the model: each delivered frame must be the next valid one.
        let offset = 0;
        for (const frame of frames) {
          const header = input.subarray(offset, offset + HEADER_BYTES);
          expect(headerViolations(header)).toEqual(new Set());
          expect(frameBytes(frame)).toEqual(
            input.subarray(offset, offset + HEADER_BYTES + frame.payload.length),
          );
          offset += HEADER_BYTES + frame.payload.length;
        }
        const rest = input.length - offset;
        if (error === undefined) {
          // Stopped for lack of bytes: either a partial header, or a valid header whose payload is incomplete.
          if (rest >= HEADER_BYTES) {
            const header = input.subarray(offset, offset + HEADER_BYTES);
            expect(headerViolations(header)).toEqual(new Set());
            expect(header.readUInt32BE(8)).toBeGreaterThan(rest - HEADER_BYTES);
          }
          return;
        }
        expectDocumentedError(error);
        expect(rest).toBeGreaterThanOrEqual(HEADER_BYTES);
        expect(headerViolations(input.subarray(offset, offset + HEADER_BYTES))).toContain(error.code);
      }),
      RUNS,
    );
  });

  it('after byte-level mutations of valid input, frames before the first changed byte arrive intact and any error is documented', () => {
    const mutation = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(
        fc.array(validFrame, { minLength: 1, maxLength: 12 }),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        cuts,
        (frames, mutations, at) => {
          const original = Buffer.concat(frames);
          const input = Buffer.from(original);
          for (const m of mutations) input[m.at % input.length] = m.value;
          const firstChanged = input.findIndex((byte, i) => byte !== original[i]);
          const { frames: decoded, error } = decode(input, at);
          if (error !== undefined) expectDocumentedError(error);
          let offset = 0;
          for (const [i, frame] of frames.entries()) {
            if (firstChanged !== -1 && offset + frame.length > firstChanged) break;
            expect(decoded[i] && frameBytes(decoded[i])).toEqual(frame);
            offset += frame.length;
          }
          // Whatever was delivered obeys the header rules.
          for (const frame of decoded) expect(headerViolations(frameBytes(frame))).toEqual(new Set());
        },
      ),
      RUNS,
    );
  });
});

describe('payload parser properties', () => {
  const anyPayload = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    fc.json().map((s) => Buffer.from(s)),
    fc
      .record({
        op: fc.oneof(fc.constantFrom('get', 'put', 'list', 'stat', 'mkdir', 'rename', 'stats'), fc.string()),
        path: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
        size: fc.oneof(fc.integer(), fc.double(), fc.string()),
        parents: fc.anything(),
      })
      .map((o) => Buffer.from(JSON.stringify(o))),
  );
  const frameWith = (type: number, payload: Buffer): Frame => ({ type, flags: 0, streamId: 1, payload });

  it('an OPEN payload either parses or fails its stream only (BAD_REQUEST or UNSUPPORTED)', () => {
    fc.assert(
      fc.property(anyPayload, (payload) => {
        try {
          parseRequest(frameWith(FrameType.OPEN, payload));
        } catch (err) {
          expect(err).toBeInstanceOf(MuxftpError);
          expect(['BAD_REQUEST', 'UNSUPPORTED']).toContain((err as MuxftpError).code);
          expect((err as MuxftpError).fatal).toBe(false);
        }
      }),
      RUNS,
    );
  });

  it('HELLO, ERROR and END payloads either parse or fail with a connection-level ProtocolError', () => {
    fc.assert(
      fc.property(
        anyPayload,
        fc.uint8Array({ minLength: END_PAYLOAD_BYTES, maxLength: END_PAYLOAD_BYTES }),
        (payload, end) => {
          for (const parse of [
            () => parseHello(frameWith(FrameType.HELLO, payload)),
            () => parseErrorPayload(frameWith(FrameType.ERROR, payload)),
            () => parseEnd(frameWith(FrameType.END, Buffer.from(end))),
          ]) {
            try {
              parse();
            } catch (err) {
              expect(err).toBeInstanceOf(ProtocolError);
              expect((err as ProtocolError).fatal).toBe(true);
            }
          }
        },
      ),
      RUNS,
    );
  });
});
