/**
 * A SIGHUP's check of the homes (boundedHomeWarnings) over a home under a hung mount: its stat
 * never returns, and the reload, every later SIGHUP and serve's stop waited on it for ever. Now
 * it gives up waiting after its bound, and starts no second check while the first still hangs.
 * A real hung FUSE mount (test/helpers/hungMount.ts): root only, skipped elsewhere.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { boundedHomeWarnings } from '../cli/serverAccess.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile } from '../server/auth/usersFile.js';
import { canMountHung, isMounted, mountHung } from './helpers/hungMount.js';

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
