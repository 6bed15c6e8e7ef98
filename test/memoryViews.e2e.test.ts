/**
 * Memory storage serves downloads from views of its own buffers (ReadHandle.view): no read into a
 * frame, no copy before the socket. That is safe only because storage never rewrites a served
 * file in place, so these tests hold it to that: a download under way when its file is replaced
 * still sends the version it opened, byte for byte, and the client's check of END passes.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeFrame, encodeOpen, encodeWindow } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { parseEnd } from '../shared/protocol/messages.js';
import type { MemoryStorage } from '../storage/memory.js';
import type { ReadHandle, Storage } from '../storage/types.js';
import { MiB, retainedBufferBytes } from './helpers/heap.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];

afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

/** Counts the reads (copies into frames) of every file storage opens for reading. */
function countReads(storage: Storage): { reads: number } {
  const counted = { reads: 0 };
  const openRead = storage.openRead.bind(storage);
  storage.openRead = async (path: string): Promise<ReadHandle> => {
    const handle = await openRead(path);
    const read = handle.read.bind(handle);
    handle.read = (...args) => {
      counted.reads++;
      return read(...args);
    };
    return handle;
  };
  return counted;
}

const dataOf = (frames: Frame[], streamId: number) =>
  Buffer.concat(
    frames.filter((f) => f.type === FrameType.DATA && f.streamId === streamId).map((f) => f.payload),
  );

describe('memory storage: downloads from views of its buffers', () => {
  it('lends each chunk of a file instead of reading it, and the bytes arrive whole', async () => {
    env = await startServer({ backend: 'memory' });
    const counted = countReads(env.storage);
    const content = randomBytes(5 * MiB + 123);
    (env.storage as MemoryStorage).volume.writeFileSync('/f', content);

    const client = await env.connect();
    const got = await client.getBuffer('f');
    expect(got.equals(content)).toBe(true);
    expect(counted.reads).toBe(0);
  });

  it('a view is of the version opened: replaced mid-download, the file still arrives as it was', async () => {
    env = await startServer({ backend: 'memory' });
    const before = randomBytes(8 * MiB);
    (env.storage as MemoryStorage).volume.writeFileSync('/f', before);

    // A download granted 1 MiB of credit stops there, its file open.
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(Buffer.concat([encodeOpen(1, { op: 'get', path: 'f' }), encodeWindow(1, MiB)]));
    const sent = () => dataOf(peer.frames, 1).length;
    await peer.waitFor(() => sent() >= MiB);

    // Replaced meanwhile (an upload commits by a rename onto the name) ...
    const client = await env.connect();
    const after = Buffer.alloc(before.length, 0x5a);
    await client.put('f', after);
    expect(
      Buffer.from((env.storage as MemoryStorage).volume.readFileSync('/f') as Buffer).equals(after),
    ).toBe(true);

    // ... the rest of the download, lent after the replacement, is still the old version's.
    peer.write(encodeWindow(1, before.length));
    const end = await peer.waitFor(
      (f) => (f.type === FrameType.END || f.type === FrameType.ERROR) && f.streamId === 1,
    );
    expect(end.type).toBe(FrameType.END);
    const data = dataOf(peer.frames, 1);
    expect(data.equals(before)).toBe(true);
    const { size, algorithm, digest } = parseEnd(end);
    expect(size).toBe(before.length);
    expect(digest.equals(contentDigest(algorithm, before))).toBe(true);
  });

  it('chunks lent to a client that reads nothing keep a removed file alive only within the open-file cap', async () => {
    env = await startServer({ backend: 'memory', maxOpenFiles: 2 });
    const server = env.server;
    const volume = (env.storage as MemoryStorage).volume;
    const size = 16 * MiB;
    const clients = 8;
    const base = retainedBufferBytes();
    for (let i = 0; i < clients; i++) volume.writeFileSync(`/f${i}`, randomBytes(size));
    for (let i = 0; i < clients; i++) {
      // Asks for the whole file and reads nothing: the kernel's buffer fills, then the socket's.
      const peer = await RawPeer.open(env.port);
      peers.push(peer);
      peer.socket.pause();
      peer.write(Buffer.concat([encodeOpen(1, { op: 'get', path: `f${i}` }), encodeWindow(1, size)]));
      const held = () => server.connectionFigures().at(-1)?.bufferedAmount ?? 0;
      for (const started = Date.now(); held() < MiB && Date.now() - started < 500; ) await delay(10);
      // Gives up on it (its file is closed), and the file is removed.
      peer.write(encodeFrame(FrameType.CANCEL, 0, 1));
      await delay(20);
      volume.unlinkSync(`/f${i}`);
    }
    // What the unread sockets hold: each had lent views of its whole file, not copies of 4 MiB,
    // and a cancelled stream gave its open-file slot back at once, so the next could do the same
    // (8 x 16 MiB). Held within the cap of 2 files open, the others were refused (SERVER_BUSY).
    const retained = retainedBufferBytes() - base;
    expect(retained).toBeLessThan(2 * size + 16 * MiB);
    for (const peer of peers.splice(0)) peer.destroy();
    for (const started = Date.now(); server.connectionFigures().length > 0 && Date.now() - started < 5_000; )
      await delay(10);
    // Once the sockets are gone, so is everything they held, slots included.
    expect(retainedBufferBytes() - base).toBeLessThan(8 * MiB);
    volume.writeFileSync('/g', 'still served');
    const client = await env.connect();
    expect((await client.getBuffer('g')).toString()).toBe('still served');
  }, 60_000);
});
