/**
 * put -c (issue #8): an interrupted resumable upload leaves its whole blocks on the server, hidden
 * and keyed by (path, size, algorithm, D); a later put -c of the same file sends only the rest; a
 * partial of another source or one changed on disk is never extended; retention removes it; a
 * restart keeps a young one. Real sockets, real files.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { localSourceIdentity } from '../client/localDigests.js';
import { MuxServer } from '../server/server.js';
import { DEFAULTS } from '../shared/defaults.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import {
  encodeData,
  encodeEnd,
  encodeJsonFrame,
  encodeOpen,
  encodeReply,
} from '../shared/protocol/encoder.js';
import { isPartialName, partialName } from '../shared/temporaryNames.js';
import { DiskStorage } from '../storage/disk.js';
import { FsStorage } from '../storage/fsStorage.js';
import { MemoryStorage } from '../storage/memory.js';
import { CLI_BIN, runCli, runCliQuietly } from './helpers/cliProcess.js';
import { type FrameProxy, startFrameProxy } from './helpers/frameProxy.js';
import { holdUploads } from './helpers/heldUploads.js';
import { RawPeer } from './helpers/rawPeer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BLOCK = INTEGRITY_BLOCK_BYTES;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-put-resume-');

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

async function localFile(content: Buffer): Promise<string> {
  const path = join(await tempDirs.make(), 'source.bin');
  await writeFile(path, content);
  return path;
}

/** Hidden names in the server's root directory. */
async function hiddenNames(root: string): Promise<string[]> {
  return (await readdir(root)).filter((name) => name.startsWith('.muxftp-'));
}

/**
 * Stream windows small and fixed, so that what a cut upload leaves on disk is known: the client
 * sends only on credit, and the server grants credit as bytes reach its write queue (at most half
 * a window ahead of the disk), so at a cut after N bytes sent the disk holds more than N − 1.5
 * windows and at most N plus a window. With the default windows (4 MiB, growing to 32 MiB while
 * the disk keeps up) a cut at 1.5 and later 2.5 blocks kept nothing in loaded CI runs.
 */
const smallWindows = { streamWindowBytes: 256 * 1024, streamWindowMaxBytes: 256 * 1024 };

/**
 * A resumable put of `source` to `path` whose connection is destroyed once `cutAfter` bytes were
 * sent; resolves to the size of the data the server kept beside `path` (after the server has
 * closed the stream). The server must use `smallWindows` for that size to be exact.
 */
async function interruptedPut(
  server: TestServer,
  source: string,
  cutAfter: number,
  path = 'big.bin',
): Promise<number> {
  const streamsBefore = server.server.stats().streams;
  const client = await server.connect();
  const upload = client.put(path, source, {
    resumable: true,
    onProgress: (done) => {
      if (done >= cutAfter) void client.destroy();
    },
  });
  await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
  await until(() => server.server.stats().streams === streamsBefore, 'the server to drop the upload');
  const dir = join(server.root!, dirname(path));
  const names = await hiddenNames(dir);
  if (names.length !== 1) return 0;
  // The abort truncates to whole blocks after the stream closed: wait for it.
  let size = -1;
  await until(async () => {
    size = (await stat(join(dir, names[0]!))).size;
    return size % BLOCK === 0;
  }, 'the partial to be cut to whole blocks');
  return size;
}

/**
 * A server started anew on `root` (the one before it closed), swept as `serve` does at start;
 * `during` runs against it with a client connected, and all of it is closed after.
 */
async function withServerRestarted(
  root: string,
  during: (restarted: { client: Client; server: MuxServer; storage: DiskStorage }) => Promise<void>,
): Promise<void> {
  const storage = await DiskStorage.open({ root, durable: false });
  expect(await storage.sweepTemporaryFiles({ partialRetentionMs: 60_000 })).toBe(0);
  const server = new MuxServer({ storage, host: '127.0.0.1', port: 0, log: () => {} });
  const { port } = await server.listen();
  const client = await Client.connect({ host: '127.0.0.1', port });
  try {
    await during({ client, server, storage });
  } finally {
    await client.destroy();
    await server.close(0);
    await storage.close();
  }
}

