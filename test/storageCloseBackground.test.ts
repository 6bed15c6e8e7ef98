/**
 * A storage's close() waits for the work it started on its own: a sweep walking a large tree
 * stops at its next directory, a kept partial's removal after a commit ends. Before, both ran on
 * after close() had resolved, and `serve`, seeing filesystem calls still running 2 s after
 * `stopped`, ended by its signal saying a mount had hung (a healthy but large root).
 * Real files; the disk's calls slowed by a wrapper, so that the work takes long enough to watch.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { partialName } from '../shared/temporaryNames.js';
import { diskFs } from '../storage/diskFs.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { delay } from './helpers/waits.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A disk storage over `root` whose `slowed` calls each take `ms` more; counts calls made. */
function slowStorage(root: string, slowed: ReadonlySet<string>, ms: number) {
  const calls = { count: 0, slow: false };
  const wrap = (fs: FsPromises): FsPromises =>
    new Proxy(fs, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        // A home's view (subtree) calls through the same wrapper.
        if (name === 'confinedTo') return (base: string) => wrap(value.call(target, base));
        return async (...args: unknown[]) => {
          calls.count++;
          if (calls.slow && slowed.has(String(name))) await delay(ms);
          const result = await (value as (...a: unknown[]) => unknown).apply(target, args);
          // An opened file's close and datasync slowed too.
          if (name !== 'open' || typeof result !== 'object' || result === null) return result;
          const handle = result as Record<'close' | 'datasync', () => Promise<void>>;
          for (const method of ['close', 'datasync'] as const) {
            if (!slowed.has(method)) continue;
            const call = handle[method].bind(handle);
            handle[method] = async () => {
              await delay(ms);
              await call();
            };
          }
          return handle;
        };
      },
    });
  const wrapped = wrap(diskFs(new InlineFileCalls()));
  const storage = new FsStorage({ fs: wrapped, root, hostPaths: path, description: `disk:${root}` });
  return { storage, calls };
}

it('close() stops a sweep walking a large tree and resolves once its calls have ended', async () => {
  const root = await mkdtemp(join(tmpdir(), 'muxftp-close-sweep-'));
  dirs.push(root);
  for (let i = 0; i < 40; i++) await mkdir(join(root, `d${i}`));
  // 40 directories at 100 ms a read: a sweep of ~4 s.
  const { storage, calls } = slowStorage(root, new Set(['readdir']), 100);
  calls.slow = true;
  const sweep = storage.sweepTemporaryFiles({ partialRetentionMs: 3600_000, partialsOnly: true });
  let settled = false;
  sweep.then(
    () => (settled = true),
    () => (settled = true),
  );
  await delay(250);
  const started = Date.now();
  await storage.close();
  const after = calls.count;
  // Before: close() resolved at once, the sweep walking on for seconds.
  expect(settled).toBe(true);
  expect(Date.now() - started).toBeLessThan(1_000);
  await delay(400);
  expect(calls.count).toBe(after);
  await sweep;
}, 15_000);

it("close() waits for a kept partial's removal under way (dropKeptPartials after a commit)", async () => {
  const root = await mkdtemp(join(tmpdir(), 'muxftp-close-drop-'));
  dirs.push(root);
  const kept = partialName('file.bin', { size: 10, algorithm: 'sha256', digest: 'ab'.repeat(32) });
  await writeFile(join(root, kept), 'kept bytes');
  const { storage, calls } = slowStorage(root, new Set(['unlink']), 600);
  // The sweep indexes the kept partial (within its retention).
  expect(await storage.sweepTemporaryFiles({ partialRetentionMs: 3600_000 })).toBe(0);
  calls.slow = true;
  // As an upload's commit does: not awaited.
  let settled = false;
  void storage.dropKeptPartials!('file.bin').finally(() => (settled = true));
  await delay(50);
  await storage.close();
  // Before: close() resolved with the unlink still running.
  expect(settled).toBe(true);
  expect(await readdir(root)).not.toContain(kept);
}, 15_000);

it("close() waits for a download's file closing under way", async () => {
  const root = await mkdtemp(join(tmpdir(), 'muxftp-close-read-'));
  dirs.push(root);
  await writeFile(join(root, 'file.bin'), 'bytes');
  const { storage } = slowStorage(root, new Set(['close']), 600);
  const reader = await storage.openRead('file.bin');
  // As a download done does: not awaited.
  let settled = false;
  void reader.close().finally(() => (settled = true));
  await storage.close();
  // Before: close() resolved at once, the file's close still running.
  expect(settled).toBe(true);
}, 15_000);

it.each([
  ['the root', false],
  ["a home's view", true],
])(
  'close() lets a verified upload committing through %s finish (its checks at the rename are not refused)',
  async (_, home) => {
    const root = await mkdtemp(join(tmpdir(), 'muxftp-close-commit-'));
    dirs.push(root);
    if (home) await mkdir(join(root, 'home'));
    const { storage } = slowStorage(root, new Set(['datasync']), 400);
    const target = home ? await storage.subtree('home') : storage;
    const upload = await target.createUpload('file.bin');
    await upload.write([Buffer.from('verified bytes')]);
    // As a connection cut in its commit leaves it: the commit goes on, storage.close() comes.
    const commit = upload.commit();
    commit.catch(() => {});
    await delay(100);
    await storage.close();
    // Before: its check of the target, right before the rename, was refused "storage is closed",
    // and the verified upload's file removed.
    await expect(commit).resolves.toMatchObject({ name: 'file.bin', size: 14 });
    expect(await readFile(join(root, home ? 'home/file.bin' : 'file.bin'), 'utf8')).toBe('verified bytes');
  },
  15_000,
);
