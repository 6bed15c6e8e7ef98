/**
 * A start lists its root for the lock's staging copies killed servers left (80a413d). On a root of
 * many names (NFS) that takes seconds; it ran before the new lock's heartbeat was started, so the
 * lock went unrefreshed that long plus a beat, and a start on another host, which takes a lock
 * unchanged for 2.5 beats for a dead server's, took it over beside the live one. The listing is
 * made slow here; the lock must beat meanwhile.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { lockServedRoot } from '../storage/servedRootLock.js';

/** How long a listing of the root takes (ms). */
const listing = vi.hoisted(() => ({ ms: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const readdir = (async (...args: Parameters<typeof real.readdir>) => {
    if (listing.ms > 0) await new Promise((resolve) => setTimeout(resolve, listing.ms));
    return real.readdir(...args);
  }) as typeof real.readdir;
  return { ...real, default: { ...real, readdir }, readdir };
});

let root: string | undefined;
afterEach(async () => {
  listing.ms = 0;
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  root = undefined;
});

describe('a start whose listing of the root is slow', () => {
  it('refreshes its new lock meanwhile', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-slow-listing-'));
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const heartbeatMs = 50;
    listing.ms = 20 * heartbeatMs;
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