describe('put -c (library: resumable / continue)', () => {
  it('an interrupted upload keeps whole blocks, hidden; put -c sends only the rest and the file matches', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK + 12_345);
    const source = await localFile(content);
    const kept = await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2);
    expect(kept).toBe(2 * BLOCK);
    // Hidden: neither in a listing nor reachable by name.
    const client = await env.connect();
    expect(await client.list('')).toEqual([]);
    const before = env.server.stats().bytesIn;
    const restarts: string[] = [];
    const result = await client.put('big.bin', source, {
      continue: true,
      onRestart: (reason) => restarts.push(reason),
    });
    expect(restarts).toEqual([]);
    expect(result.entry.size).toBe(content.length);
    // Only the bytes after the kept blocks crossed the wire.
    expect(env.server.stats().bytesIn - before).toBe(content.length - kept);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
    // The partial became the file: nothing hidden is left.
    expect(await hiddenNames(env.root!)).toEqual([]);
    expect((await client.list('')).map((e) => e.name)).toEqual(['big.bin']);
  });

  it('an onContinue that throws fails that put -c alone, as LOCAL_IO_ERROR, and stores nothing', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const source = await localFile(randomBytes(2 * BLOCK + 10));
    expect(await interruptedPut(env, source, BLOCK + BLOCK / 2)).toBe(BLOCK);
    const client = await env.connect();
    const bug = new TypeError('bug in my callback');
    const error = await client
      .put('big.bin', source, {
        continue: true,
        onContinue: () => {
          throw bug;
        },
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'LOCAL_IO_ERROR',
      message: 'onContinue threw: bug in my callback',
      cause: bug,
    });
    expect(client.isOpen).toBe(true);
    expect(await client.list('')).toEqual([]);
  });

  it('a link made on the host where the kept blocks were is not followed: it goes, and puts of that name work', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK + 7);
    const source = await localFile(content);
    expect(await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2)).toBe(2 * BLOCK);
    const [kept] = await hiddenNames(env.root!);
    const outside = join(await tempDirs.make(), 'outside.txt');
    await writeFile(outside, "not the server's\n");
    await unlink(join(env.root!, kept!));
    await symlink(outside, join(env.root!, kept!));
    const client = await env.connect();
    // Every put of big.bin failed "path leads outside the root: big.bin" while the link stayed.
    const restarts: string[] = [];
    const result = await client.put('big.bin', source, {
      continue: true,
      onRestart: (reason) => restarts.push(reason),
    });
    expect(result.entry.size).toBe(content.length);
    // Nothing kept, as for a name never uploaded: sent whole, no restart to say.
    expect(restarts).toEqual([]);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
    expect(await readFile(outside, 'utf8')).toBe("not the server's\n");
    expect(await hiddenNames(env.root!)).toEqual([]);
  });

  it('a partial that is not whole blocks (a crash before the cut) is continued from its whole blocks', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK + 12_345);
    const source = await localFile(content);
    expect(await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2)).toBe(2 * BLOCK);
    // As a server killed before its abort cut the file would leave it: half a block more.
    const [name] = await hiddenNames(env.root!);
    await writeFile(join(env.root!, name!), content.subarray(2 * BLOCK, 2 * BLOCK + BLOCK / 2), {
      flag: 'a',
    });
    const client = await env.connect();
    const before = env.server.stats().bytesIn;
    const restarts: string[] = [];
    await client.put('big.bin', source, { continue: true, onRestart: (reason) => restarts.push(reason) });
    expect(restarts).toEqual([]);
    expect(env.server.stats().bytesIn - before).toBe(content.length - 2 * BLOCK);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
    expect(await hiddenNames(env.root!)).toEqual([]);
  });

  it('one file under one name in two directories: each upload keeps and finds its own partial', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK + 1000);
    const source = await localFile(content);
    const client = await env.connect();
    await client.mkdir('a');
    await client.mkdir('b');
    // a/big.bin, the same file (so the same partial key), is in flight throughout: held at the
    // storage boundary before its first write.
    const held = holdUploads(env.storage, 0, (path) => path === 'a/big.bin');
    const a = await env.connect();
    let aSettled = false;
    const aUpload = a.put('a/big.bin', source, { resumable: true }).finally(() => {
      aSettled = true;
    });
    aUpload.catch(() => {}); // awaited below; a failure before then must not go unhandled
    await held.holding;

    const kept = await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2, 'b/big.bin');
    expect(kept).toBe(2 * BLOCK);
    const before = env.server.stats().bytesIn;
    const restarts: string[] = [];
    const result = await client.put('b/big.bin', source, {
      continue: true,
      onRestart: (reason) => restarts.push(reason),
    });
    expect(restarts).toEqual([]);
    expect(env.server.stats().bytesIn - before).toBe(content.length - kept);
    expect(result.entry.size).toBe(content.length);
    expect(aSettled).toBe(false); // all of the above happened with a/big.bin's upload in flight

    held.release();
    expect((await aUpload).entry.size).toBe(content.length);
    for (const dir of ['a', 'b']) {
      expect(sha256(await readFile(join(env.root!, dir, 'big.bin')))).toBe(sha256(content));
      expect(await hiddenNames(join(env.root!, dir))).toEqual([]);
    }
  });

  it('a partial of another source file (another D) is never extended', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const first = randomBytes(3 * BLOCK);
    const kept = await interruptedPut(env, await localFile(first), 2 * BLOCK + BLOCK / 2);
    expect(kept).toBe(2 * BLOCK);
    // Same path, same size, same first blocks except the last byte: another D, so another key.
    const second = Buffer.from(first);
    second[second.length - 1] = second[second.length - 1]! ^ 0xff;
    const client = await env.connect();
    const before = env.server.stats().bytesIn;
    await client.put('big.bin', await localFile(second), { continue: true });
    expect(env.server.stats().bytesIn - before).toBe(second.length);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(second));
    // Nor kept: one kept upload per file, and the new one replaced it (else it held the disk
    // until its retention ran out, and a full disk refused the new version).
    expect(await hiddenNames(env.root!)).toEqual([]);
  });

  it("a new upload of a file drops what was kept of another version, after a restart too, and no other file's", async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const root = env.root!;
    expect(await interruptedPut(env, await localFile(randomBytes(3 * BLOCK)), 2 * BLOCK + BLOCK / 2)).toBe(
      2 * BLOCK,
    );
    await env.server.close(0);
    await env.storage.close();
    // A partial kept for another file beside it, by a server before this one.
    const others = partialName('other.bin', { size: 3 * BLOCK, algorithm: 'xxh128', source: 's' });
    await writeFile(join(root, others), Buffer.alloc(BLOCK));
    await withServerRestarted(root, async ({ client }) => {
      // Not resumable (put --retries 0): it keeps nothing itself, and drops the old version's all the same.
      await client.put('big.bin', randomBytes(BLOCK + 1));
      expect(await hiddenNames(root)).toEqual([others]);
    });
  });

  it('a partial changed on disk (one byte flipped) is detected: the client starts over and says so', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK);
    const source = await localFile(content);
    const kept = await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2);
    expect(kept).toBe(2 * BLOCK);
    const [name] = await hiddenNames(env.root!);
    const handle = await open(join(env.root!, name!), 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 100);
    byte[0] = byte[0]! ^ 0x01;
    await handle.write(byte, 0, 1, 100);
    await handle.close();

    const client = await env.connect();
    const before = env.server.stats().bytesIn;
    const restarts: string[] = [];
    await client.put('big.bin', source, { continue: true, onRestart: (reason) => restarts.push(reason) });
    expect(restarts).toHaveLength(1);
    expect(restarts[0]).toMatch(/block 0\b.*starting over/);
    expect(env.server.stats().bytesIn - before).toBe(content.length);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
  });

  it('a put with an offset the server does not hold fails that stream; the target is untouched', async () => {
    env = await startServer({ backend: 'disk' });
    const peer = await RawPeer.open(env.port);
    peer.write(
      encodeOpen(1, { op: 'put', path: 'big.bin', size: 2 * BLOCK, digest: 'ab'.repeat(16), offset: BLOCK }),
    );
    expect((await peer.streamError(1)).code).toBe('NOT_FOUND');
    peer.write(
      encodeOpen(3, { op: 'put', path: 'big.bin', size: 2 * BLOCK, digest: 'ab'.repeat(16), offset: 5 }),
    );
    expect((await peer.streamError(3)).code).toBe('BAD_REQUEST');
    peer.destroy();
    expect(await readdir(env.root!)).toEqual([]);
  });

  it("a resume under a key nothing is kept for is refused and changes nothing: another key's blocks stay", async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK);
    const source = await localFile(content);
    expect(await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2)).toBe(2 * BLOCK);
    const kept = await hiddenNames(env.root!);
    const peer = await RawPeer.open(env.port);
    // Another source of the same path and size, then the same size and another source: a key
    // nothing is kept for. A put from offset 0 under it would drop the kept blocks; these
    // start nothing.
    peer.write(
      encodeOpen(1, { op: 'put', path: 'big.bin', size: content.length, source: 'another', offset: BLOCK }),
    );
    peer.write(
      encodeOpen(3, { op: 'put', path: 'big.bin', size: content.length + 1, source: 'x', offset: BLOCK }),
    );
    for (const id of [1, 3])
      expect(await peer.streamError(id)).toMatchObject({
        code: 'NOT_FOUND',
        message:
          'nothing is kept of an upload of big.bin of this source and size to continue: put it from the start',
      });
    peer.destroy();
    expect(await hiddenNames(env.root!)).toEqual(kept);
    const client = await env.connect();
    const before = env.server.stats().bytesIn;
    await client.put('big.bin', source, { continue: true });
    expect(env.server.stats().bytesIn - before).toBe(content.length - 2 * BLOCK);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
  });

  it('a file stored whole drops what an attempt cut while it was under way kept of it', async () => {
    // A retry that started as the attempt before it was torn down: it found nothing kept, sent
    // it all, and what the old attempt then kept stayed hidden for the retention.
    env = await startServer({ backend: 'disk', ...smallWindows });
    const slow = await Client.connect({ host: '127.0.0.1', port: env.port, maxRate: 2 * 1024 * 1024 });
    const whole = randomBytes(2 * 1024 * 1024);
    const stored = slow.put('big.bin', whole);
    // Another source of it, resumable, cut once past two blocks while the first is under way.
    const cut = await env.connect();
    const upload = cut.put('big.bin', await localFile(randomBytes(3 * BLOCK)), {
      resumable: true,
      onProgress: (done) => {
        if (done >= 2 * BLOCK + BLOCK / 2) void cut.destroy();
      },
    });
    await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    const kept = async () => (await hiddenNames(env!.root!)).filter(isPartialName);
    await until(async () => (await kept()).length === 1, 'the cut upload to keep its blocks');
    await stored;
    await slow.close();
    await until(async () => (await hiddenNames(env!.root!)).length === 0, 'the kept blocks to go', {
      timeoutMs: 5_000,
    });
    expect((await readFile(join(env.root!, 'big.bin'))).equals(whole)).toBe(true);
  });

  it('retention: the server removes an expired partial on its timer', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows, partialRetentionMs: 300 });
    const kept = await interruptedPut(env, await localFile(randomBytes(3 * BLOCK)), 2 * BLOCK + BLOCK / 2);
    expect(kept).toBe(2 * BLOCK);
    await until(async () => (await hiddenNames(env!.root!)).length === 0, 'the partial to expire', {
      timeoutMs: 5_000,
    });
  });

  it('retention 0 keeps nothing', async () => {
    env = await startServer({ backend: 'disk', partialRetentionMs: 0 });
    const client = await env.connect();
    const upload = client.put('big.bin', await localFile(randomBytes(3 * BLOCK)), {
      resumable: true,
      onProgress: (done) => {
        if (done >= 2 * BLOCK + BLOCK / 2) void client.destroy();
      },
    });
    await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    await until(async () => (await hiddenNames(env!.root!)).length === 0, 'the temporary file to go');
    // Nothing to continue from: put -c sends everything.
    const again = await env.connect();
    const before = env.server.stats().bytesIn;
    await again.put('big.bin', await localFile(randomBytes(3 * BLOCK)), { continue: true });
    expect(env.server.stats().bytesIn - before).toBe(3 * BLOCK);
  });

  it('two put -c of one file at once: the one that finds the kept data taken (RESOURCE_BUSY) sends it all, as when told inUse', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK);
    const source = await localFile(content);
    expect(await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2)).toBe(2 * BLOCK);
    // Both ask what is kept before either continues it: the first's set-up waits until the
    // second's OPEN is in, so both asked before the first took the kept data over.
    let secondOpened!: () => void;
    const bothAsked = new Promise<void>((resolve) => {
      secondOpened = resolve;
    });
    let firstEntered!: () => void;
    const firstOpened = new Promise<void>((resolve) => {
      firstEntered = resolve;
    });
    const createUpload = env.storage.createUpload.bind(env.storage);
    let calls = 0;
    let firstSetUp: Promise<unknown> = Promise.resolve();
    env.storage.createUpload = async (path, options) => {
      if (++calls === 1) {
        firstEntered();
        await bothAsked;
        const setUp = createUpload(path, options);
        firstSetUp = setUp;
        return setUp;
      }
      secondOpened();
      await delay(0);
      await firstSetUp.catch(() => {});
      return createUpload(path, options);
    };
    const first = await env.connect();
    const second = await env.connect();
    const told: Array<[string, number]> = [];
    const restarts: string[] = [];
    const continuing = first.put('big.bin', source, {
      continue: true,
      onContinue: (from) => told.push(['first', from]),
    });
    await firstOpened;
    const refused = second.put('big.bin', source, {
      continue: true,
      onContinue: (from) => told.push(['second', from]),
      onRestart: (why) => restarts.push(why),
    });
    // Once NOT_FOUND "no partial upload to continue", which the CLI read as a missing directory;
    // then the server's RESOURCE_BUSY failed it (the CLI: exit 1), where one asking a moment later
    // is told inUse and sends it all: it starts over from 0 now, into a file of its own.
    const other = await refused;
    expect(other.continuedFrom).toBeUndefined();
    expect(restarts).toEqual([
      'what the server kept of big.bin is in use by another upload of it now (another put -c?): sending all of it',
    ]);
    await continuing;
    // Only the one the server let continue is told so (before: the refused one too, as soon as
    // the kept blocks matched, though the server then refused it).
    expect(told).toEqual([['first', 2 * BLOCK]]);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
  });

  it('a digest declared in OPEN is checked at the commit, with a retention and without (0)', async () => {
    for (const partialRetentionMs of [60_000, 0]) {
      env = await startServer({ backend: 'disk', partialRetentionMs });
      const peer = await RawPeer.open(env.port);
      const content = Buffer.from('the content');
      peer.write(
        Buffer.concat([
          encodeJsonFrame(FrameType.OPEN, 1, {
            op: 'put',
            path: 'declared.bin',
            size: content.length,
            digest: '00'.repeat(16),
          }),
        ]),
      );
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
      peer.write(
        Buffer.concat([
          encodeData(1, content),
          encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)),
        ]),
      );
      // Before, with retention 0 the upload was committed though its declared digest was not the content's.
      expect({ partialRetentionMs, ...(await peer.streamError(1)) }).toEqual({
        partialRetentionMs,
        code: 'INTEGRITY_ERROR',
        message:
          "upload of declared.bin failed verification: the digest declared in OPEN is not the content's",
      });
      expect(await readdir(env.root!)).toEqual([]);
      peer.destroy();
      await env.stop();
      env = undefined;
    }
  });

  it('a restarted server keeps a young partial (start-up sweep) and put -c continues it', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const root = env.root!;
    const content = randomBytes(3 * BLOCK + 7);
    const source = await localFile(content);
    const kept = await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2);
    expect(kept).toBe(2 * BLOCK);
    // Stop that server but keep its root; a new one sweeps the root as `serve` does at start.
    await env.server.close(0);
    await env.storage.close();
    await withServerRestarted(root, async ({ client, server, storage }) => {
      const before = server.stats().bytesIn;
      await client.put('big.bin', source, { continue: true });
      expect(server.stats().bytesIn - before).toBe(content.length - kept);
      expect(sha256(await readFile(join(root, 'big.bin')))).toBe(sha256(content));
      // An old partial does not survive a sweep.
      await writeFile(join(root, '.muxftp-partial-0123456789abcdef0123456789abcdef.part'), 'x');
      await delay(30);
      expect(await storage.sweepTemporaryFiles({ partialRetentionMs: 10 })).toBe(1);
    });
  });
});

