/**
 * The client checks every REPLY against its op's row of the operation table, as the server checks
 * every OPEN: a malformed one fails the connection with PROTOCOL_ERROR and a message naming the
 * field, never a TypeError later in the caller.
 */
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { ListingTooLongError } from '../client/streams.js';
import { DEFAULTS } from '../shared/defaults.js';
import { ProtocolError } from '../shared/errors.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeReply, encodeWindow } from '../shared/protocol/encoder.js';
import { type Script, startScriptedServer } from './helpers/scriptedServer.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server that completes the handshake, then hands every later frame to `script`. */
async function scriptedServer(script: Script): Promise<number> {
  const started = await startScriptedServer(script);
  server = started.server;
  return started.port;
}

/** Answers each OPEN with `reply`. */
const replying = (reply: object, more = false): Script => {
  return (socket, frame) => {
    if (frame.type === FrameType.OPEN) socket.write(encodeReply(frame.streamId, reply, more));
  };
};

async function expectProtocolError(
  call: (client: Client) => Promise<unknown>,
  port: number,
  message: string,
) {
  const client = await Client.connect({ port });
  const error = await call(client).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  expect(error).toMatchObject({ code: 'PROTOCOL_ERROR', message });
  await client.destroy();
}

const ENTRY = { name: 'a.txt', type: 'file', size: 3, mtime: 1_700_000_000_000 };

