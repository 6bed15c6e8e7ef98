/**
 * Bad input over real sockets: each case gets a clear error, the server keeps serving everyone
 * else, and no stored file is lost or left partial.
 */

import { randomBytes } from 'node:crypto';
import { readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../shared/errors.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType, HEADER_BYTES } from '../shared/protocol/constants.js';
import {
  encodeCancel,
  encodeData,
  encodeEnd,
  encodeFrame,
  encodeHello,
  encodeOpen,
  encodeWindow,
  writeHeader,
} from '../shared/protocol/encoder.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { MemoryStorage } from '../storage/memory.js';
import type { UploadHandle } from '../storage/types.js';
import { RawPeer } from './helpers/rawPeer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;

/** Each upload `storage` creates goes through `wrap`'s overrides (a full disk, a slow one); the rest pass through. */
function wrapUploads(
  storage: MemoryStorage,
  wrap: (handle: UploadHandle, path: string) => Partial<UploadHandle>,
): void {
  const createUpload = storage.createUpload.bind(storage);
  storage.createUpload = async (path, options): Promise<UploadHandle> => {
    const handle = await createUpload(path, options);
    return {
      write: (chunks) => handle.write(chunks),
      commit: (digest, commitOptions) => handle.commit(digest, commitOptions),
      abort: (abortOptions) => handle.abort(abortOptions),
      ...wrap(handle, path),
    };
  };
}
let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-outside-');

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

const digest = (b: Uint8Array) => contentDigest('xxh128', b);

function header(type: number, streamId: number, length: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  writeHeader(h, type, 0, streamId, length);
  return h;
}

/** Opens a put on a raw peer and waits for the server's first credit. */
async function openPut(peer: RawPeer, id: number, path: string): Promise<number> {
  peer.write(encodeOpen(id, { op: 'put', path }));
  const window = await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === id);
  return window.payload.readUInt32BE(0);
}

