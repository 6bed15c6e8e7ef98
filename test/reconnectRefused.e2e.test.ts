/**
 * A reconnect the server refused (a login): a transfer that comes to its retry after that (one that
 * waited on a busy server meanwhile) must not log in once more, which sends the wrong password
 * again towards the server's refusal of this address. Real sockets, the memory server.
 */
import { afterEach, expect, it } from 'vitest';
import type { ConnectTarget } from '../cli/connect.js';
import { ReconnectingClient } from '../cli/reconnect.js';
import { MuxftpError } from '../shared/errors.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

it('a reconnect refused is not tried again by a later retry', async () => {
  server = await startServer();
  const target: ConnectTarget = {
    server: { host: '127.0.0.1', port: server.port },
    access: {},
    busy: undefined,
  } as ConnectTarget;
  const first = await server.connect();
  const connection = new ReconnectingClient(target, first);
  const refused = new MuxftpError('LOGIN_FAILED', 'login failed');
  connection.markGone(refused);
  // The server would take a new connection: only the refusal remembered stops it.
  await expect(connection.replace(first, 0)).rejects.toBe(refused);
  expect(server.server.connectionFigures().length).toBe(1);
  // A connection lost (the server away, not refusing) is still reconnected.
  const again = new ReconnectingClient(target, first);
  again.markGone(new MuxftpError('CONNECTION_LOST', 'connection closed'));
  const fresh = await again.replace(first, 0);
  expect(fresh).not.toBe(first);
  await fresh.close();
});
