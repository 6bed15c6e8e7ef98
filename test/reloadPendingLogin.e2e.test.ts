/**
 * A users file read again (SIGHUP) holds for every login from then on, including a login on a
 * connection accepted before the reload (README: "new logins see the users as the file now has
 * them"): a user removed, or a password replaced after a leak, no longer logs in.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import {
  addUser,
  emptyUsersFile,
  PERMISSIONS,
  removeUser,
  type UsersFile,
} from '../server/auth/usersFile.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth } from '../shared/protocol/encoder.js';
import { parseAuthResult } from '../shared/protocol/messages.js';
import { RawPeer } from './helpers/rawPeer.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let users: UsersFile;
beforeAll(async () => {
  users = addUser(emptyUsersFile(), {
    name: 'alice',
    passwordHash: await hashPassword('old-secret'),
    permissions: [...PERMISSIONS],
  });
});

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('a login after the users file is read again', () => {
  it('on a connection accepted before: a removed user is refused', async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }), loginFailureDelayMs: 10 });
    const peer = await RawPeer.open(env.port);
    env.server.replaceAccounts(new Accounts({ users: removeUser(users, 'alice') }));
    peer.write(encodeAuth({ user: 'alice', password: 'old-secret' }));
    const answer = parseAuthResult(await peer.waitFor((f) => f.type === FrameType.AUTH));
    expect(answer.ok).toBe(false);
    peer.destroy();
  });

  it('on a connection accepted before: a replaced password is refused', async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }), loginFailureDelayMs: 10 });
    const peer = await RawPeer.open(env.port);
    const rotated = addUser(
      users,
      { name: 'alice', passwordHash: await hashPassword('new-secret'), permissions: [...PERMISSIONS] },
      { replace: true },
    );
    env.server.replaceAccounts(new Accounts({ users: rotated }));
    peer.write(encodeAuth({ user: 'alice', password: 'old-secret' }));
    const answer = parseAuthResult(await peer.waitFor((f) => f.type === FrameType.AUTH));
    expect(answer.ok).toBe(false);
    peer.destroy();
  });

  it('waiting for its turn to be checked: the check uses the users as they are then', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    class HeldAccounts extends Accounts {
      override async verify(name: string, password: string) {
        await held;
        return super.verify(name, password);
      }
    }
    env = await startServer({
      backend: 'disk',
      accounts: new HeldAccounts({ users }),
      maxConcurrentLoginChecks: 1,
      loginFailureDelayMs: 10,
    });
    const first = await RawPeer.open(env.port);
    first.write(encodeAuth({ user: 'nobody', password: 'x' })); // holds the one check slot
    const peer = await RawPeer.open(env.port);
    peer.write(encodeAuth({ user: 'alice', password: 'old-secret' }));
    while (env.server.loginChecksWaiting < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    env.server.replaceAccounts(new Accounts({ users: removeUser(users, 'alice') }));
    release();
    const answer = parseAuthResult(await peer.waitFor((f) => f.type === FrameType.AUTH));
    expect(answer.ok).toBe(false);
    first.destroy();
    peer.destroy();
  });
});
