/**
 * What clients choose reaches the server's log (paths, user names, their ERROR messages): a C0 or
 * C1 control character in it could break a line or drive the terminal showing the log, a bidi
 * control reorder how the line reads (a line that seems to name another file). Each is shown as
 * '?', as the CLI shows names (shared/printable.ts). Real server on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { printable } from '../shared/printable.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeError } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  server = await stopServerAndPeers(server, peers);
});

/** C1 (NEL, CSI), then each kind of bidi control: none may reach a log line. */
const UNSAFE = [
  '\u0085',
  '\u009b',
  '\u061c',
  '\u200e',
  '\u200f',
  '\u2028',
  '\u202a',
  '\u202e',
  '\u2066',
  '\u2069',
];
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const UNSAFE_IN_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

describe('names from clients in the server log', () => {
  it('show C1 and bidi controls as ?: an uploaded path', async () => {
    server = await startServer();
    const client = await server.connect();
    const name = `report${UNSAFE.join('')}fdp.exe`;
    await client.put(name, Buffer.from('x'));
    const received = server.logs.filter((line) => line.includes(' received '));
    expect(received).toHaveLength(1);
    expect(received[0]).toContain(`received report${'?'.repeat(UNSAFE.length)}fdp.exe 1 B`);
    expect(server.logs.join('\n')).not.toMatch(UNSAFE_IN_LINE);
  });

  it('a user name that fails to log in', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    server = await startServer({
      accounts: new Accounts({ users }),
      loginFailureDelayMs: 1,
      maxLoginFailureDelayMs: 1,
    });
    const peer = await RawPeer.open(server.port);
    peers.push(peer);
    peer.write(encodeAuth({ user: `root\u202e\u0085x`, password: 'guess' }));
    await peer.waitFor((f) => f.type === FrameType.AUTH);
    const log = server.logs.join('\n');
    expect(log).toContain('failed login as "root??x"');
    expect(log).not.toMatch(UNSAFE_IN_LINE);
  });

  it('a C0 escape and C1 CSI in the message of a client ERROR', async () => {
    server = await startServer();
    const peer = await RawPeer.open(server.port);
    peers.push(peer);
    peer.write(
      encodeError(0, { status: 100, code: 'PROTOCOL_ERROR', message: 'bye\u001b[2J\u009b31m\u2067' }),
    );
    await peer.closed;
    for (let i = 0; i < 200 && !server.logs.some((l) => l.includes('client error')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const log = server.logs.join('\n');
    expect(log).toContain('client error PROTOCOL_ERROR: bye?[2J?31m?');
    expect(log).not.toMatch(UNSAFE_IN_LINE);
  });
});

describe('printable', () => {
  it('replaces C0, DEL, C1 and the bidi controls, and nothing else', () => {
    expect(printable(`a\u0000b\u001fc\u007fd${UNSAFE.join('')}e`)).toBe(
      `a?b?c?d${'?'.repeat(UNSAFE.length)}e`,
    );
    const fine = 'ünïcödé שלום مرحبا \u00a0\u200d\u2030 日本';
    expect(printable(fine)).toBe(fine);
  });
});
