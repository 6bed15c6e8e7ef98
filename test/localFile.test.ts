/**
 * LocalFile (client/sources.ts), the client's local file by its descriptor: once closed, no call
 * reaches the descriptor number, which the next file opened may hold. Real files.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalFile } from '../client/sources.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-local-file-');
afterEach(() => tempDirs.removeAll());

describe('a closed LocalFile', () => {
  it("reads and stats nothing more: not the closed descriptor, nor another file's that took its number", async () => {
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'a'), 'aaaa');
    await writeFile(join(dir, 'b'), 'bbbb');
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const a = await LocalFile.open(join(dir, 'a'));
      await a.close();
      // The lowest free number: most likely the one `a` had.
      const b = await LocalFile.open(join(dir, 'b'));
      const target = Buffer.alloc(4);
      await expect(a.readAt(target, 0, 4, 0)).rejects.toMatchObject({ code: 'EBADF' });
      await expect(a.stat()).rejects.toMatchObject({ code: 'EBADF', message: 'EBADF: file already closed' });
      expect(target.toString()).toBe('\0\0\0\0'); // it read b's bytes into it
      await b.close();
      // A stat of the closed number once b is closed too failed EBADF where no one awaited it.
      await expect(a.stat()).rejects.toMatchObject({ message: 'EBADF: file already closed' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
