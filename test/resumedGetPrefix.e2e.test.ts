/**
 * A resumed `get` of a file whose digest storage does not know hashes the prefix the client
 * already has before its REPLY. Those block digests are remembered for the file's version, so a
 * client that repeats `get` with an offset (and hangs up after the REPLY) cannot make the server
 * read and hash that prefix again each time; a changed file is a new version and is hashed again.
 * Reads are observed through a storage wrapper; every download is verified end to end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { blockDigestsFitting, FrameType, MIN_FRAME_PAYLOAD_BYTES } from '../shared/protocol/constants.js';
import { encodeOpen, encodeWindow } from '../shared/protocol/encoder.js';
import { RACY_WINDOW_MS } from '../storage/digestCache.js';
import { MemoryStorage } from '../storage/memory.js';
import { RawPeer } from './helpers/rawPeer.js';
import { ReadLog } from './helpers/readLog.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;
const RESUME_AT = 2 * BLOCK;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

let env: TestServer | undefined;
const peers: RawPeer[] = [];
const tempDirs = new TempDirs('muxftp-resumed-prefix-');

afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
  await tempDirs.removeAll();
  vi.useRealTimers();
});

/**
 * Memory storage holding `content` at big.bin, written behind the server's back (no digest known),
 * with the clock moved past the racy window so that what is hashed from it may be remembered.
 */
async function serverWithUnhashedFile(content: Buffer): Promise<{ reads: ReadLog; memory: MemoryStorage }> {
  const memory = new MemoryStorage();
  memory.volume.writeFileSync('/big.bin', content);
  passTheRacyWindow();
  const reads = new ReadLog(memory);
  env = await startServer({ storage: reads.storage });
  return { reads, memory };
}

/** memfs stamps file times from Date: moving Date on makes the last write old enough to trust. */
function passTheRacyWindow(): void {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + RACY_WINDOW_MS + 1000 });
}

/** get -c of big.bin into a local file holding its first two blocks and a bit; the result's hash. */
async function resumedGet(content: Buffer): Promise<string> {
  const local = join(await tempDirs.make(), 'big.bin');
  await writeFile(local, content.subarray(0, RESUME_AT + 1000));
  const client = await env!.connect();
  await client.get('big.bin', local, { continue: true });
  await client.close();
  return sha256(await readFile(local));
}

/** A raw client's get of big.bin from RESUME_AT, hanging up once the REPLY is in. */
async function askToResumeAndHangUp(): Promise<void> {
  const peer = await RawPeer.open(env!.port);
  peers.push(peer);
  peer.write(encodeOpen(1, { op: 'get', path: 'big.bin', offset: RESUME_AT }));
  await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
  peer.destroy();
}

describe('a resumed get of a file whose digest is not known', () => {
  it('a resumed get cut off after its REPLY leaves the prefix hashed: the next one reads none of it', async () => {
    // More after the offset than the client's first window: the server cannot have sent it all.
    const content = randomBytes(RESUME_AT + 3 * BLOCK + 7);
    const { reads } = await serverWithUnhashedFile(content);
    const local = join(await tempDirs.make(), 'big.bin');
    const partial = content.subarray(0, RESUME_AT + 1000);
    await writeFile(local, partial);
    const client = await env!.connect();
    const cutOff = new AbortController();
    await expect(
      client.get('big.bin', local, {
        continue: true,
        signal: cutOff.signal,
        onProgress: () => cutOff.abort(),
      }),
    ).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(sha256(await readFile(local))).toBe(sha256(partial));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(RESUME_AT);
    await vi.waitFor(() => expect(env!.server.stats().streams).toBe(0));

    reads.clear();
    expect(await resumedGet(content)).toBe(sha256(content));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(0);
    // The rest was read and sent, and END's digest covers the whole file (the client checked it).
    expect(reads.bytesFrom('/big.bin', RESUME_AT)).toBe(content.length - RESUME_AT);
  });

  it('a client that asks again and again, hanging up after each REPLY, has the prefix read once', async () => {
    const content = randomBytes(RESUME_AT + 100);
    const { reads } = await serverWithUnhashedFile(content);
    for (let attempt = 0; attempt < 3; attempt++) await askToResumeAndHangUp();
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(RESUME_AT);
    // What was remembered is right: a real client's resume checks it and the whole file verifies.
    expect(await resumedGet(content)).toBe(sha256(content));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(RESUME_AT);
  });

  it('an interrupted plain get leaves its whole blocks for a resume to use', async () => {
    const content = randomBytes(3 * BLOCK);
    const { reads } = await serverWithUnhashedFile(content);
    const peer = await RawPeer.open(env!.port);
    peers.push(peer);
    peer.write(
      Buffer.concat([encodeOpen(1, { op: 'get', path: 'big.bin' }), encodeWindow(1, RESUME_AT + 10)]),
    );
    const sent = () =>
      peer.frames.reduce((sum, f) => sum + (f.type === FrameType.DATA ? f.payload.length : 0), 0);
    await peer.waitFor(() => sent() === RESUME_AT + 10);
    peer.destroy();
    await vi.waitFor(() => expect(env!.server.stats().streams).toBe(0));
    reads.clear();
    expect(await resumedGet(content)).toBe(sha256(content));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(0);
  });

  it('a file changed since is a new version: its prefix is hashed again, and the download verifies', async () => {
    const content = randomBytes(RESUME_AT + 5000);
    const { reads, memory } = await serverWithUnhashedFile(content);
    await askToResumeAndHangUp(); // the old version's prefix digests are remembered

    const changed = Buffer.from(content);
    changed[17] = changed[17]! ^ 0xff; // same size, first block differs
    memory.volume.writeFileSync('/big.bin', changed);
    passTheRacyWindow();
    reads.clear();
    // The client's partial file is of the new version too, so the resume goes ahead.
    expect(await resumedGet(changed)).toBe(sha256(changed));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(RESUME_AT);
  });
});

