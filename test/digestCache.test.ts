/**
 * The digest cache against writers outside muxftp: a version (inode, size, mtime, ctime) can stay
 * the same across a write when the file system's clock is coarse, and a cached digest must never
 * outlive the bytes it describes (a stale one fails every later download of the file).
 */
import { Volume } from 'memfs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ContentDigester, contentDigest, type FileDigest } from '../shared/integrity/contentDigest.js';
import { DigestCache, RACY_WINDOW_MS } from '../storage/digestCache.js';
import { fileDigest } from '../storage/fileDigest.js';
import { FsStorage } from '../storage/fsStorage.js';
import { MemoryStorage, memfsApi } from '../storage/memory.js';

const xxh = (text: string) => contentDigest('xxh128', Buffer.from(text));

function digestOf(text: string): FileDigest {
  const digester = new ContentDigester('xxh128');
  digester.update(Buffer.from(text));
  const digest = digester.result();
  digester.release();
  return digest;
}

afterEach(() => {
  vi.useRealTimers();
});

/** Memory storage over a volume that `rewrite` changes as a writer outside muxftp would, right after an upload's rename onto /g.bin. */
function storageRewritingAfterRename(rewrite: (volume: Volume) => void): FsStorage {
  const volume = new Volume();
  const fs = memfsApi(volume);
  return new FsStorage({
    fs: {
      ...fs,
      rename: async (from, to) => {
        await fs.rename(from, to);
        if (to === '/g.bin') rewrite(volume);
      },
    },
    root: '/',
    durable: false,
  });
}

describe('the digest cache and a coarse file-system clock', () => {
  it('does not keep a digest read from a file that a same-tick write could still change unseen', async () => {
    // memfs stamps file times from Date: with Date frozen, every write lands in one clock tick.
    const start = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: start });
    const storage = new MemoryStorage();
    try {
      storage.volume.writeFileSync('/f.bin', 'AAAA');
      expect((await fileDigest(storage, 'f.bin', 'xxh128')).digest.digest).toEqual(xxh('AAAA'));
      // Rewritten in place, same size, same tick: inode, size, mtime and ctime all as before.
      storage.volume.writeFileSync('/f.bin', 'BBBB');
      expect((await fileDigest(storage, 'f.bin', 'xxh128')).digest.digest).toEqual(xxh('BBBB'));

      // Read once the clock has moved past the window, a digest is kept and served from then on.
      vi.setSystemTime(start + RACY_WINDOW_MS + 1000);
      expect((await fileDigest(storage, 'f.bin', 'xxh128')).digest.digest).toEqual(xxh('BBBB'));
      const reader = await storage.openRead('f.bin');
      expect(reader.knownDigest('xxh128')?.digest).toEqual(xxh('BBBB'));
      await reader.close();
    } finally {
      await storage.close();
    }
  });

  it('does not serve a digest for a file rewritten at its size with its mtime put back (ctime moved)', async () => {
    const start = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: start });
    const storage = new MemoryStorage();
    try {
      storage.volume.writeFileSync('/f.bin', 'AAAA');
      const before = storage.volume.statSync('/f.bin');
      vi.setSystemTime(start + RACY_WINDOW_MS + 1000);
      expect((await fileDigest(storage, 'f.bin', 'xxh128')).digest.digest).toEqual(xxh('AAAA'));
      // As `touch -r` or a sync tool keeping times would: same inode, size and mtime.
      vi.setSystemTime(start + 2 * (RACY_WINDOW_MS + 1000));
      storage.volume.writeFileSync('/f.bin', 'BBBB');
      storage.volume.utimesSync('/f.bin', before.atime, before.mtime);
      expect(storage.volume.statSync('/f.bin').mtimeMs).toBe(before.mtimeMs);
      vi.setSystemTime(start + 3 * (RACY_WINDOW_MS + 1000));
      expect((await fileDigest(storage, 'f.bin', 'xxh128')).digest.digest).toEqual(xxh('BBBB'));
    } finally {
      await storage.close();
    }
  });

  // A writer outside muxftp rewrites the file right after the commit's rename: to another size,
  // or to the same size with another mtime.
  it.each([
    ['changed', 'changed by someone else', () => {}],
    [
      'rewritten at its size',
      'BBBB',
      (volume: Volume) => volume.utimesSync('/g.bin', new Date(1_000_000), new Date(1_000_000)),
    ],
  ] as const)(
    'does not remember an upload digest for a file %s between its commit and the look after it',
    async (_, rewritten, retime) => {
      const storage = storageRewritingAfterRename((volume) => {
        volume.writeFileSync('/g.bin', rewritten);
        retime(volume);
      });
      try {
        const upload = await storage.createUpload('g.bin');
        await upload.write([Buffer.from('AAAA')]);
        await upload.commit(digestOf('AAAA'));
        const reader = await storage.openRead('g.bin');
        expect(reader.knownDigest('xxh128')).toBeUndefined();
        await reader.close();
        expect((await fileDigest(storage, 'g.bin', 'xxh128')).digest.digest).toEqual(xxh(rewritten));
      } finally {
        await storage.close();
      }
    },
  );
});

