/**
 * A storage's close() waits for the work it started on its own: a sweep walking a large tree
 * stops at its next directory, a kept partial's removal after a commit ends. Before, both ran on
 * after close() had resolved, and `serve`, seeing filesystem calls still running 2 s after
 * `stopped`, ended by its signal saying a mount had hung (a healthy but large root).
 * Real files; the disk's calls slowed by a wrapper, so that the work takes long enough to watch.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
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
  const fs = diskFs(new InlineFileCalls());
  const calls = { count: 0, slow: false };
  const wrapped = new Proxy(fs, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        calls.count++;
        if (calls.slow && slowed.has(String(name))) await delay(ms);
        const result = await (value as (...a: unknown[]) => unknown).apply(target, args);
        // An opened file's close slowed too.
        if (name !== 'open' || !slowed.has('close') || typeof result !== 'object' || result === null)
          return result;
        const handle = result as { close(): Promise<void> };
        const close = handle.close.bind(handle);
        handle.close = async () => {
          await delay(ms);
          await close();
        };
        return handle;
      };
    },
  }) as FsPromises;
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
