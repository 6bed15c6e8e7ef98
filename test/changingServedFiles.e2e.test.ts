/**
 * A file in the server's root written behind its back (by another program) while a client
 * downloads it: the bytes sent are no version of the file, and a digest the server computes as it
 * reads would vouch for them, so the download fails IO_ERROR and the client keeps nothing. Real
 * server on 127.0.0.1 (disk), real files on both sides.
 */

import { randomBytes } from 'node:crypto';
import {
  appendFile,
  chmod,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { MuxftpError } from '../shared/errors.js';
import { RACY_WINDOW_MS } from '../storage/digestCache.js';
import type { MemoryStorage } from '../storage/memory.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-served-changing-');
const MiB = 1024 * 1024;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/**
 * Downloads `data.bin`, 8 MiB written into the root (on disk, or a memory volume) just now (so no digest of it is cached, unless
 * `cachedDigest`: then it is left alone until the server may cache its digest, which a `digest`
 * request makes it do), and calls `change` with its path once, when the first MiB has arrived.
 */
async function getChangingOnce(
  change: (served: string) => Promise<void>,
  { cachedDigest = false, backend = 'disk' as 'disk' | 'memory' } = {},
): Promise<{ result: unknown; local: string }> {
  // A test that calls this twice: the first server and its root go first (they were left behind).
  await server?.stop();
  // Credit at 8 MiB/s: the download lasts about a second, so the change lands mid-way.
  server = await startServer({ backend, maxRateBytesPerSecond: 8 * MiB });
  const served = backend === 'disk' ? join(server.root!, 'data.bin') : '/data.bin';
  if (backend === 'disk') {
    await writeFile(served, randomBytes(8 * MiB));
    // Written long ago, in whole seconds: a rewrite's time is another, and one put back is exact.
    await utimes(served, new Date(2020, 0, 1), new Date(2020, 0, 1));
  } else (server.storage as MemoryStorage).volume.writeFileSync(served, randomBytes(8 * MiB));
  const client = await server.connect();
  if (cachedDigest) {
    // A digest read from a file changed within RACY_WINDOW_MS is not remembered (digestCache.ts).
    await sleep(RACY_WINDOW_MS + 200);
    await client.digest('data.bin');
  }
  const local = await tempDirs.make();
  let changing: Promise<void> | undefined;
  const result = await client
    .get('data.bin', join(local, 'data.bin'), {
      onProgress: (received) => {
        if (received >= MiB && changing === undefined) changing = change(served);
      },
    })
    .catch((error: unknown) => error);
  await changing;
  expect(changing).toBeDefined();
  return { result, local };
}

