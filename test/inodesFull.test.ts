/**
 * A new file or directory refused ENOSPC while bytes are free is a filesystem out of inodes, and
 * is said so: "no space left on device" beside a `df` showing room was a riddle (a helper's pass:
 * a tmpfs of 200 inodes). The disk calls are node's, but for the two that show what a full inode
 * table does: mkdir and a new file's open fail ENOSPC, and statfs says no inodes are free.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-inodes-');
afterEach(() => tempDirs.removeAll());

const enospc = (): never => {
  throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
};

async function storageWith(freeInodes: number, inodes = 4096): Promise<FsStorage> {
  const fs = diskFs(new InlineFileCalls());
  const full: FsPromises = {
    ...fs,
    mkdir: async () => enospc(),
    open: async (at, flags) => (flags === 'wx' ? enospc() : fs.open(at, flags)),
    statfs: async () => ({
      bsize: 4096,
      blocks: 16_384,
      bavail: 15_000,
      bfree: 15_000,
      ffree: freeInodes,
      files: inodes,
    }),
  };
  return new FsStorage({
    fs: full,
    root: await tempDirs.make(),
    durable: false,
    hostPaths: path,
    locateOpened: openedFileLocation,
  });
}

describe('a filesystem out of inodes', () => {
  it('fails mkdir, mkdir -p and a new upload NO_SPACE, saying inodes, not bytes, ran out', async () => {
    const storage = await storageWith(0);
    const inodes = {
      code: 'NO_SPACE',
      message: expect.stringContaining('no free inodes left on the server'),
    };
    await expect(storage.mkdir('d')).rejects.toMatchObject(inodes);
    await expect(storage.mkdir('a/b', { parents: true })).rejects.toMatchObject(inodes);
    await expect(storage.createUpload('f.txt')).rejects.toMatchObject(inodes);
    await storage.close();
  });

  it('with inodes free, or none counted (btrfs: 0 of 0), ENOSPC is the disk full, as before', async () => {
    const full = { code: 'NO_SPACE', message: 'no space left on device: d' };
    for (const storage of [await storageWith(100), await storageWith(0, 0)]) {
      await expect(storage.mkdir('d')).rejects.toMatchObject(full);
      await storage.close();
    }
  });
});