describe('leading block digests short of a whole digest', () => {
  const digest = (n: number) => Buffer.alloc(16, n);
  const file = (ino: number, ctimeMs = 0) => ({ dev: 1, ino, size: 100, mtimeMs: 0, ctimeMs });
  const observedAtMs = RACY_WINDOW_MS + 1000;

  it('are kept under the racy rule, grow, give way to a whole digest, and count against maxEntries', () => {
    const cache = new DigestCache(2, 3);
    cache.setLeadingBlocks(file(1, observedAtMs), 'xxh128', [digest(0)], observedAtMs);
    expect(cache.leadingBlocks(file(1, observedAtMs), 'xxh128')).toEqual([]); // racily clean: not kept

    cache.setLeadingBlocks(file(1), 'xxh128', [digest(0)], observedAtMs);
    cache.setLeadingBlocks(file(1), 'xxh128', [digest(0), digest(1), digest(2), digest(3)], observedAtMs);
    expect(cache.leadingBlocks(file(1), 'xxh128')).toEqual([digest(0), digest(1), digest(2)]); // at most 3
    cache.setLeadingBlocks(file(1), 'xxh128', [digest(9)], observedAtMs); // says less: ignored
    expect(cache.leadingBlocks(file(1), 'xxh128')).toHaveLength(3);
    expect(cache.leadingBlocks(file(1), 'sha256')).toEqual([]);
    expect(cache.leadingBlocks({ ...file(1), size: 101 }, 'xxh128')).toEqual([]); // another version

    const whole = digestOf('x'.repeat(100));
    cache.set(file(1), whole, observedAtMs);
    expect(cache.leadingBlocks(file(1), 'xxh128')).toBe(whole.blockDigests);

    cache.setLeadingBlocks(file(2), 'xxh128', [digest(2)], observedAtMs);
    cache.setLeadingBlocks(file(3), 'xxh128', [digest(3)], observedAtMs);
    expect(cache.get(file(1), 'xxh128')).toBeUndefined(); // the oldest version went
    expect(cache.leadingBlocks(file(2), 'xxh128')).toEqual([digest(2)]);
  });
});

describe('a version vouched for by an upload', () => {
  const file = { dev: 1, ino: 1, size: 100, mtimeMs: 0, ctimeMs: 5_000 };

  it('takes a digest of another algorithm read within the racy window, and has no leading blocks of it before', () => {
    const cache = new DigestCache();
    const xxh128 = digestOf('x'.repeat(100));
    cache.set(file, xxh128); // an upload's commit: storage wrote the bytes itself
    expect(cache.leadingBlocks(file, 'sha256')).toEqual([]);
    const digester = new ContentDigester('sha256');
    digester.update(Buffer.from('x'.repeat(100)));
    const sha256 = digester.result();
    cache.set(file, sha256, file.ctimeMs); // a download's, read right after the commit
    expect(cache.get(file, 'sha256')).toBe(sha256);
    expect(cache.get(file, 'xxh128')).toBe(xxh128);
  });
});

