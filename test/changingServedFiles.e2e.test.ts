/**
 * A file in the server's root written behind its back (by another program) while a client
 * downloads it: the bytes sent are no version of the file, and a digest the server computes as it
 * reads would vouch for them, so the download fails IO_ERROR and the client keeps nothing. Real
 * server on 127.0.0.1 (disk), real files on both sides.
 */

import { randomBytes } from 'node:crypto';
import { appendFile, open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { MuxftpError } from '../shared/errors.js';
import { RACY_WINDOW_MS } from '../storage/digestCache.js';
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
 * Downloads `data.bin`, 8 MiB written into the root just now (so no digest of it is cached, unless
 * `cachedDigest`: then it is left alone until the server may cache its digest, which a `digest`
 * request makes it do), and calls `change` with its path once, when the first MiB has arrived.
 */
async function getChangingOnce(
  change: (served: string) => Promise<void>,
  { cachedDigest = false } = {},
): Promise<{ result: unknown; local: string }> {
  // Credit at 8 MiB/s: the download lasts about a second, so the change lands mid-way.
  server = await startServer({ backend: 'disk', maxRateBytesPerSecond: 8 * MiB });
  const served = join(server.root!, 'data.bin');
  await writeFile(served, randomBytes(8 * MiB));
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

  it('an unchanged file downloads as before', async () => {
    const { result, local } = await getChangingOnce(async () => {});

    expect(result).toMatchObject({ size: 8 * MiB });
    expect(await readdir(local)).toEqual(['data.bin']);
  });
});