describe('a retry after a connection that stalled (its packets go nowhere; not reset)', () => {
  let proxy: FrameProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /**
   * A disk server where a resumable put of 3 blocks and some stalled after 2.5 (its connection goes
   * through a proxy that, from then on, passes nothing of the client's) and has been silent for
   * longer than `stalledUploadTakeoverMs` (300 ms); `stalledPut` settles with its outcome.
   */
  async function stalledUpload() {
    env = await startServer({ backend: 'disk', ...smallWindows, stalledUploadTakeoverMs: 300 });
    const content = randomBytes(3 * BLOCK + 12_345);
    const source = await localFile(content);
    let stalled = false;
    proxy = await startFrameProxy(env.port, { fromClient: (frame) => (stalled ? undefined : frame) });
    const first = await env.connect({ port: proxy.port });
    let sent = 0;
    const stalledPut = first
      .put('big.bin', source, {
        resumable: true,
        onProgress: (done) => {
          sent = done;
          if (done >= 2 * BLOCK + BLOCK / 2) stalled = true;
        },
      })
      .catch((error: unknown) => error);
    await until(() => stalled, 'the first upload to send 2.5 blocks');
    await delay(600);
    expect(sent).toBeLessThan(content.length);
    return { env: env!, content, source, stalledPut };
  }

  it("takes over the stalled upload's data once it has moved none for a while: only the rest is sent again", async () => {
    const { env, content, source, stalledPut } = await stalledUpload();
    // The server holds the stalled upload's stream open: its client will not come back on it.
    expect(env.server.stats().streams).toBe(1);

    // The client's retry, on a new connection. Before: offered nothing (the stalled upload held
    // the data), it sent the whole file again, and the stalled one's blocks stayed a day.
    const second = await env.connect();
    const before = env.server.stats().bytesIn;
    const restarts: string[] = [];
    await second.put('big.bin', source, { continue: true, onRestart: (reason) => restarts.push(reason) });
    expect(restarts).toEqual([]);
    expect(env.server.stats().bytesIn - before).toBe(content.length - 2 * BLOCK);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
    expect(await hiddenNames(env.root!)).toEqual([]);
    expect(env.logs.join('\n')).toMatch(
      /big\.bin moved no data for \d+ s: a newer upload of it continues what it wrote/,
    );
    // The stalled client is told, should it ever hear.
    expect(await stalledPut).toMatchObject({ code: 'STREAM_TIMEOUT' });
  }, 30_000);

  it('two takers at once both find what the stalled upload wrote, however long keeping it takes', async () => {
    // The stalled upload's abort (what keeps its blocks) takes a while: a slow disk.
    const createUpload = FsStorage.prototype.createUpload;
    FsStorage.prototype.createUpload = async function (
      this: FsStorage,
      ...args: Parameters<typeof createUpload>
    ) {
      const handle = await createUpload.apply(this, args);
      const abort = handle.abort.bind(handle);
      handle.abort = async (options) => {
        await delay(1_000);
        return abort(options);
      };
      return handle;
    };
    try {
      const { env, source, stalledPut } = await stalledUpload();
      // Two retries asking what is kept, 100 ms apart (the client's own query, as put -c sends it).
      const local = await localSourceIdentity(source);
      const asked = async (delayMs: number): Promise<{ offset: number }> => {
        const client = await env.connect();
        await delay(delayMs);
        // biome-ignore lint/complexity/useLiteralKeys: the client's own query, not public API
        return client['request']({ op: 'partial', path: 'big.bin', algorithm: 'xxh128', ...local });
      };
      const [a, b] = await Promise.all([asked(0), asked(100)]);
      expect(a.offset).toBe(2 * BLOCK);
      // Before: the second found no holder (failed already) and nothing kept yet: offset 0.
      expect(b.offset).toBe(2 * BLOCK);
      await stalledPut;
    } finally {
      FsStorage.prototype.createUpload = createUpload;
    }
  }, 30_000);

  it("a retry asking while a cut upload's blocks are still being kept (a slow disk) finds them", async () => {
    // The abort (what keeps the cut upload's blocks) takes a while: a slow disk.
    const createUpload = FsStorage.prototype.createUpload;
    FsStorage.prototype.createUpload = async function (
      this: FsStorage,
      ...args: Parameters<typeof createUpload>
    ) {
      const handle = await createUpload.apply(this, args);
      const abort = handle.abort.bind(handle);
      handle.abort = async (options) => {
        await delay(1_000);
        return abort(options);
      };
      return handle;
    };
    try {
      env = await startServer({ backend: 'disk', ...smallWindows });
      const content = randomBytes(3 * BLOCK + 5);
      const source = await localFile(content);
      const first = await env.connect();
      const cut = first.put('big.bin', source, {
        resumable: true,
        onProgress: (done) => {
          if (done >= 2 * BLOCK + BLOCK / 2) void first.destroy();
        },
      });
      await expect(cut).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
      await until(() => env!.server.stats().streams === 0, 'the server to drop the upload');
      // The client's retry, at once. Before: offered nothing while the blocks were being kept,
      // it sent the whole file again, into a temporary file of its own (nothing kept of it).
      const second = await env.connect();
      const before = env.server.stats().bytesIn;
      await second.put('big.bin', source, { continue: true });
      expect(env.server.stats().bytesIn - before).toBe(content.length - 2 * BLOCK);
      expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
      expect(await hiddenNames(env.root!)).toEqual([]);
    } finally {
      FsStorage.prototype.createUpload = createUpload;
    }
  }, 30_000);

  it('leaves alone an upload whose connection the server stopped reading (its disk is slow): its client may be sending', async () => {
    const storage = new MemoryStorage();
    const held = holdUploads(storage, 0, (path) => path === 'big.bin');
    const mark = 256 * 1024;
    env = await startServer({
      storage,
      ...smallWindows,
      uploadBacklogHighWaterBytes: mark,
      stalledUploadTakeoverMs: 300,
    });
    const content = randomBytes(3 * BLOCK + 5);
    const source = await localFile(content);
    const first = await env.connect();
    const firstPut = first.put('big.bin', source, { resumable: true });
    await held.holding;
    const server = env.server;
    await until(
      () => server.connectionFigures().some((c) => c.uploadBacklogBytes > mark),
      "the first upload's connection to be held for the disk",
    );
    await delay(600);
    const second = await env.connect();
    const secondPut = second.put('big.bin', source, { continue: true }).catch((error: unknown) => error);
    await delay(300);
    // Before: the first was failed STREAM_TIMEOUT, as if its client were gone.
    expect(env.logs.join('\n')).not.toMatch(/moved no data/);
    held.release();
    await expect(firstPut).resolves.toMatchObject({ entry: { size: content.length } });
    await secondPut;
  }, 30_000);
});

