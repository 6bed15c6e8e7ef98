/**
 * A starting server's staging copy of its lock removed before it is linked as the lock. Since
 * 80a413d a start removes the staging copies beside the lock that it judges left by killed
 * servers: one written on another host (NFS) is judged by its mtime against this host's clock, so
 * a live writer's copy is removed under a clock skew of more than 5 s (or a write stalled that
 * long between the copy's creation and its content). Its writer's link then failed ENOENT and it
 * served without the lock ("cannot write .muxftp-serve.lock (ENOENT)"), beside the other server.
 * The removal, at the one moment it can hurt, is made here by the link itself.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { lockServedRoot } from '../storage/servedRootLock.js';

/** How many links to the lock find their staging copy removed just before. */
const removals = vi.hoisted(() => ({ left: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const link = (async (existing: string, target: string) => {
    if (removals.left > 0 && String(target).endsWith(SERVED_ROOT_LOCK_NAME)) {
      removals.left--;
      await real.unlink(existing);
    }
    return real.link(existing, target);
  }) as typeof real.link;
  return { ...real, default: { ...real, link }, link };
});

let root: string | undefined;
afterEach(async () => {
  removals.left = 0;
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  root = undefined;
});

describe("a start whose staging copy another server's start removed before its link", () => {
  it('writes it again and takes the lock, not served without it (ENOENT)', async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-lock-staging-gone-'));
    removals.left = 2;
    const held = await lockServedRoot(root);
    expect(held).toMatchObject({ lock: expect.anything() });
    expect(removals.left).toBe(0);
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
