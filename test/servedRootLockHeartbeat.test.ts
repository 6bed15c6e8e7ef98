/**
 * The served root lock's heartbeat in the holder (storage/servedRootLock.ts): it touches the lock
 * every `heartbeatMs`; a refresh that fails (an I/O error, a read-only remount) is reported and
 * tried again at the next beat, the lock kept; a lock no longer this process's (removed, taken
 * over) is reported once and never touched again; release() stops it. A failing lutimes needs
 * more than a file mode where the tests run as root, so it is made here.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { lockServedRoot } from '../storage/servedRootLock.js';

const touches = vi.hoisted(() => ({ calls: 0, failing: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const lutimes = (async (...args: Parameters<typeof real.lutimes>) => {
    touches.calls++;
    if (touches.failing)
      throw Object.assign(new Error(`EIO: i/o error, lutime '${String(args[0])}'`), { code: 'EIO' });
    return real.lutimes(...args);
  }) as typeof real.lutimes;
  return { ...real, default: { ...real, lutimes }, lutimes };
});

let root: string | undefined;
afterEach(async () => {
  touches.failing = false;
  touches.calls = 0;
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  root = undefined;
});

const mtimeOf = async (path: string) => (await stat(path, { bigint: true })).mtimeNs;

/** Resolves once `done()` holds; 3 s at most. */
async function until(done: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300 && !(await done()); i++) await sleep(10);
}

describe('the served root lock’s heartbeat, in its holder', () => {
  it('touches the lock every beat; a failed refresh is reported and tried again, the lock kept; release stops it', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-heartbeat-'));
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const failures: Error[] = [];
    const lost = vi.fn();
    const held = await lockServedRoot(root, {
      heartbeatMs: 20,
      onRefreshFailed: (error) => failures.push(error),
      onLost: lost,
    });
    expect(held.lock).toBeDefined();
    expect(JSON.parse(await readFile(lockPath, 'utf8'))).toMatchObject({ pid: process.pid, heartbeatMs: 20 });
    const first = await mtimeOf(lockPath);
    await until(async () => (await mtimeOf(lockPath)) !== first);
    expect(await mtimeOf(lockPath)).not.toBe(first);

    touches.failing = true;
    await until(() => failures.length >= 3);
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(failures[0]).toMatchObject({ code: 'EIO' });
    expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe(process.pid);
    touches.failing = false;
    const after = await mtimeOf(lockPath);
    await until(async () => (await mtimeOf(lockPath)) !== after);
    expect(await mtimeOf(lockPath)).not.toBe(after);
    expect(lost).not.toHaveBeenCalled();

    const ours = await readFile(lockPath, 'utf8');
    await held.lock?.release();
    await expect(readFile(lockPath)).rejects.toMatchObject({ code: 'ENOENT' });
    // The same text put back: a heartbeat still running would touch it.
    await writeFile(lockPath, ours);
    const calls = touches.calls;
    await sleep(100);
    expect(touches.calls).toBe(calls);
  });

  it('a lock no longer this process’s (taken over while it did not beat) is reported once and not touched again', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-heartbeat-'));
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const lost = vi.fn();
    const held = await lockServedRoot(root, { heartbeatMs: 20, onLost: lost });
    const theirs = `${JSON.stringify({ pid: 4242, host: 'another-host.example', since: 'now', heartbeatMs: 20 })}\n`;
    await writeFile(lockPath, theirs);
    await until(() => lost.mock.calls.length > 0);
    const calls = touches.calls;
    const mtime = await mtimeOf(lockPath);
    await sleep(100);
    expect(lost).toHaveBeenCalledTimes(1);
    expect(touches.calls).toBe(calls);
    expect(await mtimeOf(lockPath)).toBe(mtime);
    // Nor removed as this process's on release.
    await held.lock?.release();
    expect(await readFile(lockPath, 'utf8')).toBe(theirs);
  });
});
