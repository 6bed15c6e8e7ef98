/**
 * `put --skip-identical` keeping times gives a remote copy found identical its source's time. If
 * another run replaces that file (same size, other bytes) between the comparison and the time,
 * the other run's file must keep its own time: given the skipped source's, it passed rsync's
 * quick check for that source, and every later `--skip-unchanged` run skipped a file whose bytes
 * are not the source's. Real CLI, real server on disk.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-skip-race-');
let server: TestServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

async function put(args: string[], cwd: string): Promise<void> {
  const run = await runCli(['put', ...args, '-q', '--server', `127.0.0.1:${server!.port}`], cwd, {
    timeoutMs: 30_000,
  });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
}

/**
 * Another run's put of `other` as f.bin, made on the server just before the first call of its
 * storage's `method` goes on (between this run's comparison and its setting of the time or bits);
 * the returned function says whether it came.
 */
async function anotherPutBefore(
  method: 'setModifiedTime' | 'setPermissions',
  other: Buffer,
): Promise<() => boolean> {
  const otherClient = await server!.connect();
  const storage = server!.storage as unknown as Record<
    typeof method,
    (...args: unknown[]) => Promise<unknown>
  >;
  const original = storage[method].bind(server!.storage);
  let raced = false;
  storage[method] = async (...args) => {
    if (!raced) {
      raced = true;
      await otherClient.put('f.bin', other);
    }
    return original(...args);
  };
  return () => raced;
}

/** A server (on disk) holding f.bin, put there from `dir`'s f.bin (`source`, 100,000 random bytes). */
async function copiedOnce(): Promise<{ dir: string; source: Buffer }> {
  server = await startServer({ backend: 'disk' });
  const dir = await tempDirs.make();
  const source = randomBytes(100_000);
  await writeFile(join(dir, 'f.bin'), source);
  await put(['f.bin', 'f.bin'], dir);
  return { dir, source };
}

describe('put --skip-identical while another run replaces the file', () => {
  it("gives the other run's file no time of the skipped source's", async () => {
    const { dir, source } = await copiedOnce();
    // The source's time changes (touched, same bytes): the skip would give the copy that time.
    const sourceTime = new Date('2020-01-02T03:04:05Z');
    await utimes(join(dir, 'f.bin'), sourceTime, sourceTime);

    // Another run stores other bytes of the same size just as the skip sets the time.
    const other = randomBytes(source.length);
    const raced = await anotherPutBefore('setModifiedTime', other);
    await put(['--skip-identical', 'f.bin', 'f.bin'], dir);
    expect(raced()).toBe(true);

    const served = join(server!.root!, 'f.bin');
    expect((await readFile(served)).equals(other)).toBe(true);
    expect((await stat(served)).mtimeMs).not.toBe(sourceTime.getTime());
    // So a quick check does not take it for the source's copy: it is sent.
    await put(['--skip-unchanged', 'f.bin', 'f.bin'], dir);
    expect((await readFile(served)).equals(source)).toBe(true);
  });
});

describe('put --skip-identical keeping bits while another run replaces the file', () => {
  it("gives the other run's file no bits of the skipped source's", async () => {
    const { dir, source } = await copiedOnce();
    // Only the source's bits change: the skip would give the copy those, and its time stays.
    await chmod(join(dir, 'f.bin'), 0o640);

    const other = randomBytes(source.length);
    const raced = await anotherPutBefore('setPermissions', other);
    await put(['--skip-identical', 'f.bin', 'f.bin'], dir);
    expect(raced()).toBe(true);

    const served = join(server!.root!, 'f.bin');
    expect((await readFile(served)).equals(other)).toBe(true);
    expect((await stat(served)).mode & 0o777).toBe(0o644);
  });
});

describe('put --skip-identical keeping time and bits', () => {
  it('gives an identical copy both, the bits once it has the new time', async () => {
    const { dir } = await copiedOnce();
    const sourceTime = new Date('2020-01-02T03:04:05Z');
    await utimes(join(dir, 'f.bin'), sourceTime, sourceTime);
    await chmod(join(dir, 'f.bin'), 0o640);

    await put(['--skip-identical', 'f.bin', 'f.bin'], dir);

    const served = await stat(join(server!.root!, 'f.bin'));
    expect(served.mtimeMs).toBe(sourceTime.getTime());
    expect(served.mode & 0o777).toBe(0o640);
  });

  it("gives the other run's file neither when it is put there just as the time is set", async () => {
    const { dir, source } = await copiedOnce();
    const sourceTime = new Date('2020-01-02T03:04:05Z');
    await utimes(join(dir, 'f.bin'), sourceTime, sourceTime);
    await chmod(join(dir, 'f.bin'), 0o640);

    const other = randomBytes(source.length);
    const raced = await anotherPutBefore('setModifiedTime', other);
    await put(['--skip-identical', 'f.bin', 'f.bin'], dir);
    expect(raced()).toBe(true);

    const served = join(server!.root!, 'f.bin');
    expect((await readFile(served)).equals(other)).toBe(true);
    expect((await stat(served)).mtimeMs).not.toBe(sourceTime.getTime());
    expect((await stat(served)).mode & 0o777).toBe(0o644);
  });
});

describe('utime ifUnchanged', () => {
  it('sets the time only on the file as the client saw it; a malformed one is BAD_REQUEST', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.put('g.bin', randomBytes(10));
    const seen = await client.stat('g.bin');
    const time = Date.UTC(2021, 0, 1);
    const stale = { size: seen.size + 1, mtime: seen.mtime };
    expect((await client.setModifiedTime('g.bin', time, { ifUnchanged: stale })).mtime).toBe(seen.mtime);
    expect((await client.stat('g.bin')).mtime).toBe(seen.mtime);
    const asSeen = { size: seen.size, mtime: seen.mtime };
    expect((await client.setModifiedTime('g.bin', time, { ifUnchanged: asSeen })).mtime).toBe(time);
    const malformed = { size: -1, mtime: 0 };
    await expect(client.setModifiedTime('g.bin', time, { ifUnchanged: malformed })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
  });
});
