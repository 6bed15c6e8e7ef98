/**
 * TLS end to end with a CA generated for the test: round trips, certificate checks, the
 * password rule, and plain-vs-TLS mismatches in both directions failing fast and clearly.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { makeTestCerts, opensslAvailable, type TestCerts } from './helpers/testCerts.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

let certs: TestCerts;
let server: TestServer | undefined;

beforeAll(async () => {
  if (opensslAvailable) certs = await makeTestCerts();
});
afterAll(async () => {
  await certs?.remove();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function failure(
  promise: Promise<unknown>,
): Promise<{ code: string; message: string; setting: string | undefined; ms: number }> {
  const started = performance.now();
  try {
    await promise;
  } catch (error) {
    const { code, message, setting } = error as { code: string; message: string; setting?: string };
    return { code, message, setting, ms: performance.now() - started };
  }
  throw new Error('expected a failure');
}

/** A disk server taking TLS and plain connections, with one user: alice, password alice-secret. */
async function startTlsServerForAlice(): Promise<TestServer> {
  const users = addUser(emptyUsersFile(), {
    name: 'alice',
    passwordHash: await hashPassword('alice-secret'),
    permissions: [...PERMISSIONS],
  });
  return await startServer({
    backend: 'disk',
    tls: { cert: certs.cert, key: certs.key },
    accounts: new Accounts({ users }),
  });
}

