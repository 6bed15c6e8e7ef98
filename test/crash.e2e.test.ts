/**
 * Crash safety and storage faults, injected for real: a `muxftp serve` child process SIGKILLed at
 * random moments during uploads and restarted on the same root; two clients uploading one path
 * at once while a third reads it; a download that outlives an overwrite; a full disk (a tiny
 * tmpfs, when this host lets the test mount one); permission denied and a path that is a
 * directory. Each asserts exact outcomes: contents by hash, listings, error codes.
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { MuxServer } from '../server/server.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { DiskStorage } from '../storage/disk.js';
import { FsStorage } from '../storage/fsStorage.js';
import type { Storage } from '../storage/types.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { lockedFs } from './helpers/lockedFs.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { canMountTmpfs } from './helpers/tmpfsMount.js';
import { delay } from './helpers/waits.js';

const MiB = 1024 * 1024;

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const xxh128Hex = (data: Uint8Array): string => contentDigest('xxh128', data).toString('hex');

const tempDirs = new TempDirs('muxftp-crash-');
const children = new Set<ChildProcess>();
let env: TestServer | undefined;

afterEach(async () => {
  await env?.stop();
  env = undefined;
  for (const child of children) child.kill('SIGKILL');
  await tempDirs.removeAll();
});

interface Serve {
  child: ChildProcess;
  port: number;
  exited: Promise<unknown>;
}

/** `muxftp serve` as a child process on `root`; resolves once it listens. */
async function startServe(root: string, extra: string[] = []): Promise<Serve> {
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0', '--root', root, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  void exited.then(() => children.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on [^ ]+:(\d+) \(/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    void exited.then(() => reject(new Error(`serve exited early: ${stderr}`)));
  });
  return { child, port, exited };
}

/** Every file under `root` (relative path → SHA-256), temporary files included. */
async function filesOnDisk(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(path.relative(root, full), sha256(await readFile(full)));
  }
  return files;
}

describe('a server killed with SIGKILL during uploads', () => {
  it('leaves each target with its previous complete version or the new one, never a mix; a confirmed upload is kept', async () => {
    const root = await tempDirs.make();
    const v0 = randomBytes(3 * MiB);
    await writeFile(join(root, 'target.bin'), v0);
    let current = sha256(v0);
    let killedMidUpload = 0;
    let killedAfterReply = 0;

    for (let round = 0; round < 6; round++) {
      const serve = await startServe(root, ['--fsync', 'never']);
      const client = await Client.connect({ host: '127.0.0.1', port: serve.port });
      const next = randomBytes(8 * MiB + round);
      const fresh = randomBytes(5 * MiB);
      let confirmed = false;
      const uploads = Promise.all([
        client.put('target.bin', next).then(() => {
          confirmed = true;
        }),
        client.put(`fresh-${round}.bin`, fresh),
      ]).catch(() => undefined);
      // Round 0 kills after the reply; the rest at a random moment, mostly mid-upload.
      if (round === 0) await uploads;
      else await delay(Math.floor(Math.random() * 60));
      serve.child.kill('SIGKILL');
      await serve.exited;
      await uploads;
      await client.destroy();
      if (confirmed) killedAfterReply++;
      else killedMidUpload++;

      // Restarted on the same root: leftovers of the killed run are swept, targets are whole.
      const again = await startServe(root, ['--fsync', 'never']);
      const files = await filesOnDisk(root);
      const target = files.get('target.bin');
      if (confirmed) expect(target).toBe(sha256(next));
      else expect([current, sha256(next)]).toContain(target);
      current = target!;
      const freshOnDisk = files.get(`fresh-${round}.bin`);
      if (freshOnDisk !== undefined) expect(freshOnDisk).toBe(sha256(fresh));
      // Nothing of a transfer's; the lock is the running server's (one server per root).
      expect([...files.keys()].filter((name) => name.includes('.muxftp-'))).toEqual([SERVED_ROOT_LOCK_NAME]);
      const reader = await Client.connect({ host: '127.0.0.1', port: again.port });
      expect(sha256(await reader.getBuffer('target.bin'))).toBe(current);
      expect((await reader.list('')).map((e) => e.name)).toEqual(
        [...files.keys()].filter((name) => name !== SERVED_ROOT_LOCK_NAME).sort(),
      );
      await reader.close();
      again.child.kill('SIGKILL');
      await again.exited;
    }
    expect(killedAfterReply).toBeGreaterThanOrEqual(1);
    expect(killedMidUpload).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('serve refuses an unknown --fsync mode as a usage error', async () => {
    const child = spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0', '--fsync', 'sometimes'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--fsync.*sometimes/s);
  });
});

describe('concurrent writers and readers of one path', () => {
  it('two clients uploading the same path: one complete version wins, a reader never sees a mix', async () => {
    env = await startServer({ backend: 'disk' });
    const v0 = randomBytes(2 * MiB);
    const a = randomBytes(6 * MiB);
    const b = randomBytes(6 * MiB);
    const [writerA, writerB, reader] = await Promise.all([env.connect(), env.connect(), env.connect()]);
    await writerA.put('same.bin', v0);
    const versions = new Set([sha256(v0), sha256(a), sha256(b)]);
    let writing = true;
    const writes = Promise.all([writerA.put('same.bin', a), writerB.put('same.bin', b)]).finally(() => {
      writing = false;
    });
    let reads = 0;
    while (writing || reads < 3) {
      expect(versions.has(sha256(await reader.getBuffer('same.bin')))).toBe(true);
      reads++;
    }
    const [putA, putB] = await writes;
    expect(putA.digest).toBe(xxh128Hex(a));
    expect(putB.digest).toBe(xxh128Hex(b));
    const final = sha256(await readFile(join(env.root!, 'same.bin')));
    expect([sha256(a), sha256(b)]).toContain(final);
    expect(await readdir(env.root!)).toEqual(['same.bin']);
  });

  it.each(['disk', 'memory'] as const)(
    'a download that started before an overwrite finishes with the version it started with (%s)',
    async (backend) => {
      env = await startServer({ backend });
      const before = randomBytes(8 * MiB);
      const after = randomBytes(8 * MiB);
      const writer = await env.connect();
      await writer.put('doc.bin', before);
      const reader = await env.connect({ streamWindowBytes: 64 * 1024 });
      const received: Buffer[] = [];
      let overwritten = false;
      // A slow sink, so the overwrite lands while the download is in flight.
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          received.push(chunk);
          setTimeout(callback, 2);
        },
      });
      let overwrite: Promise<unknown> | undefined;
      const download = reader.get('doc.bin', sink, {
        onProgress: () => {
          overwrite ??= writer.put('doc.bin', after).then(() => {
            overwritten = true;
          });
        },
      });
      await download;
      await overwrite;
      expect(overwritten).toBe(true);
      const got = Buffer.concat(received);
      expect(sha256(got)).toBe(sha256(before));
      expect(sha256(await writer.getBuffer('doc.bin'))).toBe(sha256(after));
    },
  );
});