describe('connection-level violations close that connection only', () => {
  it.each([
    {
      name: 'a frame before HELLO',
      bytes: () => encodeOpen(1, { op: 'list', path: '' }),
      code: 'PROTOCOL_ERROR',
      message: /^expected HELLO, got OPEN$/,
      handshake: false,
    },
    {
      name: 'no common version',
      bytes: () => encodeHello({ protocol: 'muxftp', versions: [99], maxFramePayload: 65536 }),
      code: 'VERSION_MISMATCH',
      message: /client speaks 99, server 2$/,
      handshake: false,
    },
    {
      // Exactly what a version-1 client sends: it gets a clear refusal, not a hang.
      name: 'a version-1 HELLO',
      bytes: () =>
        encodeHello({ protocol: 'muxftp', versions: [1], maxFramePayload: 1048576, agent: 'muxftp/0.1.0' }),
      code: 'VERSION_MISMATCH',
      message: /^no common protocol version: client speaks 1, server 2$/,
      handshake: false,
    },
    {
      name: 'no common integrity algorithm',
      bytes: () =>
        encodeHello({
          protocol: 'muxftp',
          versions: [2],
          maxFramePayload: 65536,
          integrity: ['md5', 'crc32'],
        }),
      code: 'VERSION_MISMATCH',
      message:
        /^no common integrity algorithm: client offers \[md5, crc32\], server supports \[xxh128, sha256\]$/,
      handshake: false,
    },
    {
      name: 'a version-2 HELLO without an integrity list',
      bytes: () => encodeHello({ protocol: 'muxftp', versions: [2], maxFramePayload: 65536 }),
      code: 'VERSION_MISMATCH',
      message: /^no common integrity algorithm: client offers \[\]/,
      handshake: false,
    },
    {
      name: 'an unknown frame type',
      bytes: () => header(0x42, 1, 0),
      code: 'UNKNOWN_FRAME_TYPE',
      message: /^unknown frame type 0x42$/,
      handshake: true,
    },
    {
      name: 'an oversized frame',
      bytes: () => header(FrameType.DATA, 1, 512 * MiB),
      code: 'FRAME_TOO_LARGE',
      message: new RegExp(`^DATA payload of ${512 * MiB} bytes exceeds the limit of ${MiB}$`),
      handshake: true,
    },
    {
      // JSON frames have a lower limit than data (docs/PROTOCOL.md): from a client, 32 KiB,
      // checked from the header.
      name: 'an OPEN over the request limit',
      bytes: () => header(FrameType.OPEN, 1, 32 * 1024 + 1),
      code: 'FRAME_TOO_LARGE',
      message: /^OPEN payload of 32769 bytes exceeds the control limit of 32768$/,
      handshake: true,
    },
    {
      // Before any login: an unfinished frame is held until it completes (for the handshake
      // timeout, from connections not yet known), so 8 KiB: a HELLO or an AUTH needs less.
      name: 'a HELLO over the handshake limit',
      bytes: () => header(FrameType.HELLO, 0, 8 * 1024 + 1),
      code: 'FRAME_TOO_LARGE',
      message: /^HELLO payload of 8193 bytes exceeds the control limit of 8192$/,
      handshake: false,
    },
    {
      name: 'DATA for a stream never opened',
      bytes: () => encodeData(9, Buffer.from('x')),
      code: 'UNKNOWN_STREAM',
      message: /^DATA for stream 9, which was never opened$/,
      handshake: true,
    },
    {
      name: 'a server-only frame',
      bytes: () => encodeFrame(FrameType.REPLY, 0, 1, Buffer.from('{}')),
      code: 'PROTOCOL_ERROR',
      message: /^REPLY is not sent by clients$/,
      handshake: true,
    },
    {
      // A client frame, but of the handshake only: the message said "not sent by clients".
      name: 'a second HELLO',
      bytes: () => encodeFrame(FrameType.HELLO, 0, 0, Buffer.from('{}')),
      code: 'PROTOCOL_ERROR',
      message: /^HELLO after the handshake$/,
      handshake: true,
    },
    {
      name: 'an AUTH to a server without logins',
      bytes: () => encodeFrame(FrameType.AUTH, 0, 0, Buffer.from('{"user":"anonymous"}')),
      code: 'PROTOCOL_ERROR',
      message: /^AUTH after the handshake$/,
      handshake: true,
    },
  ])('$name -> $code', async ({ bytes, code, message, handshake }) => {
    env = await startServer();
    const bystander = await env.connect();
    const peer = handshake ? await RawPeer.open(env.port) : await RawPeer.connect(env.port);
    peer.write(bytes());
    const error = await peer.connectionError();
    // The code, and a message that says what was wrong with this peer's bytes.
    expect(error).toEqual({ code, message: expect.stringMatching(message) });
    await peer.closed;
    expect(await bystander.list('')).toEqual([]);
  });

  it('an internal failure reaches the peer as INTERNAL_ERROR without its details, and is logged', async () => {
    const storage = new MemoryStorage();
    const secret = '/srv/secret-host-path/config.ts';
    // A bug or an unmapped failure below the server: a plain Error, with a host path and a stack.
    storage.stat = async () => {
      throw new Error(`EWEIRD: something odd at ${secret}`);
    };
    env = await startServer({ storage });
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(1, { op: 'stat', path: 'x' }));
    const error = await peer.streamError(1);
    expect(error).toEqual({ code: 'INTERNAL_ERROR', message: 'internal server error' });
    expect(peer.frames.map((f) => f.payload.toString('latin1')).join('')).not.toContain('secret-host-path');
    expect(env.logs.join('\n')).toContain(secret); // the operator still sees what happened
    peer.write(encodeOpen(2, { op: 'list', path: '' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 2); // the connection goes on
  });

  it('a reused stream id is a PROTOCOL_ERROR', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(5, { op: 'list', path: '' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 5);
    peer.write(encodeOpen(5, { op: 'list', path: '' }));
    expect((await peer.connectionError()).code).toBe('PROTOCOL_ERROR');
  });

  it('DATA beyond the granted credit is a FLOW_CONTROL_ERROR and leaves no file', async () => {
    env = await startServer({ streamWindowBytes: 64 * 1024 });
    const peer = await RawPeer.open(env.port);
    const credit = await openPut(peer, 1, 'flood.bin');
    expect(credit).toBe(64 * 1024);
    // One frame past the credit: the server grants credit back as soon as bytes are accepted into
    // its write queue, so a second frame sent behind a full window may already be covered.
    peer.write(encodeData(1, Buffer.alloc(credit + 1)));
    expect((await peer.connectionError()).code).toBe('FLOW_CONTROL_ERROR');
    await peer.closed;
    const client = await env.connect();
    expect(await client.list('')).toEqual([]);
  });

  it('DATA on a stream that finished is STREAM_CLOSED', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    await openPut(peer, 1, 'done.bin');
    const bytes = Buffer.from('abc');
    peer.write(encodeData(1, bytes));
    peer.write(encodeEnd(1, bytes.length, 'xxh128', digest(bytes)));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    peer.write(encodeData(1, bytes));
    expect((await peer.connectionError()).code).toBe('STREAM_CLOSED');
  });

  it('garbage on one connection does not disturb transfers on others', async () => {
    env = await startServer();
    const client = await env.connect();
    const bytes = randomBytes(32 * MiB);
    const transfer = client.put('big.bin', bytes).then(() => client.getBuffer('big.bin'));
    const victims = await Promise.all(Array.from({ length: 10 }, () => RawPeer.open(env!.port)));
    for (const victim of victims) victim.write(randomBytes(64 * 1024));
    const codes = await Promise.all(victims.map((v) => v.connectionError().then((e) => e.code)));
    for (const code of codes) expect(code).toMatch(/^(PROTOCOL_ERROR|UNKNOWN_FRAME_TYPE|FRAME_TOO_LARGE)$/);
    await Promise.all(victims.map((v) => v.closed));
    expect((await transfer).equals(bytes)).toBe(true);
  });
});