describe('REPLY validation', () => {
  it('stat: a missing or malformed entry', async () => {
    let port = await scriptedServer(replying({}));
    await expectProtocolError((c) => c.stat('a'), port, 'REPLY to stat: "entry" must be an object');
    server!.close();
    port = await scriptedServer(replying({ entry: { ...ENTRY, size: '3' } }));
    await expectProtocolError(
      (c) => c.stat('a'),
      port,
      'REPLY to stat: "entry.size" must be a non-negative integer',
    );
  });

  it('list: entries that are not an array, or an entry of an unknown type', async () => {
    let port = await scriptedServer(replying({ entries: 'a.txt' }));
    await expectProtocolError((c) => c.list(), port, 'REPLY to list: "entries" must be an array');
    server!.close();
    port = await scriptedServer(replying({ entries: [ENTRY, { ...ENTRY, type: 'fifo' }] }));
    await expectProtocolError(
      (c) => c.list(),
      port,
      'REPLY to list: "entries[1].type" must be "file", "dir" or "other"',
    );
  });

  it('list and stat: a name longer than any filesystem gives (a listing of such names grew the CLI without bound)', async () => {
    // The longest a name of 255 UTF-8 bytes becomes (255 ASCII characters): taken.
    const longest = 'x'.repeat(DEFAULTS.maxNameBytes);
    let port = await scriptedServer(replying({ entries: [{ ...ENTRY, name: longest }] }));
    const client = await Client.connect({ port });
    expect((await client.list()).map((e) => e.name)).toEqual([longest]);
    await client.destroy();
    server!.close();
    port = await scriptedServer(replying({ entries: [ENTRY, { ...ENTRY, name: 'x'.repeat(200_000) }] }));
    await expectProtocolError(
      (c) => c.list(),
      port,
      `REPLY to list: "entries[1].name" is longer than a name may be (${DEFAULTS.maxNameBytes} bytes)`,
    );
    server!.close();
    port = await scriptedServer(replying({ entry: { ...ENTRY, name: 'x'.repeat(256) } }));
    await expectProtocolError(
      (c) => c.stat('a'),
      port,
      `REPLY to stat: "entry.name" is longer than a name may be (${DEFAULTS.maxNameBytes} bytes)`,
    );
  });

  it('stats: a missing figure', async () => {
    const port = await scriptedServer(replying({ connections: 1, streams: 1 }));
    await expectProtocolError(
      (c) => c.stats(),
      port,
      'REPLY to stats: "rssBytes" must be a non-negative integer',
    );
  });

  it('get: a negative size', async () => {
    const port = await scriptedServer(replying({ size: -1, mtime: 0 }));
    await expectProtocolError(
      (c) => c.getBuffer('a'),
      port,
      'REPLY to get: "size" must be a non-negative integer',
    );
  });

  it('stat and get: permission bits that are not 0 to 0o777', async () => {
    let port = await scriptedServer(replying({ entry: { ...ENTRY, mode: 0o4755 } }));
    await expectProtocolError(
      (c) => c.stat('a'),
      port,
      'REPLY to stat: "entry.mode" must be permission bits, an integer from 0 to 511 (0o777)',
    );
    server!.close();
    port = await scriptedServer(replying({ size: 0, mtime: 0, mode: '755' }));
    await expectProtocolError(
      (c) => c.getBuffer('a'),
      port,
      'REPLY to get: "mode" must be permission bits, an integer from 0 to 511 (0o777)',
    );
  });

  it('put: a REPLY without the algorithm, or with a digest of the wrong length for it', async () => {
    const replies = [
      { entry: ENTRY, digest: 'ab'.repeat(16) },
      { entry: ENTRY, algorithm: 'sha256', digest: 'ab'.repeat(16) },
    ];
    const messages = [
      'REPLY to put: "algorithm" must be one of xxh128, sha256',
      'REPLY to put: "digest" must be 64 lowercase hex digits for sha256',
    ];
    for (const [i, reply] of replies.entries()) {
      const port = await scriptedServer((socket, frame) => {
        if (frame.type === FrameType.OPEN) socket.write(encodeWindow(frame.streamId, 1 << 20));
        if (frame.type === FrameType.END) socket.write(encodeReply(frame.streamId, reply));
      });
      await expectProtocolError((c) => c.put('a.txt', Buffer.from('abc')), port, messages[i]!);
      server!.close();
    }
  });

  it('put: a REPLY saying it stored other bytes than END said is not taken for the upload', async () => {
    const bytes = Buffer.from('abcdef');
    const sent = contentDigest('xxh128', bytes).toString('hex');
    const stored = { ...ENTRY, size: bytes.length };
    const replies = [
      { entry: stored, algorithm: 'xxh128', digest: '00'.repeat(16) },
      { entry: { ...stored, size: 1 }, algorithm: 'xxh128', digest: sent },
      { entry: { ...stored, type: 'dir' }, algorithm: 'xxh128', digest: sent },
      { entry: stored, algorithm: 'sha256', digest: '00'.repeat(32) },
    ];
    const messages = [
      `REPLY to put on stream 1 says it stored xxh128 ${'00'.repeat(16)}, not the xxh128 ${sent} sent`,
      'REPLY to put on stream 1 says it stored a file of 1 bytes, not the 6 of END',
      'REPLY to put on stream 1 says it stored a dir, not a file',
      `REPLY to put on stream 1 says it stored sha256 ${'00'.repeat(32)}, not the xxh128 ${sent} sent`,
    ];
    for (const [i, reply] of replies.entries()) {
      const port = await scriptedServer((socket, frame) => {
        if (frame.type === FrameType.OPEN) socket.write(encodeWindow(frame.streamId, 1 << 20));
        if (frame.type === FrameType.END) socket.write(encodeReply(frame.streamId, reply));
      });
      await expectProtocolError((c) => c.put('a.txt', bytes), port, messages[i]!);
      server!.close();
    }
    // What END said, confirmed: stored.
    const port = await scriptedServer((socket, frame) => {
      if (frame.type === FrameType.OPEN) socket.write(encodeWindow(frame.streamId, 1 << 20));
      if (frame.type === FrameType.END)
        socket.write(encodeReply(frame.streamId, { entry: stored, algorithm: 'xxh128', digest: sent }));
    });
    const client = await Client.connect({ port });
    expect(await client.put('a.txt', bytes)).toMatchObject({ digest: sent, entry: { size: 6 } });
    await client.destroy();
  });

  it("get: DATA past REPLY's size, an END of another size, a second REPLY, or DATA or END before REPLY is a broken server", async () => {
    const serve =
      (bytes: Buffer, endSize: number, secondReply = false): Script =>
      (socket, frame) => {
        if (frame.type !== FrameType.OPEN) return;
        socket.write(encodeReply(frame.streamId, { size: 3, mtime: 0 }));
        if (secondReply) socket.write(encodeReply(frame.streamId, { size: 3, mtime: 0 }));
        socket.write(encodeData(frame.streamId, bytes));
        socket.write(encodeEnd(frame.streamId, endSize, 'xxh128', contentDigest('xxh128', bytes)));
      };
    const cases: Array<[Script, string]> = [
      [
        serve(Buffer.from('abcd'), 4),
        'download stream 1: the server sent more than the 3 bytes its REPLY said the file holds',
      ],
      [
        serve(Buffer.from('ab'), 2),
        'download stream 1: the server sent an END of 2 bytes, not the 3 its REPLY said the file holds',
      ],
      [serve(Buffer.from('abc'), 3, true), 'a second REPLY on download stream 1'],
      [
        (socket, frame) => {
          if (frame.type !== FrameType.OPEN) return;
          socket.write(encodeData(frame.streamId, Buffer.from('abc')));
          socket.write(encodeReply(frame.streamId, { size: 3, mtime: 0 }));
        },
        'DATA before REPLY on download stream 1',
      ],
      [
        (socket, frame) => {
          if (frame.type !== FrameType.OPEN) return;
          socket.write(encodeEnd(frame.streamId, 0, 'xxh128', contentDigest('xxh128', Buffer.alloc(0))));
        },
        'END before REPLY on download stream 1',
      ],
    ];
    for (const [script, message] of cases) {
      const port = await scriptedServer(script);
      await expectProtocolError((c) => c.getBuffer('a'), port, message);
      server!.close();
    }
    // The file its REPLY described: taken.
    const port = await scriptedServer(serve(Buffer.from('abc'), 3));
    const client = await Client.connect({ port });
    expect((await client.getBuffer('a')).toString()).toBe('abc');
    await client.destroy();
  });

  it('WELCOME choosing an integrity algorithm the client did not offer fails the connection', async () => {
    // The scripted server always chooses xxh128.
    const port = await scriptedServer(() => {});
    const error = await Client.connect({ port, integrity: ['sha256'] }).then(
      (client) => client.destroy(),
      (e: unknown) => e,
    );
    // As any WELCOME the client refuses: the connect fails, saying why.
    expect(error).toMatchObject({
      code: 'CONNECT_FAILED',
      message: `could not connect to 127.0.0.1:${port}: WELCOME chose integrity xxh128, which this client did not offer (sha256)`,
    });
    expect((error as Error).cause).toBeInstanceOf(ProtocolError);
  });

  it('digest: an entry that is not an object', async () => {
    const port = await scriptedServer(
      replying({ entry: 'a.txt', algorithm: 'xxh128', digest: 'ab'.repeat(16) }),
    );
    await expectProtocolError((c) => c.digest('a.txt'), port, 'REPLY to digest: "entry" must be an object');
  });

  it('a request that is not a listing in several REPLY frames', async () => {
    const port = await scriptedServer(replying({}, true));
    await expectProtocolError(
      (c) => c.mkdir('d'),
      port,
      'REPLY to mkdir: only a listing spans several REPLY frames',
    );
  });

  it('get and put: a REPLY flagged MORE (PROTOCOL.md: only a listing spans several)', async () => {
    const bytes = Buffer.from('abc');
    const digest = contentDigest('xxh128', bytes);
    let port = await scriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      socket.write(encodeReply(frame.streamId, { size: 3, mtime: 0 }, true));
      socket.write(encodeData(frame.streamId, bytes));
      socket.write(encodeEnd(frame.streamId, 3, 'xxh128', digest));
    });
    await expectProtocolError(
      (c) => c.getBuffer('a'),
      port,
      'REPLY to get: only a listing spans several REPLY frames',
    );
    server!.close();
    port = await scriptedServer((socket, frame) => {
      if (frame.type === FrameType.OPEN) socket.write(encodeWindow(frame.streamId, 1 << 20));
      if (frame.type === FrameType.END) {
        const entry = { ...ENTRY, size: 3 };
        socket.write(
          encodeReply(frame.streamId, { entry, algorithm: 'xxh128', digest: digest.toString('hex') }, true),
        );
      }
    });
    await expectProtocolError(
      (c) => c.put('a.txt', bytes),
      port,
      'REPLY to put: only a listing spans several REPLY frames',
    );
  });

  it('accepts well-formed replies, a listing joined across MORE frames', async () => {
    const port = await scriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      const op = JSON.parse(frame.payload.toString()).op as string;
      if (op === 'list') {
        socket.write(encodeReply(frame.streamId, { entries: [ENTRY] }, true));
        socket.write(encodeReply(frame.streamId, { entries: [{ ...ENTRY, name: 'b', type: 'dir' }] }));
      } else if (op === 'stat') {
        socket.write(encodeReply(frame.streamId, { entry: ENTRY, extra: 'ignored' }));
      } else {
        socket.write(encodeReply(frame.streamId, {}));
      }
    });
    const client = await Client.connect({ port });
    expect((await client.list()).map((e) => e.name)).toEqual(['a.txt', 'b']);
    expect(await client.stat('a.txt')).toEqual(ENTRY);
    await client.mkdir('d');
    await client.close();
  });
});