describe('eviction', () => {
  it('keeps versions holding exactly maxBytes together, or alone', () => {
    const file = (ino: number) => ({ dev: 1, ino, size: 1, mtimeMs: 0, ctimeMs: 0 });
    const measure = new DigestCache();
    measure.set(file(1), digestOf('a'));
    const one = measure.bytes;
    const alone = new DigestCache(100, 8, one);
    alone.set(file(1), digestOf('a'));
    expect(alone.size).toBe(1);
    const two = new DigestCache(100, 8, 2 * one);
    two.set(file(1), digestOf('a'));
    two.set(file(2), digestOf('b'));
    expect(two.size).toBe(2);
    expect(two.bytes).toBe(2 * one);
  });

  it('drops the version set least recently, counting a version set again as recent', () => {
    const file = (ino: number) => ({ dev: 1, ino, size: 1, mtimeMs: 0, ctimeMs: 0 });
    const cache = new DigestCache(2);
    const digest = digestOf('a');
    cache.set(file(1), digest);
    cache.set(file(2), digest);
    cache.set(file(1), digest); // again: now the most recent
    cache.set(file(3), digest);
    expect(cache.get(file(1), 'xxh128')).toBe(digest);
    expect(cache.get(file(2), 'xxh128')).toBeUndefined();
    expect(cache.get(file(3), 'xxh128')).toBe(digest);
  });

  it('counts a version whose digest was asked for as recent: one served again and again stays', () => {
    const file = (ino: number) => ({ dev: 1, ino, size: 1, mtimeMs: 0, ctimeMs: 0 });
    const cache = new DigestCache(2);
    const digest = digestOf('a');
    cache.set(file(1), digest);
    cache.set(file(2), digest);
    expect(cache.get(file(1), 'xxh128')).toBe(digest); // a download of it, served from here
    cache.set(file(3), digest);
    expect(cache.get(file(2), 'xxh128')).toBeUndefined();
    expect(cache.get(file(1), 'xxh128')).toBe(digest);
    expect(cache.get(file(3), 'xxh128')).toBe(digest);
  });
});

describe('recency', () => {
  it('a miss (another algorithm, another version) makes no version recent and remembers nothing', () => {
    const file = (ino: number, size = 1) => ({ dev: 1, ino, size, mtimeMs: 0, ctimeMs: 0 });
    const cache = new DigestCache(2);
    const digest = digestOf('a');
    cache.set(file(1), digest);
    cache.set(file(2), digest);
    expect(cache.get(file(1), 'sha256')).toBeUndefined(); // no sha256 digest of it
    expect(cache.get(file(1, 2), 'xxh128')).toBeUndefined(); // another version of it
    expect(cache.get(file(4), 'xxh128')).toBeUndefined(); // a file never seen
    expect(cache.size).toBe(2);
    cache.set(file(3), digest);
    expect(cache.get(file(1), 'xxh128')).toBeUndefined(); // still the oldest: it went
    expect(cache.get(file(2), 'xxh128')).toBe(digest);
    expect(cache.get(file(3), 'xxh128')).toBe(digest);
  });
});

describe('a file gone from its name', () => {
  it('is forgotten when removed, renamed over or replaced by an upload, not held until evicted', async () => {
    const storage = new MemoryStorage();
    try {
      const put = async (path: string, text: string) => {
        const upload = await storage.createUpload(path);
        await upload.write([Buffer.from(text)]);
        await upload.commit(digestOf(text));
      };
      await put('a.bin', 'AAAA');
      await put('b.bin', 'BBBB');
      expect(storage.rememberedDigestVersions).toBe(2);
      await put('a.bin', 'CCCC'); // replaces a.bin's first version
      expect(storage.rememberedDigestVersions).toBe(2);
      // A name of a file that has another (a hard link) goes; the file, and what is known of it, stays.
      storage.volume.linkSync('/b.bin', '/b-link.bin');
      await storage.remove('b-link.bin');
      expect(storage.rememberedDigestVersions).toBe(2);
      await storage.rename('b.bin', 'a.bin'); // b.bin's version goes on under the new name
      expect(storage.rememberedDigestVersions).toBe(1);
      await storage.remove('a.bin');
      expect(storage.rememberedDigestVersions).toBe(0);
    } finally {
      await storage.close();
    }
  });
});
