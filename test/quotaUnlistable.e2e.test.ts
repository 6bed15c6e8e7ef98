/**
 * The quota's recount walks the home; a directory it cannot list (a tree moved deeper than a
 * path may go, or one the server may not read) hides its files from that walk. Such a walk
 * counts less than is there: it must not lower the running count, or a user who hides files so,
 * waits for the recount and uploads again stores past the quota. Real sockets, real files.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { DEFAULTS } from '../shared/defaults.js';
import { codeOf } from './helpers/codeOf.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

const LIMIT = 10_000;
let users: UsersFile;
beforeAll(async () => {
  users = addUser(emptyUsersFile(), {
    name: 'q',
    passwordHash: await hashPassword('q-secret'),
    permissions: [...PERMISSIONS],
    quota: LIMIT,
  });
});

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('quota: a recount that cannot list a directory', () => {
  it('does not forget the files under it', async () => {
    env = await startServer({
      backend: 'disk',
      accounts: new Accounts({ users }),
      quotaRecountIntervalMs: 100,
    });
    const q = await env.connect({ user: 'q', password: 'q-secret' });
    // A file as deep as a path may go, then its tree moved two levels down: its directory is now
    // deeper than any path a listing takes.
    const dirs = Array.from({ length: DEFAULTS.maxPathDepth - 1 }, () => 'd').join('/');
    await q.mkdir(dirs, { parents: true });
    await q.put(`${dirs}/f.bin`, Buffer.alloc(8_000, 1));
    await q.mkdir('x/y', { parents: true });
    await q.rename('d', 'x/y/d');
    await delay(200); // the next upload walks the home again
    // 8,000 stored + 8,000 > 10,000. Before: the walk counted 0 and took it.
    expect(await codeOf(q.put('g.bin', Buffer.alloc(8_000, 2)))).toBe('QUOTA_EXCEEDED');
    await q.close();
  });
});
