/**
 * The file calls a committed upload makes on disk: a small upload's time on the server is its
 * calls (bench/README.md, thirty-sixth pass), so the commit asks nothing it does not use. The
 * refusals these calls exist for are tested in pinnedDirectories.test.ts and hostile.storage.test.ts.
 */
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import { openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import type { FsFileHandle, PathHandle } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-commit-calls-');
afterEach(() => tempDirs.removeAll());

describe.skipIf(process.platform !== 'linux')('a committed upload on disk', () => {
  it('asks where its file is once, at its open, and takes its version from the descriptor', async () => {
    const root = await realpath(await tempDirs.make());
    const located: string[] = [];
    const statted: string[] = [];
    const fs = diskFs(new InlineFileCalls());
    const storage = new FsStorage({
      fs: {
        ...fs,
        stat: (p) => {
          statted.push(p.toString());
          return fs.stat(p);
        },
      },
      root,
      durable: false,
      hostPaths: path,
      locateOpened: async (handle: FsFileHandle | PathHandle) => {
        const where = await openedFileLocation(handle);
        if (where !== undefined) located.push(where);
        return where;
      },
    });
    try {
      const content = Buffer.from('small file');
      const digester = new ContentDigester('xxh128');
      digester.update(content);
      const digest = digester.result();
      const upload = await storage.createUpload('f.txt');
      await upload.write([content]);
      await upload.commit(digest);
      expect(located).toHaveLength(1);
      expect(statted).not.toContain(path.join(root, 'f.txt'));
      // The digest is still remembered under the version readers see (the rename changed ctime).
      const read = await storage.openRead('f.txt');
      expect(read.knownDigest('xxh128')).toEqual(digest);
      await read.close();
    } finally {
      await storage.close();
    }
  });

  it('a commit whose onPlaced throws after the rename leaves the placed file where it is', async () => {
    // The file is still open at the rename: a failure after it must not remove it where it is now.
    const root = await realpath(await tempDirs.make());
    const storage = new FsStorage({
      fs: diskFs(new InlineFileCalls()),
      root,
      durable: false,
      hostPaths: path,
      locateOpened: openedFileLocation,
    });
    try {
      const upload = await storage.createUpload('f.txt');
      await upload.write([Buffer.from('committed bytes')]);
      const outcome = await upload
        .commit(undefined, {
          onPlaced: () => {
            throw new Error('listener failed');
          },
        })
        .catch((error: unknown) => error);
      expect(outcome).toBeInstanceOf(Error);
      expect(await readFile(path.join(root, 'f.txt'), 'utf8')).toBe('committed bytes');
    } finally {
      await storage.close();
    }
  });
});