describe('stream-level errors fail that stream only', () => {
  it('a bad request, a hostile path and a missing file each fail their own stream', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(encodeFrame(FrameType.OPEN, 0, 1, Buffer.from('{"op":"stat"}')));
    peer.write(encodeOpen(2, { op: 'stat', path: '../../etc/passwd' }));
    peer.write(encodeOpen(3, { op: 'get', path: 'nope' }));
    peer.write(encodeFrame(FrameType.OPEN, 0, 4, Buffer.from('{"op":"chown"}')));
    peer.write(encodeOpen(5, { op: 'put', path: '/abs' }));
    peer.write(encodeOpen(6, { op: 'put', path: 'a\\b' }));
    peer.write(encodeOpen(7, { op: 'list', path: '' }));
    // A name that is not UTF-8: decoded, its bytes would become U+FFFD, another name than sent.
    const notUtf8 = Buffer.concat([
      Buffer.from('{"op":"mkdir","path":"bad'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    peer.write(encodeFrame(FrameType.OPEN, 0, 8, notUtf8));
    expect((await peer.streamError(1)).code).toBe('BAD_REQUEST');
    expect((await peer.streamError(2)).code).toBe('INVALID_PATH');
    expect((await peer.streamError(3)).code).toBe('NOT_FOUND');
    expect((await peer.streamError(4)).code).toBe('UNSUPPORTED');
    expect((await peer.streamError(5)).code).toBe('INVALID_PATH');
    expect((await peer.streamError(6)).code).toBe('INVALID_PATH');
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 7);
    expect(await peer.streamError(8)).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/UTF-8/),
    });
    expect(await env.storage.list('')).toEqual([]);
    expect(peer.socket.destroyed).toBe(false);
  });

  it('an upload whose SHA-256 does not match is discarded; the old version stays', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('file.bin', Buffer.from('old content'));
    const peer = await RawPeer.open(env.port);
    await openPut(peer, 1, 'file.bin');
    const bytes = randomBytes(1000);
    peer.write(encodeData(1, bytes));
    peer.write(encodeEnd(1, bytes.length, 'xxh128', digest(Buffer.from('something else'))));
    expect((await peer.streamError(1)).code).toBe('INTEGRITY_ERROR');
    await openPut(peer, 2, 'file.bin');
    peer.write(encodeEnd(2, 5, 'xxh128', digest(Buffer.alloc(0))));
    expect((await peer.streamError(2)).code).toBe('INTEGRITY_ERROR');
    expect((await client.getBuffer('file.bin')).toString()).toBe('old content');
    expect((await client.list('')).map((e) => e.name)).toEqual(['file.bin']);
  });

  it('an upload whose END disagrees with its declared size is discarded', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(1, { op: 'put', path: 'declared.bin', size: 10 }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    const bytes = Buffer.from('12345');
    peer.write(encodeData(1, bytes));
    peer.write(encodeEnd(1, bytes.length, 'xxh128', digest(bytes)));
    const error = await peer.streamError(1);
    expect(error.code).toBe('INTEGRITY_ERROR');
    expect(error.message).toMatch(/declared/);
    const client = await env.connect();
    expect(await client.list('')).toEqual([]);
  });

  it('late frames for a stream the server failed are discarded, not fatal', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(1, { op: 'put', path: '../escape' }));
    expect((await peer.streamError(1)).code).toBe('INVALID_PATH');
    peer.write(encodeData(1, Buffer.from('in flight')));
    peer.write(encodeEnd(1, 9, 'xxh128', digest(Buffer.from('in flight'))));
    peer.write(encodeOpen(2, { op: 'list', path: '' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 2);
  });

  it('answers TOO_MANY_STREAMS above the per-connection limit', async () => {
    env = await startServer({ maxStreamsPerConnection: 2 });
    const peer = await RawPeer.open(env.port);
    await openPut(peer, 1, 'a');
    await openPut(peer, 2, 'b');
    peer.write(encodeOpen(3, { op: 'list', path: '' }));
    expect((await peer.streamError(3)).code).toBe('TOO_MANY_STREAMS');
  });

  it('refuses a symlink that leads outside the root', async () => {
    env = await startServer({ backend: 'disk' });
    const outside = await tempDirs.make();
    await writeFile(join(outside, 'secret'), 'secret');
    await symlink(outside, join(env.root!, 'link'));
    const client = await env.connect();
    await expect(client.getBuffer('link/secret')).rejects.toMatchObject({ code: 'INVALID_PATH' });
    await expect(client.put('link/planted', Buffer.from('x'))).rejects.toMatchObject({
      code: 'INVALID_PATH',
    });
    expect(await readdir(outside)).toEqual(['secret']);
  });
});

