/**
 * A start's lock and the staging copies beside it, with the filesystem calls that matter made to
 * misbehave (node:fs/promises mocked for this file).
 *
 * Since 80a413d a start removes the staging copies beside the lock that it judges left by killed
 * servers. One written on another host (NFS) is judged by its mtime against this host's clock, so
 * a live writer's copy is removed under a clock skew of more than 5 s (or a write stalled that long
 * between the copy's creation and its content): its writer's link then failed ENOENT and it served
 * without the lock ("cannot write .muxftp-serve.lock (ENOENT)"), beside the other server. The
 * removal, at the one moment it can hurt, is made here by the link itself.
 *
 * And the start lists its root for those copies: on a root of many names (NFS) that takes seconds;
 * it ran before the new lock's heartbeat was started, so the lock went unrefreshed that long plus
 * a beat, and a start on another host, which takes a lock unchanged for 2.5 beats for a dead
 * server's, took it over beside the live one. The listing is made slow here; the lock must beat
 * meanwhile.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { lockServedRoot } from '../storage/servedRootLock.js';

/** How many links to the lock find their staging copy removed just before; how long a listing takes (ms). */
const faults = vi.hoisted(() => ({ removalsLeft: 0, listingMs: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const link = (async (existing: string, target: string) => {
    if (faults.removalsLeft > 0 && String(target).endsWith(SERVED_ROOT_LOCK_NAME)) {
      faults.removalsLeft--;
      await real.unlink(existing);
    }
    return real.link(existing, target);
  }) as typeof real.link;
  const readdir = (async (...args: Parameters<typeof real.readdir>) => {
    if (faults.listingMs > 0) await new Promise((resolve) => setTimeout(resolve, faults.listingMs));
    return real.readdir(...args);
  }) as typeof real.readdir;
  return { ...real, default: { ...real, link, readdir }, link, readdir };
});

let root: string | undefined;
afterEach(async () => {
  faults.removalsLeft = 0;
  faults.listingMs = 0;
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  root = undefined;
});

describe("a start whose staging copy another server's start removed before its link", () => {
  it('writes it again and takes the lock, not served without it (ENOENT)', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-staging-gone-'));
    faults.removalsLeft = 2;
    const held = await lockServedRoot(root);
    expect(held).toMatchObject({ lock: expect.anything() });
    expect(faults.removalsLeft).toBe(0);
    expect(JSON.parse(await readFile(join(root, SERVED_ROOT_LOCK_NAME), 'utf8')).pid).toBe(process.pid);
    expect(await readdir(root)).toEqual([SERVED_ROOT_LOCK_NAME]);
    await held.lock?.release();
    expect(await readdir(root)).toEqual([]);
  });

  it('a root gone meanwhile is still said as ENOENT, at once', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-staging-gone-'));
    const gone = join(root, 'gone');
    const started = performance.now();
    expect(await lockServedRoot(gone)).toEqual({ lock: undefined, reason: 'ENOENT' });
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('a start whose listing of the root is slow', () => {
  it('refreshes its new lock meanwhile', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-slow-listing-'));
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const heartbeatMs = 50;
    faults.listingMs = 20 * heartbeatMs;
    const locking = lockServedRoot(root, { heartbeatMs });
    let first: bigint | undefined;
    for (let i = 0; i < 200 && first === undefined; i++) {
      first = await stat(lockPath, { bigint: true }).then(
        (s) => s.mtimeNs,
        () => undefined,
      );
      if (first === undefined) await sleep(2);
    }
    expect(first).toBeDefined();
    // 2.5 beats and more, the listing still under way: a watcher elsewhere would judge it now.
    await sleep(8 * heartbeatMs);
    const during = (await stat(lockPath, { bigint: true })).mtimeNs;
    const held = await locking;
    expect(held.lock).toBeDefined();
    await held.lock?.release();
    expect(during).not.toBe(first);
  });
});
