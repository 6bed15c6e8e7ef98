/**
 * Hashing what an interrupted upload kept (storage/partialUpload.ts). It opens the kept file, which
 * must be closed again whether the hashing succeeds or fails, or every `partial` query of a put -c
 * costs the server a descriptor for good: real files on disk, counted in /proc/self/fd (Linux
 * only). And a Storage without the optional openPartial holds nothing, which is not an error.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../shared/integrity/blockHash.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import { openStorage } from '../storage/index.js';
import { hashPartial, heldPartial } from '../storage/partialUpload.js';
import type { Storage } from '../storage/types.js';
import { canCountDescriptors, openDescriptors } from './helpers/openDescriptors.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-partial-fds-');
const storages: Storage[] = [];
afterEach(async () => {
  await Promise.all(storages.splice(0).map((storage) => storage.close()));
  await tempDirs.removeAll();
});

const key = { size: 4 * INTEGRITY_BLOCK_BYTES, algorithm: 'xxh128' as const, source: 'v1' };

/** Disk storage holding one whole block (and a bit) kept for f.bin under `key`. */
async function storageKeepingOneBlock(): Promise<Storage> {
  const storage = await openStorage({ root: await tempDirs.make(), durable: false });
  storages.push(storage);
  const upload = await storage.createUpload('f.bin', { partial: key });
  await upload.write([Buffer.alloc(INTEGRITY_BLOCK_BYTES + 10, 7)]);
  expect(await upload.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
  return storage;
}

describe.skipIf(!canCountDescriptors)('hashing kept data closes the kept file', () => {
  it('after a partial query that found the kept block', async () => {
    const storage = await storageKeepingOneBlock();
    await heldPartial(storage, 'f.bin', key, 4); // what opens once for good (node's own, not the storage's)
    const before = openDescriptors();
    for (let i = 0; i < 5; i++) {
      expect((await heldPartial(storage, 'f.bin', key, 4)).offset).toBe(INTEGRITY_BLOCK_BYTES);
    }
    expect(openDescriptors()).toBe(before);
  });

  it('after hashing that fails because the kept data is shorter than asked', async () => {
    const storage = await storageKeepingOneBlock();
    await prepareBlockHashes();
    await heldPartial(storage, 'f.bin', key, 4);
    const before = openDescriptors();
    for (let i = 0; i < 5; i++) {
      const digester = new ContentDigester('xxh128');
      try {
        await expect(
          hashPartial(storage, 'f.bin', key, 2 * INTEGRITY_BLOCK_BYTES, digester),
        ).rejects.toMatchObject({ code: 'NOT_FOUND' });
      } finally {
        digester.release();
      }
    }
    expect(openDescriptors()).toBe(before);
  });
});

describe('a Storage without the optional openPartial', () => {
  it('holds nothing: a partial query finds no block, and hashing none of it is not an error', async () => {
    const storage = await storageKeepingOneBlock();
    // The same storage with openPartial (and partialInUse, of what it keeps) hidden, as a Storage
    // of one's own that keeps nothing.
    const keepingNothing = new Proxy(storage, {
      get: (target, name) =>
        name === 'openPartial' || name === 'partialInUse' ? undefined : Reflect.get(target, name),
    });
    expect(await heldPartial(keepingNothing, 'f.bin', key, 4)).toEqual({ offset: 0, blocks: [] });
    await prepareBlockHashes();
    const digester = new ContentDigester('xxh128');
    try {
      expect(await hashPartial(keepingNothing, 'f.bin', key, 0, digester)).toBe(0);
      await expect(hashPartial(keepingNothing, 'f.bin', key, 10, digester)).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
    } finally {
      digester.release();
    }
  });
});
