/**
 * `serve --fsync always|never` (FsStorage's `durable`): with it, an upload's file is flushed
 * before the rename that publishes it and its directory after, all before commit() resolves
 * (so before the client hears REPLY); without it, nothing is flushed. Observed on real disk
 * files through an fs that records the calls.
 */
import * as fsPromises from 'node:fs/promises';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import type { FsFileHandle, FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { openStorage } from '../storage/index.js';

type Call = ['datasync', string] | ['rename', string, string] | ['committed'];

/**
 * node's fs/promises whose file handles flush through `datasync(file, flush)` (which must call
 * `flush`), and whose renames call `renamed` once done.
 */
function watchedFs(
  datasync: (file: string, flush: () => Promise<void>) => Promise<void>,
  renamed: (from: string, to: string) => void,
): FsPromises {
  return {
    ...(fsPromises as unknown as FsPromises),
    async open(file: string, flags: string, mode?: number): Promise<FsFileHandle> {
      const handle = await fsPromises.open(file, flags, mode);
      return new Proxy(handle as unknown as FsFileHandle, {
        get(target, key) {
          if (key === 'datasync') return () => datasync(file, () => handle.datasync());
          const value = Reflect.get(target, key);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
    async rename(from: string, to: string): Promise<void> {
      await fsPromises.rename(from, to);
      renamed(from, to);
    },
  };
}

/** node's fs/promises, recording every datasync (with the path its handle was opened on) and rename. */
function recordingFs(calls: Call[]): FsPromises {
  return watchedFs(
    async (file, flush) => {
      await flush();
      calls.push(['datasync', file]);
    },
    (from, to) => calls.push(['rename', from, to]),
  );
}

const roots: string[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
});

async function uploadOnce(durable: boolean): Promise<{ calls: Call[]; root: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'muxftp-fsync-'));
  roots.push(root);
  await fsPromises.mkdir(path.join(root, 'd'));
  const calls: Call[] = [];
  const storage = new FsStorage({ fs: recordingFs(calls), root, durable, hostPaths: path });
  const upload = await storage.createUpload('d/file.bin');
  await upload.write([Buffer.from('durable bytes')]);
  await upload.commit();
  calls.push(['committed']);
  await storage.close();
  expect(await readFile(path.join(root, 'd', 'file.bin'), 'utf8')).toBe('durable bytes');
  return { calls, root };
}

describe('fsync modes', () => {
  it('always: file flushed before the rename, its directory after, both before commit resolves', async () => {
    const { calls, root } = await uploadOnce(true);
    expect(calls).toHaveLength(4);
    const [fileSync, rename, dirSync, committed] = calls;
    expect(rename?.[0]).toBe('rename');
    const temporary = (rename as ['rename', string, string])[1];
    expect(path.basename(temporary)).toMatch(/^\.muxftp-/);
    expect(rename?.[2]).toBe(path.join(root, 'd', 'file.bin'));
    expect(fileSync).toEqual(['datasync', temporary]);
    expect(dirSync).toEqual(['datasync', path.join(root, 'd')]);
    expect(committed).toEqual(['committed']);
  });

  it('always: a large upload starts flushing behind its writes, and still flushes last before the rename', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'muxftp-fsync-'));
    roots.push(root);
    const calls: Call[] = [];
    const storage = new FsStorage({ fs: recordingFs(calls), root, durable: true, hostPaths: path });
    const upload = await storage.createUpload('big.bin');
    const chunk = Buffer.alloc(4 * 1024 * 1024, 7);
    const chunks = Math.ceil((2.5 * DEFAULTS.uploadFlushAheadBytes) / chunk.length);
    for (let i = 0; i < chunks; i++) await upload.write([chunk]);
    await upload.commit();
    await storage.close();
    const renameAt = calls.findIndex((c) => c[0] === 'rename');
    const temporary = (calls[renameAt] as ['rename', string, string])[1];
    const fileSyncs = calls.slice(0, renameAt).filter((c) => c[0] === 'datasync' && c[1] === temporary);
    // Two early flushes (at 32 and 64 MiB of 80; one at a time, each awaited by the next step
    // only if still running) plus the commit's own, which comes last before the rename.
    expect(fileSyncs.length).toBeGreaterThanOrEqual(2);
    expect(calls[renameAt - 1]).toEqual(['datasync', temporary]);
    expect((await fsPromises.stat(path.join(root, 'big.bin'))).size).toBe(chunks * chunk.length);
  });

  it('always: uploads committing side by side share directory flushes, each one started after their rename', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'muxftp-fsync-'));
    roots.push(root);
    await fsPromises.mkdir(path.join(root, 'd'));
    const dir = path.join(root, 'd');
    // Events in order; a directory flush takes 30 ms, so commits pile up behind a running one.
    const events: Array<[string, string]> = [];
    const fs = watchedFs(
      async (file, flush) => {
        if (file !== dir) return flush();
        const id = String(events.length);
        events.push(['flush-start', id]);
        await new Promise((r) => setTimeout(r, 30));
        await flush();
        events.push(['flush-end', id]);
      },
      (_from, to) => events.push(['rename', path.basename(to)]),
    );
    const storage = new FsStorage({ fs, root, durable: true, hostPaths: path });
    const names = Array.from({ length: 20 }, (_, i) => `f${i}.bin`);
    await Promise.all(
      names.map(async (name) => {
        const upload = await storage.createUpload(`d/${name}`);
        await upload.write([Buffer.from(name)]);
        await upload.commit();
        events.push(['committed', name]);
      }),
    );
    await storage.close();
    const flushes = events.filter(([kind]) => kind === 'flush-start').length;
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThan(names.length / 2); // shared, not one each
    for (const name of names) {
      const renamed = events.findIndex(([kind, what]) => kind === 'rename' && what === name);
      const committed = events.findIndex(([kind, what]) => kind === 'committed' && what === name);
      // Some flush started after this rename and ended before this commit resolved.
      const covered = events.some(([kind, flush], start) => {
        if (kind !== 'flush-start' || start < renamed) return false;
        const end = events.findIndex(([k, f]) => k === 'flush-end' && f === flush);
        return end !== -1 && end < committed;
      });
      expect({ name, covered }).toEqual({ name, covered: true });
    }
  });

  it('never: the same atomic rename, and no flush at all', async () => {
    const { calls } = await uploadOnce(false);
    expect(calls.map((c) => c[0])).toEqual(['rename', 'committed']);
  });

  it('never: a large upload is not flushed behind its writes either', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'muxftp-fsync-'));
    roots.push(root);
    const calls: Call[] = [];
    const storage = new FsStorage({ fs: recordingFs(calls), root, durable: false, hostPaths: path });
    const upload = await storage.createUpload('big.bin');
    const chunk = Buffer.alloc(4 * 1024 * 1024, 7);
    const chunks = Math.ceil((1.25 * DEFAULTS.uploadFlushAheadBytes) / chunk.length);
    for (let i = 0; i < chunks; i++) await upload.write([chunk]);
    await upload.commit();
    await storage.close();
    expect(calls.map((c) => c[0])).toEqual(['rename']);
    expect((await fsPromises.stat(path.join(root, 'big.bin'))).size).toBe(chunks * chunk.length);
  });

  it('openStorage refuses a mode that is not a boolean', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'muxftp-fsync-'));
    roots.push(root);
    await expect(openStorage({ root, durable: 'yes' as unknown as boolean })).rejects.toThrow(
      /options.durable/,
    );
    const storage = await openStorage({ root, durable: false });
    await storage.close();
  });
});
