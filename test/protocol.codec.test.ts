import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { MuxftpError, ProtocolError, ServerBusyError } from '../shared/errors.js';
import { DIGEST_BYTES, INTEGRITY_ALGORITHMS, INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import {
  blockDigestsFitting,
  FrameType,
  HEADER_BYTES,
  MAX_CREDIT,
  MAX_ERROR_MESSAGE_CHARS,
  MIN_FRAME_PAYLOAD_BYTES,
} from '../shared/protocol/constants.js';
import { FrameDecoder, wholeFrames } from '../shared/protocol/decoder.js';
import {
  allocDataFrame,
  encodeAuth,
  encodeCancel,
  encodeData,
  encodeEnd,
  encodeError,
  encodeFrame,
  encodeHello,
  encodeOpen,
  encodePing,
  encodeReply,
  encodeWelcome,
  encodeWindow,
  writeHeader,
} from '../shared/protocol/encoder.js';
import { creditTaken, type Frame } from '../shared/protocol/frame.js';
import {
  errorPayload,
  parseAuthRequest,
  parseAuthResult,
  parseEnd,
  parseErrorPayload,
  parseHello,
  parseWelcome,
  parseWindow,
  type Request,
} from '../shared/protocol/messages.js';
import { parseRequest } from '../shared/protocol/operations.js';

const LIMITS = { maxFramePayloadBytes: 64 * 1024, maxControlPayloadBytes: 8 * 1024 };

function decodeAll(input: Buffer, splits: number[] = []): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(
    LIMITS,
    wholeFrames((frame) => frames.push({ ...frame, payload: Buffer.from(frame.payload) })),
  );
  let start = 0;
  for (const at of [...splits, input.length]) {
    decoder.push(input.subarray(start, at));
    start = at;
  }
  return frames;
}

