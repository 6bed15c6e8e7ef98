/**
 * A server that could not take its root's lock (a full disk) sweeps an upload's temporary file
 * only once it is old (SweepOptions.temporariesUntouchedForMs): it cannot tell another server's
 * upload in flight from a crash's leftover but by age. Real files; the age comes from a stat
 * that says the file is two hours old (ctime cannot be set back).
 */
import { readdir, writeFile } from 'node:fs/promises';
import path, { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import { FsStorage } from '../storage/fsStorage.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-lockless-sweep-');
afterEach(() => tempDirs.removeAll());

describe('sweep without the lock', () => {
  it('removes upload files untouched for the age given, and leaves younger ones', async () => {
    const root = await tempDirs.make();
    const old = `.muxftp-${'0a'.repeat(16)}.part`;
    const young = `.muxftp-${'0b'.repeat(16)}.part`;
    await writeFile(join(root, old), 'a crash left me');
    await writeFile(join(root, young), 'in flight');
    const fs = diskFs(new InlineFileCalls());
    const twoHoursAgo = Date.now() - 2 * 60 * 60_000;
    const storage = new FsStorage({
      fs: {
        ...fs,
        lstat: async (hostPath) => {
          const stats = await fs.lstat(hostPath);
          if (path.basename(hostPath) !== old) return stats;
          return Object.defineProperties(Object.create(stats), {
            mtimeMs: { value: twoHoursAgo },
            ctimeMs: { value: twoHoursAgo },
          });
        },
      },
      root,
      durable: false,
      hostPaths: path,
      locateOpened: openedFileLocation,
    });
    expect(
      await storage.sweepTemporaryFiles({ temporariesUntouchedForMs: DEFAULTS.locklessSweepAgeMs }),
    ).toBe(1);
    expect(await readdir(root)).toEqual([young]);
    // With the lock: any age.
    expect(await storage.sweepTemporaryFiles()).toBe(1);
    expect(await readdir(root)).toEqual([]);
    await storage.close();
  });
});
