/**
 * Modification times kept across a transfer (TransferOptions.keepTimes, the CLI's default): a put
 * gives the remote file its local source's time, a get gives the local file the server's, over
 * real sockets to a real server; without it, a file gets the time it was written. Then through
 * the real CLI: `put -r` and `get -r` keep files' and directories' times unless `--no-times`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { keepRemoteDirectoryTimes } from '../cli/directoryTimes.js';
import type { Client } from '../client/client.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;
const tempDirs = new TempDirs('muxftp-times-');
let server: TestServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** 2003-04-05 06:07:08.123 UTC, and a time before the epoch (node takes a negative number for "now"). */
const OLD_MS = Date.UTC(2003, 3, 5, 6, 7, 8, 123);
const OLDER_MS = Date.UTC(1965, 0, 2, 3, 4, 5, 0);

async function fileAt(dir: string, name: string, bytes: Buffer, mtimeMs: number): Promise<string> {
  const path = join(dir, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, bytes);
  await utimes(path, new Date(), new Date(mtimeMs));
  return path;
}

const mtimeOf = async (path: string): Promise<number> => (await stat(path)).mtimeMs;

describe.each(['disk', 'memory'] as const)('keeping modification times, %s storage', (backend) => {
  it('put with keepTimes gives the remote file the source time; without it, the time of writing', async () => {
    server = await startServer({ backend });
    const dir = await tempDirs.make();
    const small = await fileAt(dir, 'small.txt', Buffer.from('old words\n'), OLD_MS);
    // Over one block and resumable: declared with its source identity, the way put -c goes.
    const big = await fileAt(dir, 'big.bin', randomBytes(5 * MiB + 7), OLDER_MS);
    const client = await server.connect();

    const kept = await client.put('small.txt', small, { keepTimes: true });
    expect(kept.entry.mtime).toBe(OLD_MS);
    expect((await client.stat('small.txt')).mtime).toBe(OLD_MS);
    const resumable = await client.put('big.bin', big, { keepTimes: true, resumable: true });
    expect(resumable.entry.mtime).toBe(OLDER_MS);
    if (server.root !== undefined) expect(await mtimeOf(join(server.root, 'big.bin'))).toBe(OLDER_MS);

    // A whole millisecond set through node's API reads back a nanosecond short (this one as
    // ….671999000): the listing rounds it to the millisecond it is, not down to the one before.
    const whole = 1796371088672;
    const exact = await fileAt(dir, 'whole.txt', Buffer.from('w'), whole);
    expect((await client.put('whole.txt', exact, { keepTimes: true })).entry.mtime).toBe(whole);
    expect((await client.list('')).find((e) => e.name === 'whole.txt')!.mtime).toBe(whole);

    const before = Date.now();
    const fresh = await client.put('fresh.txt', small);
    expect(fresh.entry.mtime).toBeGreaterThanOrEqual(before - 1000);
  });

  it('get with keepTimes gives the local file the server time; without it, the time of writing', async () => {
    server = await startServer({ backend });
    const dir = await tempDirs.make();
    const client = await server.connect();
    await client.put('one.bin', await fileAt(dir, 'src/one.bin', randomBytes(100_000), OLD_MS), {
      keepTimes: true,
    });
    const big = randomBytes(5 * MiB + 1);
    await client.put('big.bin', await fileAt(dir, 'src/big.bin', big, OLDER_MS), { keepTimes: true });

    const result = await client.get('one.bin', join(dir, 'one.bin'), { keepTimes: true });
    expect(result.mtime).toBe(OLD_MS);
    expect(await mtimeOf(join(dir, 'one.bin'))).toBe(OLD_MS);
    await client.get('big.bin', join(dir, 'big.bin'), { keepTimes: true });
    expect(await mtimeOf(join(dir, 'big.bin'))).toBe(OLDER_MS);

    // A download continued from a partial local file (get -c) keeps it too.
    await writeFile(join(dir, 'partial.bin'), big.subarray(0, 4 * MiB + 5));
    await client.get('big.bin', join(dir, 'partial.bin'), { keepTimes: true, continue: true });
    expect(await mtimeOf(join(dir, 'partial.bin'))).toBe(OLDER_MS);

    const before = Date.now();
    const plain = await client.get('one.bin', join(dir, 'plain.bin'));
    expect(plain.mtime).toBe(OLD_MS);
    expect(await mtimeOf(join(dir, 'plain.bin'))).toBeGreaterThanOrEqual(before - 1000);
  });
});

