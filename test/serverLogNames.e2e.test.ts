/**
 * What clients choose reaches the server's log (paths, user names, their ERROR messages): a C0 or
 * C1 control character in it could break a line or drive the terminal showing the log, a bidi
 * control reorder how the line reads (a line that seems to name another file). Each is shown as
 * '?', as the CLI shows names (shared/printable.ts). A path or user name with a space or a quote
 * is quoted (`renamed "a to b" to c`), so a line reads one way only; plain names stay bare.
 * Real server on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { printable, printableName } from '../shared/printable.js';
import { FrameType } from '../shared/protocol/constants.js';
import {
  encodeAuth,
  encodeData,
  encodeEnd,
  encodeError,
  encodeOpen,
  encodeWindow,
} from '../shared/protocol/encoder.js';
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

/** The log of a server (one user, alice) after one failed login as `user`. */
async function logOfFailedLogin(user: string): Promise<string> {
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
  peer.write(encodeAuth({ user, password: 'guess' }));
  await peer.waitFor((f) => f.type === FrameType.AUTH);
  return server.logs.join('\n');
}

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
    const log = await logOfFailedLogin('root\u202e\u0085x');
    // No whitespace or quote once shown: bare, as a plain name is (printableName).
    expect(log).toContain('failed login as root??x (');
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

/** The log's first line matching `pattern`, waited for (a raw peer's streams end on their own time). */
async function logLine(pattern: RegExp): Promise<string> {
  for (let i = 0; i < 250; i++) {
    const line = server!.logs.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no log line like ${pattern}; the log:\n${server!.logs.join('\n')}`);
}

const LABEL = /^conn#\d+ 127\.0\.0\.1:\d+ /;

describe('names with spaces or quotes in the server log', () => {
  it('are quoted in change and transfer lines, so a rename reads one way only', async () => {
    server = await startServer();
    const client = await server.connect();
    await client.put('a to b', Buffer.from('1'));
    await client.put('a', Buffer.from('2'));
    await client.put(`it's "x".txt`, Buffer.from('3'));
    await client.mkdir('my docs');
    await client.rename('a to b', 'c');
    await client.rename('a', 'my docs/b to c');
    await client.delete(`it's "x".txt`);
    await client.getBuffer('c');
    const label = LABEL.exec(server.logs.find((l) => l.includes(' received '))!)![0];
    const lines = server.logs.map((l) => (l.startsWith(label) ? l.slice(label.length) : l));
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^received "a to b" 1 B in /),
        expect.stringMatching(/^received a 1 B in /),
        expect.stringMatching(/^received "it's \\"x\\".txt" 1 B in /),
        'made directory "my docs"',
        'renamed "a to b" to c',
        'renamed a to "my docs/b to c"',
        'deleted "it\'s \\"x\\".txt"',
        expect.stringMatching(/^sent c 1 B in /),
      ]),
    );
  });

  it('are quoted in a refused request, a cut upload and a continued download', async () => {
    server = await startServer();
    const client = await server.connect();
    const content = Buffer.alloc(INTEGRITY_BLOCK_BYTES + 10, 7);
    await client.put('big file.bin', content);
    await expect(client.rename('big file.bin', '../out side')).rejects.toMatchObject({
      code: 'INVALID_PATH',
    });
    expect(await logLine(/ refused: /)).toMatch(
      new RegExp(
        `${LABEL.source}stream \\d+: rename "big file\\.bin" to "\\.\\./out side" refused: .*\\(INVALID_PATH\\)$`,
      ),
    );

    const uploader = await RawPeer.open(server.port);
    peers.push(uploader);
    uploader.write(encodeOpen(1, { op: 'put', path: 'half done.bin', size: 1024 }));
    await uploader.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    uploader.write(encodeData(1, Buffer.alloc(100, 1)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    uploader.destroy();
    expect(await logLine(/ upload of /)).toMatch(
      new RegExp(`${LABEL.source}upload of "half done\\.bin" cut after 100 of 1024 B \\(CONNECTION_LOST\\)$`),
    );

    // An upload whose END names other content: rejected, and said so.
    const rejected = await RawPeer.open(server.port);
    peers.push(rejected);
    rejected.write(encodeOpen(1, { op: 'put', path: 'bad sum.bin', size: 4 }));
    await rejected.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    rejected.write(encodeData(1, Buffer.from('abcd')));
    rejected.write(encodeEnd(1, 4, 'xxh128', Buffer.alloc(16)));
    expect(await logLine(/ rejected /)).toMatch(
      new RegExp(`${LABEL.source}rejected "bad sum\\.bin": xxh128 digest mismatch$`),
    );
    // One that sends more than it declared is failed as it does, before any END: said too (no line did).
    rejected.write(encodeOpen(3, { op: 'put', path: 'too long.bin', size: 4 }));
    await rejected.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 3);
    rejected.write(encodeData(3, Buffer.from('abcdef')));
    expect(await logLine(/ rejected "too long/)).toMatch(
      new RegExp(`${LABEL.source}rejected "too long\\.bin": larger than its declared size of 4$`),
    );

    // A get continued past the first block: its line gives the whole size and where it went on.
    const downloader = await RawPeer.open(server.port);
    peers.push(downloader);
    downloader.write(encodeOpen(1, { op: 'get', path: 'big file.bin', offset: INTEGRITY_BLOCK_BYTES }));
    downloader.write(encodeWindow(1, 1024));
    expect(await logLine(/ continued from /)).toMatch(
      new RegExp(
        `${LABEL.source}sent "big file\\.bin" ${content.length} B, continued from ${INTEGRITY_BLOCK_BYTES} B: 10 B in `,
      ),
    );
  });

  it('quote a user name with a space that fails to log in', async () => {
    const log = await logOfFailedLogin('alice (admin)');
    expect(log).toMatch(/ failed login as "alice \(admin\)" \(\d+ attempts left\)/);
  });
});

describe('printableName', () => {
  it('leaves a plain name bare', () => {
    for (const name of ['photos/2024/a.jpg', 'a', 'ünïcödé/日本.txt', 'a?b', '😀'])
      expect(printableName(name)).toBe(name);
  });

  it('quotes an empty name, and one with whitespace, a quote or a backslash, escaping as JSON does', () => {
    expect(printableName('')).toBe('""');
    expect(printableName('a to b')).toBe('"a to b"');
    expect(printableName(' lead')).toBe('" lead"');
    expect(printableName('trail ')).toBe('"trail "');
    expect(printableName('a\u00a0b')).toBe('"a\u00a0b"');
    expect(printableName("it's")).toBe(`"it's"`);
    expect(printableName('say "hi"')).toBe('"say \\"hi\\""');
    expect(printableName('a\\b')).toBe('"a\\\\b"');
  });

  it('shows control and bidi characters as ? first, and escapes a lone surrogate', () => {
    expect(printableName('a\u202eb')).toBe('a?b');
    expect(printableName('a\nb c')).toBe('"a?b c"');
    expect(printableName('x\ud800')).toBe('"x\\ud800"');
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