function decodeError(input: Buffer): ProtocolError {
  try {
    decodeAll(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

const sha = createHash('sha256').update('hello').digest();
const xxh = contentDigest('xxh128', Buffer.from('hello'));

type Sample = { name: string; frame: Buffer; check(frame: Frame): void };

/** An OPEN of `request` on `streamId`, which must parse back to `request`. */
const openSample = (name: string, streamId: number, request: Request): Sample => ({
  name,
  frame: encodeOpen(streamId, request),
  check: (f) => expect(parseRequest(f)).toEqual(request),
});

const SAMPLES: Sample[] = [
  {
    name: 'HELLO',
    frame: encodeHello({
      protocol: 'muxftp',
      versions: [2],
      maxFramePayload: 65536,
      agent: 't',
      integrity: ['sha256', 'xxh128'],
    }),
    check: (f) =>
      expect(parseHello(f)).toEqual({
        protocol: 'muxftp',
        versions: [2],
        maxFramePayload: 65536,
        agent: 't',
        integrity: ['sha256', 'xxh128'],
      }),
  },
  {
    name: 'WELCOME',
    frame: encodeWelcome({
      version: 2,
      limits: { maxFramePayload: 65536, maxStreams: 8, maxPathBytes: 4096, streamWindow: 1024 },
      integrity: { algorithm: 'sha256', blockBytes: INTEGRITY_BLOCK_BYTES },
    }),
    check: (f) => {
      const welcome = parseWelcome(f);
      expect(welcome.limits.maxStreams).toBe(8);
      expect(welcome.integrity).toEqual({ algorithm: 'sha256', blockBytes: 4 * 1024 * 1024 });
    },
  },
  {
    name: 'OPEN',
    frame: encodeOpen(7, { op: 'put', path: 'a/b.bin', size: 12 }),
    check: (f) => {
      expect(f.streamId).toBe(7);
      expect(parseRequest(f)).toEqual({ op: 'put', path: 'a/b.bin', size: 12 });
    },
  },
  openSample('OPEN of a resumable put keeping its source time', 9, {
    op: 'put',
    path: 'old',
    size: 5,
    source: 's',
    offset: 0,
    mtime: -1.5e11,
  }),
  openSample('OPEN of a put keeping its source permission bits', 11, {
    op: 'put',
    path: 'run.sh',
    size: 3,
    mode: 0o755,
  }),
  openSample('OPEN of a rename that keeps a file at its destination', 13, {
    op: 'rename',
    from: 'a',
    to: 'b',
    noReplace: true,
  }),
  openSample('OPEN of a partial that drops what is kept', 15, {
    op: 'partial',
    path: 'big',
    size: 9,
    algorithm: 'xxh128',
    source: 's',
    drop: true,
  }),
  {
    name: 'REPLY with MORE',
    frame: encodeReply(9, { entries: [] }, true),
    check: (f) => {
      expect(f.flags).toBe(1);
      expect(JSON.parse(f.payload.toString())).toEqual({ entries: [] });
    },
  },
  {
    name: 'DATA',
    frame: encodeData(3, Buffer.from('0123456789')),
    check: (f) => expect(f.payload.toString()).toBe('0123456789'),
  },
  {
    name: 'empty DATA',
    frame: encodeData(3, Buffer.alloc(0)),
    check: (f) => expect(f.payload.length).toBe(0),
  },
  { name: 'WINDOW', frame: encodeWindow(5, 123456), check: (f) => expect(parseWindow(f)).toBe(123456) },
  {
    name: 'PING answered (ACK)',
    frame: encodePing(Buffer.from('abcdefgh'), true),
    check: (f) => expect(f).toMatchObject({ streamId: 0, flags: 1, payload: Buffer.from('abcdefgh') }),
  },
  {
    name: 'END, sha256',
    frame: encodeEnd(5, 2 ** 40 + 3, 'sha256', sha),
    check: (f) => {
      // u64 size | u8 algorithm (2) | 32-byte digest
      expect(f.payload.length).toBe(41);
      expect(f.payload[8]).toBe(2);
      const end = parseEnd(f);
      expect(end.size).toBe(2 ** 40 + 3);
      expect(end.algorithm).toBe('sha256');
      expect(end.digest.equals(sha)).toBe(true);
    },
  },
  {
    name: 'END, xxh128',
    frame: encodeEnd(6, 5, 'xxh128', xxh),
    check: (f) => {
      // u64 size | u8 algorithm (1) | 16-byte digest | 16 zero bytes
      expect(f.payload.length).toBe(41);
      expect(f.payload[8]).toBe(1);
      expect(f.payload.subarray(25).every((b) => b === 0)).toBe(true);
      const end = parseEnd(f);
      expect(end).toEqual({ size: 5, algorithm: 'xxh128', digest: xxh });
    },
  },
  {
    name: 'ERROR',
    frame: encodeError(4, { status: 203, code: 'NOT_FOUND', message: 'no such file' }),
    check: (f) => expect(parseErrorPayload(f)).toEqual({ code: 'NOT_FOUND', message: 'no such file' }),
  },
  { name: 'CANCEL', frame: encodeCancel(11), check: (f) => expect(f.payload.length).toBe(0) },
];

describe('frame codec', () => {
  it.each(SAMPLES)('$name round-trips', ({ frame, check }) => {
    const frames = decodeAll(frame);
    expect(frames).toHaveLength(1);
    check(frames[0]!);
  });

  it('decodes many frames from one chunk, and the same input split at every byte offset', () => {
    const all = Buffer.concat(SAMPLES.map((s) => s.frame));
    const whole = decodeAll(all);
    expect(whole.map((f) => f.type)).toEqual(SAMPLES.map((s) => s.frame[0]));
    for (let at = 1; at < all.length; at++) {
      expect(decodeAll(all, [at])).toEqual(whole);
    }
  });

  it('decodes input fed one byte at a time', () => {
    const all = Buffer.concat(SAMPLES.map((s) => s.frame));
    const splits = Array.from({ length: all.length - 1 }, (_, i) => i + 1);
    expect(decodeAll(all, splits)).toEqual(decodeAll(all));
  });

  it('splits every frame at every offset into three parts', () => {
    for (const sample of SAMPLES) {
      const n = sample.frame.length;
      for (let a = 1; a < n; a += 3) {
        for (let b = a + 1; b < n; b += 5) {
          const frames = decodeAll(sample.frame, [a, b]);
          expect(frames).toHaveLength(1);
          sample.check(frames[0]!);
        }
      }
    }
  });

  it('passes a DATA payload on piece by piece as it arrives, as slices of the input (no copy)', () => {
    const payload = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    const input = Buffer.concat([encodeData(7, payload), encodeCancel(7)]);
    const chunks = [
      input.subarray(0, HEADER_BYTES + 10),
      input.subarray(HEADER_BYTES + 10, HEADER_BYTES + 50),
      input.subarray(HEADER_BYTES + 50),
    ];
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(LIMITS, (frame) => frames.push(frame));
    decoder.push(chunks[0]!);
    expect(decoder.midFrame).toBe(true);
    decoder.push(chunks[1]!);
    decoder.push(chunks[2]!);
    expect(decoder.midFrame).toBe(false);
    expect(frames.map((f) => [f.type, f.streamId, f.payload.length, f.partial, f.frameLength])).toEqual([
      [FrameType.DATA, 7, 10, true, 100],
      [FrameType.DATA, 7, 40, true, 0],
      [FrameType.DATA, 7, 50, false, 0],
      [FrameType.CANCEL, 7, 0, undefined, undefined],
    ]);
    // Flow control counts the whole frame when its first piece arrives.
    expect(frames.map(creditTaken)).toEqual([100, 0, 0, 0]);
    expect(Buffer.concat(frames.slice(0, 3).map((f) => f.payload))).toEqual(payload);
    // Each piece is a view of the chunk it arrived in, not a copy.
    frames.slice(0, 3).forEach((frame, i) => {
      expect(frame.payload.buffer).toBe(chunks[i]!.buffer);
    });
  });

  it('says when input stopped inside a frame', () => {
    const decoder = new FrameDecoder(LIMITS, () => {});
    const open = encodeOpen(1, { op: 'stat', path: 'a' });
    decoder.push(open.subarray(0, HEADER_BYTES));
    expect(decoder.midFrame).toBe(true);
    decoder.push(open.subarray(HEADER_BYTES));
    expect(decoder.midFrame).toBe(false);
    decoder.push(encodeData(1, Buffer.alloc(0)));
    expect(decoder.midFrame).toBe(false);
  });

  it('says it is inside a frame from the first byte of a header on', () => {
    const decoder = new FrameDecoder(LIMITS, () => {});
    const open = encodeOpen(1, { op: 'stat', path: 'a' });
    decoder.push(open.subarray(0, 5));
    expect(decoder.midFrame).toBe(true);
    decoder.push(open.subarray(5));
    expect(decoder.midFrame).toBe(false);
  });

  it('marks DATA pieces of its own input (not borrowed) as not borrowed', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(LIMITS, (frame) => frames.push(frame));
    decoder.push(encodeData(3, Buffer.from('abc')));
    expect(frames.map((f) => f.borrowed)).toEqual([false]);
  });

  it('delivers no empty DATA piece for an empty push in the middle of a payload', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(LIMITS, (frame) => frames.push(frame));
    const data = encodeData(3, Buffer.from('0123456789'));
    decoder.push(data.subarray(0, HEADER_BYTES + 4));
    decoder.push(Buffer.alloc(0));
    decoder.push(data.subarray(HEADER_BYTES + 4));
    expect(frames.map((f) => f.payload.toString())).toEqual(['0123', '456789']);
  });

  it('delivers no empty DATA piece when borrowed input ends right after a DATA header', () => {
    const frames: string[] = [];
    const decoder = new FrameDecoder(LIMITS, (frame) => frames.push(frame.payload.toString()));
    const data = encodeData(3, Buffer.from('0123456789'));
    decoder.push(Buffer.from(data.subarray(0, HEADER_BYTES)), true);
    decoder.push(Buffer.from(data.subarray(HEADER_BYTES)), true);
    expect(frames).toEqual(['0123456789']);
  });

  it('accepts a control payload of exactly the control limit', () => {
    const payload = Buffer.alloc(LIMITS.maxControlPayloadBytes, 0x20);
    const [frame] = decodeAll(encodeFrame(FrameType.OPEN, 0, 1, payload));
    expect(frame?.payload.length).toBe(LIMITS.maxControlPayloadBytes);
  });

  it('setMaxControlPayloadBytes raises the control limit and leaves the frame limit as it was', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder({ maxFramePayloadBytes: 1024, maxControlPayloadBytes: 16 }, (frame) =>
      frames.push(frame),
    );
    const request = encodeFrame(FrameType.OPEN, 0, 1, Buffer.alloc(100, 0x20));
    decoder.setMaxControlPayloadBytes(100);
    decoder.push(request);
    expect(frames.map((f) => f.payload.length)).toEqual([100]);
    // The frame limit stays as it was: a DATA of it still decodes, one byte more does not.
    decoder.push(encodeData(1, Buffer.alloc(1024)));
    expect(frames.map((f) => f.payload.length)).toEqual([100, 1024]);
    expect(() => decoder.push(encodeData(1, Buffer.alloc(1025)))).toThrow(
      expect.objectContaining({ code: 'FRAME_TOO_LARGE' }),
    );
  });

  it('wholeFrames copies borrowed pieces, so the whole payload survives its input being overwritten', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(
      LIMITS,
      wholeFrames((frame) => frames.push(frame)),
    );
    const data = encodeData(3, Buffer.from('0123456789'));
    const input = Buffer.alloc(data.length);
    for (const [from, to] of [
      [0, HEADER_BYTES + 4],
      [HEADER_BYTES + 4, data.length],
    ] as const) {
      const n = data.copy(input, 0, from, to);
      decoder.push(input.subarray(0, n), true);
      input.fill(0xee); // the shared buffer's next read
    }
    expect(frames.map((f) => f.payload.toString())).toEqual(['0123456789']);
  });

  it('allocDataFrame leaves room for the payload right after the header', () => {
    const frame = allocDataFrame(2, 4);
    frame.write('abcd', HEADER_BYTES);
    const [decoded] = decodeAll(frame);
    expect(decoded?.type).toBe(FrameType.DATA);
    expect(decoded?.payload.toString()).toBe('abcd');
  });
});