describe('a listing without end', () => {
  it('is cancelled past DEFAULTS.maxListingEntries (REPLY frames flagged MORE for ever held memory without bound)', async () => {
    // Each OPEN of a list answered with frames of 500 entries flagged MORE, until the client
    // cancels (or 200 frames: the bound's test, lowered below, needs a few).
    let frames = 0;
    const port = await scriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      const entries = Array.from({ length: 500 }, (_, i) => ({ ...ENTRY, name: `f${frames}-${i}` }));
      const send = () => {
        if (socket.destroyed || frames >= 200) return;
        frames++;
        socket.write(encodeReply(frame.streamId, { entries }, true), () => setImmediate(send));
      };
      send();
    });
    const defaults = DEFAULTS as { maxListingEntries: number };
    const kept = defaults.maxListingEntries;
    defaults.maxListingEntries = 2_000;
    const client = await Client.connect({ port });
    try {
      const listed = await client.list('d').catch((error: unknown) => error);
      expect(listed).toBeInstanceOf(ListingTooLongError);
      expect(listed).toMatchObject({
        code: 'UNSUPPORTED',
        message: 'listing cancelled: more than 2000 entries',
      });
      expect(frames).toBeLessThan(200);
    } finally {
      defaults.maxListingEntries = kept;
      await client.destroy();
    }
  });
});