describe('stream ids and late frames (docs/PROTOCOL.md, Streams)', () => {
  const list = (id: number) => encodeOpen(id, { op: 'list', path: '' });
  const replied = (peer: RawPeer, id: number) =>
    peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === id);

  it('an OPEN whose id is below one opened before is a PROTOCOL_ERROR', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(list(7));
    await replied(peer, 7);
    peer.write(list(3));
    expect(await peer.connectionError()).toEqual({
      code: 'PROTOCOL_ERROR',
      message: 'OPEN on stream 3: ids must increase (last was 7)',
    });
    await peer.closed;
  });

  it('END on a stream that finished is STREAM_CLOSED', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    await openPut(peer, 1, 'done.bin');
    const bytes = Buffer.from('abc');
    peer.write(Buffer.concat([encodeData(1, bytes), encodeEnd(1, bytes.length, 'xxh128', digest(bytes))]));
    await replied(peer, 1);
    peer.write(encodeEnd(1, bytes.length, 'xxh128', digest(bytes)));
    expect((await peer.connectionError()).code).toBe('STREAM_CLOSED');
  });

  it('CANCEL for a stream that finished is ignored', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(list(1));
    await replied(peer, 1);
    peer.write(Buffer.concat([encodeCancel(1), list(2)]));
    await replied(peer, 2);
    expect(peer.frames.filter((f) => f.type === FrameType.ERROR)).toEqual([]);
  });

  it("a failed stream's id is forgotten once the client's END for it arrives: DATA after that is STREAM_CLOSED", async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(1, { op: 'put', path: '../escape' }));
    expect((await peer.streamError(1)).code).toBe('INVALID_PATH');
    // In flight when the ERROR crossed them: dropped; END is the client's last word on the stream.
    peer.write(
      Buffer.concat([encodeData(1, Buffer.from('x')), encodeEnd(1, 1, 'xxh128', digest(Buffer.from('x')))]),
    );
    peer.write(list(2));
    await replied(peer, 2);
    peer.write(encodeData(1, Buffer.from('y')));
    expect((await peer.connectionError()).code).toBe('STREAM_CLOSED');
  });

  it('past 4096 failed streams the oldest id is forgotten first; later ones still drop their late frames', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    const failed = 4097;
    const opens: Buffer[] = [];
    for (let id = 1; id <= failed; id++)
      opens.push(encodeFrame(FrameType.OPEN, 0, id, Buffer.from('{"op":"chown"}')));
    peer.write(Buffer.concat(opens));
    expect((await peer.streamError(failed)).code).toBe('UNSUPPORTED');
    // Stream 2 is still remembered: its late DATA is dropped and the connection goes on.
    peer.write(Buffer.concat([encodeData(2, Buffer.from('late')), list(failed + 1)]));
    await replied(peer, failed + 1);
    // Stream 1 was the 4097th from last: forgotten, so its late DATA is for a finished stream.
    peer.write(encodeData(1, Buffer.from('late')));
    expect((await peer.connectionError()).code).toBe('STREAM_CLOSED');
  });
});