describe('muxftp put -c', () => {
  it('continues an interrupted upload from the CLI and sends only the rest', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK + 99);
    const source = await localFile(content);
    const kept = await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2);
    expect(kept).toBe(2 * BLOCK);
    const before = env.server.stats().bytesIn;
    const outcome = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [CLI_BIN, 'put', '-c', source, 'big.bin', '--server', `127.0.0.1:${env!.port}`],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      // A hung command is killed, not left behind the test.
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
    expect(outcome).toEqual({ code: 0, stderr: '' });
    expect(env.server.stats().bytesIn - before).toBe(content.length - kept);
    // Its line gives the file's size and says it continued (before: the last attempt's bytes alone).
    expect(env.logs.join('\n')).toMatch(
      new RegExp(
        `received big\\.bin ${content.length} B, continued from ${kept} B: ${content.length - kept} B in `,
      ),
    );
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it('a put cut by Ctrl-C says to continue it with -c, as a get does; put -c then sends only the rest', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(8 * BLOCK);
    const source = await localFile(content);
    const server = env.server;
    const put = (...args: string[]) =>
      spawn(
        process.execPath,
        [CLI_BIN, 'put', ...args, source, 'big.bin', '--server', `127.0.0.1:${env!.port}`],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
    const child = put('--limit-rate', '4MiB');
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<unknown>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    // Cut once the server's hidden file of it holds two blocks (its byte counts come at the end).
    const written = async () => {
      const [hidden] = await hiddenNames(env!.root!);
      return hidden === undefined ? 0 : (await stat(join(env!.root!, hidden))).size;
    };
    await until(async () => (await written()) > 2 * BLOCK, 'two blocks written');
    child.kill('SIGINT');
    expect(await exited).toEqual({ code: 130, signal: null });
    // Before: "cancelled (CANCELLED)" and no word of what the server kept.
    expect(stderr).toBe(
      `muxftp: put ${source}: cancelled (CANCELLED); the server keeps the whole 4 MiB blocks it received for a while: run the same put with -c to continue it\n`,
    );
    const before = server.stats().bytesIn;
    const resumed = await runCli(
      ['put', '-c', '--json', source, 'big.bin', '--server', `127.0.0.1:${env.port}`],
      dirname(source),
    );
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    const sent = server.stats().bytesIn - before;
    expect(sent).toBeLessThanOrEqual(content.length - BLOCK);
    // The result says how much was there already (before: nothing said it continued at all).
    const [outcome] = JSON.parse(resumed.stdout) as Array<{ bytes: number; continuedFrom?: number }>;
    expect(outcome).toMatchObject({ bytes: content.length, continuedFrom: content.length - sent });
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it('put -r of a tree made as a new remote name, cut by Ctrl-C: its hint names the source as its contents, and that put -c continues it', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(8 * BLOCK);
    const local = await tempDirs.make();
    await mkdir(join(local, 'photos'));
    await writeFile(join(local, 'photos', 'big.bin'), content);
    const server = ['--server', `127.0.0.1:${env.port}`];
    const backup = join(env.root!, 'backup');
    // Cut once the server's hidden file of it holds two blocks.
    const written = async () => {
      const [hidden] = await hiddenNames(backup).catch(() => []);
      return hidden === undefined ? 0 : (await stat(join(backup, hidden))).size;
    };
    // backup is missing: the tree is made as backup (cp -r's rule), its file backup/big.bin.
    const interrupted = await runCli(
      ['put', '-r', '--limit-rate', '4MiB', 'photos', 'backup', ...server],
      local,
      {
        interruptWhen: until(async () => (await written()) > 2 * BLOCK, 'two blocks written'),
      },
    );
    expect(interrupted.code).toBe(130);
    // Before: "run the same put with -c", which, backup there now, sent the tree anew into backup/photos.
    expect(interrupted.stderr).toContain(
      'muxftp: put photos/big.bin: cancelled (CANCELLED); the server keeps the whole 4 MiB blocks it received for a while: run the same put with -c and photos/. in place of photos to continue it (backup is there now: photos would go inside it)\n',
    );

    // The put the hint gives continues it, into backup itself.
    const before = env.server.stats().bytesIn;
    const resumed = await runCli(['put', '-r', '-c', '--json', 'photos/.', 'backup', ...server], local);
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    const sent = env.server.stats().bytesIn - before;
    expect(sent).toBeLessThanOrEqual(content.length - BLOCK);
    const [outcome] = JSON.parse(resumed.stdout) as Array<{ remote: string; continuedFrom?: number }>;
    expect(outcome).toMatchObject({ remote: 'backup/big.bin', continuedFrom: content.length - sent });
    expect(await readdir(backup)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(backup, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it('says so when nothing is kept to continue (with another checksum, say), and sends it all', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(3 * BLOCK + 5);
    const source = await localFile(content);
    // Kept with xxh128 (the default); put -c --checksum sha256 cannot use it.
    expect(await interruptedPut(env, source, 2 * BLOCK + BLOCK / 2)).toBe(2 * BLOCK);
    const before = env.server.stats().bytesIn;
    const server = ['--server', `127.0.0.1:${env.port}`];
    const outcome = await runCliQuietly(
      ['put', '-c', '--checksum', 'sha256', source, 'big.bin', ...server],
      REPO,
    );
    expect(outcome.code).toBe(0);
    expect(outcome.stderr).toBe(
      `muxftp: put ${source}: nothing of it is kept on the server (with this checksum) to continue: sending all of it\n`,
    );
    expect(env.server.stats().bytesIn - before).toBe(content.length);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it('leaves a file already whole on the server (as get -c does), and sends one that differs', async () => {
    env = await startServer({ backend: 'disk' });
    const content = randomBytes(2 * BLOCK + 5);
    const source = await localFile(content);
    const server = ['--server', `127.0.0.1:${env.port}`];
    expect(await runCliQuietly(['put', source, 'big.bin', ...server], REPO)).toMatchObject({ code: 0 });
    const before = env.server.stats().bytesIn;
    // Before: "nothing of it is kept on the server … sending all of it", every byte again.
    expect(await runCliQuietly(['put', '-c', source, 'big.bin', ...server], REPO)).toEqual({
      code: 0,
      stderr: '',
    });
    expect(env.server.stats().bytesIn - before).toBeLessThan(4096);
    // Another file of the same size there: sent whole.
    const other = Buffer.from(content);
    other[BLOCK + 7] = other[BLOCK + 7]! ^ 0xff;
    await writeFile(source, other);
    expect((await runCliQuietly(['put', '-c', source, 'big.bin', ...server], REPO)).code).toBe(0);
    expect(env.server.stats().bytesIn - before).toBeGreaterThanOrEqual(other.length);
    expect(sha256(await readFile(join(env.root!, 'big.bin')))).toBe(sha256(other));
  }, 30_000);
});

describe('the cap on kept blocks offered (maxResumeBlocks: 2048, 8 GiB)', () => {
  it('a REPLY of 2048 sha256 block digests fits a control frame, as the cap is sized for', () => {
    expect(DEFAULTS.maxResumeBlocks).toBe(2048);
    const blocks = Array.from({ length: DEFAULTS.maxResumeBlocks }, () => 'f'.repeat(64));
    const reply = encodeReply(1, { offset: DEFAULTS.maxResumeBlocks * BLOCK, blocks });
    expect(reply.length - 12).toBeLessThanOrEqual(DEFAULTS.maxControlPayloadBytes);
  });

  it('past the cap, partial offers the first maxResumeBlocks blocks and put -c sends the rest again', async () => {
    env = await startServer({ backend: 'disk', ...smallWindows });
    const content = randomBytes(4 * BLOCK);
    const source = await localFile(content);
    const kept = await interruptedPut(env, source, 3 * BLOCK + BLOCK / 2);
    expect(kept).toBe(3 * BLOCK); // more blocks than the cap below
    const defaults = DEFAULTS as { maxResumeBlocks: number };
    // The cap is read when a query is answered: 1 here stands for 2048 (8 GiB of data to keep).
    defaults.maxResumeBlocks = 1;
    try {
      const client = await env.connect();
      const before = env.server.stats().bytesIn;
      const said: string[] = [];
      const result = await client.put('big.bin', source, {
        continue: true,
        onRestart: (why) => said.push(why),
        onNothingKept: () => said.push('nothing kept'),
      });
      expect(said).toEqual([]);
      // The first block was taken from what was kept; every byte after it was sent again.
      expect(env.server.stats().bytesIn - before).toBe(content.length - BLOCK);
      expect(result.entry.size).toBe(content.length);
      expect((await readFile(join(env.root!, 'big.bin'))).equals(content)).toBe(true);
      expect(await hiddenNames(env.root!)).toEqual([]);
    } finally {
      defaults.maxResumeBlocks = 2048;
    }
  });
});
