/**
 * An upload that continues kept blocks (put -c, a retry) and then fails writing (a disk someone
 * else filled): what it wrote is dropped, the blocks it continued from are kept as they were for
 * the next put -c. Before, the failed write dropped them too (found by a drill: 28 MiB kept on a
 * 64 MiB tmpfs, a put -c, a dd filling the disk: the kept file was gone). The full disk is made
 * by the storage's file handles here (no mount in tests); the rest is the real disk storage.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path, { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer } from './helpers/testServer.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;
const tempDirs = new TempDirs('muxftp-kept-upload-');
afterEach(() => tempDirs.removeAll());

/**
 * Disk storage whose file writes fail ENOSPC while `disk.full`; with `disk.partly`, a writev first
 * writes half a block of what it was given (the room there was), stops short, and the rest fails.
 */
async function storageOn(disk: {
  full: boolean;
  partly?: boolean;
}): Promise<{ storage: FsStorage; root: string }> {
  const fs = diskFs(new InlineFileCalls());
  const enospc = () =>
    Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
  const filling: FsPromises = {
    ...fs,
    open: async (...args: Parameters<FsPromises['open']>) => {
      const handle = await fs.open(...args);
      return new Proxy(handle, {
        get(target, property) {
          if (disk.full && disk.partly === true && property === 'writev')
            return async (buffers: Buffer[], position: number) => {
              const half = Buffer.concat(buffers).subarray(0, BLOCK / 2);
              await target.write(half, 0, half.length, position);
              return { bytesWritten: half.length, buffers };
            };
          if (disk.full && (property === 'write' || property === 'writev')) return enospc;
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
  };
  const root = await tempDirs.make();
  const storage = new FsStorage({
    fs: filling,
    root,
    durable: false,
    hostPaths: path,
    locateOpened: openedFileLocation,
  });
  return { storage, root };
}

describe('a continued upload whose write fails', () => {
  it('keeps the blocks it continued from as they were, and drops what it wrote', async () => {
    const disk = { full: false };
    const { storage } = await storageOn(disk);
    const content = randomBytes(3 * BLOCK);
    const key = { size: content.length, algorithm: 'xxh128' as const, source: 'version-1' };

    const first = await storage.createUpload('a.bin', { expectedSize: content.length, partial: key });
    await first.write([content.subarray(0, BLOCK)]);
    expect(await first.abort({ keepPartial: true })).toBe(BLOCK);

    disk.full = true;
    const resumed = await storage.createUpload('a.bin', {
      expectedSize: content.length,
      partial: key,
      resumeFrom: BLOCK,
    });
    await expect(resumed.write([content.subarray(BLOCK, 2 * BLOCK)])).rejects.toMatchObject({
      code: 'NO_SPACE',
    });
    expect(await resumed.abort({ keepPartial: true })).toBe(BLOCK);
    disk.full = false;

    const kept = await storage.openPartial!('a.bin', key);
    expect(kept?.size).toBe(BLOCK);
    await kept?.close();
    const again = await storage.createUpload('a.bin', {
      expectedSize: content.length,
      partial: key,
      resumeFrom: BLOCK,
    });
    await again.write([content.subarray(BLOCK)]);
    await again.commit();
    expect((await storage.stat('a.bin')).size).toBe(content.length);
    await storage.close();
  });

  it('keeps only the blocks it continued from when its failed write had overwritten part of a kept block after them', async () => {
    const disk = { full: false, partly: true };
    const { storage, root } = await storageOn(disk);
    const content = randomBytes(3 * BLOCK);
    const key = { size: content.length, algorithm: 'xxh128' as const, source: 'version-1' };

    const first = await storage.createUpload('a.bin', { expectedSize: content.length, partial: key });
    await first.write([content.subarray(0, 2 * BLOCK)]);
    expect(await first.abort({ keepPartial: true })).toBe(2 * BLOCK);

    // Resumed from the first block only: its write lands half a block over the kept second block
    // (other bytes), then the disk is full.
    disk.full = true;
    const resumed = await storage.createUpload('a.bin', {
      expectedSize: content.length,
      partial: key,
      resumeFrom: BLOCK,
    });
    await expect(resumed.write([randomBytes(BLOCK)])).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(await resumed.abort({ keepPartial: true })).toBe(BLOCK);
    disk.full = false;

    const kept = await storage.openPartial!('a.bin', key);
    expect(kept?.size).toBe(BLOCK);
    const again = await storage.createUpload('a.bin', {
      expectedSize: content.length,
      partial: key,
      resumeFrom: BLOCK,
    });
    await kept?.close();
    await again.write([content.subarray(BLOCK)]);
    await again.commit();
    expect((await readFile(path.join(root, 'a.bin'))).equals(content)).toBe(true);
    await storage.close();
  });

  it('put -c that continued kept blocks and then found the disk full says the server keeps them', async () => {
    const disk = { full: false };
    const { storage, root } = await storageOn(disk);
    const env = await startServer({ storage });
    try {
      const dir = await tempDirs.make();
      const source = join(dir, 'big.bin');
      const content = randomBytes(3 * BLOCK);
      await writeFile(source, content);
      const server = ['--server', `127.0.0.1:${env.port}`];
      // A first put -c (resumable with --retries 0), throttled, stopped with Ctrl-C once two
      // blocks are on the server's disk: it keeps them for the next put -c.
      const first = spawn(
        process.execPath,
        [CLI_BIN, ...server, 'put', '-c', source, 'big.bin', '--limit-rate', '4MiB', '--retries', '0', '-q'],
        { stdio: 'ignore' },
      );
      const firstExit = new Promise<number | null>((resolve) => first.once('close', resolve));
      const killer = setTimeout(() => first.kill('SIGKILL'), 20_000);
      try {
        const landed = async () => {
          for (const name of await readdir(root)) {
            const size = (await stat(join(root, name)).catch(() => undefined))?.size ?? 0;
            if (size > 2 * BLOCK) return true;
          }
          return false;
        };
        for (const end = Date.now() + 15_000; Date.now() < end && !(await landed()); )
          await new Promise((resolve) => setTimeout(resolve, 20));
        first.kill('SIGINT');
        expect(await firstExit).toBe(130);
      } finally {
        clearTimeout(killer);
        first.kill('SIGKILL');
        await firstExit;
      }

      disk.full = true;
      const full = await runCli([...server, 'put', '-c', source, 'big.bin', '--retries', '0'], dir);
      expect({ code: full.code, stderr: full.stderr }).toEqual({
        code: 1,
        stderr: expect.stringMatching(
          /NO_SPACE\); the server keeps the 8\.00 MiB this continued from: run the same put with -c once there is room\n$/,
        ),
      });

      disk.full = false;
      const again = await runCli([...server, 'put', '-c', source, 'big.bin', '--json'], dir);
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject([{ ok: true, continuedFrom: 2 * BLOCK }]);
      expect((await readFile(join(root, 'big.bin'))).equals(content)).toBe(true);
    } finally {
      await env.stop();
    }
  }, 60_000);
});
