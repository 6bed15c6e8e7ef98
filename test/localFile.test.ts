/**
 * LocalFile (client/sources.ts), the client's local file by its descriptor: once closed, no call
 * reaches the descriptor number, which the next file opened may hold. Real files.
 */
import { closeSync, openSync } from 'node:fs';
import { open as openPromise, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalFile, openSource } from '../client/sources.js';
import { makeFifo } from './helpers/fifo.js';
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

  it('closes only once a read still in the threadpool is over: that read cannot reach the file that took its number', async () => {
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'mine'), 'mine');
    await writeFile(join(dir, 'other'), 'OTHER');
    const file = await LocalFile.open(join(dir, 'mine'));
    // Every threadpool thread waits in the open of a pipe with no writer yet, so the read below
    // waits in libuv's queue while close() and the next open run.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const pipes = Array.from({ length: threads }, (_, i) => makeFifo(join(dir, `pipe${i}`)));
    // A fresh turn, so that close() runs on the loop at once (not after the turn budget).
    await new Promise((resolve) => setImmediate(resolve));
    const blockers = pipes.map((pipe) => openPromise(pipe, 'r'));
    const target = Buffer.alloc(5);
    const read = file.readAtInPool(target, 0, 5, 0);
    const closed = file.close();
    // The lowest free number: the one `file` had, had close() not waited for the read.
    const other = openSync(join(dir, 'other'), 'r');
    // O_RDWR on a pipe never waits, and lets the readers' opens return.
    const releases = pipes.map((pipe) => openSync(pipe, 'r+'));
    try {
      expect(await read).toBe(4);
      await closed;
    } finally {
      for (const blocker of await Promise.all(blockers)) await blocker.close();
      for (const fd of [...releases, other]) closeSync(fd);
    }
    expect(target.toString()).toBe('mine\0');
  });
});

describe('a put source at a local path', () => {
  it('fails a FIFO where a resumed put planned a regular file, from an offset a stream cannot have', async () => {
    const fifo = makeFifo(join(await tempDirs.make(), 'pipe'));
    await expect(openSource(fifo, 4 * 1024 * 1024)).rejects.toMatchObject({
      code: 'LOCAL_IO_ERROR',
      message: `not a regular file: ${fifo}`,
    });
  });

  it('fails a device there too (/dev/zero): read from its start, it would have been sent as from the offset', async () => {
    await expect(openSource('/dev/zero', 4 * 1024 * 1024)).rejects.toMatchObject({
      code: 'LOCAL_IO_ERROR',
      message: 'not a regular file: /dev/zero',
    });
  });
});
