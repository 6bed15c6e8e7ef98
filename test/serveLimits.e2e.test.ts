/**
 * Limits and settings given to `muxftp serve` as flags reach the server it runs: the flags are
 * parsed by the CLI, so only a real `serve` child process shows them working (the library options
 * have their own tests). Needs dist/ (npm test builds it).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { localSourceIdentity } from '../client/localDigests.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, writeUsersFile } from '../server/auth/usersFile.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeCancel, encodeOpen } from '../shared/protocol/encoder.js';
import { isPartialName, SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { runCli, startServeChild } from './helpers/cliProcess.js';
import { type OwnedByTest, ownFor } from './helpers/ownedByTest.js';
import { RawPeer } from './helpers/rawPeer.js';
import { delay } from './helpers/waits.js';

const MiB = 1024 * 1024;

/** `muxftp serve` (in memory unless `flags` give a --root) on 127.0.0.1, port 0; resolves to its port. */
async function serve(own: OwnedByTest, flags: string[]): Promise<number> {
  const storage = flags.includes('--root') ? [] : ['--memory'];
  return (await startServeChild([...storage, ...flags], own.children)).port;
}

/** Bytes the server's hidden upload files in `root` hold on disk now. */
function hiddenBytesOnDisk(root: string): number {
  let bytes = 0;
  for (const name of readdirSync(root)) {
    if (!name.startsWith('.muxftp-')) continue;
    try {
      bytes += statSync(join(root, name)).size;
    } catch {
      // gone between the listing and the stat: holds nothing
    }
  }
  return bytes;
}

/**
 * A resumable put of `source` to the server on `port` serving `root`, whose connection is
 * destroyed once the server's file of it holds `bytes` on disk. Not once the client sent so many:
 * what was sent may still be in flight within the server's window (4 MiB, growing to 32 MiB while
 * the disk keeps up), and a cut after 2.5 blocks sent kept nothing on a slow disk. `source` must be
 * larger than `bytes` plus 1.5 of the largest window (52 MiB for a block) for the cut to come
 * before the end: the client sends only on credit, which the server grants at most half a window
 * ahead of its disk.
 */
async function putCutOnDisk(port: number, root: string, source: string, bytes: number): Promise<void> {
  const client = await Client.connect({ host: '127.0.0.1', port });
  let cut = false;
  const upload = client.put('big.bin', source, {
    resumable: true,
    onProgress: () => {
      if (!cut && hiddenBytesOnDisk(root) >= bytes) {
        cut = true;
        void client.destroy();
      }
    },
  });
  await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
}