describe.each(['disk', 'memory'] as const)('utime over a connection, %s storage', (backend) => {
  it('sets a remote file or directory time; a bad time is refused, the connection goes on', async () => {
    server = await startServer({ backend });
    const client = await server.connect();
    await client.mkdir('d');
    await client.put('d/f', Buffer.from('f'));
    expect(await client.setModifiedTime('d', OLD_MS)).toMatchObject({
      name: 'd',
      type: 'dir',
      mtime: OLD_MS,
    });
    expect(await client.setModifiedTime('d/f', OLDER_MS)).toMatchObject({ name: 'f', mtime: OLDER_MS });
    expect((await client.list('')).map((e) => e.mtime)).toEqual([OLD_MS]);
    await expect(client.setModifiedTime('d/f', Number.NaN)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(client.setModifiedTime('nothing', 0)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await client.stat('d/f')).mtime).toBe(OLDER_MS);
  });
});

describe('the CLI keeps modification times', () => {
  it('put -r: a directory whose time the server refuses (a link there) costs no other directory its time', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    const names = ['a-link', 'b', 'c'];
    for (const name of names) {
      await mkdir(join(dir, name));
      await utimes(join(dir, name), new Date(), new Date(OLD_MS));
    }
    await mkdir(join(server.root!, 'real'));
    await symlink('real', join(server.root!, 'a-link'));
    const client = await server.connect();
    for (const name of names.slice(1)) await client.mkdir(name);
    // One at a time, the refused one first: the others come after its refusal.
    const dirs = names.map((name) => ({ local: join(dir, name), remote: name }));
    await keepRemoteDirectoryTimes(client, dirs, new ConcurrencyLimit(1));
    for (const name of names.slice(1)) expect(await mtimeOf(join(server.root!, name))).toBe(OLD_MS);
  });

  it('put -r: the directories wait in line as at most -j calls, not one held per directory of a large tree', async () => {
    const dir = await tempDirs.make();
    const limit = new ConcurrencyLimit(4);
    let mostWaiting = 0;
    let set = 0;
    const client = {
      setModifiedTime: async () => {
        mostWaiting = Math.max(mostWaiting, limit.waitingCount);
        await new Promise((resolve) => setImmediate(resolve));
        set++;
      },
    } as unknown as Client;
    const dirs = Array.from({ length: 300 }, (_, i) => ({ local: dir, remote: `d${i}` }));
    await keepRemoteDirectoryTimes(client, dirs, limit);
    expect(set).toBe(300);
    // Before: 296 waiting, a call held for each directory.
    expect(mostWaiting).toBeLessThanOrEqual(4);
  });

  it('put -r and get -r keep each file and directory time; --no-times leaves the time of writing', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    await fileAt(dir, 'tree/a.txt', Buffer.from('a\n'), OLD_MS);
    await fileAt(dir, 'tree/sub/b.bin', randomBytes(70_000), OLDER_MS);
    // Directories too, once their files are in (each file created in one moves its time).
    const DIR_MS = Date.UTC(2010, 0, 1);
    await utimes(join(dir, 'tree/sub'), new Date(), new Date(DIR_MS));
    await utimes(join(dir, 'tree'), new Date(), new Date(DIR_MS + 1000));
    const cli = async (...args: string[]) => {
      const run = await runCli([...args, '-q', '--server', `127.0.0.1:${server!.port}`], dir, {
        timeoutMs: 30_000,
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
    };

    await cli('put', '-r', 'tree', 'kept');
    expect(await mtimeOf(join(server.root!, 'kept/a.txt'))).toBe(OLD_MS);
    expect(await mtimeOf(join(server.root!, 'kept/sub/b.bin'))).toBe(OLDER_MS);
    expect(await mtimeOf(join(server.root!, 'kept/sub'))).toBe(DIR_MS);
    expect(await mtimeOf(join(server.root!, 'kept'))).toBe(DIR_MS + 1000);
    await cli('get', '-r', 'kept', 'back');
    expect(await mtimeOf(join(dir, 'back/a.txt'))).toBe(OLD_MS);
    expect(await mtimeOf(join(dir, 'back/sub/b.bin'))).toBe(OLDER_MS);
    expect(await mtimeOf(join(dir, 'back/sub'))).toBe(DIR_MS);
    expect(await mtimeOf(join(dir, 'back'))).toBe(DIR_MS + 1000);

    const before = Date.now();
    await cli('put', '-r', '--no-times', 'tree', 'written');
    expect(await mtimeOf(join(server.root!, 'written/sub/b.bin'))).toBeGreaterThanOrEqual(before - 1000);
    expect(await mtimeOf(join(server.root!, 'written/sub'))).toBeGreaterThanOrEqual(before - 1000);
    await cli('get', '-r', '--no-times', 'kept', 'again');
    expect(await mtimeOf(join(dir, 'again/a.txt'))).toBeGreaterThanOrEqual(before - 1000);
    expect(await mtimeOf(join(dir, 'again/sub'))).toBeGreaterThanOrEqual(before - 1000);
  });
});
