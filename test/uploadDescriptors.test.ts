/**
 * An upload on disk closes its temporary file however it ends: committed, aborted, or aborted
 * keeping its whole blocks. Else every such upload costs the server a
 * descriptor for good. Real files on disk, counted in /proc/self/fd (Linux only).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { openStorage } from '../storage/index.js';
import type { Storage } from '../storage/types.js';
import { canCountDescriptors, openDescriptors } from './helpers/openDescriptors.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-upload-fds-');
const storages: Storage[] = [];
afterEach(async () => {
  await Promise.all(storages.splice(0).map((storage) => storage.close()));
  await tempDirs.removeAll();
});

const key = { size: 4 * INTEGRITY_BLOCK_BYTES, algorithm: 'xxh128' as const, source: 'v1' };

describe.skipIf(!canCountDescriptors)('an upload closes its temporary file', () => {
  it.each([
    ['committed', (upload) => upload.commit()],
    ['aborted', (upload) => upload.abort()],
    ['aborted keeping its whole blocks', (upload) => upload.abort({ keepPartial: true })],
  ] as const satisfies readonly [
    string,
    (upload: Awaited<ReturnType<Storage['createUpload']>>) => Promise<unknown>,
  ][])('once %s', async (_, end) => {
    const storage = await openStorage({ root: await tempDirs.make(), durable: false });
    storages.push(storage);
    const once = async (i: number) => {
      const upload = await storage.createUpload(`f${i}.bin`, { partial: key });
      await upload.write([Buffer.alloc(INTEGRITY_BLOCK_BYTES + 10, i)]);
      await end(upload);
    };
    await once(0); // what opens once for good (node's own: a thread's schedstat under /proc)
    const before = openDescriptors();
    for (let i = 1; i <= 5; i++) await once(i);
    expect(openDescriptors()).toBe(before);
  });
});
