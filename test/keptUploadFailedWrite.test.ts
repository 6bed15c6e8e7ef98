/**
 * An upload that continues kept blocks (put -c, a retry) and then fails writing (a disk someone
 * else filled): what it wrote is dropped, the blocks it continued from are kept as they were for
 * the next put -c. Before, the failed write dropped them too (found by a drill: 28 MiB kept on a
 * 64 MiB tmpfs, a put -c, a dd filling the disk: the kept file was gone). The full disk is made
 * by the storage's file handles here (no mount in tests); the rest is the real disk storage.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { TempDirs } from './helpers/tempDirs.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;
const tempDirs = new TempDirs('muxftp-kept-upload-');
afterEach(() => tempDirs.removeAll());

/** Disk storage whose file writes fail ENOSPC while `disk.full`. */
async function storageOn(disk: { full: boolean }): Promise<FsStorage> {
  const fs = diskFs(new InlineFileCalls());
  const enospc = () =>
    Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
  const filling: FsPromises = {
    ...fs,
    open: async (...args: Parameters<FsPromises['open']>) => {
      const handle = await fs.open(...args);
      return new Proxy(handle, {
        get(target, property) {
          if (disk.full && (property === 'write' || property === 'writev')) return enospc;
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
  };
  return new FsStorage({
    fs: filling,
    root: await tempDirs.make(),
    durable: false,
    hostPaths: path,
    locateOpened: openedFileLocation,
  });
}

describe('a continued upload whose write fails', () => {
  it('keeps the blocks it continued from as they were, and drops what it wrote', async () => {
    const disk = { full: false };
    const storage = await storageOn(disk);
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
});