describe('REPLY with block digests (get with offset, partial)', () => {
  it.each(INTEGRITY_ALGORITHMS)(
    'fits the smallest frame limit a peer may announce with %s digests, the largest numbers beside them',
    (algorithm) => {
      const count = blockDigestsFitting(MIN_FRAME_PAYLOAD_BYTES, DIGEST_BYTES[algorithm], 2048);
      const blocks = Array.from({ length: count }, () => 'f'.repeat(2 * DIGEST_BYTES[algorithm]));
      const big = Number.MAX_SAFE_INTEGER;
      const resumedGet = encodeReply(1, { size: big, mtime: -big, mode: 0o777, offset: big, blocks });
      const partial = encodeReply(1, { offset: big, blocks });
      expect(resumedGet.length - HEADER_BYTES).toBeLessThanOrEqual(MIN_FRAME_PAYLOAD_BYTES);
      expect(partial.length - HEADER_BYTES).toBeLessThanOrEqual(MIN_FRAME_PAYLOAD_BYTES);
      // And not far under it (the other fields take less than the 256 bytes kept for them): six more would not fit.
      const more = encodeReply(1, {
        size: big,
        mtime: -big,
        mode: 0o777,
        offset: big,
        blocks: [...blocks, ...blocks.slice(0, 6)],
      });
      expect(more.length - HEADER_BYTES).toBeGreaterThan(MIN_FRAME_PAYLOAD_BYTES);
    },
  );
});

