/**
 * A stale lock (its server killed) on a disk with room for one small file but not two: the lock
 * is written beside it, but the takeover's mark is not. Before, lockServedRoot threw that ENOSPC
 * and `serve` died with "internal error" and a stack (found by restarting a kill -9'd server on a
 * tmpfs with one inode free); now the root is served without its lock, for want of room, as when
 * no lock can be written at all (serve tries again every 2 s). A filesystem with one free inode
 * needs root to make, so the mark's ENOSPC is made here instead.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { lockServedRoot } from '../storage/servedRootLock.js';

/**
 * Room for the takeover's mark: all of it, no inode (its open fails), an inode and no block (its
 * write fails), or a write whose room is found wanting only at its close (as on NFS).
 */
const disk = vi.hoisted(() => ({ mark: 'room' as 'room' | 'noInode' | 'noBlock' | 'noClose' }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const noSpace = (file: unknown) =>
    Object.assign(new Error(`ENOSPC: no space left on device, open '${String(file)}'`), { code: 'ENOSPC' });
  const open = (async (file: string, flags?: string, mode?: number) => {
    if (disk.mark === 'room' || !String(file).endsWith('.takeover')) return real.open(file, flags, mode);
    if (disk.mark === 'noInode') throw noSpace(file);
    const handle = await real.open(file, flags, mode);
    if (disk.mark === 'noClose')
      return Object.assign(Object.create(handle), {
        writeFile: (data: string) => handle.writeFile(data),
        close: async () => {
          await handle.close();
          throw noSpace(file);
        },
      });
    return Object.assign(Object.create(handle), {
      writeFile: async () => {
        throw noSpace(file);
      },
      close: () => handle.close(),
    });
  }) as typeof real.open;
  return { ...real, default: { ...real, open }, open };
});

let root: string | undefined;
afterEach(async () => {
  disk.mark = 'room';
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  root = undefined;
});

describe('a stale lock on a disk with room for the new lock but not the takeover mark', () => {
  it.each(['noInode', 'noBlock', 'noClose'] as const)(
    '(%s) is served without its lock for want of room (ENOSPC), the stale lock left and no mark; taken over once there is room',
    async (shortOf) => {
      root = await mkdtemp(join(tmpdir(), 'muxftp-lock-noroom-'));
      const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
      const stale = { pid: 999_999_999, host: hostname(), since: '2020-01-01T00:00:00.000Z' };
      await writeFile(lockPath, `${JSON.stringify(stale)}\n`);
      disk.mark = shortOf;
      expect(await lockServedRoot(root)).toEqual({ lock: undefined, reason: 'ENOSPC' });
      // A mark made but not written was left, empty, and every later start waited for it to go stale.
      expect(await readdir(root)).toEqual([SERVED_ROOT_LOCK_NAME]);
      expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe(stale.pid);

      disk.mark = 'room';
      const held = await lockServedRoot(root);
      expect(held.lock).toBeDefined();
      expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe(process.pid);
      await held.lock?.release();
      expect(await readdir(root)).toEqual([]);
    },
  );
});