describe('a served file changing while it is downloaded', () => {
  it('fails IO_ERROR naming the file when a part already sent is rewritten; nothing kept', async () => {
    const { result, local } = await getChangingOnce(async (served) => {
      const handle = await open(served, 'r+');
      await handle.write(Buffer.alloc(1000), 0, 1000, 100); // inside the first MiB, already sent
      await handle.close();
    });

    expect(result).toBeInstanceOf(MuxftpError);
    expect((result as MuxftpError).code).toBe('IO_ERROR');
    expect((result as MuxftpError).message).toBe('file changed while being read: data.bin');
    expect(await readdir(local)).toEqual([]);
  });

  it('fails when the file grows meanwhile, rather than pass off its first bytes as the file', async () => {
    const { result, local } = await getChangingOnce((served) => appendFile(served, 'one more line\n'));

    expect((result as MuxftpError).code).toBe('IO_ERROR');
    expect(await readdir(local)).toEqual([]);
  });

  it('fails IO_ERROR, not INTEGRITY_ERROR, when the server has its digest cached', async () => {
    // A cached digest is sent instead of hashing the bytes read: it is the version opened, which
    // the bytes sent no longer are, so the client's check would fail them, for the wrong reason.
    const { result, local } = await getChangingOnce(
      async (served) => {
        const handle = await open(served, 'r+');
        await handle.write(Buffer.alloc(1000), 0, 1000, 100);
        await handle.close();
      },
      { cachedDigest: true },
    );

    expect((result as MuxftpError).code).toBe('IO_ERROR');
    expect((result as MuxftpError).message).toBe('file changed while being read: data.bin');
    expect(await readdir(local)).toEqual([]);
  });

  it('an unchanged file with its digest cached downloads as before', async () => {
    const { result, local } = await getChangingOnce(async () => {}, { cachedDigest: true });

    expect(result).toMatchObject({ size: 8 * MiB });
    expect(await readdir(local)).toEqual(['data.bin']);
  });

  it("its time set by another client meanwhile (put --skip-identical's touch) is no change: it downloads", async () => {
    const { result, local } = await getChangingOnce(async () => {
      const other = await server!.connect();
      await other.setModifiedTime('data.bin', Date.UTC(2001, 0, 1));
      await other.close();
    });

    expect(result).toMatchObject({ size: 8 * MiB });
    expect(await readdir(local)).toEqual(['data.bin']);
  });

  it('a write before the time is set is still a change, though the size stays', async () => {
    const { result } = await getChangingOnce(async (served) => {
      const handle = await open(served, 'r+');
      await handle.write(Buffer.alloc(1000), 0, 1000, 100);
      await handle.close();
      const other = await server!.connect();
      await other.setModifiedTime('data.bin', Date.UTC(2001, 0, 1));
      await other.close();
    });

    expect((result as MuxftpError).code).toBe('IO_ERROR');
  });

  it('fails when written in place with its modification time put back (rsync --inplace -t, touch -r)', async () => {
    // Same size, same mtime: only ctime tells (huntDown-50's repro).
    const { result, local } = await getChangingOnce(async (served) => {
      const before = await stat(served);
      const handle = await open(served, 'r+');
      await handle.write(Buffer.alloc(1000), 0, 1000, 100); // already sent
      await handle.write(Buffer.alloc(1000), 0, 1000, 7 * MiB); // not yet
      await handle.close();
      await utimes(served, before.atime, before.mtime);
      expect((await stat(served)).mtimeMs).toBe(before.mtimeMs);
    });

    expect((result as MuxftpError).code).toBe('IO_ERROR');
    expect((result as MuxftpError).message).toBe('file changed while being read: data.bin');
    expect(await readdir(local)).toEqual([]);
  });

  it('fails when another program changes its bits meanwhile (a chmod moves ctime, as a write does)', async () => {
    const { result } = await getChangingOnce((served) => chmod(served, 0o600));

    expect((result as MuxftpError).code).toBe('IO_ERROR');
  });

  it('removed or replaced meanwhile (a put committed over it), the version opened still downloads', async () => {
    // Both move its ctime and no byte of it: its link count moved too.
    let opened: Buffer | undefined;
    const { result, local } = await getChangingOnce(async (served) => {
      opened = await readFile(served);
      await writeFile(`${served}.new`, randomBytes(8 * MiB));
      await rename(`${served}.new`, served);
    });
    expect(result).toMatchObject({ size: 8 * MiB });
    expect((await readFile(join(local, 'data.bin'))).equals(opened!)).toBe(true);

    const removed = await getChangingOnce((served) => unlink(served));
    expect(removed.result).toMatchObject({ size: 8 * MiB });
  });

  for (const backend of ['disk', 'memory'] as const) {
    it(`${backend}: muxftp's own utime, chmod and mv of it meanwhile (another client's) change no byte: it downloads`, async () => {
      const { result, local } = await getChangingOnce(
        async () => {
          const other = await server!.connect();
          await other.setModifiedTime('data.bin', Date.UTC(2001, 0, 1));
          await other.setPermissions('data.bin', 0o600);
          await other.rename('data.bin', 'moved.bin');
          await other.setPermissions('moved.bin', 0o644);
          await other.setModifiedTime('moved.bin', Date.UTC(2002, 0, 1));
          await other.close();
        },
        { backend },
      );

      expect(result).toMatchObject({ size: 8 * MiB });
      expect(await readdir(local)).toEqual(['data.bin']);
    });
  }

  it('an unchanged file downloads as before', async () => {
    const { result, local } = await getChangingOnce(async () => {});

    expect(result).toMatchObject({ size: 8 * MiB });
    expect(await readdir(local)).toEqual(['data.bin']);
  });
});