describe('malformed input', () => {
  function header(type: number, flags: number, streamId: number, length: number, reserved = 0): Buffer {
    const h = Buffer.alloc(HEADER_BYTES);
    writeHeader(h, type, flags, streamId, length);
    h.writeUInt16BE(reserved, 2);
    return h;
  }

  it('rejects an oversized frame from its header, before any payload arrives', () => {
    const err = decodeError(header(FrameType.DATA, 0, 1, LIMITS.maxFramePayloadBytes + 1));
    expect(err.code).toBe('FRAME_TOO_LARGE');
    expect(err.status).toBe(101);
    expect(err.fatal).toBe(true);
  });

  it('rejects an oversized control frame against the control limit', () => {
    expect(decodeError(header(FrameType.OPEN, 0, 1, LIMITS.maxControlPayloadBytes + 1)).code).toBe(
      'FRAME_TOO_LARGE',
    );
  });

  it('rejects unknown frame types', () => {
    const err = decodeError(header(0x7f, 0, 1, 0));
    expect(err.code).toBe('UNKNOWN_FRAME_TYPE');
    expect(err.status).toBe(102);
  });

  it.each([
    ['reserved bits', header(FrameType.DATA, 0, 1, 0, 1)],
    ['WINDOW of the wrong length', header(FrameType.WINDOW, 0, 1, 3)],
    ['END of the wrong length', header(FrameType.END, 0, 1, 40)],
    ['CANCEL with a payload', header(FrameType.CANCEL, 0, 1, 1)],
    ['flags on DATA', header(FrameType.DATA, 1, 1, 0)],
    ['unknown REPLY flag', header(FrameType.REPLY, 2, 1, 0)],
    ['HELLO on a stream', header(FrameType.HELLO, 0, 1, 0)],
    ['DATA on stream 0', header(FrameType.DATA, 0, 0, 0)],
    ['PING on a stream', header(FrameType.PING, 0, 1, 8)],
    ['PING of the wrong length', header(FrameType.PING, 0, 0, 4)],
    ['an unknown PING flag', header(FrameType.PING, 2, 0, 8)],
  ])('rejects %s with PROTOCOL_ERROR', (_name, bytes) => {
    const err = decodeError(bytes);
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.status).toBe(100);
  });

  it('stops for good after a fatal error', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(LIMITS, (f) => frames.push(f));
    expect(decoder.failed).toBe(false);
    expect(() => decoder.push(header(0x7f, 0, 1, 0))).toThrow(ProtocolError);
    expect(decoder.failed).toBe(true);
    decoder.push(encodeCancel(1));
    expect(frames).toHaveLength(0);
    // Later input is dropped, not held.
    expect(decoder.midFrame).toBe(false);
  });

  it('counts no byte of the chunk a fatal error came in as held', () => {
    const decoder = new FrameDecoder(LIMITS, () => {});
    const cancel = encodeCancel(1);
    expect(() =>
      decoder.push(Buffer.concat([header(0x7f, 0, 1, 0), cancel.subarray(0, cancel.length - 1)])),
    ).toThrow(ProtocolError);
    expect(decoder.midFrame).toBe(false);
  });

  it('delivers the frames before a bad one, then fails', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(LIMITS, (f) => frames.push(f));
    expect(() =>
      decoder.push(Buffer.concat([encodeCancel(1), encodeCancel(2), header(0x66, 0, 1, 0)])),
    ).toThrow(ProtocolError);
    expect(frames.map((f) => f.streamId)).toEqual([1, 2]);
  });

  it('rejects a zero WINDOW increment', () => {
    const frame = encodeFrame(FrameType.WINDOW, 0, 1, Buffer.alloc(4));
    expect(() => parseWindow(decodeAll(frame)[0]!)).toThrow(ProtocolError);
  });

  it('rejects a bad handshake payload', () => {
    const notJson = decodeAll(encodeFrame(FrameType.HELLO, 0, 0, Buffer.from('{nope')))[0]!;
    expect(() => parseHello(notJson)).toThrow(ProtocolError);
    const wrongProtocol = decodeAll(
      encodeHello({ protocol: 'ftp', versions: [1], maxFramePayload: 65536 }),
    )[0]!;
    expect(() => parseHello(wrongProtocol)).toThrow(/protocol/);
  });

  it('rejects an END with an unknown algorithm or bytes after its digest', () => {
    const unknown = encodeEnd(1, 5, 'sha256', sha);
    unknown[HEADER_BYTES + 8] = 9;
    expect(() => parseEnd(decodeAll(unknown)[0]!)).toThrow(/unknown algorithm 9/);
    const padded = encodeEnd(1, 5, 'xxh128', xxh);
    padded[padded.length - 1] = 1;
    expect(() => parseEnd(decodeAll(padded)[0]!)).toThrow(/must be zero/);
    expect(() => encodeEnd(1, 5, 'xxh128', sha)).toThrow(RangeError);
  });

  it("zeroes an xxh128 END's digest field past the digest whatever memory it is built in", () => {
    // Pooled memory may hold old bytes; the receiver rejects an END whose padding is not zero.
    const dirty = vi
      .spyOn(Buffer, 'allocUnsafe')
      .mockImplementation((size: number) => Buffer.alloc(size, 0xff));
    try {
      const frame = encodeEnd(1, 5, 'xxh128', xxh);
      expect(parseEnd(decodeAll(frame)[0]!)).toEqual({ size: 5, algorithm: 'xxh128', digest: xxh });
    } finally {
      dirty.mockRestore();
    }
  });

  it('rejects a WELCOME without a known integrity algorithm or with another block size', () => {
    const limits = { maxFramePayload: 65536, maxStreams: 8, maxPathBytes: 4096, streamWindow: 1024 };
    const missing = encodeFrame(FrameType.WELCOME, 0, 0, Buffer.from(JSON.stringify({ version: 2, limits })));
    expect(() => parseWelcome(decodeAll(missing)[0]!)).toThrow(/integrity.algorithm/);
    const md5 = encodeFrame(
      FrameType.WELCOME,
      0,
      0,
      Buffer.from(
        JSON.stringify({ version: 2, limits, integrity: { algorithm: 'md5', blockBytes: 4194304 } }),
      ),
    );
    expect(() => parseWelcome(decodeAll(md5)[0]!)).toThrow(/integrity.algorithm/);
    const otherBlocks = encodeFrame(
      FrameType.WELCOME,
      0,
      0,
      Buffer.from(
        JSON.stringify({ version: 2, limits, integrity: { algorithm: 'xxh128', blockBytes: 1 << 20 } }),
      ),
    );
    expect(() => parseWelcome(decodeAll(otherBlocks)[0]!)).toThrow(/blockBytes/);
  });

  it("reads a WELCOME's umask, and refuses one that is not permission bits", () => {
    const limits = { maxFramePayload: 65536, maxStreams: 8, maxPathBytes: 4096, streamWindow: 1024 };
    const integrity = { algorithm: 'xxh128', blockBytes: 4194304 };
    const welcome = (umask: unknown) =>
      decodeAll(
        encodeFrame(
          FrameType.WELCOME,
          0,
          0,
          Buffer.from(JSON.stringify({ version: 2, limits, integrity, umask })),
        ),
      )[0]!;
    expect(parseWelcome(welcome(0o027)).umask).toBe(0o027);
    expect(parseWelcome(welcome(undefined)).umask).toBeUndefined();
    for (const bad of [-1, 0o1000, '022', 1.5]) expect(() => parseWelcome(welcome(bad))).toThrow(/umask/);
  });

  it('rejects a HELLO whose integrity list is not a list of names', () => {
    const bad = encodeFrame(
      FrameType.HELLO,
      0,
      0,
      Buffer.from(
        JSON.stringify({ protocol: 'muxftp', versions: [2], maxFramePayload: 65536, integrity: 'xxh128' }),
      ),
    );
    expect(() => parseHello(decodeAll(bad)[0]!)).toThrow(/integrity/);
  });

  it.each([
    ['not JSON', Buffer.from('{'), 'BAD_REQUEST'],
    [
      'a name that is not UTF-8',
      Buffer.concat([Buffer.from('{"op":"stat","path":"a'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
      'BAD_REQUEST',
    ],
    [
      'a digest with an unknown algorithm',
      Buffer.from('{"op":"digest","path":"x","algorithm":"md5"}'),
      'BAD_REQUEST',
    ],
    ['an array', Buffer.from('[]'), 'BAD_REQUEST'],
    ['no op', Buffer.from('{"path":"x"}'), 'BAD_REQUEST'],
    ['a path that is not a string', Buffer.from('{"op":"stat","path":3}'), 'BAD_REQUEST'],
    ['a negative size', Buffer.from('{"op":"put","path":"x","size":-1}'), 'BAD_REQUEST'],
    ['an mtime that is not a number', Buffer.from('{"op":"put","path":"x","mtime":"2003"}'), 'BAD_REQUEST'],
    ['an mtime past what a Date holds', Buffer.from('{"op":"put","path":"x","mtime":1e300}'), 'BAD_REQUEST'],
    ['a utime without an mtime', Buffer.from('{"op":"utime","path":"x"}'), 'BAD_REQUEST'],
    [
      'a partial whose drop is no boolean',
      Buffer.from('{"op":"partial","path":"x","size":9,"algorithm":"xxh128","source":"s","drop":"yes"}'),
      'BAD_REQUEST',
    ],
    [
      'a rename with noReplace "yes"',
      Buffer.from('{"op":"rename","from":"a","to":"b","noReplace":"yes"}'),
      'BAD_REQUEST',
    ],
    [
      'a utime with ifUnchanged null',
      Buffer.from('{"op":"utime","path":"x","mtime":0,"ifUnchanged":null}'),
      'BAD_REQUEST',
    ],
    [
      'a utime with ifUnchanged "as seen"',
      Buffer.from('{"op":"utime","path":"x","mtime":0,"ifUnchanged":"as seen"}'),
      'BAD_REQUEST',
    ],
    [
      'a utime with ifUnchanged {"size":1.5,"mtime":0}',
      Buffer.from('{"op":"utime","path":"x","mtime":0,"ifUnchanged":{"size":1.5,"mtime":0}}'),
      'BAD_REQUEST',
    ],
    [
      'a utime with ifUnchanged {"size":1,"mtime":1e300}',
      Buffer.from('{"op":"utime","path":"x","mtime":0,"ifUnchanged":{"size":1,"mtime":1e300}}'),
      'BAD_REQUEST',
    ],
    [
      // PROTOCOL.md: "mtime in whole ms, as its entry gave them; anything else is BAD_REQUEST".
      'a utime with ifUnchanged {"size":1,"mtime":1.5}',
      Buffer.from('{"op":"utime","path":"x","mtime":0,"ifUnchanged":{"size":1,"mtime":1.5}}'),
      'BAD_REQUEST',
    ],
    [
      'a utime with ifUnchanged {"mtime":0}',
      Buffer.from('{"op":"utime","path":"x","mtime":0,"ifUnchanged":{"mtime":0}}'),
      'BAD_REQUEST',
    ],
    [
      'a chmod with ifUnchanged without a size',
      Buffer.from('{"op":"chmod","path":"x","mode":420,"ifUnchanged":{"mtime":0}}'),
      'BAD_REQUEST',
    ],
    ['a mode with the setuid bit', Buffer.from('{"op":"put","path":"x","mode":2541}'), 'BAD_REQUEST'],
    ['a negative mode', Buffer.from('{"op":"put","path":"x","mode":-1}'), 'BAD_REQUEST'],
    ['a mode that is not an integer', Buffer.from('{"op":"put","path":"x","mode":7.5}'), 'BAD_REQUEST'],
    ['a mode as a string', Buffer.from('{"op":"put","path":"x","mode":"755"}'), 'BAD_REQUEST'],
    ['a chmod without a mode', Buffer.from('{"op":"chmod","path":"x"}'), 'BAD_REQUEST'],
    ['a mkdir with a mode past 0o777', Buffer.from('{"op":"mkdir","path":"x","mode":512}'), 'BAD_REQUEST'],
    ['a chmod with the sticky bit', Buffer.from('{"op":"chmod","path":"x","mode":1023}'), 'BAD_REQUEST'],
    ['an unknown op', Buffer.from('{"op":"chown","path":"x"}'), 'UNSUPPORTED'],
  ])('an OPEN with %s fails the stream only (%s)', (_name, payload, code) => {
    const frame = decodeAll(encodeFrame(FrameType.OPEN, 0, 1, payload))[0]!;
    try {
      parseRequest(frame);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(MuxftpError);
      expect(err).not.toBeInstanceOf(ProtocolError);
      expect((err as MuxftpError).code).toBe(code);
      expect((err as MuxftpError).fatal).toBe(false);
    }
  });

  it('maps unknown error statuses by range', () => {
    const fatal = decodeAll(encodeError(0, { status: 199, code: 'FUTURE', message: 'x' }))[0]!;
    expect(parseErrorPayload(fatal).code).toBe('PROTOCOL_ERROR');
    const stream = decodeAll(encodeError(1, { status: 299, code: 'FUTURE', message: 'x' }))[0]!;
    expect(parseErrorPayload(stream).code).toBe('INTERNAL_ERROR');
    // PROTOCOL.md: "1xx fatal, anything else a failure of that stream", below 100 too.
    for (const status of [0, 42, 99, 200.5, 1000]) {
      const frame = decodeAll(encodeError(1, { status, code: 'FUTURE', message: 'x' }))[0]!;
      expect(parseErrorPayload(frame).code, `status ${status}`).toBe('INTERNAL_ERROR');
    }
  });

  it("carries an error's details, and drops details of the wrong type without failing the ERROR", () => {
    const busy = new ServerBusyError('openFileShare', 'server busy');
    const sent = decodeAll(encodeError(1, errorPayload(busy)))[0]!;
    expect(parseErrorPayload(sent)).toEqual({
      code: 'SERVER_BUSY',
      message: 'server busy',
      details: { limit: 'openFileShare' },
    });
    const odd = (details: unknown) =>
      parseErrorPayload(
        decodeAll(encodeError(1, { status: 302, code: 'SERVER_BUSY', message: 'm', details } as never))[0]!,
      );
    expect(odd({ limit: 'somethingNewer', extra: 1 })).toMatchObject({
      details: { limit: 'somethingNewer' },
    });
    expect(odd({ limit: 7, retryAfterMs: -1 })).toEqual({ code: 'SERVER_BUSY', message: 'm' });
    expect(odd({ limit: 'x'.repeat(65) })).toEqual({ code: 'SERVER_BUSY', message: 'm' });
    expect(odd(['limit'])).toEqual({ code: 'SERVER_BUSY', message: 'm' });
    expect(odd('openFiles')).toEqual({ code: 'SERVER_BUSY', message: 'm' });
    // Nothing to say, nothing sent.
    expect(errorPayload(new MuxftpError('NOT_FOUND', 'no'))).not.toHaveProperty('details');
  });

  it('cuts a long message so the ERROR fits the smallest frame limit a peer may announce', () => {
    // Two 4,096-byte paths of quotes (each escaped to two bytes) in one message: 16,4xx bytes
    // before, past a client's 16 KiB limit, which then had to drop the connection.
    const quotes = '"'.repeat(4096);
    const error = new MuxftpError(
      'INVALID_PATH',
      `cannot move a directory into itself: ${quotes} -> ${quotes}/a`,
    );
    const frame = encodeError(1, errorPayload(error));
    expect(frame.length - HEADER_BYTES).toBeLessThanOrEqual(MIN_FRAME_PAYLOAD_BYTES);
    const sent = decodeAll(frame)[0]!;
    const message = JSON.parse(sent.payload.toString()).message as string;
    expect(message.startsWith('cannot move a directory into itself: ""')).toBe(true);
    expect(message.endsWith('…')).toBe(true);
    // The worst a character can be escaped to: \u00XX.
    const controls = encodeError(1, errorPayload(new MuxftpError('BAD_REQUEST', '\u0001'.repeat(9000))));
    expect(controls.length - HEADER_BYTES).toBeLessThanOrEqual(MIN_FRAME_PAYLOAD_BYTES);
    // A surrogate pair is not cut in half.
    const emoji = errorPayload(new MuxftpError('NOT_FOUND', `ab${'😀'.repeat(3000)}`)).message;
    expect(emoji.endsWith('😀…')).toBe(true);
    expect(errorPayload(new MuxftpError('NOT_FOUND', 'short')).message).toBe('short');
  });
});

describe('control payloads: each check and each field (a mutation run found them unchecked)', () => {
  const json = (type: number, value: unknown): Frame => ({
    type,
    flags: 0,
    streamId: 0,
    payload: Buffer.from(JSON.stringify(value)),
  });
  const hello = { protocol: 'muxftp', versions: [2], maxFramePayload: 65536 };
  const limits = {
    maxFramePayload: MIN_FRAME_PAYLOAD_BYTES,
    maxStreams: 1,
    maxPathBytes: 4096,
    streamWindow: 1,
  };
  const welcome = {
    version: 2,
    limits,
    integrity: { algorithm: 'xxh128', blockBytes: INTEGRITY_BLOCK_BYTES },
  };
  const refused = (
    parse: (frame: Frame) => unknown,
    type: number,
    value: unknown,
    code = 'PROTOCOL_ERROR',
  ) => {
    try {
      parse(json(type, value));
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as ProtocolError).code).toBe(code);
      return;
    }
    throw new Error(`accepted ${JSON.stringify(value)}`);
  };

  it('HELLO: keeps the fields it knows with their types, and nothing else', () => {
    // A HELLO without an integrity list (as version 1 sent) parses, so the server can answer VERSION_MISMATCH.
    expect(
      parseHello(json(FrameType.HELLO, { ...hello, agent: 5, uploadInitialWindow: false })),
    ).toStrictEqual(hello);
    const full = { ...hello, agent: 'a', integrity: ['sha256'], uploadInitialWindow: true, keepaliveMs: 1 };
    expect(parseHello(json(FrameType.HELLO, full))).toStrictEqual(full);
  });

  it.each([
    ['versions that are not a list', { versions: 2 }],
    ['a version that is not an integer', { versions: [2, 1.5] }],
    ['a maxFramePayload that is not an integer', { maxFramePayload: 1.5 }],
    ['a maxFramePayload past 2^53 - 1', { maxFramePayload: 2 ** 53 }],
    ['an integrity name that is not a string', { integrity: ['sha256', 1] }],
    ['an uploadInitialWindow that is not a boolean', { uploadInitialWindow: 'yes' }],
    ['a keepaliveMs of 0', { keepaliveMs: 0 }],
    ['a keepaliveMs that is not an integer', { keepaliveMs: 1.5 }],
  ])('HELLO: refuses %s', (_name, change) => refused(parseHello, FrameType.HELLO, { ...hello, ...change }));

  it('WELCOME: keeps the fields it knows with their types, the smallest limits allowed, and nothing else', () => {
    expect(parseWelcome(json(FrameType.WELCOME, { ...welcome, agent: 5, ping: false }))).toStrictEqual(
      welcome,
    );
    const login = { required: true, anonymous: false, passwordNeedsTls: true };
    const full = {
      ...welcome,
      agent: 'muxftp/1',
      limits: { ...limits, uploadInitialWindow: MAX_CREDIT },
      uploadInitialWindowOptional: true,
      ping: true,
      links: true,
      umask: 0o022,
      login,
    };
    expect(parseWelcome(json(FrameType.WELCOME, full))).toStrictEqual(full);
  });

  it.each([
    ['a version that is not an integer', { version: '2' }],
    ['no limits', { limits: undefined }],
    ['limits that are null', { limits: null }],
    ['a limit that is not a count', { limits: { ...limits, maxPathBytes: -1 } }],
    ['maxStreams 0', { limits: { ...limits, maxStreams: 0 } }],
    ['streamWindow 0', { limits: { ...limits, streamWindow: 0 } }],
    ['an uploadInitialWindow past 2^31 - 1', { limits: { ...limits, uploadInitialWindow: MAX_CREDIT + 1 } }],
    ['an uploadInitialWindow that is not a count', { limits: { ...limits, uploadInitialWindow: -1 } }],
    ['an uploadInitialWindowOptional that is not a boolean', { uploadInitialWindowOptional: 1 }],
    ['a ping that is not a boolean', { ping: 'yes' }],
    ['a login that is null', { login: null }],
    ['a login without its booleans', { login: { required: true, anonymous: false } }],
    [
      'a login with a required that is not a boolean',
      { login: { required: 1, anonymous: false, passwordNeedsTls: false } },
    ],
    [
      'a login with an anonymous that is not a boolean',
      { login: { required: true, anonymous: 0, passwordNeedsTls: false } },
    ],
    ['integrity that is null', { integrity: null }],
    ['an algorithm that is not a string', { integrity: { algorithm: 5, blockBytes: 4 * 1024 * 1024 } }],
    ['a blockBytes that is not a count', { integrity: { algorithm: 'xxh128', blockBytes: '4 MiB' } }],
  ])('WELCOME: refuses %s', (_name, change) =>
    refused(parseWelcome, FrameType.WELCOME, { ...welcome, ...change }),
  );

  // Well formed, from a muxftp server, on terms this client cannot take: not a protocol error.
  it.each([
    ['a version not offered', { version: 1 }],
    [
      'a maxFramePayload under the smallest allowed',
      { limits: { ...limits, maxFramePayload: MIN_FRAME_PAYLOAD_BYTES - 1 } },
    ],
    ['another block size', { integrity: { algorithm: 'xxh128', blockBytes: 1024 * 1024 } }],
    [
      'an algorithm this client does not know',
      { integrity: { algorithm: 'md5', blockBytes: 4 * 1024 * 1024 } },
    ],
  ])('WELCOME: %s is a VERSION_MISMATCH', (_name, change) => {
    refused(parseWelcome, FrameType.WELCOME, { ...welcome, ...change }, 'VERSION_MISMATCH');
  });

  it("AUTH: a client's request round-trips, with a password only when it has one", () => {
    const frame = (auth: object) => decodeAll(encodeAuth(auth as never))[0]!;
    expect(parseAuthRequest(frame({ user: 'anonymous' }))).toStrictEqual({ user: 'anonymous' });
    expect(parseAuthRequest(frame({ user: 'u'.repeat(256), password: '' }))).toStrictEqual({
      user: 'u'.repeat(256),
      password: '',
    });
    for (const bad of [{ user: '' }, { user: 'u'.repeat(257) }, { user: 5 }, { user: 'u', password: 5 }]) {
      refused(parseAuthRequest, FrameType.AUTH, bad);
    }
    // A long name is told as one: "must be a non-empty string" sent its user looking elsewhere.
    expect(() => parseAuthRequest(frame({ user: 'u'.repeat(257) }))).toThrow(
      'AUTH: "user" must be a string of 1 to 256 characters',
    );
  });

  it("AUTH: a server's result, with only the permissions that are strings, and no attempts left is a count", () => {
    expect(
      parseAuthResult(json(FrameType.AUTH, { ok: true, user: 'u', permissions: ['read', 5] })),
    ).toStrictEqual({
      ok: true,
      user: 'u',
      permissions: ['read'],
    });
    expect(
      parseAuthResult(json(FrameType.AUTH, { ok: false, message: 'no', attemptsLeft: 0 })),
    ).toStrictEqual({
      ok: false,
      message: 'no',
      attemptsLeft: 0,
    });
    for (const bad of [
      { ok: true, permissions: [] },
      { ok: true, user: 5, permissions: [] },
      { ok: true, user: 'u' },
      { ok: 'true', user: 'u', permissions: [] },
      { ok: false, message: 5, attemptsLeft: 1 },
      { ok: false, message: 'no', attemptsLeft: -1 },
      { ok: 0, message: 'no', attemptsLeft: 1 },
    ]) {
      refused(parseAuthResult, FrameType.AUTH, bad);
    }
  });

  it('ERROR: a status or message of the wrong type falls back, and details keep only what has its type', () => {
    expect(
      parseErrorPayload(json(FrameType.ERROR, { status: 'x', code: 'FUTURE', message: 5 })),
    ).toStrictEqual({
      code: 'PROTOCOL_ERROR',
      message: 'unspecified error',
    });
    const details = (value: unknown) =>
      parseErrorPayload(
        json(FrameType.ERROR, { status: 302, code: 'SERVER_BUSY', message: 'm', details: value }),
      );
    expect(details(null)).toStrictEqual({ code: 'SERVER_BUSY', message: 'm' });
    expect(details({ limit: '', keptBy: '', retryAfterMs: '5' })).toStrictEqual({
      code: 'SERVER_BUSY',
      message: 'm',
    });
    expect(details({ limit: ['a'], keptBy: 5, retryAfterMs: null })).toStrictEqual({
      code: 'SERVER_BUSY',
      message: 'm',
    });
    // JSON has no Infinity, but a number too large for a double parses as one.
    const infinite = Buffer.from(
      '{"status":302,"code":"SERVER_BUSY","message":"m","details":{"retryAfterMs":1e999}}',
    );
    expect(
      parseErrorPayload({ type: FrameType.ERROR, flags: 0, streamId: 0, payload: infinite }),
    ).toStrictEqual({
      code: 'SERVER_BUSY',
      message: 'm',
    });
    // A payload that is JSON but not an object is malformed, not an error of unknown kind.
    for (const value of [5, 'x', null, []]) refused(parseErrorPayload, FrameType.ERROR, value);
    expect(details({ keptBy: 'k'.repeat(65) })).toStrictEqual({ code: 'SERVER_BUSY', message: 'm' });
    const longest = { limit: 'l'.repeat(64), keptBy: 'k'.repeat(64), retryAfterMs: 0 };
    expect(details(longest)).toStrictEqual({ code: 'SERVER_BUSY', message: 'm', details: longest });
  });

  it('ERROR: a message of exactly the most characters is sent whole, one more is cut to that many', () => {
    const exact = 'm'.repeat(MAX_ERROR_MESSAGE_CHARS);
    expect(errorPayload(new MuxftpError('NOT_FOUND', exact)).message).toBe(exact);
    const cut = errorPayload(new MuxftpError('NOT_FOUND', `${exact}m`)).message;
    expect(cut).toBe(`${'m'.repeat(MAX_ERROR_MESSAGE_CHARS - 1)}…`);
  });

  it('ERROR: a longer message from a peer is cut as a sender cuts it (the server logs it)', () => {
    const parse = (message: string) =>
      parseErrorPayload(decodeAll(encodeError(0, { status: 100, code: 'PROTOCOL_ERROR', message }))[0]!)
        .message;
    const exact = 'm'.repeat(MAX_ERROR_MESSAGE_CHARS);
    expect(parse(exact)).toBe(exact);
    expect(parse('m'.repeat(8_000))).toBe(`${'m'.repeat(MAX_ERROR_MESSAGE_CHARS - 1)}…`);
  });

  it("AUTH: a failed login's longer message from a server is cut as an ERROR's is (the CLI shows it)", () => {
    const parse = (message: string) => {
      const result = parseAuthResult(decodeAll(encodeAuth({ ok: false, message, attemptsLeft: 1 }))[0]!);
      return result.ok ? undefined : result.message;
    };
    const exact = 'm'.repeat(MAX_ERROR_MESSAGE_CHARS);
    expect(parse(exact)).toBe(exact);
    expect(parse('m'.repeat(8_000))).toBe(`${'m'.repeat(MAX_ERROR_MESSAGE_CHARS - 1)}…`);
  });

  it('END: takes a size up to 2^53 - 1 and no more', () => {
    const end = encodeEnd(1, Number.MAX_SAFE_INTEGER, 'xxh128', xxh);
    expect(parseEnd(decodeAll(end)[0]!).size).toBe(Number.MAX_SAFE_INTEGER);
    end.writeBigUInt64BE(BigInt(Number.MAX_SAFE_INTEGER) + 1n, HEADER_BYTES);
    expect(() => parseEnd(decodeAll(end)[0]!)).toThrow(/size too large/);
  });

  it('encodes a REPLY without MORE and a PING that is not an answer with no flags, and refuses a PING of the wrong length', () => {
    expect(decodeAll(encodeReply(1, {}))[0]!.flags).toBe(0);
    expect(decodeAll(encodePing(Buffer.alloc(8)))[0]!.flags).toBe(0);
    expect(() => encodePing(Buffer.alloc(7))).toThrow(RangeError);
  });
});