describe.skipIf(!opensslAvailable)('TLS', () => {
  it('moves files both ways over TLS, verified against the test CA', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    const client = await server.connect({ tls: { ca: certs.ca } });
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    await client.put('big.bin', payload);
    expect((await client.getBuffer('big.bin')).equals(payload)).toBe(true);
    expect(server.logs.some((line) => /conn#\d+ 127\.0\.0\.1:\d+ tls/.test(line))).toBe(true);
  });

  it('serves plain and TLS clients on the same port unless --tls-only', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    const plain = await server.connect();
    const secure = await server.connect({ tls: { ca: certs.ca } });
    await plain.put('p.txt', Buffer.from('plain'));
    expect((await secure.getBuffer('p.txt')).toString()).toBe('plain');
  });

  it('refuses a TLS client past a connection limit over TLS, so it hears why (busy), and a plain one in plain', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key }, maxConnectionsPerIp: 1 });
    const first = await server.connect({ tls: { ca: certs.ca } });
    // Before: "the server does not seem to speak TLS (drop --tls?)", and the CLI never waited.
    const secure = await failure(server.connect({ tls: { ca: certs.ca } }));
    expect(secure).toMatchObject({ code: 'SERVER_BUSY' });
    expect(secure.message).toContain('at most 1 connection from one address');
    const plain = await failure(server.connect());
    expect(plain).toMatchObject({ code: 'SERVER_BUSY' });
    await first.close();
  });

  it('refuses a server certificate the client does not trust, unless told to accept any', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    const untrusted = await failure(server.connect({ tls: true }));
    expect(untrusted.code).toBe('CONNECT_FAILED');
    // What is wrong, and which setting would help; no CLI flag (the CLI adds its own: cli.access).
    expect(untrusted.message).toMatch(/not trusted \(\w+\)$/);
    expect(untrusted).toMatchObject({ setting: 'ca' });
    const insecure = await server.connect({ tls: { rejectUnauthorized: false } });
    expect(await insecure.list('')).toEqual([]);
  });

  it("logs a handshake the client closed (it did not trust the server's certificate)", async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    expect(await failure(server.connect({ tls: true }))).toMatchObject({ code: 'CONNECT_FAILED' });
    // Before: nothing in the server's log of the most common "cannot connect".
    for (const started = Date.now(); Date.now() - started < 2_000; ) {
      if (server.logs.some((line) => /TLS handshake failed: closed before it completed/.test(line))) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(server.logs.join('\n')).toMatch(
      /127\.0\.0\.1:\d+ TLS handshake failed: closed before it completed/,
    );
  });

  it('says a certificate is not signed by the CA given, rather than asking for one', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    const otherCa = await makeTestCerts();
    await otherCa.remove();
    const wrong = await failure(server.connect({ tls: { ca: otherCa.ca } }));
    expect(wrong.code).toBe('CONNECT_FAILED');
    expect(wrong.message).toMatch(/not signed by the CA given \(\w+\)$/);
    expect(wrong).toMatchObject({ setting: 'otherCa' });
    expect(wrong.message).not.toMatch(/pass its CA/);
  });

  it('says a certificate is for another name, not untrusted, when a CA would not help', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
    // Signed by the CA given, for localhost and 127.0.0.1: checked against another name.
    const other = await failure(server.connect({ tls: { ca: certs.ca, servername: 'other.example' } }));
    expect(other.code).toBe('CONNECT_FAILED');
    expect(other.message).toMatch(
      /the server's TLS certificate is not for the name or address connected to \(ERR_TLS_CERT_ALTNAME_INVALID\)/,
    );
    expect(other.message).not.toMatch(/--ca/);
  });

  it('says a certificate is not one for a server (a client certificate), not just "unsuitable certificate purpose"', async () => {
    // Signed by the CA given, for 127.0.0.1, but for clients only (extendedKeyUsage clientAuth).
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: certs.dir, stdio: 'pipe' });
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'client.key',
      '-out',
      'client.csr',
      '-subj',
      '/CN=localhost',
    );
    await writeFile(
      join(certs.dir, 'client.ext'),
      'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=clientAuth\n',
    );
    openssl(
      'x509',
      '-req',
      '-in',
      'client.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'client.pem',
      '-days',
      '2',
      '-extfile',
      'client.ext',
    );
    server = await startServer({
      tls: {
        cert: await readFile(join(certs.dir, 'client.pem')),
        key: await readFile(join(certs.dir, 'client.key')),
      },
    });
    const wrong = await failure(server.connect({ tls: { ca: certs.ca } }));
    expect(wrong.code).toBe('CONNECT_FAILED');
    expect(wrong.message).toMatch(
      /the server's TLS certificate is not one for a server, by its key usage \(INVALID_PURPOSE\)$/,
    );
  });

  // "At once" is a few ms; the alternative is the first timeout to run out. Both are set to 20 s,
  // so the bound (half of that) is far from both on any machine: a fixed 3 s bound against the
  // 8-10 s defaults left a loaded one little room.
  const slowTimeouts = { handshakeTimeoutMs: 20_000 };
  const slowConnect = { connectTimeoutMs: 20_000 };

  it('gives a plain client of a --tls-only server a clear error at once', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key }, tlsOnly: true, ...slowTimeouts });
    const error = await failure(server.connect(slowConnect));
    expect(error.code).toBe('TLS_REQUIRED');
    expect(error.message).toMatch(/TLS connections only/);
    expect(error.ms).toBeLessThan(10_000);
  });

  it("gives back a --tls-only refusal's per-address slot as soon as the plain client has gone", async () => {
    server = await startServer({
      tls: { cert: certs.cert, key: certs.key },
      tlsOnly: true,
      maxConnectionsPerIp: 2,
      ...slowTimeouts,
    });
    // Each plain client reads its TLS_REQUIRED and closes; the server held each slot until its
    // 2 s linger ended, so a TLS client right after them was refused "server busy".
    for (let i = 0; i < 2; i++)
      expect((await failure(server.connect(slowConnect))).code).toBe('TLS_REQUIRED');
    const started = performance.now();
    let secure: Client | undefined;
    while (secure === undefined) {
      try {
        secure = await server.connect({ tls: { ca: certs.ca }, ...slowConnect });
      } catch (error) {
        expect((error as { code: string }).code).toBe('SERVER_BUSY');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    // Well under the 2 s linger: the time it takes the server to read each client's FIN.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await secure.list('')).toEqual([]);
  });

  it('gives a TLS client of a plain server a clear error at once', async () => {
    server = await startServer(slowTimeouts);
    const error = await failure(server.connect({ tls: { ca: certs.ca }, ...slowConnect }));
    expect(error.code).toBe('CONNECT_FAILED');
    expect(error.message).toMatch(/does not seem to speak TLS$/);
    expect(error).toMatchObject({ setting: 'plain' });
    expect(error.ms).toBeLessThan(10_000);
  });

  it('logs in over TLS; on a plain connection the client never sends the password', async () => {
    server = await startTlsServerForAlice();
    const secure = await server.connect({ tls: { ca: certs.ca }, user: 'alice', password: 'alice-secret' });
    await secure.put('x.txt', Buffer.from('x'));
    const plain = await failure(server.connect({ user: 'alice', password: 'alice-secret' }));
    expect(plain.code).toBe('TLS_REQUIRED');
    expect(plain.message).toBe('the server takes passwords over TLS only (password not sent)');
    expect(plain).toMatchObject({ setting: 'tls' });
    // The server saw no password: one sent in plain it refuses with TLS_REQUIRED. Looked at once
    // the server has seen the plain connection go (only the TLS one left), up to 5 s.
    for (let i = 0; i < 250 && server.server.stats().connections > 1; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.server.stats().connections).toBe(1);
    expect(server.server.counters.errors.get('TLS_REQUIRED')).toBeUndefined();
  });

  it('refuses a password sent in plain to a TLS-capable server, right or wrong, and counts no failed login', async () => {
    server = await startTlsServerForAlice();
    // A peer of its own making (the library never sends it): the server's rule, not the client's.
    for (const password of ['alice-secret', 'wrong']) {
      const peer = await RawPeer.open(server.port);
      peer.write(encodeAuth({ user: 'alice', password }));
      expect(await peer.connectionError()).toMatchObject({ code: 'TLS_REQUIRED' });
      await peer.closed;
      expect(peer.frames.some((f) => f.type === FrameType.AUTH)).toBe(false);
    }
    expect(server.server.counters.errors.get('LOGIN_FAILED')).toBeUndefined();
  });

  it('lets anonymous in over a plain connection to a TLS-capable server: no password travels', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    server = await startServer({
      backend: 'disk',
      tls: { cert: certs.cert, key: certs.key },
      accounts: new Accounts({ users, anonymous: 'read' }),
    });
    await mkdir(join(server.root!, 'public'));
    await writeFile(join(server.root!, 'public', 'readme.txt'), 'welcome');
    const plain = await server.connect();
    expect((await plain.getBuffer('readme.txt')).toString()).toBe('welcome');
    expect(server.server.counters.errors.get('TLS_REQUIRED')).toBeUndefined();
  });

  it("closes a TLS-capable server's connection that never speaks within the handshake timeout", async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key }, handshakeTimeoutMs: 300 });
    const socket = connect({ host: '127.0.0.1', port: server.port });
    socket.on('error', () => {});
    socket.resume(); // read what the server sends, so its end is seen
    const started = performance.now();
    await new Promise((resolve) => socket.on('close', resolve));
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('logs a TLS handshake cut at the handshake timeout as that, not as a client that did not trust the certificate', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key }, handshakeTimeoutMs: 300 });
    // The start of a ClientHello, then nothing: a stalled link, or a peer that holds sockets open.
    const socket = connect({ host: '127.0.0.1', port: server.port });
    socket.on('error', () => {});
    socket.write(Buffer.from([0x16, 3, 1, 0, 200, 1]));
    socket.resume();
    await new Promise((resolve) => socket.on('close', resolve));
    await until(() => server!.logs.some((line) => /TLS handshake failed/.test(line)), 'the log line');
    // Before: "closed before it completed (a client that does not trust this server's certificate closes so)".
    expect(server.logs.filter((line) => /TLS handshake failed/.test(line))).toEqual([
      expect.stringMatching(/ TLS handshake failed: not completed within the handshake timeout \(0\.3 s\)$/),
    ]);
  });
});