describe('a protocol break after the handshake', () => {
  it('fails every call in flight at once, though the server keeps its side of the socket open', async () => {
    // The first OPEN is left unanswered; the second gets a REPLY that breaks the protocol.
    let opens = 0;
    const sockets = new Set<Socket>();
    const port = await scriptedServer((socket, frame) => {
      sockets.add(socket);
      // A broken server that does not close on our ERROR: the socket lingered, and every call
      // failed only when it was destroyed, LINGER_MS (2 s) later.
      socket.allowHalfOpen = true;
      if (frame.type === FrameType.OPEN && ++opens === 2) socket.write(encodeReply(frame.streamId, {}));
    });
    const client = await Client.connect({ port });
    try {
      const waiting = client.list().then(
        () => undefined,
        (e: unknown) => e,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const startedAt = performance.now();
      const broken = await client.stat('a').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(broken).toMatchObject({
        code: 'PROTOCOL_ERROR',
        message: 'REPLY to stat: "entry" must be an object',
      });
      expect(await waiting).toBe(broken);
      expect(performance.now() - startedAt).toBeLessThan(1000);
      // A call made now is told the same.
      await expect(client.stat('b')).rejects.toBe(broken);
    } finally {
      await client.destroy();
      for (const socket of sockets) socket.destroy();
    }
  });
});