describe('interrupted and failed uploads never leave a partial file', () => {
  it('an upload cut off midway leaves the old version whole and no temporary file', async () => {
    env = await startServer({ backend: 'disk' });
    const client = await env.connect();
    const old = randomBytes(100_000);
    await client.put('target.bin', old);
    const peer = await RawPeer.open(env.port);
    const credit = await openPut(peer, 1, 'target.bin');
    peer.write(encodeData(1, randomBytes(Math.min(credit, MiB))));
    // Cut once the upload is provably under way (its temporary file exists), not after a fixed
    // 50 ms, which on a loaded machine could cut it before there was anything to clean up.
    const temporary = async () => (await readdir(env!.root!)).filter((n) => n.startsWith('.muxftp-'));
    for (let i = 0; i < 500 && (await temporary()).length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await temporary()).toHaveLength(1);
    peer.destroy();
    await peer.closed;
    // The server notices the disconnect and drops the temporary file.
    const deadline = Date.now() + 5_000;
    while ((await readdir(env.root!)).length > 1 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(await readdir(env.root!)).toEqual(['target.bin']);
    expect((await readFile(join(env.root!, 'target.bin'))).equals(old)).toBe(true);
  });

  it('a full disk fails the upload with NO_SPACE; the old version stays, the server goes on', async () => {
    const storage = new MemoryStorage();
    let quota = 0;
    // The storage boundary is where a full disk shows up: writes past the quota fail with ENOSPC.
    wrapUploads(storage, (handle, path) => {
      let written = 0;
      return {
        write: async (chunks) => {
          for (const c of chunks) written += c.length;
          if (written > quota) throw new StorageError('NO_SPACE', `no space left for ${path}`, path);
          await handle.write(chunks);
        },
      };
    });
    env = await startServer({ storage });
    const client = await env.connect();
    quota = 10;
    await client.put('f.bin', Buffer.from('small'));
    await expect(client.put('f.bin', randomBytes(4 * MiB))).rejects.toMatchObject({ code: 'NO_SPACE' });
    // The operator hears of it: one line per upload refused for the disk.
    expect(env.logs.filter((line) => line.includes('no space left for f.bin (NO_SPACE)'))).toHaveLength(1);
    expect((await client.getBuffer('f.bin')).toString()).toBe('small');
    expect((await storage.volume.promises.readdir('/')).sort()).toEqual(['f.bin']);
    quota = 64 * MiB;
    const bytes = randomBytes(2 * MiB);
    await client.put('g.bin', bytes);
    expect((await client.getBuffer('g.bin')).equals(bytes)).toBe(true);
  });

  it('a commit slower than the idle timeout (a large file flushed to a slow disk) is not a stalled stream', async () => {
    const storage = new MemoryStorage();
    wrapUploads(storage, (handle) => ({
      commit: async (digest, options) => {
        await new Promise((resolve) => setTimeout(resolve, 800)); // four idle timeouts
        return handle.commit(digest, options);
      },
    }));
    // 200 ms, not 50: a loaded machine's pause between the login and the put's OPEN took 50 ms,
    // and the connection was closed idle before the test began (as in the test below).
    env = await startServer({ storage, idleTimeoutMs: 200 });
    const client = await env.connect();
    const bytes = randomBytes(64 * 1024);
    // Before, the stream failed STREAM_TIMEOUT while its commit went on: the client was told the
    // put failed, and the file was stored all the same.
    const reply = await client.put('slow.bin', bytes);
    expect(reply.entry.size).toBe(bytes.length);
    expect((await client.getBuffer('slow.bin')).equals(bytes)).toBe(true);
    expect(env.server.counters.errors.get('STREAM_TIMEOUT') ?? 0).toBe(0);
  });

  it("a listing longer than the idle timeout (a huge directory's lookups on a slow disk) is not a stalled stream", async () => {
    const storage = new MemoryStorage();
    const listBatches = storage.listBatches.bind(storage);
    // Each entry looked up in a batch of its own, 20 ms each: 40 entries, four idle timeouts.
    storage.listBatches = async function* (path, options) {
      for await (const batch of listBatches(path, options)) {
        for (const entry of batch) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          yield [entry];
        }
      }
    };
    env = await startServer({ storage, idleTimeoutMs: 200 });
    const client = await env.connect();
    for (let i = 0; i < 40; i++) await client.put(`f${i}`, Buffer.from('x'));
    // Before, it failed STREAM_TIMEOUT "stream moved no data for 0.2 s": its entries, all in one
    // frame, were still being looked up.
    expect(await client.list('')).toHaveLength(40);
    expect(env.server.counters.errors.get('STREAM_TIMEOUT') ?? 0).toBe(0);
  });

  it('a failed upload answers once its temporary file is gone: the next put finds the space free', async () => {
    const storage = new MemoryStorage();
    // Writes fail as on a full disk; removing the temporary file takes a while (a slow disk).
    wrapUploads(storage, (handle, path) => ({
      write: async () => {
        throw new StorageError('NO_SPACE', `no space left for ${path}`, path);
      },
      abort: async (options) => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        return handle.abort(options);
      },
    }));
    env = await startServer({ storage });
    const client = await env.connect();
    await expect(client.put('f.bin', randomBytes(MiB))).rejects.toMatchObject({ code: 'NO_SPACE' });
    // Told NO_SPACE, a client goes on at once: by then the failed upload's file is gone.
    expect(await storage.volume.promises.readdir('/')).toEqual([]);
  });

  it("a failed upload whose storage's write and abort throw at once is still told why, and the connection goes on", async () => {
    const storage = new MemoryStorage();
    // An embedder's storage, not async: its methods throw rather than reject.
    wrapUploads(storage, (handle, path) => ({
      write: () => {
        throw new StorageError('NO_SPACE', `no space left for ${path}`, path);
      },
      abort: (options) => {
        void handle.abort(options);
        throw new Error('abort failed at once');
      },
    }));
    env = await startServer({ storage, idleTimeoutMs: 200 });
    const client = await env.connect();
    await expect(client.put('f.bin', randomBytes(MiB))).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(await client.list('')).toEqual([]);
  });

  it('a failed upload whose temporary file takes longer than the idle timeout to go is still told why', async () => {
    const storage = new MemoryStorage();
    wrapUploads(storage, (handle, path) => ({
      write: async () => {
        throw new StorageError('NO_SPACE', `no space left for ${path}`, path);
      },
      abort: async (options) => {
        // Four idle timeouts, under failedUploadAnswerWaitMs (1 s), past which the answer goes.
        await new Promise((resolve) => setTimeout(resolve, 800));
        return handle.abort(options);
      },
    }));
    // 200 ms, not 50: on a loaded machine the put's OPEN came more than 50 ms after the login,
    // and the connection was closed idle before the upload began ("connection idle for too
    // long", IDLE_TIMEOUT).
    env = await startServer({ storage, idleTimeoutMs: 200 });
    const client = await env.connect();
    // Before, the connection, its last stream closed and the answer not sent yet, was closed
    // idle: the put failed IDLE_TIMEOUT, not NO_SPACE.
    await expect(client.put('f.bin', randomBytes(MiB))).rejects.toMatchObject({ code: 'NO_SPACE' });
  });
});

describe('ERROR frames from a client', () => {
  it('an ERROR on stream 0 from the client ends the connection quietly', async () => {
    env = await startServer();
    const peer = await RawPeer.open(env.port);
    peer.write(
      encodeFrame(
        FrameType.ERROR,
        0,
        0,
        Buffer.from('{"status":100,"code":"PROTOCOL_ERROR","message":"bye"}'),
      ),
    );
    await peer.closed;
    expect(
      peer.frames.filter((f) => f.type === FrameType.ERROR).map((f) => parseErrorPayload(f).code),
    ).toEqual([]);
  });

  it('a window update on a download that already ended is ignored', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('x', Buffer.from('abc'));
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(1, { op: 'get', path: 'x' }));
    peer.write(encodeWindow(1, 1024));
    await peer.waitFor((f) => f.type === FrameType.END && f.streamId === 1);
    peer.write(encodeWindow(1, 1024));
    peer.write(encodeOpen(2, { op: 'stat', path: 'x' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 2);
  });
});