describe('a digest request for a file whose digest is not known', () => {
  const xxh128 = (data: Buffer) => contentDigest('xxh128', data).toString('hex');

  it('goes on from the blocks a resumed get hashed', async () => {
    const content = randomBytes(RESUME_AT + 5000);
    const { reads } = await serverWithUnhashedFile(content);
    await askToResumeAndHangUp();
    reads.clear();
    const client = await env!.connect();
    expect((await client.digest('big.bin', 'xxh128')).digest).toBe(xxh128(content));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(0);
  });

  it('stopped short, leaves the whole blocks it hashed for the next one', async () => {
    const content = randomBytes(3 * BLOCK + 5000);
    const { reads } = await serverWithUnhashedFile(content);
    reads.failNextReadReaching(RESUME_AT + 1); // the first read past the second block
    const client = await env!.connect();
    await expect(client.digest('big.bin', 'xxh128')).rejects.toMatchObject({ code: 'IO_ERROR' });
    reads.clear();
    expect((await client.digest('big.bin', 'xxh128')).digest).toBe(xxh128(content));
    expect(reads.bytesBelow('/big.bin', RESUME_AT)).toBe(0);
    expect(reads.bytesFrom('/big.bin', RESUME_AT)).toBe(content.length - RESUME_AT);
  });
});

describe('hashing the prefix for longer than the idle timeout', () => {
  it('is not a stalled stream: each read of the prefix counts as moving data', async () => {
    // 64 blocks (256 MiB) in sha256: ~0.2 s here, four 50 ms idle timeouts.
    const memory = new MemoryStorage();
    memory.volume.writeFileSync('/big.bin', Buffer.alloc(64 * BLOCK + 10, 3));
    env = await startServer({ storage: memory, idleTimeoutMs: 50 });
    const peer = await RawPeer.open(env.port, ['sha256']);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'get', path: 'big.bin', offset: 64 * BLOCK }));
    const answer = await peer.waitFor(
      (f) => (f.type === FrameType.REPLY || f.type === FrameType.ERROR) && f.streamId === 1,
    );
    expect(answer.type === FrameType.REPLY ? 'REPLY' : answer.payload.toString()).toBe('REPLY');
    expect(env.server.counters.errors.get('STREAM_TIMEOUT') ?? 0).toBe(0);
  });
});

describe("a resumed get's REPLY", () => {
  it('lists no more block digests than fit the frame limit the client announced, and resumes from the last', async () => {
    // 300 blocks of zeros, sparse on disk. A client taking 16 KiB frames asks to resume at 272:
    // 272 sha256 digests in hex are ~18 KiB of JSON, so the server offers 240 (what fits) instead.
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'sparse.bin'), '');
    await truncate(join(env.root!, 'sparse.bin'), 300 * BLOCK);
    const limit = MIN_FRAME_PAYLOAD_BYTES;
    const peer = await RawPeer.open(env.port, ['sha256'], { maxFramePayload: limit });
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'get', path: 'sparse.bin', offset: 272 * BLOCK }));
    const reply = await peer.waitFor((f) => f.streamId === 1 && f.type !== FrameType.WINDOW, 30_000);
    expect(reply.type).toBe(FrameType.REPLY);
    expect(reply.payload.length).toBeLessThanOrEqual(limit);
    const { offset, blocks } = JSON.parse(reply.payload.toString()) as { offset: number; blocks: string[] };
    expect(blocks.length).toBe(blockDigestsFitting(limit, 32, 2048));
    expect(blocks.length).toBe(240);
    expect(offset).toBe(240 * BLOCK);
    expect(new Set(blocks)).toEqual(new Set([sha256(Buffer.alloc(BLOCK))]));
  });
});

describe('a WINDOW that comes while the prefix is hashed', () => {
  it('has the DATA start at the offset, not at byte 0 of the file', async () => {
    // PROTOCOL.md: the client may send WINDOW any time after OPEN. One read while the server
    // hashed the prefix started reads from where the DATA would start: 0, before 81d8dca set the
    // offset first. The END's D was over what was sent, so the reference client took for a
    // verified download a file holding byte 0 on where the server's held the rest.
    env = await startServer({ backend: 'disk' });
    const content = randomBytes(BLOCK + 100_000);
    await writeFile(join(env.root!, 'f.bin'), content);
    let reads = 0;
    let releaseReads!: () => void;
    const readsReleased = new Promise<void>((resolve) => {
      releaseReads = resolve;
    });
    const storage = env.storage;
    const openRead = storage.openRead.bind(storage);
    storage.openRead = async (path) => {
      const handle = await openRead(path);
      const read = handle.read.bind(handle);
      handle.read = async (...args) => {
        reads++;
        await readsReleased;
        return read(...args);
      };
      return handle;
    };
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'get', path: 'f.bin', offset: BLOCK }));
    await until(() => reads === 1, 'the prefix being read');
    peer.write(encodeWindow(1, content.length - BLOCK));
    await until(() => reads === 2, 'a read for the credit');
    releaseReads();
    await peer.waitFor((f) => f.streamId === 1 && (f.type === FrameType.END || f.type === FrameType.ERROR));
    const frames = peer.frames.filter((f) => f.streamId === 1);
    const received = Buffer.concat(frames.filter((f) => f.type === FrameType.DATA).map((f) => f.payload));
    expect(received.equals(content.subarray(BLOCK))).toBe(true);
    expect(frames[0]!.type).toBe(FrameType.REPLY);
    expect(frames.at(-1)!.type).toBe(FrameType.END);
  });
});