describe('storage faults fail one stream; the connection and its other streams go on', () => {
  it('permission denied and a path that is a directory', async () => {
    const root = await tempDirs.make();
    await fsPromises.mkdir(join(root, 'locked'));
    await fsPromises.mkdir(join(root, 'dir'));
    await writeFile(join(root, 'locked', 'x.bin'), 'secret');
    const storage = new FsStorage({ fs: lockedFs(), root, hostPaths: path, durable: false });
    env = await startServer({ storage });
    const client = await env.connect();
    const big = randomBytes(6 * MiB);
    // A long transfer on the same connection runs through all the failures beside it.
    const bystander = client.put('ok.bin', big);
    await expect(client.getBuffer('locked/x.bin')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(client.put('locked/y.bin', Buffer.from('y'))).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
    });
    await expect(client.list('locked')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(client.put('dir', Buffer.from('z'))).rejects.toMatchObject({ code: 'IS_A_DIRECTORY' });
    await expect(client.getBuffer('dir')).rejects.toMatchObject({ code: 'IS_A_DIRECTORY' });
    expect((await bystander).digest).toBe(xxh128Hex(big));
    expect(sha256(await client.getBuffer('ok.bin'))).toBe(sha256(big));
    expect((await client.list('')).map((e) => e.name)).toEqual(['dir', 'locked', 'ok.bin']);
    expect(await readdir(join(root, 'dir'))).toEqual([]);
    expect(await readdir(join(root, 'locked'))).toEqual(['x.bin']);
    await storage.close();
  });

  describe('a full disk (a 4 MiB tmpfs)', () => {
    /** Mounting needs root with CAP_SYS_ADMIN; elsewhere (a container) the failing-backend test in robustness.e2e.test.ts covers NO_SPACE. */
    const canMount = canMountTmpfs;

    it.runIf(canMount)(
      'fails the upload that does not fit with NO_SPACE, keeps the old version, frees its space, serves the rest',
      async () => {
        // Not in tempDirs: it must be unmounted before it can be removed.
        const dir = await mkdtemp(join(tmpdir(), 'muxftp-enospc-'));
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'ignore' });
        const storage: Storage = await DiskStorage.open({ root: dir, durable: true });
        const server = new MuxServer({ storage, host: '127.0.0.1', port: 0, log: () => {} });
        const { port } = await server.listen();
        const client = await Client.connect({ host: '127.0.0.1', port });
        try {
          const old = randomBytes(1 * MiB);
          await client.put('big.bin', old);
          const small = randomBytes(100 * 1024);
          // A read runs beside the upload that fills the disk; the small upload follows it on the
          // same connection (run beside it, it would race the big one for the last free pages).
          const [tooBig, readBack] = await Promise.allSettled([
            client.put('big.bin', randomBytes(5 * MiB)),
            client.getBuffer('big.bin'),
          ]);
          expect(tooBig).toMatchObject({ status: 'rejected', reason: { code: 'NO_SPACE' } });
          const [smallPut] = await Promise.allSettled([client.put('small.bin', small)]);
          expect(smallPut.status).toBe('fulfilled');
          expect(readBack.status === 'fulfilled' && sha256(readBack.value)).toBe(sha256(old));
          // The failed upload's temporary file is gone and its space is free again.
          const files = await filesOnDisk(dir);
          expect(files).toEqual(
            new Map([
              ['big.bin', sha256(old)],
              ['small.bin', sha256(small)],
            ]),
          );
          const fits = randomBytes(2 * MiB);
          expect((await client.put('fits.bin', fits)).digest).toBe(xxh128Hex(fits));
        } finally {
          await client.destroy();
          await server.close(0);
          await storage.close();
          execFileSync('umount', ['-l', dir]);
          await rm(dir, { recursive: true, force: true });
        }
      },
    );
  });
});
