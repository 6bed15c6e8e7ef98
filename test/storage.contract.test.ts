/**
 * One contract for every Storage backend (after undici's shared cache-store tests): the same
 * cases run on disk, on MemoryStorage, and on a memfs volume whose root is a subdirectory, which
 * is what lets the memory side test symlinks that lead outside the root.
 */

import { randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Volume } from 'memfs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { ERROR_STATUS, type ErrorCode, StorageError } from '../shared/errors.js';
import { processUmask } from '../shared/fileModes.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { ContentDigester, contentDigest, type FileDigest } from '../shared/integrity/contentDigest.js';
import { downloadInProgressName } from '../shared/temporaryNames.js';
import { RACY_WINDOW_MS } from '../storage/digestCache.js';
import { DiskStorage, openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import { fileDigest } from '../storage/fileDigest.js';
import type { FsFileHandle, FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { hashReadBuffers } from '../storage/hashReadBuffers.js';
import { openStorage } from '../storage/index.js';
import { MemoryStorage, memfsApi } from '../storage/memory.js';
import { hashKept } from '../storage/partialUpload.js';
import { TEMP_PREFIX } from '../storage/paths.js';
import type { CommittedEntry, Storage } from '../storage/types.js';

/** Host-level calls for what clients cannot do: symlinks, files outside the root, raw listings. */
interface HostFs {
  symlink(target: string, path: string): Promise<unknown>;
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  writeFile(path: string, data: string): Promise<unknown>;
  readdir(path: string): Promise<readonly unknown[]>;
  truncate(path: string, length: number): Promise<unknown>;
  stat(path: string): Promise<{ mtimeMs: number | bigint; ctimeMs: number | bigint; mode: number | bigint }>;
  chmod(path: string, mode: number): Promise<unknown>;
  utimes(path: string, atime: Date, mtime: Date): Promise<unknown>;
  unlink(path: string): Promise<unknown>;
  readlink(path: string): Promise<unknown>;
}

interface Fixture {
  storage: Storage;
  /** A second storage over the same files, as after a server restart. */
  reopen(): Promise<Storage>;
  host: HostFs;
  /** Host path of the root. */
  root: string;
  /** A host directory outside the root; undefined when the root is the whole filesystem. */
  outside: string | undefined;
  cleanup(): Promise<void>;
}

interface Backend {
  name: string;
  hasOutside: boolean;
  /**
   * False on memfs, whose rename follows a symlink given as the source and moves its target
   * (@jsonjoy.com/fs-core Superblock.rename resolves the old path). Clients cannot make links,
   * so this only matters for trees set up from the host.
   */
  renamesLinksThemselves: boolean;
  setup(): Promise<Fixture>;
}

/** Opens storages through `open` and closes every one of them in cleanup. */
async function fixture(
  open: () => Promise<Storage>,
  rest: Omit<Fixture, 'storage' | 'reopen' | 'cleanup'>,
  removeFiles: () => Promise<void> = async () => {},
): Promise<Fixture> {
  const opened: Storage[] = [];
  const reopen = async () => {
    const storage = await open();
    opened.push(storage);
    return storage;
  };
  return {
    ...rest,
    storage: await reopen(),
    reopen,
    cleanup: async () => {
      await Promise.all(opened.map((storage) => storage.close()));
      await removeFiles();
    },
  };
}

/** A temporary directory holding `root` (made by `open`) and `outside`, removed by the cleanup. */
async function diskFixture(open: (root: string) => Promise<Storage>): Promise<Fixture> {
  const dir = await nodeFs.mkdtemp(path.join(os.tmpdir(), 'muxftp-test-'));
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  await nodeFs.mkdir(outside);
  return fixture(
    () => open(root),
    { host: nodeFs, root, outside },
    () => nodeFs.rm(dir, { recursive: true, force: true }),
  );
}

const backends: Backend[] = [
  {
    name: 'disk',
    hasOutside: true,
    renamesLinksThemselves: true,
    setup: () => diskFixture((root) => DiskStorage.open({ root })),
  },
  {
    // DiskStorage's fs calls once a slow one sent them to the threadpool (storage/diskFs.ts).
    name: 'disk, every call through the threadpool',
    hasOutside: true,
    renamesLinksThemselves: true,
    setup() {
      let nowMs = 0;
      // Every call seems to take 10 s: after the first, all are handed off for the back-off (1e9 ms).
      const offloading = new InlineFileCalls({
        now: () => (nowMs += 10_000),
        slowCallsToOffload: 1,
        backoffMs: 1e9,
        maxBackoffMs: 1e9,
      });
      return diskFixture(async (root) => {
        await nodeFs.mkdir(root, { recursive: true });
        return new FsStorage({
          fs: diskFs(offloading),
          root,
          durable: true,
          hostPaths: path,
          locateOpened: openedFileLocation,
        });
      });
    },
  },
  {
    name: 'memory',
    hasOutside: false,
    renamesLinksThemselves: false,
    async setup() {
      const memory = new MemoryStorage();
      let first = true;
      const open = async (): Promise<Storage> => {
        if (!first) return new FsStorage({ fs: memory.volume.promises, root: '/', durable: false });
        first = false;
        return memory;
      };
      return fixture(open, { host: memory.volume.promises, root: '/', outside: undefined });
    },
  },
  {
    name: 'memfs with a subdirectory root',
    hasOutside: true,
    renamesLinksThemselves: false,
    async setup() {
      const volume = new Volume();
      await volume.promises.mkdir('/root');
      await volume.promises.mkdir('/elsewhere');
      const open = async () => new FsStorage({ fs: volume.promises, root: '/root', durable: false });
      return fixture(open, { host: volume.promises, root: '/root', outside: '/elsewhere' });
    },
  },
];

async function expectStorageError(promise: Promise<unknown>, code: ErrorCode): Promise<StorageError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(StorageError);
  const storageError = error as StorageError;
  expect(storageError.code).toBe(code);
  expect(storageError.status).toBe(ERROR_STATUS[code]);
  return storageError;
}

async function put(storage: Storage, path: string, ...chunks: (string | Buffer)[]): Promise<CommittedEntry> {
  const upload = await storage.createUpload(path);
  await upload.write(chunks.map((chunk) => Buffer.from(chunk)));
  return upload.commit();
}

async function readAll(storage: Storage, path: string): Promise<Buffer> {
  const handle = await storage.openRead(path);
  try {
    const pieces: Buffer[] = [];
    for (let position = 0; ; ) {
      const buffer = Buffer.alloc(64 * 1024);
      const bytesRead = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      pieces.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return Buffer.concat(pieces);
  } finally {
    await handle.close();
  }
}

async function names(storage: Storage, path: string): Promise<string[]> {
  return (await storage.list(path)).map((entry) => entry.name);
}

async function hostNames(fx: Fixture, ...parts: string[]): Promise<string[]> {
  return (await fx.host.readdir(path.posix.join(fx.root, ...parts))).map(String).sort();
}

describe.each(backends)('$name storage', (backend) => {
  let fx: Fixture;
  let storage: Storage;

  beforeEach(async () => {
    fx = await backend.setup();
    storage = fx.storage;
  });

  afterEach(async () => {
    await fx.cleanup();
  });

  function digestOf(algorithm: IntegrityAlgorithm, content: Buffer): FileDigest {
    const digester = new ContentDigester(algorithm);
    digester.update(content);
    return digester.result();
  }

  describe('uploads', () => {
    it('refuses writes and a commit once the upload is committed or aborted, and changes nothing', async () => {
      const committed = await storage.createUpload('c.bin');
      await committed.write([Buffer.from('data')]);
      await committed.commit();
      await expect(committed.write([Buffer.from('late')])).rejects.toThrow(/already finished/);
      await expect(committed.commit()).rejects.toThrow(/already finished/);
      expect((await readAll(storage, 'c.bin')).toString()).toBe('data');
      const aborted = await storage.createUpload('a.bin');
      await aborted.write([Buffer.from('data')]);
      await aborted.abort();
      await expect(aborted.write([Buffer.from('late')])).rejects.toThrow(/already finished/);
      await expect(aborted.commit()).rejects.toThrow(/already finished/);
      expect(await hostNames(fx)).toEqual(['c.bin']);
    });

    it('commits an upload that stat, list and openRead then agree on', async () => {
      const committed = await put(storage, 'hello.txt', 'hello, ', 'world');
      expect(committed).toMatchObject({ name: 'hello.txt', type: 'file', size: 12 });
      expect(committed.mtimeMs).toBeGreaterThan(0);
      expect(await storage.stat('hello.txt')).toEqual(committed);
      expect(await storage.list('')).toEqual([committed]);
      expect((await readAll(storage, 'hello.txt')).toString()).toBe('hello, world');
    });

    it('gives a committed file the modification time asked for, and remembers its digest under it', async () => {
      const content = Buffer.from('kept time');
      const digest = digestOf('xxh128', content);
      const mtimeMs = Date.UTC(2001, 2, 3, 4, 5, 6, 789);
      const upload = await storage.createUpload('old.txt');
      await upload.write([content]);
      const committed = await upload.commit(digest, { mtimeMs });
      expect(committed.mtimeMs).toBe(mtimeMs);
      expect((await storage.stat('old.txt')).mtimeMs).toBe(mtimeMs);
      const host = await fx.host.stat(path.posix.join(fx.root, 'old.txt'));
      expect(Number(host.mtimeMs)).toBe(mtimeMs);
      const handle = await storage.openRead('old.txt');
      expect(handle.knownDigest('xxh128')).toEqual(digest);
      await handle.close();
      // Without one, the time of writing.
      const before = Date.now();
      expect((await put(storage, 'new.txt', 'now')).mtimeMs).toBeGreaterThanOrEqual(before - 1000);
    });

    it('stores an empty file', async () => {
      const upload = await storage.createUpload('empty');
      await upload.write([]);
      await upload.write([Buffer.alloc(0)]);
      expect(await upload.commit()).toMatchObject({ name: 'empty', type: 'file', size: 0 });
      const handle = await storage.openRead('empty');
      expect(handle.size).toBe(0);
      expect(await handle.read(Buffer.alloc(10), 0, 10, 0)).toBe(0);
      await handle.close();
    });

    it('stores a multi-chunk file of a few MiB byte for byte', async () => {
      const content = randomBytes(3 * 1024 * 1024 + 17);
      const upload = await storage.createUpload('big.bin');
      const piece = 64 * 1024 + 3;
      for (let start = 0; start < content.length; start += 4 * piece) {
        const chunks = [0, 1, 2, 3]
          .map((i) => content.subarray(start + i * piece, Math.min(start + (i + 1) * piece, content.length)))
          .filter((chunk) => chunk.length > 0);
        await upload.write(chunks);
      }
      expect(await upload.commit()).toMatchObject({ size: content.length });
      const handle = await storage.openRead('big.bin');
      expect(handle.size).toBe(content.length);
      expect(handle.mtimeMs).toBe((await storage.stat('big.bin')).mtimeMs);
      await handle.close();
      expect((await readAll(storage, 'big.bin')).equals(content)).toBe(true);
    });

    it('keeps writes in call order even when the caller does not wait', async () => {
      const upload = await storage.createUpload('ordered.txt');
      const writes = ['a', 'b', 'c', 'd'].map((letter) => upload.write([Buffer.from(letter.repeat(1000))]));
      await Promise.all(writes);
      await upload.commit();
      const text = (await readAll(storage, 'ordered.txt')).toString();
      expect(text).toBe(['a', 'b', 'c', 'd'].map((letter) => letter.repeat(1000)).join(''));
    });

    it('reads at any position', async () => {
      await put(storage, 'digits', '0123456789');
      const handle = await storage.openRead('digits');
      const buffer = Buffer.alloc(8, '.');
      expect(await handle.read(buffer, 2, 4, 5)).toBe(4);
      expect(buffer.toString()).toBe('..5678..');
      expect(await handle.read(buffer, 0, 8, 10)).toBe(0);
      await handle.close();
      await handle.close();
      await expectStorageError(handle.read(buffer, 0, 1, 0), 'IO_ERROR');
    });

    it('leaves neither the file nor a temporary file behind after abort', async () => {
      await storage.mkdir('dir');
      const upload = await storage.createUpload('dir/gone.txt');
      await upload.write([Buffer.from('partial')]);
      await upload.abort();
      await expectStorageError(storage.stat('dir/gone.txt'), 'NOT_FOUND');
      expect(await storage.list('dir')).toEqual([]);
      expect(await hostNames(fx, 'dir')).toEqual([]);
    });

    it('treats abort as idempotent and finishes the handle', async () => {
      const upload = await storage.createUpload('x');
      await upload.abort();
      await upload.abort();
      await expectStorageError(upload.write([Buffer.from('late')]), 'IO_ERROR');
      await expectStorageError(upload.commit(), 'IO_ERROR');
      await expectStorageError(storage.stat('x'), 'NOT_FOUND');
    });

    it('rejects a second commit and ignores abort after commit', async () => {
      const upload = await storage.createUpload('once');
      await upload.write([Buffer.from('1')]);
      await upload.commit();
      await expectStorageError(upload.commit(), 'IO_ERROR');
      await upload.abort();
      expect((await readAll(storage, 'once')).toString()).toBe('1');
    });

    it('keeps the previous version whole when a new upload is aborted', async () => {
      await put(storage, 'doc.txt', 'version one');
      const upload = await storage.createUpload('doc.txt');
      await upload.write([Buffer.from('version two, longer than the first')]);
      await upload.abort();
      expect((await readAll(storage, 'doc.txt')).toString()).toBe('version one');
      expect(await hostNames(fx)).toEqual(['doc.txt']);
    });

    it('replaces the previous version only at commit, in one step', async () => {
      await put(storage, 'doc.txt', 'old');
      const oldReader = await storage.openRead('doc.txt');
      const upload = await storage.createUpload('doc.txt');
      await upload.write([Buffer.from('new content')]);
      expect((await readAll(storage, 'doc.txt')).toString()).toBe('old');
      expect(await storage.list('')).toMatchObject([{ name: 'doc.txt', size: 3 }]);
      expect(await upload.commit()).toMatchObject({ name: 'doc.txt', size: 11 });
      expect((await readAll(storage, 'doc.txt')).toString()).toBe('new content');
      // A reader that opened the old version keeps reading it whole.
      const buffer = Buffer.alloc(3);
      expect(await oldReader.read(buffer, 0, 3, 0)).toBe(3);
      expect(buffer.toString()).toBe('old');
      await oldReader.close();
    });

    it('never shows temporary files in a listing, though they exist on the host', async () => {
      await put(storage, 'kept', 'k');
      const upload = await storage.createUpload('pending');
      await upload.write([Buffer.from('p')]);
      expect(await names(storage, '')).toEqual(['kept']);
      const onHost = await hostNames(fx);
      expect(onHost).toHaveLength(2);
      expect(onHost.filter((name) => name.startsWith(TEMP_PREFIX))).toHaveLength(1);
      await upload.commit();
      expect(await names(storage, '')).toEqual(['kept', 'pending']);
      expect(await hostNames(fx)).toEqual(['kept', 'pending']);
    });

    it('lets the last of two uploads to one target win', async () => {
      const first = await storage.createUpload('race');
      const second = await storage.createUpload('race');
      await first.write([Buffer.from('first')]);
      await second.write([Buffer.from('second')]);
      await first.commit();
      await second.commit();
      expect((await readAll(storage, 'race')).toString()).toBe('second');
      expect(await hostNames(fx)).toEqual(['race']);
    });

    it('reports what each change replaced or removed, one change at a time per name (for quotas)', async () => {
      expect(await put(storage, 'f', '12345')).toMatchObject({ size: 5, replaced: undefined });
      expect(await put(storage, 'f', '12')).toMatchObject({
        size: 2,
        replaced: { name: 'f', type: 'file', size: 5 },
      });
      // Commits racing onto one name each replace the one before: no two report the same file.
      const sizes = [3, 4, 5];
      const uploads = await Promise.all(sizes.map(() => storage.createUpload('f')));
      await Promise.all(uploads.map((upload, i) => upload.write([Buffer.alloc(sizes[i]!)])));
      const committed = await Promise.all(uploads.map((upload) => upload.commit()));
      const byNumber = (a: number, b: number) => a - b;
      const replaced = committed.map((entry) => entry.replaced?.size ?? -1);
      // Together they replaced the old file (2) and all but the last committed one: a chain.
      const last = (await storage.stat('f')).size;
      expect([...replaced, last].sort(byNumber)).toEqual([2, ...sizes].sort(byNumber));
      await put(storage, 'g', '1234567');
      expect(await storage.rename('g', 'f')).toMatchObject({
        moved: { name: 'g', type: 'file', size: 7 },
        replaced: { name: 'f', type: 'file', size: last },
      });
      expect(await storage.rename('f', 'h')).toMatchObject({ moved: { size: 7 }, replaced: undefined });
      expect(await storage.remove('h')).toMatchObject({ name: 'h', type: 'file', size: 7 });
    });

    it('needs an existing parent directory and a target that is not a directory', async () => {
      await storage.mkdir('dir');
      await put(storage, 'file', 'f');
      // The error names the parent that is missing or not a directory, a resumable upload's too.
      for (const partial of [undefined, { size: 9, algorithm: 'xxh128' as const, digest: 'ab'.repeat(16) }]) {
        const options = partial === undefined ? {} : { partial };
        expect(
          await expectStorageError(storage.createUpload('missing/x', options), 'NOT_FOUND'),
        ).toMatchObject({
          message: 'no such file or directory: missing',
          path: 'missing',
        });
        expect(
          await expectStorageError(storage.createUpload('file/x', options), 'NOT_A_DIRECTORY'),
        ).toMatchObject({
          message: 'not a directory: file',
          path: 'file',
        });
      }
      await expectStorageError(storage.createUpload('dir'), 'IS_A_DIRECTORY');
      await expectStorageError(storage.createUpload(''), 'IS_A_DIRECTORY');
      expect(await hostNames(fx)).toEqual(['dir', 'file']);
    });

    it('fails a commit whose target became a directory, removing the temporary file', async () => {
      const upload = await storage.createUpload('target');
      await upload.write([Buffer.from('data')]);
      await storage.mkdir('target');
      await expectStorageError(upload.commit(), 'IS_A_DIRECTORY');
      await upload.abort();
      expect(await hostNames(fx)).toEqual(['target']);
      expect((await storage.stat('target')).type).toBe('dir');
    });

    it('gives back a beforeReplace refusal as it is, leaving the target as it was and no temporary file', async () => {
      await put(storage, 'target', 'before');
      const upload = await storage.createUpload('target');
      await upload.write([Buffer.from('after')]);
      const refusal = new Error('over quota');
      const outcome = await upload
        .commit(undefined, {
          beforeReplace: () => {
            throw refusal;
          },
        })
        .catch((error: unknown) => error);
      expect(outcome).toBe(refusal);
      expect(await hostNames(fx)).toEqual(['target']);
      expect((await readAll(storage, 'target')).toString()).toBe('before');
    });
  });

  describe('digests and sizing', () => {
    it('remembers the digest of a committed upload, and forgets it when the file changes', async () => {
      const content = Buffer.from('digest me');
      const digest = digestOf('xxh128', content);
      const upload = await storage.createUpload('d.bin');
      await upload.write([content]);
      await upload.commit(digest);
      const first = await storage.openRead('d.bin');
      expect(first.knownDigest('xxh128')).toEqual(digest);
      expect(first.knownDigest('sha256')).toBeUndefined();
      await first.close();
      // Rewritten in place behind storage's back (same size): the digest must not be served. The
      // version is told by mtime and ctime: wait past a coarse timestamp tick (4-10 ms on kernels
      // without fine-grained file times), or the rewrite could carry the same times.
      await new Promise((resolve) => setTimeout(resolve, 25));
      await fx.host.writeFile(path.posix.join(fx.root, 'd.bin'), 'DIGEST ME');
      const second = await storage.openRead('d.bin');
      expect(second.knownDigest('xxh128')).toBeUndefined();
      const recomputed = digestOf('xxh128', Buffer.from('DIGEST ME'));
      second.rememberDigest(recomputed);
      await second.close();
      // Read just after the rewrite: a write in the same timestamp tick could still follow
      // unseen, so the digest is not kept ("racily clean")...
      const third = await storage.openRead('d.bin');
      expect(third.knownDigest('xxh128')).toBeUndefined();
      await third.close();
      // ...while one read well after it is (only Date is moved on: the file's times stay).
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + RACY_WINDOW_MS + 1000 });
      try {
        const fourth = await storage.openRead('d.bin');
        fourth.rememberDigest(recomputed);
        await fourth.close();
      } finally {
        vi.useRealTimers();
      }
      const fifth = await storage.openRead('d.bin');
      expect(fifth.knownDigest('xxh128')).toEqual(recomputed);
      await fifth.close();
    });

    it('holds one digest per algorithm for a file version, with its block digests', async () => {
      const content = Buffer.alloc(4 * 1024 * 1024 + 1, 7); // two blocks, the last of one byte
      const upload = await storage.createUpload('both.bin');
      await upload.write([content]);
      const xxh = digestOf('xxh128', content);
      await upload.commit(xxh);
      const sha = digestOf('sha256', content);
      const first = await storage.openRead('both.bin');
      first.rememberDigest(sha);
      await first.close();
      const second = await storage.openRead('both.bin');
      expect(second.knownDigest('xxh128')).toEqual(xxh);
      expect(second.knownDigest('sha256')).toEqual(sha);
      expect(second.knownDigest('sha256')!.blockDigests).toHaveLength(2);
      await second.close();
      // fileDigest serves what is cached and computes (then remembers) what is not.
      expect((await fileDigest(storage, 'both.bin', 'sha256')).digest).toBe(second.knownDigest('sha256'));
      // A file committed without a digest, read well after it was written (only Date moves on).
      await put(storage, 'other.bin', 'other');
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + RACY_WINDOW_MS + 1000 });
      const computed = await fileDigest(storage, 'other.bin', 'sha256').finally(() => vi.useRealTimers());
      expect(computed.digest.digest.equals(contentDigest('sha256', Buffer.from('other')))).toBe(true);
      expect(computed.entry.size).toBe(5);
      const third = await storage.openRead('other.bin');
      expect(third.knownDigest('sha256')).toEqual(computed.digest);
      expect(third.knownDigest('xxh128')).toBeUndefined();
      await third.close();
    });

    it('a new upload over a file does not inherit the old digest', async () => {
      const upload = await storage.createUpload('e.bin');
      await upload.write([Buffer.from('one')]);
      await upload.commit(digestOf('xxh128', Buffer.from('one')));
      await put(storage, 'e.bin', 'two');
      const handle = await storage.openRead('e.bin');
      expect(handle.knownDigest('xxh128')).toBeUndefined();
      await handle.close();
    });

    it('an expected size larger or smaller than what arrives still stores exactly what was written', async () => {
      for (const expectedSize of [1024 * 1024, 3]) {
        const upload = await storage.createUpload('sized.bin', { expectedSize });
        await upload.write([Buffer.from('0123456789')]);
        expect((await upload.commit()).size).toBe(10);
        expect((await readAll(storage, 'sized.bin')).toString()).toBe('0123456789');
      }
    });
  });

  describe('directories', () => {
    it('reports the root as a directory named ""', async () => {
      expect(await storage.stat('')).toMatchObject({ name: '', type: 'dir', size: 0 });
      expect(await storage.stat('.')).toMatchObject({ name: '', type: 'dir' });
    });

    it('lists entries sorted by name with their types and sizes', async () => {
      for (const name of ['b', 'a.txt', 'C', 'a']) await put(storage, name, name);
      await storage.mkdir('dir');
      await put(storage, 'dir/inner', 'x');
      const entries = await storage.list('');
      expect(entries.map((entry) => entry.name)).toEqual(['C', 'a', 'a.txt', 'b', 'dir']);
      expect(entries.find((entry) => entry.name === 'a.txt')).toMatchObject({ type: 'file', size: 5 });
      expect(entries.find((entry) => entry.name === 'dir')).toMatchObject({ type: 'dir', size: 0 });
      expect(await storage.list('dir/')).toMatchObject([{ name: 'inner', type: 'file', size: 1 }]);
    });

    it('refuses to list a file or a missing directory', async () => {
      await put(storage, 'file', 'f');
      await expectStorageError(storage.list('file'), 'NOT_A_DIRECTORY');
      await expectStorageError(storage.list('missing'), 'NOT_FOUND');
    });

    it('a directory moved while it is listed fails the listing NOT_FOUND, not a listing cut short', async () => {
      await storage.mkdir('big');
      const count = DEFAULTS.listBatchEntries * 2 + 5;
      for (let i = 0; i < count; i++)
        await fx.host.writeFile(path.posix.join(fx.root, 'big', `f${String(i).padStart(4, '0')}`), 'x');
      const listed: string[] = [];
      const listing = (async () => {
        for await (const batch of storage.listBatches('big')) {
          const first = listed.length === 0;
          listed.push(...batch.map((entry) => entry.name));
          // Another client moves it between two batches (the loop turns there).
          if (first) await storage.rename('big', 'moved');
        }
      })();
      await expectStorageError(listing, 'NOT_FOUND');
      expect(listed).toHaveLength(DEFAULTS.listBatchEntries);
      // Removed names are left out as before: the directory is still there.
      await storage.rename('moved', 'big');
      const again: string[] = [];
      for await (const batch of storage.listBatches('big')) {
        if (again.length === 0) await fx.host.unlink(path.posix.join(fx.root, 'big', 'f0300'));
        again.push(...batch.map((entry) => entry.name));
      }
      expect(again).toHaveLength(count - 1);
    });

    it('a directory replaced by another while it is listed fails the listing, not a mix of the two', async () => {
      await storage.mkdir('big');
      const count = DEFAULTS.listBatchEntries * 2 + 5;
      for (let i = 0; i < count; i++)
        await fx.host.writeFile(path.posix.join(fx.root, 'big', `f${String(i).padStart(4, '0')}`), 'x');
      const listed: string[] = [];
      const listing = (async () => {
        for await (const batch of storage.listBatches('big')) {
          const first = listed.length === 0;
          listed.push(...batch.map((entry) => entry.name));
          // Another client swaps a new version in (mv big old; mv new big) between two batches.
          if (first) {
            await storage.rename('big', 'old');
            await storage.mkdir('big');
          }
        }
      })();
      await expectStorageError(listing, 'NOT_FOUND');
    });

    it('mkdir without parents needs the parent and refuses what exists', async () => {
      expect(await storage.mkdir('a')).toBe(true);
      expect((await storage.stat('a')).type).toBe('dir');
      await put(storage, 'file', 'f');
      await expectStorageError(storage.mkdir('missing/child'), 'NOT_FOUND');
      await expectStorageError(storage.mkdir('a'), 'ALREADY_EXISTS');
      await expectStorageError(storage.mkdir('file'), 'ALREADY_EXISTS');
      await expectStorageError(storage.mkdir('file/child'), 'NOT_A_DIRECTORY');
      await expectStorageError(storage.mkdir(''), 'ALREADY_EXISTS');
    });

    it('mkdir with parents creates ancestors and accepts an existing directory, saying it made none', async () => {
      expect(await storage.mkdir('p/q/r', { parents: true })).toBe(true);
      expect((await storage.stat('p/q/r')).type).toBe('dir');
      expect(await storage.mkdir('p/q/r', { parents: true })).toBe(false);
      expect(await storage.mkdir('p/q', { parents: true })).toBe(false);
      expect(await storage.mkdir('', { parents: true })).toBe(false);
      expect(await storage.mkdir('p/q/s', { parents: true })).toBe(true); // its parents there already
      await put(storage, 'p/file', 'f');
      await expectStorageError(storage.mkdir('p/file', { parents: true }), 'ALREADY_EXISTS');
      const blocked = await expectStorageError(
        storage.mkdir('p/file/x/y', { parents: true }),
        'NOT_A_DIRECTORY',
      );
      expect(blocked.path).toBe('p/file');
      await expectStorageError(storage.stat('p/file/x'), 'NOT_A_DIRECTORY');
    });

    it('rmdir removes only empty directories', async () => {
      await storage.mkdir('empty');
      await storage.mkdir('full');
      await put(storage, 'full/file', 'f');
      await expectStorageError(storage.rmdir('full'), 'DIRECTORY_NOT_EMPTY');
      await expectStorageError(storage.rmdir('full/file'), 'NOT_A_DIRECTORY');
      await expectStorageError(storage.rmdir('missing'), 'NOT_FOUND');
      await expectStorageError(storage.rmdir(''), 'INVALID_PATH');
      await storage.rmdir('empty');
      await expectStorageError(storage.stat('empty'), 'NOT_FOUND');
    });

    it('rmdir counts an upload in flight as content', async () => {
      await storage.mkdir('busy');
      const upload = await storage.createUpload('busy/file');
      expect(await storage.list('busy')).toEqual([]);
      await expectStorageError(storage.rmdir('busy'), 'DIRECTORY_NOT_EMPTY');
      await upload.abort();
      await storage.rmdir('busy');
    });

    it('moves a directory again once the upload under it is aborted or failed its commit', async () => {
      await storage.mkdir('d');
      const aborted = await storage.createUpload('d/f');
      await aborted.write([Buffer.from('a')]);
      await expectStorageError(storage.rename('d', 'e'), 'RESOURCE_BUSY');
      await aborted.abort();
      await storage.rename('d', 'e');

      const refused = await storage.createUpload('e/g');
      await refused.write([Buffer.from('g')]);
      await storage.mkdir('e/g'); // the commit may not replace a directory
      await expectStorageError(refused.commit(), 'IS_A_DIRECTORY');
      await storage.rename('e', 'd');
      expect(await hostNames(fx, 'd')).toEqual(['g']);
    });

    it('remove deletes files and refuses directories and the root', async () => {
      await storage.mkdir('dir');
      await put(storage, 'file', 'f');
      await expectStorageError(storage.remove('dir'), 'IS_A_DIRECTORY');
      await expectStorageError(storage.remove('missing'), 'NOT_FOUND');
      await expectStorageError(storage.remove(''), 'INVALID_PATH');
      await storage.remove('file');
      expect(await names(storage, '')).toEqual(['dir']);
    });

    it('openRead refuses directories and missing files', async () => {
      await storage.mkdir('dir');
      await expectStorageError(storage.openRead('dir'), 'IS_A_DIRECTORY');
      await expectStorageError(storage.openRead(''), 'IS_A_DIRECTORY');
      await expectStorageError(storage.openRead('missing'), 'NOT_FOUND');
      await expectStorageError(storage.stat('missing/deeper'), 'NOT_FOUND');
    });

    it('names the client path in errors, never the host root', async () => {
      const error = await expectStorageError(storage.stat('no/such/file.txt'), 'NOT_FOUND');
      expect(error.message).toBe('no such file or directory: no/such/file.txt');
      expect(error.path).toBe('no/such/file.txt');
      if (fx.root !== '/') expect(error.message).not.toContain(fx.root);
    });
  });

  describe('rename', () => {
    it('moves a file and replaces an existing file at the destination', async () => {
      await put(storage, 'a', 'content of a');
      await put(storage, 'b', 'content of b');
      await storage.rename('a', 'c');
      expect(await names(storage, '')).toEqual(['b', 'c']);
      await storage.rename('c', 'b');
      expect(await names(storage, '')).toEqual(['b']);
      expect((await readAll(storage, 'b')).toString()).toBe('content of a');
    });

    it('moves a directory with its contents', async () => {
      await storage.mkdir('src/inner', { parents: true });
      await put(storage, 'src/inner/file', 'f');
      await storage.mkdir('dst');
      await storage.rename('src', 'dst/moved');
      expect((await readAll(storage, 'dst/moved/inner/file')).toString()).toBe('f');
      await expectStorageError(storage.stat('src'), 'NOT_FOUND');
    });

    it('never replaces a directory, and a directory never replaces a file', async () => {
      await put(storage, 'file', 'f');
      await storage.mkdir('dir');
      await storage.mkdir('empty');
      await expectStorageError(storage.rename('file', 'dir'), 'ALREADY_EXISTS');
      await expectStorageError(storage.rename('dir', 'empty'), 'ALREADY_EXISTS');
      await expectStorageError(storage.rename('dir', 'file'), 'ALREADY_EXISTS');
      expect(await storage.list('')).toMatchObject([
        { name: 'dir', type: 'dir' },
        { name: 'empty', type: 'dir' },
        { name: 'file', type: 'file' },
      ]);
    });

    it('refuses to move a directory into itself', async () => {
      await storage.mkdir('d/sub', { parents: true });
      await expectStorageError(storage.rename('d', 'd/x'), 'INVALID_PATH');
      await expectStorageError(storage.rename('d', 'd/sub/x'), 'INVALID_PATH');
      await expectStorageError(storage.rename('d', 'd/missing/x'), 'INVALID_PATH');
      expect((await storage.stat('d/sub')).type).toBe('dir');
    });

    it('refuses a missing source, a missing destination parent, and the root', async () => {
      await put(storage, 'file', 'f');
      await expectStorageError(storage.rename('missing', 'x'), 'NOT_FOUND');
      await expectStorageError(storage.rename('file', 'no/such/dir'), 'NOT_FOUND');
      await expectStorageError(storage.rename('', 'x'), 'INVALID_PATH');
      await expectStorageError(storage.rename('file', ''), 'INVALID_PATH');
      await expectStorageError(storage.rename('file', '.'), 'INVALID_PATH');
      expect(await names(storage, '')).toEqual(['file']);
    });

    it('treats a rename onto the same path as a no-op', async () => {
      await put(storage, 'same', 's');
      await storage.rename('same', './same');
      expect((await readAll(storage, 'same')).toString()).toBe('s');
    });
  });

  describe('path confinement', () => {
    const refused: [string, string][] = [
      ['a .. segment', '../x'],
      ['a .. segment deeper down', 'a/../../x'],
      ['an absolute path', '/etc/passwd'],
      ['a NUL byte', 'a\0b'],
      ['a control character', 'a\nb'],
      ['a backslash', 'a\\..\\b'],
      ['a name that is too long', 'n'.repeat(256)],
      ['the reserved temporary prefix', `${TEMP_PREFIX}0123.part`],
      ['the reserved prefix deeper down', `dir/${TEMP_PREFIX}x`],
    ];

    it.each(refused)('refuses %s in every operation', async (_, bad) => {
      await storage.mkdir('dir');
      await put(storage, 'file', 'f');
      const operations: (() => Promise<unknown>)[] = [
        () => storage.stat(bad),
        () => storage.list(bad),
        () => storage.mkdir(bad),
        () => storage.mkdir(bad, { parents: true }),
        () => storage.rmdir(bad),
        () => storage.remove(bad),
        () => storage.rename(bad, 'dir/x'),
        () => storage.rename('file', bad),
        () => storage.openRead(bad),
        () => storage.createUpload(bad),
      ];
      for (const operation of operations) await expectStorageError(operation(), 'INVALID_PATH');
      expect(await names(storage, '')).toEqual(['dir', 'file']);
      expect(await names(storage, 'dir')).toEqual([]);
    });
  });

  describe('symlinks', () => {
    const hostPath = (...parts: string[]) => path.posix.join(fx.root, ...parts);

    it.skipIf(!backend.hasOutside)(
      'refuses every path through a symlink that leads outside the root',
      async () => {
        const outside = fx.outside!;
        await fx.host.writeFile(path.posix.join(outside, 'secret.txt'), 'secret');
        await fx.host.symlink(outside, hostPath('escape'));
        await fx.host.symlink(path.posix.relative(fx.root, outside), hostPath('relative-escape'));
        await fx.host.symlink(path.posix.join(outside, 'secret.txt'), hostPath('leak'));
        await storage.mkdir('inner');
        await fx.host.symlink(outside, hostPath('inner', 'up'));
        await put(storage, 'mine', 'm');

        for (const link of ['escape', 'relative-escape', 'inner/up']) {
          await expectStorageError(storage.stat(link), 'INVALID_PATH');
          await expectStorageError(storage.list(link), 'INVALID_PATH');
          await expectStorageError(storage.stat(`${link}/secret.txt`), 'INVALID_PATH');
          await expectStorageError(storage.openRead(`${link}/secret.txt`), 'INVALID_PATH');
          await expectStorageError(storage.createUpload(`${link}/new.txt`), 'INVALID_PATH');
          await expectStorageError(storage.mkdir(`${link}/sub`), 'INVALID_PATH');
          await expectStorageError(storage.mkdir(`${link}/sub/deeper`, { parents: true }), 'INVALID_PATH');
          await expectStorageError(storage.remove(`${link}/secret.txt`), 'INVALID_PATH');
          await expectStorageError(storage.rename(`${link}/secret.txt`, 'stolen.txt'), 'INVALID_PATH');
          await expectStorageError(storage.rename('mine', `${link}/planted.txt`), 'INVALID_PATH');
        }
        const leak = await expectStorageError(storage.openRead('leak'), 'INVALID_PATH');
        expect(leak.message).toBe('path leads outside the root: leak');
        expect(leak.message).not.toContain(outside);

        expect(await fx.host.readdir(outside)).toEqual(['secret.txt']);
        expect(await storage.list('')).toEqual([
          { name: 'escape', type: 'other', size: 0, mtimeMs: expect.any(Number), link: true },
          expect.objectContaining({ name: 'inner', type: 'dir' }),
          { name: 'leak', type: 'other', size: 0, mtimeMs: expect.any(Number), link: true },
          expect.objectContaining({ name: 'mine', type: 'file' }),
          { name: 'relative-escape', type: 'other', size: 0, mtimeMs: expect.any(Number), link: true },
        ]);
        expect(await storage.list('inner')).toMatchObject([
          { name: 'up', type: 'other', size: 0, link: true },
        ]);
      },
    );

    it.skipIf(!backend.hasOutside)(
      'refuses a link outside the root that leads back in: remove and rename act in its directory',
      async () => {
        const outside = fx.outside!;
        await put(storage, 'mine', 'm');
        await fx.host.symlink(outside, hostPath('escape'));
        // The entry's real location is inside, its parent is not: unlinking it would act outside.
        await fx.host.symlink(hostPath('mine'), path.posix.join(outside, 'back'));

        await expectStorageError(storage.stat('escape/back'), 'INVALID_PATH');
        await expectStorageError(storage.remove('escape/back'), 'INVALID_PATH');
        await expectStorageError(storage.rename('escape/back', 'taken'), 'INVALID_PATH');
        await expectStorageError(storage.createUpload('escape/back'), 'INVALID_PATH');
        expect(await fx.host.readdir(outside)).toEqual(['back']);
        expect(await names(storage, '')).toEqual(['escape', 'mine']);
      },
    );

    it.skipIf(!backend.hasOutside || !backend.renamesLinksThemselves)(
      'renames a link that leads outside the root as the link itself, as it removes one',
      async () => {
        const outside = fx.outside!;
        await fx.host.writeFile(path.posix.join(outside, 'secret.txt'), 'secret');
        await fx.host.symlink(path.posix.join(outside, 'secret.txt'), hostPath('leak'));
        await fx.host.symlink(outside, hostPath('escape'));
        await storage.mkdir('inner');
        // A dangling link could be renamed, one leading out was refused "leads outside the root".
        expect((await storage.rename('leak', 'inner/leak')).moved).toMatchObject({
          name: 'leak',
          type: 'other',
        });
        await storage.rename('escape', 'inner/escape');
        expect(await names(storage, 'inner')).toEqual(['escape', 'leak']);
        expect(await fx.host.readlink(hostPath('inner', 'escape'))).toBe(outside);
        // What they lead to is still out of reach, and untouched.
        await expectStorageError(storage.stat('inner/escape/secret.txt'), 'INVALID_PATH');
        await expectStorageError(storage.openRead('inner/leak'), 'INVALID_PATH');
        expect(await fx.host.readdir(outside)).toEqual(['secret.txt']);
      },
    );

    it.skipIf(!backend.hasOutside)(
      'removes a link that leads outside the root, or nowhere, as the link itself',
      async () => {
        const outside = fx.outside!;
        await fx.host.writeFile(path.posix.join(outside, 'secret.txt'), 'secret');
        await fx.host.symlink(path.posix.join(outside, 'secret.txt'), hostPath('leak'));
        await fx.host.symlink(outside, hostPath('escape'));
        await storage.mkdir('inner');
        await fx.host.symlink(path.posix.join(outside, 'gone'), hostPath('inner', 'dangling'));

        expect(await storage.remove('leak')).toMatchObject({ name: 'leak', type: 'other' });
        expect(await storage.remove('escape')).toMatchObject({ name: 'escape', type: 'other' });
        expect(await storage.remove('inner/dangling')).toMatchObject({ name: 'dangling', type: 'other' });
        expect(await names(storage, '')).toEqual(['inner']);
        expect(await names(storage, 'inner')).toEqual([]);
        expect(await fx.host.readdir(outside)).toEqual(['secret.txt']);
        // Through a link out, still nothing: only the last name may be a link.
        await fx.host.symlink(outside, hostPath('escape'));
        await expectStorageError(storage.remove('escape/secret.txt'), 'INVALID_PATH');
        expect(await fx.host.readdir(outside)).toEqual(['secret.txt']);
      },
    );

    it('sets the modification time of a file and of a directory, never of a symlink or through one', async () => {
      await storage.mkdir('dir');
      await put(storage, 'dir/f.txt', 'f');
      const mtimeMs = Date.UTC(1999, 11, 31, 23, 59, 59, 500);
      expect(await storage.setModifiedTime!('dir/f.txt', mtimeMs)).toMatchObject({ name: 'f.txt', mtimeMs });
      expect(await storage.setModifiedTime!('dir', mtimeMs + 1)).toMatchObject({
        type: 'dir',
        mtimeMs: mtimeMs + 1,
      });
      expect((await storage.stat('dir/f.txt')).mtimeMs).toBe(mtimeMs);
      expect(Number((await fx.host.stat(hostPath('dir'))).mtimeMs)).toBe(mtimeMs + 1);
      await fx.host.symlink('dir/f.txt', hostPath('link'));
      await expectStorageError(storage.setModifiedTime!('link', 0), 'UNSUPPORTED');
      expect((await storage.stat('dir/f.txt')).mtimeMs).toBe(mtimeMs);
      await expectStorageError(storage.setModifiedTime!('missing', 0), 'NOT_FOUND');
      if (fx.outside !== undefined) {
        await fx.host.writeFile(path.posix.join(fx.outside, 'theirs.txt'), 't');
        await fx.host.symlink(fx.outside, hostPath('escape'));
        await expectStorageError(storage.setModifiedTime!('escape/theirs.txt', 0), 'INVALID_PATH');
        const theirs = await fx.host.stat(path.posix.join(fx.outside, 'theirs.txt'));
        expect(Number(theirs.mtimeMs)).toBeGreaterThan(mtimeMs);
      }
    });

    it('sets a time or bits with ifUnchanged only on a file still of the size and time given', async () => {
      await storage.mkdir('dir');
      await put(storage, 'dir/f.txt', 'f');
      const seen = await storage.stat('dir/f.txt');
      const dirSeen = await storage.stat('dir');
      const mtimeMs = Date.UTC(1999, 11, 31, 23, 59, 59, 500);
      const asSeen = { size: seen.size, mtimeMs: seen.mtimeMs };
      for (const ifUnchanged of [
        { ...asSeen, size: seen.size + 1 },
        { ...asSeen, mtimeMs: seen.mtimeMs + 1 },
      ]) {
        expect(await storage.setModifiedTime!('dir/f.txt', mtimeMs, { ifUnchanged })).toMatchObject(asSeen);
        if (backend.name !== 'memfs with a subdirectory root')
          expect(await storage.setPermissions!('dir/f.txt', 0o600, { ifUnchanged })).toMatchObject({
            mode: seen.mode,
          });
      }
      expect((await storage.stat('dir/f.txt')).mtimeMs).toBe(seen.mtimeMs);
      // A directory is no file as seen, whatever its size and time.
      const dirAsSeen = { size: dirSeen.size, mtimeMs: dirSeen.mtimeMs };
      await storage.setModifiedTime!('dir', mtimeMs, { ifUnchanged: dirAsSeen });
      expect((await storage.stat('dir')).mtimeMs).toBe(dirSeen.mtimeMs);
      expect(await storage.setModifiedTime!('dir/f.txt', mtimeMs, { ifUnchanged: asSeen })).toMatchObject({
        mtimeMs,
      });
      if (backend.name !== 'memfs with a subdirectory root')
        expect(
          await storage.setPermissions!('dir/f.txt', 0o600, { ifUnchanged: { size: seen.size, mtimeMs } }),
        ).toMatchObject({ mode: 0o600 });
    });

    it('mkdir with bits gives them, less the umask and never fewer than its own, to the directory it names only', async () => {
      const hostMode = async (p: string) => Number((await fx.host.stat(hostPath(p))).mode) & 0o777;
      const umask = processUmask() ?? 0o022;
      await storage.mkdir('plain');
      const plain = await hostMode('plain');
      await storage.mkdir('open', { mode: 0o775 });
      expect(await hostMode('open')).toBe(0o775 & ~umask);
      await storage.mkdir('p/q/shut', { parents: true, mode: 0o050 });
      expect(await hostMode('p/q/shut')).toBe(0o750 & ~umask);
      expect([await hostMode('p'), await hostMode('p/q')]).toEqual([plain, plain]);
      // One that is there already keeps its own.
      await storage.mkdir('open', { parents: true, mode: 0o700 });
      expect(await hostMode('open')).toBe(0o775 & ~umask);
    });

    it('sets the permission bits of a file and of a directory, never fewer than its own, never of a symlink or through one', async () => {
      await storage.mkdir('dir');
      await put(storage, 'dir/f.txt', 'f');
      const hostMode = async (p: string) => Number((await fx.host.stat(hostPath(p))).mode) & 0o777;
      if (backend.name === 'memfs with a subdirectory root') {
        // Over memfs's own promises, which have no chmod that leaves a link alone: refused, unchanged.
        const before = await hostMode('dir/f.txt');
        const error = await expectStorageError(storage.setPermissions!('dir/f.txt', 0o751), 'UNSUPPORTED');
        expect(error.message).toBe('this storage cannot set permissions');
        expect(await hostMode('dir/f.txt')).toBe(before);
        return;
      }
      const { mtimeMs } = await storage.stat('dir/f.txt');
      expect(await storage.setPermissions!('dir/f.txt', 0o751)).toMatchObject({ name: 'f.txt', mode: 0o751 });
      // As chmod(2): the bits, not the times (memfs's own chmod moves them).
      expect((await storage.stat('dir/f.txt')).mtimeMs).toBe(mtimeMs);
      expect(await hostMode('dir/f.txt')).toBe(0o751);
      // The server goes on reading and replacing its files, and listing and writing in its directories.
      expect(await storage.setPermissions!('dir/f.txt', 0o044)).toMatchObject({ mode: 0o644 });
      expect(await storage.setPermissions!('dir', 0o005)).toMatchObject({ type: 'dir', mode: 0o705 });
      expect(await hostMode('dir')).toBe(0o705);
      expect((await storage.stat('dir/f.txt')).mode).toBe(0o644);
      // Never more than the server's umask lets through (the admin's bound, as for uploads).
      const umask = processUmask() ?? 0;
      expect(await storage.setPermissions!('dir/f.txt', 0o777)).toMatchObject({ mode: 0o777 & ~umask });
      await storage.setPermissions!('dir/f.txt', 0o644);
      // Bits it has already: nothing changes, not even its ctime (the digest cache's version).
      const before = await fx.host.stat(hostPath('dir/f.txt'));
      await new Promise((resolve) => setTimeout(resolve, 15));
      await storage.setPermissions!('dir/f.txt', 0o644);
      expect((await fx.host.stat(hostPath('dir/f.txt'))).ctimeMs).toBe(before.ctimeMs);
      // A directory keeps its setgid and sticky bits; a file loses setuid and setgid.
      await fx.host.chmod(hostPath('dir'), 0o3777);
      await storage.setPermissions!('dir', 0o755);
      expect(Number((await fx.host.stat(hostPath('dir'))).mode) & 0o7777).toBe(0o3000 | (0o755 & ~umask));
      await fx.host.chmod(hostPath('dir/f.txt'), 0o6755);
      await storage.setPermissions!('dir/f.txt', 0o755);
      expect(Number((await fx.host.stat(hostPath('dir/f.txt'))).mode) & 0o7777).toBe(0o755 & ~umask);
      await storage.setPermissions!('dir/f.txt', 0o644);
      await fx.host.symlink('dir/f.txt', hostPath('link'));
      await expectStorageError(storage.setPermissions!('link', 0o777), 'UNSUPPORTED');
      expect(await hostMode('dir/f.txt')).toBe(0o644);
      await expectStorageError(storage.setPermissions!('missing', 0o644), 'NOT_FOUND');
      if (fx.outside !== undefined) {
        await fx.host.writeFile(path.posix.join(fx.outside, 'theirs.txt'), 't');
        await fx.host.chmod(path.posix.join(fx.outside, 'theirs.txt'), 0o600);
        await fx.host.symlink(fx.outside, hostPath('escape'));
        await expectStorageError(storage.setPermissions!('escape/theirs.txt', 0o777), 'INVALID_PATH');
        const theirs = await fx.host.stat(path.posix.join(fx.outside, 'theirs.txt'));
        expect(Number(theirs.mode) & 0o777).toBe(0o600);
      }
    });

    it('follows a symlink that stays inside the root', async () => {
      await storage.mkdir('real');
      await put(storage, 'real/file.txt', 'through the link');
      await fx.host.symlink(hostPath('real'), hostPath('alias'));
      await fx.host.symlink('real/file.txt', hostPath('file-link'));

      expect(await storage.stat('alias')).toMatchObject({ name: 'alias', type: 'dir' });
      expect(await storage.stat('file-link')).toMatchObject({ name: 'file-link', type: 'file', size: 16 });
      expect(await names(storage, 'alias')).toEqual(['file.txt']);
      expect((await readAll(storage, 'alias/file.txt')).toString()).toBe('through the link');
      expect((await readAll(storage, 'file-link')).toString()).toBe('through the link');
      await put(storage, 'alias/new.txt', 'new');
      expect(await names(storage, 'real')).toEqual(['file.txt', 'new.txt']);
      // Listed as what they lead to, and as links (so a client removes one as a link).
      const listed = await storage.list('');
      expect(listed).toMatchObject([
        { name: 'alias', type: 'dir', link: true },
        { name: 'file-link', type: 'file', size: 16, link: true },
        { name: 'real', type: 'dir' },
      ]);
      expect(listed[2]!.link).toBeUndefined();

      // remove acts on the link itself, never its target.
      await storage.remove('file-link');
      expect(await names(storage, 'real')).toEqual(['file.txt', 'new.txt']);
    });

    it.skipIf(!backend.renamesLinksThemselves)('renames a symlink, not its target', async () => {
      await put(storage, 'target.txt', 't');
      await fx.host.symlink('target.txt', hostPath('link'));
      await storage.rename('link', 'renamed-link');
      expect(await storage.list('')).toMatchObject([
        { name: 'renamed-link', type: 'file', size: 1 },
        { name: 'target.txt', type: 'file', size: 1 },
      ]);
    });

    it('lists a dangling symlink as other instead of failing the listing', async () => {
      await fx.host.symlink(hostPath('nowhere'), hostPath('dangling'));
      await put(storage, 'file', 'f');
      expect(await storage.list('')).toMatchObject([
        { name: 'dangling', type: 'other', size: 0 },
        { name: 'file', type: 'file' },
      ]);
      await expectStorageError(storage.stat('dangling'), 'NOT_FOUND');
      // Said as what it is, a link to nothing (ls lists it), not "no such file".
      await expect(storage.stat('dangling')).rejects.toThrow(
        'symbolic link to nothing (what it leads to does not exist): dangling',
      );
      await expect(storage.openRead('dangling')).rejects.toThrow(
        'symbolic link to nothing (what it leads to does not exist): dangling',
      );
      await expect(storage.stat('absent')).rejects.toThrow('no such file or directory: absent');
    });
  });

  it("says so when an upload's temporary file was removed behind its back, not NOT_FOUND on the target", async () => {
    await storage.mkdir('d');
    const upload = await storage.createUpload('d/f.bin');
    await upload.write([Buffer.from('taken')]);
    // What a second server starting on the same root did to the first one's upload.
    for (const name of await hostNames(fx, 'd')) await fx.host.unlink(path.posix.join(fx.root, 'd', name));
    const error = await upload.commit().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IO_ERROR' });
    expect((error as Error).message).toMatch(
      /^the upload's temporary file was removed from the server's disk/,
    );
    expect(await hostNames(fx, 'd')).toEqual([]);
  });

  describe('sweepTemporaryFiles', () => {
    it('removes temporary files left by uploads that never finished', async () => {
      await storage.mkdir('d/e', { parents: true });
      for (const target of ['top.bin', 'd/e/deep.bin']) {
        const abandoned = await storage.createUpload(target);
        await abandoned.write([Buffer.from('never committed')]);
      }
      await put(storage, 'd/kept', 'k');
      expect(await hostNames(fx, 'd', 'e')).toHaveLength(1);

      const restarted = await fx.reopen();
      expect(await restarted.sweepTemporaryFiles()).toBe(2);
      expect(await hostNames(fx)).toEqual(['d']);
      expect(await hostNames(fx, 'd')).toEqual(['e', 'kept']);
      expect(await hostNames(fx, 'd', 'e')).toEqual([]);
      expect(await restarted.sweepTemporaryFiles()).toBe(0);
    });

    it("removes only its uploads' files: other names under the reserved prefix stay (hidden)", async () => {
      await storage.mkdir('d');
      const hex = 'ab'.repeat(16);
      const ours = [`.muxftp-${hex}.part`, `.MUXFTP-${hex.toUpperCase()}.part`];
      // A client's: kept for get -c, or a get in progress, into a directory the server serves.
      const clients = [
        `.muxftp-get-${hex}.part`,
        `.muxftp-dl-${hex}.part`,
        downloadInProgressName('x.bin', { host: '0123abcd', pid: 1, run: 'aaaaaaaa', seq: 3 }),
      ];
      const others = [
        '.muxftp-notes.txt',
        '.MUXFTP-config',
        '.muxftp-partial-notes.part',
        `.muxftp-${hex}.bak`,
      ];
      const theirs = [...clients, ...others];
      for (const name of [...ours, ...theirs])
        await fx.host.writeFile(path.posix.join(fx.root, 'd', name), name);
      // Before: every name under the prefix went, in any letter case.
      expect(await storage.sweepTemporaryFiles()).toBe(ours.length);
      expect(await hostNames(fx, 'd')).toEqual([...theirs].sort());
      expect(await storage.list('d')).toEqual([]);
    });

    it('what a failed get kept goes with its directory, which lists as empty; a transfer in progress does not', async () => {
      const hex = 'cd'.repeat(16);
      const put = (dir: string, name: string) => fx.host.writeFile(path.posix.join(fx.root, dir, name), name);
      await storage.mkdir('d');
      await put('d', `.muxftp-get-${hex}.part`);
      expect(await storage.sweepTemporaryFiles()).toBe(0);
      expect(await storage.list('d')).toEqual([]);
      // Before: DIRECTORY_NOT_EMPTY for good once the sweep stopped removing it.
      await storage.rmdir('d');
      expect(await hostNames(fx)).toEqual([]);
      // A download in progress (this process's or another's), an upload's temporary file (another
      // server's on the same root), a file of another name: the directory stays, they are untouched.
      const inProgress = downloadInProgressName('x.bin', {
        host: '0123abcd',
        pid: 1,
        run: 'aaaaaaaa',
        seq: 0,
      });
      for (const name of [`.muxftp-dl-${hex}.part`, inProgress, `.muxftp-${hex}.part`, '.muxftp-notes.txt']) {
        await storage.mkdir('e');
        await put('e', `.muxftp-get-${hex}.part`);
        await put('e', name);
        await expectStorageError(storage.rmdir('e'), 'DIRECTORY_NOT_EMPTY');
        expect(await hostNames(fx, 'e')).toEqual([`.muxftp-get-${hex}.part`, name].sort());
        for (const left of await hostNames(fx, 'e'))
          await fx.host.unlink(path.posix.join(fx.root, 'e', left));
        await storage.rmdir('e');
      }
      // A directory among them: nothing removed before the rmdir fails.
      await storage.mkdir('f');
      await put('f', `.muxftp-get-${hex}.part`);
      await fx.host.mkdir(path.posix.join(fx.root, 'f', `.muxftp-partial-${hex}.part`), { recursive: true });
      await expectStorageError(storage.rmdir('f'), 'DIRECTORY_NOT_EMPTY');
      expect(await hostNames(fx, 'f')).toEqual([`.muxftp-get-${hex}.part`, `.muxftp-partial-${hex}.part`]);
      // An upload in flight still keeps its directory.
      await storage.mkdir('g');
      await put('g', `.muxftp-get-${hex}.part`);
      const upload = await storage.createUpload('g/f.bin');
      await upload.write([Buffer.from('going')]);
      await expectStorageError(storage.rmdir('g'), 'DIRECTORY_NOT_EMPTY');
      await upload.abort();
    });

    it('leaves uploads in flight on the same storage alone', async () => {
      const upload = await storage.createUpload('live');
      await upload.write([Buffer.from('still going')]);
      expect(await storage.sweepTemporaryFiles()).toBe(0);
      await upload.write([Buffer.from('!')]);
      await upload.commit();
      expect((await readAll(storage, 'live')).toString()).toBe('still going!');
    });
  });

  describe('kept partial uploads (issue #8)', () => {
    const key = { size: 2 * INTEGRITY_BLOCK_BYTES, algorithm: 'xxh128' as const, source: 'v1' };
    const block = (fill: number) => Buffer.alloc(INTEGRITY_BLOCK_BYTES, fill);

    it('keeps blocks only when asked, and only of an upload that may keep them; nothing else is left', async () => {
      const plain = await storage.createUpload('p.bin');
      await plain.write([block(1), Buffer.from('more')]);
      expect(await plain.abort({ keepPartial: true })).toBe(0);
      const resumable = await storage.createUpload('r.bin', { partial: key });
      await resumable.write([block(1), Buffer.from('more')]);
      expect(await resumable.abort()).toBe(0);
      expect(await hostNames(fx)).toEqual([]);
    });

    it('an abort after the upload finished changes nothing: what was kept stays, a committed file too', async () => {
      const cut = await storage.createUpload('f.bin', { partial: key });
      await cut.write([block(1), Buffer.from('more')]);
      expect(await cut.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
      expect(await cut.abort()).toBe(INTEGRITY_BLOCK_BYTES);
      expect((await storage.keptPartials!('')).map((entry) => entry.size)).toEqual([INTEGRITY_BLOCK_BYTES]);
      const done = await storage.createUpload('c.bin');
      await done.write([Buffer.from('data')]);
      await done.commit();
      expect(await done.abort({ keepPartial: true })).toBe(0);
      expect((await readAll(storage, 'c.bin')).toString()).toBe('data');
    });

    it('reads back only the kept data it took over, and nothing once finished', async () => {
      const cut = await storage.createUpload('f.bin', { partial: key });
      await cut.write([block(5)]);
      await cut.abort({ keepPartial: true });
      const resumed = await storage.createUpload('f.bin', {
        partial: key,
        resumeFrom: INTEGRITY_BLOCK_BYTES,
      });
      const buffer = Buffer.alloc(INTEGRITY_BLOCK_BYTES);
      expect(await resumed.readKept!(buffer, 0, INTEGRITY_BLOCK_BYTES, 0)).toBe(INTEGRITY_BLOCK_BYTES);
      expect(buffer.equals(block(5))).toBe(true);
      await expect(resumed.readKept!(buffer, 0, 1, INTEGRITY_BLOCK_BYTES)).rejects.toThrow(RangeError);
      await expect(resumed.readKept!(buffer, 0, INTEGRITY_BLOCK_BYTES, 1)).rejects.toThrow(RangeError);
      await resumed.abort({ keepPartial: true });
      await expect(resumed.readKept!(buffer, 0, 1, 0)).rejects.toThrow(/already finished/);
    });

    it('reports the bytes kept, taken over and swept, and lists kept ones no upload has taken over', async () => {
      // Every FsStorage backend keeps partial uploads (the interface makes it optional).
      const keptPartials = (dir: string) => storage.keptPartials!(dir);
      await storage.mkdir('d');
      const first = await storage.createUpload('d/f.bin', { partial: key });
      expect(first.takenOverBytes).toBe(0);
      await first.write([block(1), Buffer.from('past the block')]);
      expect(await first.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
      const listed = await keptPartials('d');
      expect(listed.map((entry) => [entry.type, entry.size])).toEqual([['file', INTEGRITY_BLOCK_BYTES]]);
      expect(await keptPartials('')).toEqual([]);

      // Resumed: taken over, so not listed; cut before a byte, it leaves the data as it was.
      const resumed = await storage.createUpload('d/f.bin', {
        partial: key,
        resumeFrom: INTEGRITY_BLOCK_BYTES,
      });
      expect(resumed.takenOverBytes).toBe(INTEGRITY_BLOCK_BYTES);
      expect(await keptPartials('d')).toEqual([]);
      expect(await resumed.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
      expect((await keptPartials('d')).map((entry) => entry.size)).toEqual([INTEGRITY_BLOCK_BYTES]);

      // Started over: taken over and replaced by the committed file.
      const again = await storage.createUpload('d/f.bin', { partial: key });
      expect(again.takenOverBytes).toBe(INTEGRITY_BLOCK_BYTES);
      await again.write([block(2), block(3)]);
      expect((await again.commit()).size).toBe(2 * INTEGRITY_BLOCK_BYTES);
      expect(await keptPartials('d')).toEqual([]);
      expect(await again.abort({ keepPartial: true })).toBe(0);

      // Swept: reported with its directory and size.
      const cut = await storage.createUpload('d/g.bin', { partial: key });
      await cut.write([block(4)]);
      expect(await cut.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
      const removed: Array<[string, number]> = [];
      const swept = await storage.sweepTemporaryFiles({
        onPartialRemoved: (dir, bytes) => removed.push([dir, bytes]),
      });
      expect(swept).toBe(1);
      expect(removed).toEqual([['d', INTEGRITY_BLOCK_BYTES]]);
      expect(await keptPartials('d')).toEqual([]);
    });

    it('what is kept under a directory that moves is dropped there as anywhere (a delete, another key)', async () => {
      await storage.mkdir('d1/sub', { parents: true });
      for (const path of ['d1/f.bin', 'd1/sub/g.bin']) {
        const cut = await storage.createUpload(path, { partial: key });
        await cut.write([block(6)]);
        expect(await cut.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
      }
      await storage.rename('d1', 'd2');
      // (Not asked with keptPartials(), which files what it reads afresh.)
      const kept = async (...dirs: string[]) =>
        (await hostNames(fx, ...dirs)).filter((name) => name.startsWith(TEMP_PREFIX));
      expect(await kept('d2')).toHaveLength(1);
      expect(await kept('d2', 'sub')).toHaveLength(1);
      // Before: filed under d1 still, so neither of these found it; it stayed until the sweep.
      await put(storage, 'd2/f.bin', 'another version, under no key');
      expect(await kept('d2')).toEqual([]);
      await fx.host.writeFile(path.posix.join(fx.root, 'd2', 'sub', 'g.bin'), 'there');
      await storage.remove('d2/sub/g.bin');
      expect(await kept('d2', 'sub')).toEqual([]);
    });

    it('a kept upload stamped with an old source time is as young as its last change, not that time', async () => {
      await storage.mkdir('d');
      const cut = await storage.createUpload('d/old.bin', { partial: key });
      await cut.write([block(5)]);
      expect(await cut.abort({ keepPartial: true })).toBe(INTEGRITY_BLOCK_BYTES);
      // A commit stamps the source's time (2020) before its rename: killed then, the kept file has it.
      const [kept] = (await hostNames(fx, 'd')).filter((name) => name.startsWith(TEMP_PREFIX));
      const old = new Date('2020-01-01T00:00:00Z');
      await fx.host.utimes(path.posix.join(fx.root, 'd', kept!), old, old);
      // Before: judged by that mtime, a day's retention removed it at once.
      expect(await storage.sweepTemporaryFiles({ partialRetentionMs: 24 * 3600_000 })).toBe(0);
      expect((await storage.keptPartials!('d')).map((entry) => entry.size)).toEqual([INTEGRITY_BLOCK_BYTES]);
    });

    it('hashing the kept data a resume took over fails NOT_FOUND once the file is shorter, and gives its read buffer back', async () => {
      await storage.mkdir('d');
      const first = await storage.createUpload('d/f.bin', { partial: key });
      await first.write([block(1), block(2)]);
      await first.abort({ keepPartial: true });
      const resumed = await storage.createUpload('d/f.bin', {
        partial: key,
        resumeFrom: 2 * INTEGRITY_BLOCK_BYTES,
      });
      // Cut on the host after the takeover: reads come back short.
      const [hidden] = await hostNames(fx, 'd');
      await fx.host.truncate(path.posix.join(fx.root, 'd', hidden!), INTEGRITY_BLOCK_BYTES + 10);
      const kept = { size: resumed.takenOverBytes!, read: resumed.readKept!.bind(resumed) };
      const digester = new ContentDigester('xxh128');
      const lentBefore = hashReadBuffers.lent;
      await expectStorageError(hashKept(kept, 'd/f.bin', 2 * INTEGRITY_BLOCK_BYTES, digester), 'NOT_FOUND');
      expect(hashReadBuffers.lent).toBe(lentBefore); // the read buffer went back, though the read failed
      digester.release();
      await resumed.abort();
    });

    it('commits only what the upload wrote when the kept data it took over runs past it', async () => {
      await storage.mkdir('d');
      const first = await storage.createUpload('d/f.bin', { partial: key });
      await first.write([block(1), block(2)]);
      expect(await first.abort({ keepPartial: true })).toBe(2 * INTEGRITY_BLOCK_BYTES);
      // Resumed after the first block only (the second no longer matched), and shorter.
      const resumed = await storage.createUpload('d/f.bin', {
        partial: key,
        resumeFrom: INTEGRITY_BLOCK_BYTES,
      });
      expect(resumed.takenOverBytes).toBe(2 * INTEGRITY_BLOCK_BYTES);
      await resumed.write([Buffer.from('tail')]);
      expect((await resumed.commit()).size).toBe(INTEGRITY_BLOCK_BYTES + 4);
      expect((await readAll(storage, 'd/f.bin')).equals(Buffer.concat([block(1), Buffer.from('tail')]))).toBe(
        true,
      );

      const second = await storage.createUpload('d/g.bin', { partial: key });
      await second.write([block(3), block(4)]);
      await second.abort({ keepPartial: true });
      // Started over from 0 on the kept data.
      const over = await storage.createUpload('d/g.bin', { partial: key });
      await over.write([Buffer.from('short')]);
      expect((await over.commit()).size).toBe(5);
      expect((await readAll(storage, 'd/g.bin')).toString()).toBe('short');
    });

    it('keeps the whole blocks of a resumable upload when the storage closes under it, and no other upload data', async () => {
      await storage.mkdir('d');
      const resumable = await storage.createUpload('d/f.bin', { partial: key });
      await resumable.write([block(5), Buffer.from('past the block')]);
      const plain = await storage.createUpload('d/g.bin');
      await plain.write([block(6)]);
      await storage.close();
      // As after a restart: the next resume finds the block, and nothing else was left.
      const restarted = await fx.reopen();
      expect((await restarted.keptPartials!('d')).map((entry) => entry.size)).toEqual([
        INTEGRITY_BLOCK_BYTES,
      ]);
      const resumed = await restarted.createUpload('d/f.bin', {
        partial: key,
        resumeFrom: INTEGRITY_BLOCK_BYTES,
      });
      expect(resumed.takenOverBytes).toBe(INTEGRITY_BLOCK_BYTES);
      await resumed.write([block(7)]);
      await resumed.commit();
      const stored = await readAll(restarted, 'd/f.bin');
      expect(stored.equals(Buffer.concat([block(5), block(7)]))).toBe(true);
      expect((await restarted.list('d')).map((entry) => entry.name)).toEqual(['f.bin']);
    });
  });

  describe('close', () => {
    it('aborts open uploads, closes readers, and refuses later calls', async () => {
      await put(storage, 'file', 'f');
      const reader = await storage.openRead('file');
      const upload = await storage.createUpload('pending');
      await upload.write([Buffer.from('p')]);
      await storage.close();
      await storage.close();
      expect(await hostNames(fx)).toEqual(['file']);
      await expectStorageError(reader.read(Buffer.alloc(1), 0, 1, 0), 'IO_ERROR');
      await expectStorageError(upload.commit(), 'IO_ERROR');
      await expectStorageError(storage.stat(''), 'IO_ERROR');
    });
  });
});

describe('backend options', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await nodeFs.mkdtemp(path.join(os.tmpdir(), 'muxftp-test-'));
  });

  afterEach(async () => {
    await nodeFs.rm(dir, { recursive: true, force: true });
  });

  it('DiskStorage.open creates a missing root with its parents', async () => {
    const root = path.join(dir, 'a', 'b');
    const storage = await DiskStorage.open({ root });
    expect(storage.description).toBe(`disk:${root}`);
    expect((await nodeFs.stat(root)).isDirectory()).toBe(true);
    await storage.close();
  });

  it.each([
    [undefined, /options must be an object/],
    [{}, /options.root/],
    [{ root: '' }, /options.root/],
    [{ root: 42 }, /options.root/],
    [{ root: 'a\0b' }, /options.root/],
    [{ root: '.', durable: 'yes' }, /options.durable/],
    [{ root: '.', digestCacheMaxBytes: -1 }, /options.digestCacheMaxBytes/],
    [{ root: '.', digestCacheMaxBytes: '64MiB' }, /options.digestCacheMaxBytes/],
  ])('DiskStorage.open refuses %j with a TypeError', async (options, message) => {
    await expect(DiskStorage.open(options as never)).rejects.toThrow(TypeError);
    await expect(DiskStorage.open(options as never)).rejects.toThrow(message);
  });

  it('DiskStorage.open refuses a bad option before it makes the root', async () => {
    const root = path.join(dir, 'never-made');
    await expect(DiskStorage.open({ root, digestCacheMaxBytes: 1.5 })).rejects.toThrow(
      /DiskStorage: options.digestCacheMaxBytes/,
    );
    await expect(nodeFs.stat(root)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('DiskStorage.open refuses a root that is a file', async () => {
    const file = path.join(dir, 'file');
    await nodeFs.writeFile(file, 'x');
    await expect(DiskStorage.open({ root: file })).rejects.toThrow(/cannot use .* as the root/);
  });

  it('FsStorage refuses bad options with a TypeError', () => {
    expect(() => new FsStorage({ fs: new Volume().promises, root: '' })).toThrow(TypeError);
    expect(() => new FsStorage({ fs: undefined as never, root: '/' })).toThrow(/options.fs/);
  });

  it('openStorage opens memory or a directory', async () => {
    const memory = await openStorage({ memory: true });
    expect(memory).toBeInstanceOf(MemoryStorage);
    expect(memory.description).toBe('memory');
    await memory.close();
    const disk = await openStorage({ root: path.join(dir, 'served') });
    expect(disk).toBeInstanceOf(DiskStorage);
    await disk.close();
    await expect(openStorage({ memory: 'yes' as never })).rejects.toThrow(TypeError);
  });
});

describe('MemoryStorage', () => {
  it("lends downloads views of its buffers in a user's home (subtree) as at the root", async () => {
    const storage = new MemoryStorage();
    try {
      const home = await storage.subtree('home/alice');
      const upload = await home.createUpload('f');
      await upload.write([Buffer.from('lent, not copied')]);
      await upload.commit();
      for (const [where, path] of [
        [storage, 'home/alice/f'],
        [home, 'f'],
      ] as const) {
        const handle = await where.openRead(path);
        try {
          expect(handle.view?.(0, 4)?.toString()).toBe('lent');
        } finally {
          await handle.close();
        }
      }
    } finally {
      await storage.close();
    }
  });

  it('reserves a declared size only once 1/64 of it has arrived, then stores it exactly', async () => {
    const storage = new MemoryStorage();
    const expected = 16 * 256 * 1024; // 4 MiB: reserved from 64 KiB on
    const upload = await storage.createUpload('big.bin', { expectedSize: expected });
    // memfs internals (reserveCapacity in storage/memory.ts): if this breaks, memfs changed shape.
    const core = (
      storage.volume as unknown as { _core: { fds: Record<number, { node: { capacity: number } }> } }
    )._core;
    const capacities = () => Object.values(core.fds).map((file) => file.node.capacity);
    expect(Math.max(0, ...capacities())).toBeLessThan(expected); // a claim is not a reservation
    expect(storage.reservedBytes).toBe(0);
    const content = randomBytes(expected);
    await upload.write([content.subarray(0, 64 * 1024 - 1)]);
    expect(Math.max(0, ...capacities())).toBeLessThan(expected); // one byte short of 1/64
    expect(storage.reservedBytes).toBe(0);
    await upload.write([content.subarray(64 * 1024 - 1, 64 * 1024)]); // exactly 1/64
    expect(capacities()).toContain(expected);
    expect(storage.reservedBytes).toBe(expected);
    await upload.write([content.subarray(64 * 1024, 256 * 1024)]);
    for (let at = 256 * 1024; at < expected; at += 256 * 1024)
      await upload.write([content.subarray(at, at + 256 * 1024)]);
    await upload.commit();
    expect(storage.reservedBytes).toBe(0);
    expect((await readAll(storage, 'big.bin')).equals(content)).toBe(true);
    await storage.close();
  });

  it('reserves no more than maxReservedBytes across uploads; the rest still store exactly', async () => {
    const storage = new MemoryStorage({ maxReservedBytes: 3 * 1024 * 1024 });
    const size = 2 * 1024 * 1024;
    const uploads = await Promise.all(
      [0, 1].map((i) => storage.createUpload(`f${i}`, { expectedSize: size })),
    );
    const content = randomBytes(size);
    for (const upload of uploads) await upload.write([content.subarray(0, size / 2)]);
    expect(storage.reservedBytes).toBe(size); // the second did not fit
    for (const upload of uploads) await upload.write([content.subarray(size / 2)]);
    await Promise.all(uploads.map((upload) => upload.commit()));
    expect(storage.reservedBytes).toBe(0);
    for (const i of [0, 1]) expect((await readAll(storage, `f${i}`)).equals(content)).toBe(true);
    await storage.close();
  });

  it('reserves for an upload refused room once another gave its room back, at its next write', async () => {
    const storage = new MemoryStorage({ maxReservedBytes: 3 * 1024 * 1024 });
    const size = 2 * 1024 * 1024;
    const [first, second] = await Promise.all(
      [0, 1].map((i) => storage.createUpload(`f${i}`, { expectedSize: size })),
    );
    const content = randomBytes(size);
    await first!.write([content.subarray(0, size / 2)]);
    await second!.write([content.subarray(0, size / 2)]);
    expect(storage.reservedBytes).toBe(size); // the second did not fit
    await first!.write([content.subarray(size / 2)]);
    await first!.commit();
    expect(storage.reservedBytes).toBe(0);
    await second!.write([content.subarray(size / 2, (3 * size) / 4)]);
    expect(storage.reservedBytes).toBe(size);
    await second!.write([content.subarray((3 * size) / 4)]);
    await second!.commit();
    expect(storage.reservedBytes).toBe(0);
    for (const i of [0, 1]) expect((await readAll(storage, `f${i}`)).equals(content)).toBe(true);
    await storage.close();
  });

  it('refuses a bad maxReservedBytes or digestCacheMaxBytes', () => {
    expect(() => new MemoryStorage({ maxReservedBytes: -1 })).toThrow(TypeError);
    expect(() => new MemoryStorage({ digestCacheMaxBytes: -1 })).toThrow(
      /MemoryStorage: options.digestCacheMaxBytes/,
    );
  });
});

type MemfsHandle = Awaited<ReturnType<Volume['promises']['open']>>;

/**
 * memfs whose file handles pass every call through but the writes `writes` gives for each
 * (a `write`, and a `writev` or none: without one, uploads write chunk by chunk).
 */
function memfsWithWrites(
  volume: Volume,
  writes: (handle: MemfsHandle) => Pick<FsFileHandle, 'write' | 'writev'>,
): FsPromises {
  return {
    ...memfsApi(volume),
    open: async (path, flags) => {
      const handle = await volume.promises.open(path, flags);
      return {
        read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
        datasync: () => handle.datasync(),
        truncate: (length) => handle.truncate(length),
        stat: () => handle.stat(),
        utimes: (atime, mtime) => handle.utimes(atime, mtime),
        chmod: (mode) => handle.chmod(mode),
        close: () => handle.close(),
        ...writes(handle),
      };
    },
  };
}

describe('FsStorage over an fs whose writes fail (a full disk)', () => {
  /** memfs whose writes fail with ENOSPC from the `failFrom`-th on (1: the first), until the `failUntil`-th. */
  function fillingFs(volume: Volume, failFrom: number, failUntil = Number.POSITIVE_INFINITY): FsPromises {
    let writes = 0;
    const full = () => Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    return memfsWithWrites(volume, (handle) => ({
      write: async (buffer, offset, length, position) => {
        if (++writes >= failFrom && writes < failUntil) throw full();
        return handle.write(buffer, offset, length, position);
      },
    }));
  }

  it.each([
    [
      'never commits an upload one of whose writes failed, and leaves no file behind',
      Number.POSITIVE_INFINITY,
    ],
    ['fails every later write and the commit once one write failed, even when the disk has room again', 3],
  ])('%s', async (_, failUntil) => {
    const volume = new Volume();
    const storage = new FsStorage({ fs: fillingFs(volume, 2, failUntil), root: '/', durable: false });
    const upload = await storage.createUpload('file');
    await upload.write([Buffer.from('first')]);
    await expectStorageError(upload.write([Buffer.from('second')]), 'NO_SPACE');
    await expectStorageError(upload.write([Buffer.from('third')]), 'NO_SPACE');
    await expectStorageError(upload.commit(), 'NO_SPACE');
    expect(volume.readdirSync('/')).toEqual([]);
    await storage.close();
  });

  it('keeps nothing of a resumable upload one of whose writes failed', async () => {
    const volume = new Volume();
    const storage = new FsStorage({ fs: fillingFs(volume, 2), root: '/', durable: false });
    const key = { size: 2 * INTEGRITY_BLOCK_BYTES, algorithm: 'xxh128' as const, source: 'v1' };
    const upload = await storage.createUpload('file', { partial: key });
    await upload.write([Buffer.alloc(INTEGRITY_BLOCK_BYTES, 1)]);
    await expectStorageError(upload.write([Buffer.alloc(INTEGRITY_BLOCK_BYTES, 2)]), 'NO_SPACE');
    expect(await upload.abort({ keepPartial: true })).toBe(0);
    expect(volume.readdirSync('/')).toEqual([]);
    await storage.close();
  });
});

describe('FsStorage over an fs whose handles lack writev and write short', () => {
  /** memfs, with writev hidden and each write() capped, to drive the write loop. */
  function constrainedFs(volume: Volume, maxWriteBytes: number): FsPromises {
    return memfsWithWrites(volume, (handle) => ({
      write: (buffer, offset, length, position) =>
        handle.write(buffer, offset, Math.min(length, maxWriteBytes), position),
    }));
  }

  it('writes every byte in order, chunk by chunk', async () => {
    const storage = new FsStorage({ fs: constrainedFs(new Volume(), 1000), root: '/', durable: true });
    const content = randomBytes(50_000);
    const upload = await storage.createUpload('file');
    await upload.write([content.subarray(0, 1), content.subarray(1, 1), content.subarray(1, 12_345)]);
    await upload.write([content.subarray(12_345)]);
    expect(await upload.commit()).toMatchObject({ size: content.length });
    expect((await readAll(storage, 'file')).equals(content)).toBe(true);
    await storage.close();
  });
});

describe('FsStorage over an fs whose writev stops short, or whose write makes no progress', () => {
  /**
   * memfs whose handles write through `writev`, which writes at most `writevBytes` of what it is
   * given (a disk that took only part of it), and `write`, which writes at most `writeBytes`.
   */
  function shortFs(volume: Volume, limits: { writevBytes: number; writeBytes: number }): FsPromises {
    return memfsWithWrites(volume, (handle) => ({
      writev: async (buffers, position) => {
        const all = Buffer.concat(buffers);
        const length = Math.min(all.length, limits.writevBytes);
        if (length === 0) return { bytesWritten: 0 };
        return handle.write(all, 0, length, position);
      },
      write: async (buffer, offset, length, position) => {
        const capped = Math.min(length, limits.writeBytes);
        // A turn of the event loop first, so that a writer retrying for ever times out.
        if (capped === 0) return new Promise((resolve) => setImmediate(() => resolve({ bytesWritten: 0 })));
        return handle.write(buffer, offset, capped, position);
      },
    }));
  }

  it.each([
    ['within the first chunk', 3],
    ['at the end of a chunk', 10],
    ['within a later chunk', 17],
    ['before any byte', 0],
  ])('finishes a writev that stopped %s from where it stopped, every byte in order', async (_, taken) => {
    const storage = new FsStorage({
      fs: shortFs(new Volume(), { writevBytes: taken, writeBytes: 4 }),
      root: '/',
      durable: false,
    });
    const content = randomBytes(40);
    const upload = await storage.createUpload('file');
    await upload.write([content.subarray(0, 10), content.subarray(10, 10), content.subarray(10, 25)]);
    await upload.write([content.subarray(25)]);
    expect(await upload.commit()).toMatchObject({ size: content.length });
    expect((await readAll(storage, 'file')).equals(content)).toBe(true);
    await storage.close();
  });

  it('fails a write that makes no progress (the upload is not stored), rather than trying it for ever', async () => {
    const volume = new Volume();
    const storage = new FsStorage({
      fs: shortFs(volume, { writevBytes: 0, writeBytes: 0 }),
      root: '/',
      durable: false,
    });
    const upload = await storage.createUpload('file');
    await expectStorageError(upload.write([Buffer.from('stuck')]), 'IO_ERROR');
    await expectStorageError(upload.commit(), 'IO_ERROR');
    expect(volume.readdirSync('/')).toEqual([]);
    await storage.close();
  }, 10_000);
});
