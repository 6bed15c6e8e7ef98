/**
 * A SIGHUP's check of the homes (boundedHomeWarnings) over a home under a hung mount: its stat
 * never returns, and the reload, every later SIGHUP and serve's stop waited on it for ever. Now
 * it gives up waiting after its bound, and starts no second check while the first still hangs.
 * A real hung FUSE mount (test/helpers/hungMount.ts): root only, skipped elsewhere.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { boundedHomeWarnings } from '../cli/serverAccess.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile } from '../server/auth/usersFile.js';
import { type ServeChild, startServeChild } from './helpers/cliProcess.js';
import { canMountHung, isMounted, mountHung } from './helpers/hungMount.js';
import { delay, until } from './helpers/waits.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

describe.skipIf(!canMountHung)("a SIGHUP's home check over a hung mount", () => {
  it('is not waited for past its bound, and no second one starts while it hangs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'muxftp-hung-home-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    await mkdir(join(root, 'alice'));
    await mkdir(join(root, 'bob'));
    const passwordHash = await hashPassword('pw');
    let users = emptyUsersFile();
    for (const name of ['alice', 'bob'])
      users = addUser(users, { name, home: name, passwordHash, permissions: ['list'] });
    const accounts = new Accounts({ users });
    const hung = await mountHung(join(root, 'bob'));
    cleanup.push(() => hung.remove());
    const check = boundedHomeWarnings(300);
    const startedAt = Date.now();
    // Before: never settled (the test's own timeout).
    expect(await check(accounts, root)).toEqual([
      `the homes' check has not finished in 0.3 s (a hung mount under ${root}?): not waited for`,
    ]);
    expect(Date.now() - startedAt).toBeLessThan(3000);
    expect(await check(accounts, root)).toEqual([
      `homes not checked: the check of an earlier SIGHUP has not finished (a hung mount under ${root}?)`,
    ]);
    // The mount's daemon gone (its stdin closed, as when this process dies, a failed or timed-out
    // test's worker killed): it unmounts as it goes; a stale mount was left in the temp dir, where
    // rm -r and any walk of it failed ENOTCONN. The hung stat fails and the next check runs again.
    await hung.leave();
    expect(isMounted(join(root, 'bob'))).toBe(false);
    for (let i = 0; i < 100; i++) {
      const warnings = await check(accounts, root);
      if (!warnings[0]?.startsWith('homes not checked')) {
        expect(warnings).toEqual([]);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('the hung check never settled after the unmount');
  });
});

/**
 * `serve` stopped while a SIGHUP's home check hangs in a threadpool thread: the call held the
 * loop, and the process logged `stopped` and never exited; a second signal's process.exit waited
 * for that thread too (libuv joins its threads at exit): only SIGKILL ended it.
 */
describe.skipIf(!canMountHung)('serve stopped with a home check hung on a mount', () => {
  async function serveOverHungHome(): Promise<{ serve: ServeChild; root: string }> {
    const root = await mkdtemp(join(tmpdir(), 'muxftp-hung-stop-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    await mkdir(join(root, 'alice'));
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      home: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: ['list'],
    });
    const etc = await mkdtemp(join(tmpdir(), 'muxftp-hung-stop-etc-'));
    cleanup.push(() => rm(etc, { recursive: true, force: true }));
    const usersFile = join(etc, 'users.json');
    await writeFile(usersFile, `${JSON.stringify(users)}\n`, { mode: 0o600 });
    const children = new Set<ChildProcess>();
    const serve = await startServeChild(['--root', root, '--users', usersFile], children);
    // Should it go on (the bug), SIGKILL: a SIGTERM would not end it.
    cleanup.push(async () => {
      const { child } = serve;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await serve.exited;
      }
    });
    // Mounted once it listens: its start-up's check of the homes runs on the loop.
    const hung = await mountHung(join(root, 'alice'));
    cleanup.push(() => hung.remove());
    serve.child.kill('SIGHUP');
    return { serve, root };
  }

  /** How the child ended, or 'running' if it has not within `ms`. */
  async function endedWithin(serve: ServeChild, ms: number): Promise<string> {
    const ended = serve.exited.then(() => `${serve.child.exitCode ?? serve.child.signalCode}`);
    return Promise.race([ended, delay(ms).then(() => 'running')]);
  }

  it('ends by its stop signal once its calls have hung past the wait, and says so', async () => {
    const { serve, root } = await serveOverHungHome();
    await until(async () => serve.stderr().includes('not waited for'), "the homes' check given up", {
      everyMs: 50,
      timeoutMs: 15_000,
    });
    serve.child.kill('SIGTERM');
    // Before: `stopped`, and the process went on for ever.
    expect(await endedWithin(serve, 8_000), serve.stderr()).toBe('SIGTERM');
    expect(serve.stderr()).toMatch(/\bstopped\n/);
    expect(serve.stderr()).toContain(
      `stopped, but 1 filesystem call has not returned in 2 s (a hung mount under ${root}?): ending by SIGTERM without it`,
    );
    // Its lock was released first (a listing of the root does not enter the mount).
    expect(await readdir(root)).not.toContain('.muxftp-serve.lock');
  }, 30_000);

  it('a second signal ends it at once', async () => {
    const { serve } = await serveOverHungHome();
    // The stop waits for the reload, which waits for the check (up to 10 s): the second signal
    // then exits at once, as README says; its process.exit waited for the hung thread for ever.
    await delay(300);
    serve.child.kill('SIGTERM');
    await until(async () => serve.stderr().includes('shutting down'), 'the stop', { everyMs: 20 });
    serve.child.kill('SIGINT');
    expect(await endedWithin(serve, 5_000), serve.stderr()).toBe('SIGINT');
  }, 20_000);
});