describe.skipIf(!opensslAvailable)('a refusal made by a timer', () => {
  it('a connection refused for its silence that speaks afterwards is not then started, plain or TLS', async () => {
    server = await startServer({ tls: { cert: certs.cert, key: certs.key }, handshakeTimeoutMs: 200 });
    for (const late of [Buffer.from('late bytes, after the refusal'), Buffer.from([0x16, 3, 1, 0, 5])]) {
      // Half open: it writes on after the server's end, as a peer may.
      const socket = connect({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
      socket.on('error', () => {});
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      // The server's refusal (IDLE_TIMEOUT) and its end of the socket; ours stays open to write.
      await new Promise((resolve) => socket.once('end', resolve));
      socket.end(late);
      await new Promise((resolve) => socket.once('close', resolve));
      expect(Buffer.concat(received).toString('latin1')).toContain('no handshake in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Before: the bytes were taken for a first one, and a connection (or a handshake) started on
    // the refused socket: a connection line, or a TLS failure, in the log.
    expect(server.logs.filter((line) => /conn#|TLS handshake/.test(line))).toEqual([]);
  });
});

describe('TLS client options', () => {
  it('a client library given tls: false connects plainly', async () => {
    server = await startServer({});
    const client = await Client.connect({ host: '127.0.0.1', port: server.port, tls: false });
    expect(await client.list('')).toEqual([]);
    await client.close();
  });
});
