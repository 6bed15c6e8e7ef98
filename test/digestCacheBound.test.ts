/**
 * The digests storage remembers of stored files stay within a memory bound, whatever the number
 * of files moved: with only a count's bound (100,000 versions, ~1 KiB each), one `put -r` of
 * 100,000 small files left a serving process 118 MB of heap after GC (10 MB before) for as long
 * as the files stayed.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { ContentDigester, type FileDigest } from '../shared/integrity/contentDigest.js';
import { DigestCache } from '../storage/digestCache.js';
import { DiskStorage } from '../storage/disk.js';
import { MemoryStorage } from '../storage/memory.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;

function digestOf(bytes: Buffer): FileDigest {
  const digester = new ContentDigester('xxh128');
  digester.update(bytes);
  const digest = digester.result();
  digester.release();
  return digest;
}

describe('the digest cache bound by memory', () => {
  it('holds at most DEFAULTS.digestCacheMaxBytes after 80,000 distinct files, the latest kept', () => {
    const cache = new DigestCache();
    const file = (ino: number) => ({ dev: 1, ino, size: 10, mtimeMs: 0, ctimeMs: 0 });
    const small = digestOf(Buffer.from('a small file'));
    const last = digestOf(Buffer.from('last'));
    for (let ino = 1; ino < 80_000; ino++) cache.set(file(ino), { ...small });
    cache.set(file(80_000), last);
    expect(cache.bytes).toBeLessThanOrEqual(DEFAULTS.digestCacheMaxBytes);
    expect(cache.size).toBeLessThan(80_000);
    expect(cache.size).toBeGreaterThan(40_000); // ~1.2 KiB each: 64 MiB is some 55,000
    expect(cache.get(file(80_000), 'xxh128')).toBe(last);
    expect(cache.get(file(1), 'xxh128')).toBeUndefined();
  });

  it('counts each change to a version exactly: set again, replaced by a new version, leading blocks, forgotten', () => {
    const cache = new DigestCache(100, 8, 1 << 20);
    const d = () => digestOf(Buffer.from('one block'));
    const v1 = { dev: 1, ino: 1, size: 1, mtimeMs: 0, ctimeMs: 0 };
    cache.set(v1, d());
    const one = cache.bytes;
    expect(one).toBeGreaterThan(0);
    cache.set(v1, d()); // set again: counted once
    expect(cache.bytes).toBe(one);
    cache.set({ ...v1, size: 2, ctimeMs: 1 }, d()); // a new version of the same file replaces it
    expect(cache.bytes).toBe(one);
    const v3 = { ...v1, ino: 3, size: 3 };
    cache.setLeadingBlocks(v3, 'xxh128', [Buffer.alloc(16), Buffer.alloc(16)], 1e15);
    expect(cache.bytes).toBeGreaterThan(2 * one); // leading blocks counted: two, above one's one
    cache.set(v3, d()); // a whole digest supersedes its leading blocks
    expect(cache.bytes).toBe(2 * one);
    cache.forget(v1);
    cache.forget(v3);
    expect(cache.bytes).toBe(0);
  });

  it('counts a version by its block digests: a file of many blocks takes the room of many small ones', () => {
    const cache = new DigestCache(100, DEFAULTS.maxResumeBlocks, 13_000);
    const small = (ino: number) => ({ dev: 1, ino, size: 10, mtimeMs: 0, ctimeMs: 0 });
    for (let ino = 1; ino <= 10; ino++) cache.set(small(ino), digestOf(Buffer.from(`file ${ino}`)));
    expect(cache.size).toBe(10);
    // 40 blocks (160 MiB of file): ~1 KiB and 40 × ~200 B, the room of seven small files.
    const blocks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(16, i));
    const big = { algorithm: 'xxh128' as const, digest: Buffer.alloc(16, 9), blockDigests: blocks };
    const bigFile = { dev: 1, ino: 99, size: 160 * MiB, mtimeMs: 0, ctimeMs: 0 };
    cache.set(bigFile, big);
    expect(cache.get(bigFile, 'xxh128')).toBe(big);
    expect(cache.bytes).toBeLessThanOrEqual(13_000);
    expect(cache.size).toBeLessThanOrEqual(7);
    for (let ino = 1; ino <= 4; ino++) expect(cache.get(small(ino), 'xxh128')).toBeUndefined();
    const kept = cache.size;
    // One alone past the bound is not kept, and takes nothing else with it.
    const huge = { ...big, blockDigests: Array.from({ length: 200 }, (_, i) => Buffer.alloc(16, i)) };
    cache.set({ ...bigFile, ino: 100 }, huge);
    expect(cache.get({ ...bigFile, ino: 100 }, 'xxh128')).toBeUndefined();
    expect(cache.size).toBe(kept);
    expect(cache.get(bigFile, 'xxh128')).toBe(big);
    // Forgetting a version gives back what it held.
    const before = cache.bytes;
    cache.forget(bigFile);
    expect(cache.bytes).toBeLessThan(before);
  });
});

describe('a server moving more files than the bound holds, over real sockets', () => {
  const dirs = new TempDirs('muxftp-digest-bound-');
  let env: TestServer | undefined;
  afterEach(async () => {
    await env?.stop();
    env = undefined;
    await dirs.removeAll();
  });

  const maxBytes = 12 * 1024; // some ten small files
  it.each([
    [
      'disk',
      async () =>
        await DiskStorage.open({ root: await dirs.make(), durable: false, digestCacheMaxBytes: maxBytes }),
    ],
    ['memory', async () => new MemoryStorage({ digestCacheMaxBytes: maxBytes })],
  ])(
    '%s: remembers digests within its bound after 60 uploads, and every file still downloads whole',
    async (_, open) => {
      const storage = await open();
      env = await startServer({ storage });
      const client = await env.connect();
      const contents = Array.from({ length: 60 }, (_, i) => Buffer.from(`file ${i} `.repeat(100)));
      for (const [i, bytes] of contents.entries()) await client.put(`f${i}.txt`, bytes);
      expect(storage.rememberedDigestVersions).toBeGreaterThan(0);
      expect(storage.rememberedDigestVersions).toBeLessThanOrEqual(11);
      expect(storage.rememberedDigestBytes).toBeLessThanOrEqual(maxBytes);
      for (const [i, bytes] of contents.entries()) {
        const chunks: Buffer[] = [];
        await client.get(
          `f${i}.txt`,
          new PassThrough().on('data', (c: Buffer) => chunks.push(c)),
        );
        expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      }
      expect(storage.rememberedDigestBytes).toBeLessThanOrEqual(maxBytes);
    },
  );
});
