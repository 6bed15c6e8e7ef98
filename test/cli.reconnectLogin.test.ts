/**
 * A reconnect the server refuses the login of (the password changed on it while a command ran,
 * a server brought back with another users file): nothing retrying sends the password again,
 * since each wrong one counts towards the server's refusal of the address. Real sockets, the
 * built CLI, a proxy that drops the first connection and gives every later one a wrong password.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy, withJson } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
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
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-reconnect-login-');
afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

describe('a reconnect refused its login while a tree is listed', () => {
  it('is tried once, said once: the listings it ends are given up in one line', async () => {
    server = await startServer({
      backend: 'disk',
      accounts: new Accounts({ users }),
      loginFailureDelayMs: 1,
      maxLoginFailureDelayMs: 1,
    });
    // More than DEFAULTS.planningRequests (64): some wait for their turn as the login is refused.
    for (let i = 0; i < 100; i++) {
      const sub = join(server.root!, 'alice', 'srv', `d${String(i).padStart(3, '0')}`);
      await mkdir(sub, { recursive: true });
      await writeFile(join(sub, 'f'), 'f');
    }
    let connections = 0;
    let logins = 0;
    let dropped = false;
    proxy = await startFrameProxy(server.port, {
      fromClient: (frame) => {
        if (frame.type === FrameType.HELLO) connections++;
        if (frame.type === FrameType.AUTH && connections > 1) {
          logins++;
          return withJson(frame, { ...jsonOf(frame), password: 'changed-meanwhile' });
        }
        // The first listing below the top: the others are asked with it, side by side.
        if (
          !dropped &&
          frame.type === FrameType.OPEN &&
          jsonOf(frame).op === 'list' &&
          jsonOf(frame).path !== 'srv'
        ) {
          dropped = true;
          throw new Error('dropped');
        }
        return frame;
      },
    });
    const result = await runCli(
      ['--server', `127.0.0.1:${proxy.port}`, '--user', 'alice', 'get', '-r', 'srv', 'out', '--retries', '3'],
      await tempDirs.make(),
      { env: { MUXFTP_PASSWORD: 'alice-secret' } },
    );
    const refused = `cannot log in to 127.0.0.1:${proxy.port} as alice: login failed (LOGIN_FAILED)`;
    // Before: the listings that waited for their turn each reconnected, a wrong password each.
    expect(logins).toBe(1);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines).toEqual([
      expect.stringMatching(/^muxftp: get: .*; \d+ requests retry 1\/3 in \d\.\d s$/),
      `muxftp: get srv/d000: ${refused}`,
      // Not "the server still away": it answered, and refused.
      `muxftp: get: 99 directories not listed, the reconnect refused: ${refused}`,
      // Every file failed before a transfer: the run still ends with its summary (b758667).
      expect.stringMatching(/^muxftp: 0 files \(0 B\), 100 directories failed in \d+(\.\d+)? m?s /),
    ]);
    expect(result.code).toBe(3);
  });
});
