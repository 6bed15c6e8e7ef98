/**
 * A client that half-closes (TCP shutdown of its sending side, as `nc -N` does after its last
 * request) still gets every answer it is owed: requests are answered, an upload whose END came is
 * committed and confirmed, a download whose credit carries the whole file is sent. What could
 * never finish without more from it (an upload before END, a download short of credit) ends as
 * on a lost connection, at once, and the server then closes. Before, a FIN closed the connection
 * outright: answers in flight were dropped and a whole upload still being written was thrown away.
 * Real server on 127.0.0.1 (disk storage), a raw protocol peer.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeJsonFrame, encodeWindow } from '../shared/protocol/encoder.js';
import { MemoryStorage } from '../storage/memory.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

let server: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  server = await stopServerAndPeers(server, peers);
});

const MiB = 1024 * 1024;
const digestOf = (bytes: Buffer) => contentDigest('xxh128', bytes);
const open = (id: number, request: object) => encodeJsonFrame(FrameType.OPEN, id, request);

async function peer(): Promise<RawPeer> {
  const connected = await RawPeer.open(server!.port);
  peers.push(connected);
  return connected;
}

/** The frames of `type` on stream `id`. */
const framesOf = (p: RawPeer, id: number, type: number) =>
  p.frames.filter((f) => f.streamId === id && f.type === type);

/** DATA frames of at most 1 MiB (the server's frame limit). */
function dataFrames(id: number, bytes: Buffer): Buffer {
  const frames: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += MiB) frames.push(encodeData(id, bytes.subarray(at, at + MiB)));
  return Buffer.concat(frames);
}