// At once: most wait on a timeout, a sweep or a rate; each lets go of only its own (ownFor).
describe.concurrent('serve limit flags', () => {
  it('--max-open-files: a get or put beyond the cap fails with SERVER_BUSY; requests go on; a freed file lets the next in', async (test) => {
    const own = ownFor(test);
    const port = await serve(own, ['--max-open-files', '1']);
    const client = own.destroys(await Client.connect({ host: '127.0.0.1', port }));
    await client.put('f', Buffer.alloc(1000, 1));
    // A download that is never granted credit keeps the one file open.
    const holder = own.destroys(await RawPeer.open(port));
    holder.write(encodeOpen(1, { op: 'get', path: 'f' }));
    await holder.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);

    await expect(client.getBuffer('f')).rejects.toMatchObject({
      code: 'SERVER_BUSY',
      message: expect.stringMatching(/1 files are open/),
    });
    await expect(client.put('g', Buffer.from('x'))).rejects.toMatchObject({ code: 'SERVER_BUSY' });
    expect((await client.list('')).map((e) => e.name)).toEqual(['f']);

    holder.write(encodeCancel(1));
    // The server takes the CANCEL a moment later: until then, refusals only (bounded).
    for (let i = 0; ; i++) {
      const outcome = await client.getBuffer('f').catch((error: { code: string }) => error);
      if (Buffer.isBuffer(outcome)) {
        expect(outcome.equals(Buffer.alloc(1000, 1))).toBe(true);
        break;
      }
      expect(outcome.code).toBe('SERVER_BUSY');
      if (i === 250) throw new Error('the cancelled download never freed its file');
      await delay(20);
    }
  });

  it('--handshake-timeout: a connection that sends nothing is closed with IDLE_TIMEOUT after it, not the default 10 s', async (test) => {
    const own = ownFor(test);
    const port = await serve(own, ['--handshake-timeout', '1']);
    const silent = own.destroys(await RawPeer.connect(port));
    // 6 s: five times the flag's 1 s, for a loaded machine, and well short of the default 10 s.
    expect(await silent.connectionError(6_000)).toEqual({
      code: 'IDLE_TIMEOUT',
      message: 'no HELLO received in time',
    });
    await silent.closed;
  });

  it('--upload-initial-window: WELCOME announces it to a client that asks; the default shrinks to a smaller --stream-window; 0 announces none', async (test) => {
    const own = ownFor(test);
    const announced = async (flags: string[]) => {
      const peer = own.destroys(
        await RawPeer.open(await serve(own, flags), ['xxh128'], { uploadInitialWindow: true }),
      );
      const welcome = peer.frames.find((f) => f.type === FrameType.WELCOME)!;
      return JSON.parse(welcome.payload.toString()).limits.uploadInitialWindow;
    };
    expect(await announced(['--upload-initial-window', '64KiB'])).toBe(64 * 1024);
    expect(await announced(['--stream-window', '128KiB'])).toBe(128 * 1024);
    expect(await announced(['--upload-initial-window', '512KiB', '--stream-window', '512KiB'])).toBe(
      512 * 1024,
    );
    expect(await announced(['--upload-initial-window', '0'])).toBe(0);
  });

  it('--upload-initial-window larger than --stream-window is a usage error, not silently cut down', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const result = await runCli(
      [
        'serve',
        '--root',
        root,
        '--port',
        '0',
        '--upload-initial-window',
        '1MiB',
        '--stream-window',
        '512KiB',
      ],
      root,
      { children: own.children },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'muxftp: serve: --upload-initial-window (1.00 MiB) is larger than --stream-window (512 KiB): it is at most the stream window',
    );
  });

  it.for<[string[], string]>([
    [['--anonymous'], '--anonymous needs --users: without a users file everyone has full access already'],
    [
      ['--anonymous-write'],
      '--anonymous-write needs --users: without a users file everyone has full access already',
    ],
    [['--tls-only'], '--tls-only needs --tls-cert and --tls-key'],
    [['--tls-cert', 'cert.pem'], '--tls-cert and --tls-key go together'],
  ])(
    'serve %j is a usage error (exit 2), as other flags that do not go together are',
    async ([flags, reason], test) => {
      const own = ownFor(test);
      const root = await own.tempDir();
      const result = await runCli(['serve', '--root', root, '--port', '0', ...flags], root, {
        children: own.children,
      });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`muxftp: serve: ${reason}\n(see muxftp serve --help)\n`);
    },
  );

  it('--anonymous-home: anonymous logs in to that directory of the root', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const users = join(await own.tempDir(), 'users.json');
    await writeUsersFile(users, emptyUsersFile());
    await mkdir(join(root, 'public'));
    await writeFile(join(root, 'public', 'default-home.txt'), 'x');
    await mkdir(join(root, 'drop'));
    await writeFile(join(root, 'drop', 'chosen-home.txt'), 'y');
    const port = await serve(own, [
      '--root',
      root,
      '--users',
      users,
      '--anonymous',
      '--anonymous-home',
      'drop',
    ]);
    const anonymous = own.destroys(await Client.connect({ host: '127.0.0.1', port, user: 'anonymous' }));
    expect((await anonymous.list('')).map((e) => e.name)).toEqual(['chosen-home.txt']);
  });

  it('--partial-retention 0: an interrupted resumable upload keeps nothing', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const source = join(await own.tempDir(), 'source.bin');
    await writeFile(source, '');
    await truncate(source, 16 * INTEGRITY_BLOCK_BYTES); // sparse: only the part before the cut is sent
    const port = await serve(own, ['--root', root, '--fsync', 'never', '--partial-retention', '0']);
    // A whole block on the server's disk, and more: with a retention it would be kept.
    await putCutOnDisk(port, root, source, INTEGRITY_BLOCK_BYTES + INTEGRITY_BLOCK_BYTES / 2);
    // The server drops the upload's temporary file once it sees the connection go (up to 10 s).
    // Beside the running server's lock (one server per root).
    const hidden = async () =>
      (await readdir(root)).filter((name) => name.startsWith('.muxftp-') && name !== SERVED_ROOT_LOCK_NAME);
    for (let i = 0; i < 500 && (await hidden()).length > 0; i++) {
      await delay(20);
    }
    expect(await hidden()).toEqual([]);
    expect(await readdir(root)).toEqual([SERVED_ROOT_LOCK_NAME]);
  });

  // Alone: it must see the partial within its 2 s of retention, which a neighbour's load could take.
  it.sequential('--partial-retention 2s: a kept partial upload is offered until 2 s after it was kept, then the sweep removes it', async (test) => {
    const own = ownFor(test);
    const retentionMs = 2_000;
    const root = await own.tempDir();
    const source = join(await own.tempDir(), 'source.bin');
    await writeFile(source, '');
    await truncate(source, 16 * INTEGRITY_BLOCK_BYTES);
    // The documented form (90s, 30m, 24h, 7d): 2 s, so the server also sweeps every 2 s.
    const port = await serve(own, ['--root', root, '--fsync', 'never', '--partial-retention', '2s']);
    await putCutOnDisk(port, root, source, INTEGRITY_BLOCK_BYTES + INTEGRITY_BLOCK_BYTES / 2);

    // Kept once the server has seen the connection go and cut the file to whole blocks (up to
    // 10 s); until then the upload's own file is there, and the `partial` query put -c makes
    // reports nothing. Then it is offered: its whole blocks.
    const identity = await localSourceIdentity(source);
    const peer = own.destroys(await RawPeer.open(port));
    let nextId = 1;
    const held = async () => {
      const id = nextId;
      nextId += 2;
      peer.write(encodeOpen(id, { op: 'partial', path: 'big.bin', algorithm: 'xxh128', ...identity }));
      const reply = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === id);
      return JSON.parse(reply.payload.toString()) as { offset: number; blocks: string[] };
    };
    let young = await held();
    for (let i = 0; i < 500 && young.offset === 0; i++) {
      await delay(20);
      young = await held();
    }
    const offeredAt = Date.now();
    expect(young.offset).toBeGreaterThanOrEqual(INTEGRITY_BLOCK_BYTES);
    expect(young.blocks).toHaveLength(young.offset / INTEGRITY_BLOCK_BYTES);
    const kept = async () => (await readdir(root)).filter(isPartialName);
    const [name] = await kept();
    // Its mtime is when it was kept: the sweep measures the retention from it.
    const { size, mtimeMs: keptAt } = await stat(join(root, name!));
    expect(size).toBe(young.offset);
    expect(offeredAt).toBeLessThan(keptAt + retentionMs);

    // Present at every look before keptAt + 2 s; gone within a sweep period (2 s) after it, plus
    // 4 s for a loaded machine (the default 24 h would never come).
    const latest = keptAt + 2 * retentionMs + 4_000;
    let goneAt: number | undefined;
    while (goneAt === undefined && Date.now() < latest) {
      if (!(await kept()).includes(name!)) goneAt = Date.now();
      else await delay(20);
    }
    expect(goneAt, 'the expired partial was never swept').toBeDefined();
    expect(goneAt!).toBeGreaterThanOrEqual(keptAt + retentionMs);
    expect(await held()).toEqual({ offset: 0, blocks: [] });
  }, 30_000);

  it("--max-user-rate 1MiB: a user's two connections together are held to it (users file sets no maxRate)", async (test) => {
    const own = ownFor(test);
    const rate = MiB;
    const users = join(await own.tempDir(), 'users.json');
    const file = addUser(emptyUsersFile(), {
      name: 'carol',
      passwordHash: await hashPassword('carol-pw'),
      permissions: [...PERMISSIONS],
    });
    await writeUsersFile(users, file);
    const port = await serve(own, ['--users', users, '--max-user-rate', '1MiB']);
    const login = { host: '127.0.0.1', port, user: 'carol', password: 'carol-pw' };
    const first = own.destroys(await Client.connect(login));
    const second = own.destroys(await Client.connect(login));
    const payload = randomBytes(MiB);
    // 2 MiB in all through one 1 MiB/s budget: about 2 s. Held per connection instead, it would
    // take 1 s; not held, a few ms. Load only slows transfers: a slow try is made again (3 at most).
    const measured: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const started = performance.now();
      await Promise.all([first.put(`a${attempt}.bin`, payload), second.put(`b${attempt}.bin`, payload)]);
      const bytesPerSecond = (2 * payload.length) / ((performance.now() - started) / 1000);
      expect(bytesPerSecond, 'faster than the user rate').toBeLessThan(rate * 1.5);
      measured.push(bytesPerSecond);
      if (bytesPerSecond > rate * 0.6) break;
    }
    const rates = measured.map((r) => (r / MiB).toFixed(2)).join(', ');
    expect(measured.at(-1)!, `${rates} MiB/s: under 60% of 1 MiB/s each time`).toBeGreaterThan(rate * 0.6);
  }, 30_000);
});
