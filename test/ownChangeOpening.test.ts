/**
 * A download opening the file while muxftp's own mv (or chmod, or set time) of it is under way:
 * its open's stat taken before the change, the reader listed after #ownChange picked the readers
 * to tell. The change is muxftp's own, so the download goes on, as one opened earlier does.
 */
import * as fsPromises from 'node:fs/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { FsFileHandle, FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';

const roots: string[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
});

it('a get whose open was under way while muxftp renamed the file downloads', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'muxftp-ownopen-'));
  roots.push(root);
  await writeFile(path.join(root, 'f.bin'), Buffer.alloc(1000, 1));
  // The open's fstat of f.bin is taken, and its answer held until the rename is done.
  let statTaken!: () => void;
  const taken = new Promise<void>((resolve) => {
    statTaken = resolve;
  });
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let hold = true;
  const fs: FsPromises = {
    ...(fsPromises as unknown as FsPromises),
    async open(file: string, flags: string | number, mode?: number): Promise<FsFileHandle> {
      const handle = await fsPromises.open(file, flags, mode);
      const held = hold && file.endsWith('f.bin');
      return new Proxy(handle as unknown as FsFileHandle, {
        get(target, key) {
          if (key === 'stat' && held)
            return async () => {
              const stats = await handle.stat();
              if (hold) {
                hold = false;
                statTaken();
                await released;
              }
              return stats;
            };
          const value = Reflect.get(target, key);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
  };
  const storage = new FsStorage({ fs, root, durable: false, hostPaths: path });
  const opening = storage.openRead('f.bin');
  await taken;
  // A ctime tick later than the open's stat (coarse clocks tick every few ms).
  await new Promise((resolve) => setTimeout(resolve, 20));
  const renaming = storage.rename('f.bin', 'g.bin');
  // The rename made (the reader not listed yet): then the open goes on.
  for (
    let i = 0;
    i < 200 && (await fsPromises.stat(path.join(root, 'g.bin')).catch(() => undefined)) === undefined;
    i++
  )
    await new Promise((resolve) => setTimeout(resolve, 5));
  release();
  const reader = await opening;
  await renaming;
  try {
    expect(await reader.changedSinceOpen()).toBe(false);
  } finally {
    await reader.close();
  }
});
