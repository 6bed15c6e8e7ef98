/**
 * The per-address refusal of failed logins holds for connections that were already open when it
 * began: an attacker who opens many connections first must not keep guessing on them.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let users: UsersFile;
beforeAll(async () => {
  users = addUser(emptyUsersFile(), {
    name: 'alice',
    passwordHash: await hashPassword('alice-secret'),
    permissions: [...PERMISSIONS],
  });
});

let server: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  await server?.stop();
  server = undefined;
});

describe('a login refusal in force', () => {
  it('also stops attempts on connections opened before it began, the right password included', async () => {
    server = await startServer({
      accounts: new Accounts({ users }),
      loginFailureDelayMs: 1,
      maxLoginFailureDelayMs: 1,
      loginFailuresPerAddress: 3,
      loginBlockMs: 60_000,
    });
    const early = await RawPeer.open(server.port);
    const failing = await RawPeer.open(server.port);
    peers.push(early, failing);
    for (let attempt = 1; attempt <= 3; attempt++) {
      failing.write(encodeAuth({ user: 'alice', password: `wrong${attempt}` }));
      if (attempt < 3) {
        await failing.waitFor(
          (f) =>
            f.type === FrameType.AUTH &&
            failing.frames.filter((g) => g.type === FrameType.AUTH).length === attempt,
        );
      }
    }
    expect((await failing.connectionError()).code).toBe('LOGIN_FAILED');
    // The address is now refused: a new connection is turned away before it is read...
    const late = await RawPeer.connect(server.port);
    peers.push(late);
    expect((await late.connectionError()).code).toBe('TEMPORARILY_REFUSED');
    // ...and so is a login on the connection opened before, even with the right password.
    early.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    const error = await early.connectionError();
    expect(error.code).toBe('TEMPORARILY_REFUSED');
    expect(error.message).toMatch(/too many failed logins/);
    expect(early.frames.some((f) => f.type === FrameType.AUTH)).toBe(false);
    await early.closed;
  });
});
