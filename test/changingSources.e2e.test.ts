/**
 * A local file that changes while it is uploaded: what reached the server is then no version of
 * the file (the bytes read before the change beside those read after), so the upload fails
 * LOCAL_IO_ERROR, naming the file, and nothing is stored under its name, as `tar` says "file
 * changed as we read it". Real server on 127.0.0.1 (disk), real local files.
 */

import { randomBytes } from 'node:crypto';
import { appendFile, open, readdir, readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MuxftpError } from '../shared/errors.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-changing-');
const MiB = 1024 * 1024;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** Uploads `path` and calls `change` once, when the first MiB has been sent. */
async function putChangingOnce(path: string, change: () => Promise<void>): Promise<unknown> {
  // Credit at 8 MiB/s: the upload of 8 MiB lasts about a second, so the change lands mid-way.
  server = await startServer({ backend: 'disk', maxRateBytesPerSecond: 8 * MiB });
  const client = await server.connect();
  let changing: Promise<void> | undefined;
  const result = await client
    .put('target.bin', path, {
      onProgress: (sent) => {
        if (sent >= MiB && changing === undefined) changing = change();
      },
    })
    .catch((error: unknown) => error);
  await changing;
  expect(changing).toBeDefined();
  return result;
}

describe('a local file changing while it is uploaded', () => {
  it('fails with LOCAL_IO_ERROR naming the file when a part already sent is rewritten', async () => {
    const dir = await tempDirs.make();
    const path = join(dir, 'data.bin');
    await writeFile(path, randomBytes(8 * MiB));

    const result = await putChangingOnce(path, async () => {
      const handle = await open(path, 'r+');
      await handle.write(Buffer.alloc(1000), 0, 1000, 100); // inside the first MiB, already sent
      await handle.close();
    });

    expect(result).toBeInstanceOf(MuxftpError);
    expect((result as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((result as MuxftpError).message).toBe(`file changed while being uploaded: ${path}`);
    // Nothing under the name (a kept resumable prefix is hidden, and never listed).
    expect(await server!.storage.list('')).toEqual([]);
  });

  it('fails too when the rewrite puts the modification time back (touch -r): the change time tells', async () => {
    const dir = await tempDirs.make();
    const path = join(dir, 'data.bin');
    await writeFile(path, randomBytes(8 * MiB));
    // Whole seconds, so that putting it back restores it to the nanosecond.
    const time = 1_700_000_000;
    await utimes(path, time, time);

    const result = await putChangingOnce(path, async () => {
      const handle = await open(path, 'r+');
      await handle.write(Buffer.alloc(1000), 0, 1000, 100);
      await handle.close();
      await utimes(path, time, time);
      expect((await stat(path, { bigint: true })).mtimeNs).toBe(BigInt(time) * 1_000_000_000n);
    });

    // Before: size and mtime matched, and a file of neither version was stored, verified.
    expect((result as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((result as MuxftpError).message).toBe(`file changed while being uploaded: ${path}`);
    expect(await server!.storage.list('')).toEqual([]);
  });

  it('fails when the file grows meanwhile (a log being written), rather than store a prefix', async () => {
    const dir = await tempDirs.make();
    const path = join(dir, 'app.log');
    await writeFile(path, randomBytes(8 * MiB));

    const result = await putChangingOnce(path, () => appendFile(path, 'one more line\n'));

    expect((result as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((result as MuxftpError).message).toBe(`file changed while being uploaded: ${path}`);
    expect(await server!.storage.list('')).toEqual([]);
  });

  it('fails the same way when the file is cut short meanwhile (truncated), naming it', async () => {
    const dir = await tempDirs.make();
    const path = join(dir, 'data.bin');
    await writeFile(path, randomBytes(8 * MiB));

    const result = await putChangingOnce(path, () => truncate(path, 2 * MiB));

    // Before: `local file shrank while being uploaded (expected …, read …)`, without the file's
    // name and in other words than every other change.
    expect((result as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((result as MuxftpError).message).toBe(`file changed while being uploaded: ${path}`);
    expect(await server!.storage.list('')).toEqual([]);
  });

  it('an unchanged file uploads as before', async () => {
    const dir = await tempDirs.make();
    const path = join(dir, 'data.bin');
    await writeFile(path, randomBytes(8 * MiB));

    const result = await putChangingOnce(path, async () => {});

    expect(result).toMatchObject({ entry: { size: 8 * MiB } });
    expect((await readdir(server!.root!)).filter((name) => !name.startsWith('.'))).toEqual(['target.bin']);
  });
});

// Linux's /proc files say they are empty and read content made as they are read.
describe.runIf(process.platform === 'linux')('a file whose size says less than it reads', () => {
  it('a /proc file of size 0 is read to its end, not stored empty', async () => {
    const path = '/proc/self/mountinfo';
    expect((await stat(path)).size).toBe(0);
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    const result = await client.put('mountinfo', path);
    const stored = await readFile(join(server.root!, 'mountinfo'));
    expect(stored.length).toBeGreaterThan(0);
    expect(result).toMatchObject({ entry: { size: stored.length } });
    // An empty regular file is still stored as one, in one read.
    const empty = join(await tempDirs.make(), 'empty');
    await writeFile(empty, '');
    expect(await client.put('empty', empty)).toMatchObject({ entry: { size: 0 } });
  });
});