describe('a client that half-closes', () => {
  it('gets the answers to its requests, then the server closes', async () => {
    server = await startServer({ backend: 'disk' });
    await writeFile(join(server.root!, 'a.txt'), 'a');
    const client = await peer();
    client.write(Buffer.concat([open(1, { op: 'list', path: '' }), open(3, { op: 'stat', path: 'a.txt' })]));
    client.socket.end();
    await client.closed;
    const listed = framesOf(client, 1, FrameType.REPLY).flatMap(
      (f) => JSON.parse(f.payload.toString()).entries,
    );
    expect(listed.map((e: { name: string }) => e.name)).toEqual(['a.txt']);
    expect(JSON.parse(framesOf(client, 3, FrameType.REPLY)[0]!.payload.toString()).entry.size).toBe(1);
  });

  it('an upload whose END came is committed and confirmed, though its writes were not done at the FIN', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await peer();
    const content = randomBytes(3 * MiB);
    client.write(open(1, { op: 'put', path: 'whole.bin', size: content.length }));
    await client.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    const small = Buffer.from('small and whole');
    client.write(
      Buffer.concat([
        dataFrames(1, content),
        encodeEnd(1, content.length, 'xxh128', digestOf(content)),
        open(3, { op: 'put', path: 'small.txt', size: small.length }),
      ]),
    );
    await client.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 3);
    client.write(
      Buffer.concat([encodeData(3, small), encodeEnd(3, small.length, 'xxh128', digestOf(small))]),
    );
    client.socket.end();
    await client.closed;

    expect(framesOf(client, 1, FrameType.REPLY)).toHaveLength(1);
    expect(framesOf(client, 3, FrameType.REPLY)).toHaveLength(1);
    expect((await readFile(join(server.root!, 'whole.bin'))).equals(content)).toBe(true);
    expect(await readFile(join(server.root!, 'small.txt'), 'utf8')).toBe('small and whole');
    expect(server.logs.join('\n')).toContain('received whole.bin 3145728 B');
  });

  it('an upload whose END came and failed verification is told why before the server closes', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await peer();
    const content = randomBytes(MiB);
    client.write(open(1, { op: 'put', path: 'wrong.bin', size: content.length }));
    await client.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    // The digest of other bytes: the upload fails INTEGRITY_ERROR once its writes are done.
    client.write(
      Buffer.concat([
        dataFrames(1, content),
        encodeEnd(1, content.length, 'xxh128', digestOf(Buffer.from('other'))),
      ]),
    );
    client.socket.end();
    await client.closed;
    const errors = framesOf(client, 1, FrameType.ERROR).map((f) => JSON.parse(f.payload.toString()).code);
    // Before, the ERROR waited for the temporary file to go, came after the connection ended, and was lost.
    expect(errors, server.logs.join('\n')).toEqual(['INTEGRITY_ERROR']);
    await until(async () => (await readdir(server!.root!)).length === 0, 'the temporary file removed');
  });

  it('an upload that failed verification before the FIN came is told why', async () => {
    // Its bytes all written when END came, the check fails in END's own turn, before the FIN is
    // read; its answer waits for the temporary file to go, made slow here (300 ms) so that the
    // FIN surely comes first.
    const storage = new MemoryStorage();
    const createUpload = storage.createUpload.bind(storage);
    storage.createUpload = async (path, options) => {
      const handle = await createUpload(path, options);
      const abort = handle.abort.bind(handle);
      handle.abort = async (how) => {
        await delay(300);
        return abort(how);
      };
      return handle;
    };
    server = await startServer({ storage });
    const client = await peer();
    const content = randomBytes(1000);
    client.write(open(1, { op: 'put', path: 'wrong.bin', size: content.length }));
    await client.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    client.write(dataFrames(1, content));
    await delay(200); // written by now
    client.socket.end(encodeEnd(1, content.length, 'xxh128', digestOf(Buffer.from('other'))));
    await client.closed;
    const errors = framesOf(client, 1, FrameType.ERROR).map((f) => JSON.parse(f.payload.toString()).code);
    // Before: the FIN ended the connection (no stream left), and the ERROR came after, lost.
    expect(errors, server.logs.join('\n')).toEqual(['INTEGRITY_ERROR']);
  });

  it('an upload without its END ends as on a lost connection: nothing under its name, nothing left', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await peer();
    client.write(open(1, { op: 'put', path: 'cut.bin', size: 2 * MiB }));
    await client.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    client.write(encodeData(1, randomBytes(MiB)));
    client.socket.end();
    await client.closed;
    expect(framesOf(client, 1, FrameType.REPLY)).toEqual([]);
    // Bounded (10 s): the abort's unlink goes through a threadpool a loaded full run keeps busy
    // (2 s once fell short there, and 5 s once in session 41's CI run). The server's stream ends
    // first: the upload may still be setting up its file when the connection goes, so the root
    // can be empty at a look and then not (CI once: empty with no stream left, then the file made
    // and not yet removed): it must stay empty for 300 ms. A failure shows the server's log, to
    // tell a leak from a wait.
    const started = Date.now();
    let emptySince: number | undefined;
    while (Date.now() - started < 10_000) {
      const settled = server.server.stats().streams === 0 && (await readdir(server.root!)).length === 0;
      if (!settled) emptySince = undefined;
      else if (emptySince === undefined) emptySince = Date.now();
      else if (Date.now() - emptySince >= 300) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await readdir(server.root!), server.logs.join('\n')).toEqual([]);
  });

  it('a download whose credit carries the file is sent whole; one short of credit ends at once', async () => {
    server = await startServer({ backend: 'disk' });
    const content = randomBytes(2 * MiB + 5);
    await writeFile(join(server.root!, 'f.bin'), content);

    const enough = await peer();
    enough.write(Buffer.concat([open(1, { op: 'get', path: 'f.bin' }), encodeWindow(1, content.length)]));
    enough.socket.end();
    await enough.closed;
    const received = Buffer.concat(framesOf(enough, 1, FrameType.DATA).map((f) => f.payload));
    expect(received.equals(content)).toBe(true);
    expect(framesOf(enough, 1, FrameType.END)).toHaveLength(1);

    const short = await peer();
    const started = performance.now();
    short.write(Buffer.concat([open(1, { op: 'get', path: 'f.bin' }), encodeWindow(1, MiB)]));
    short.socket.end();
    await short.closed;
    // Not at a stall timeout (seconds): it can never finish, so it ends with the FIN.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(framesOf(short, 1, FrameType.END)).toEqual([]);
  });

  it('a resumed download whose credit carries the rest from its offset is sent whole, the FIN coming while its prefix is hashed', async () => {
    server = await startServer({ backend: 'disk' });
    const content = randomBytes(4 * MiB + 5);
    await writeFile(join(server.root!, 'f.bin'), content);
    // The prefix's reads wait until the server has seen the FIN (a large prefix on a slow disk).
    let releaseReads!: () => void;
    const readsReleased = new Promise<void>((resolve) => {
      releaseReads = resolve;
    });
    let prefixRead = false;
    const storage = server.storage;
    const openRead = storage.openRead.bind(storage);
    storage.openRead = async (path) => {
      const handle = await openRead(path);
      const read = handle.read.bind(handle);
      handle.read = async (...args) => {
        prefixRead = true;
        await readsReleased;
        return read(...args);
      };
      return handle;
    };
    await writeFile(join(server.root!, 'g.bin'), 'g');

    const resumed = await peer();
    // Stream 3, a get without credit, ends as the server takes the FIN (short of credit): the
    // count of streams falling below 2 says it has.
    resumed.write(
      Buffer.concat([
        open(1, { op: 'get', path: 'f.bin', offset: 4 * MiB }),
        encodeWindow(1, 5),
        open(3, { op: 'get', path: 'g.bin' }),
      ]),
    );
    await resumed.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    await until(() => prefixRead, 'the prefix being read');
    expect(server.server.stats().streams).toBe(2);
    resumed.socket.end();
    await until(() => server!.server.stats().streams < 2, 'the server seeing the FIN');
    releaseReads();
    await resumed.closed;
    // It owed the last 5 bytes only, which the credit covers: not cut as short of credit.
    expect(framesOf(resumed, 1, FrameType.ERROR)).toEqual([]);
    const received = Buffer.concat(framesOf(resumed, 1, FrameType.DATA).map((f) => f.payload));
    expect(received.equals(content.subarray(4 * MiB))).toBe(true);
    expect(framesOf(resumed, 1, FrameType.END)).toHaveLength(1);
  });
});
