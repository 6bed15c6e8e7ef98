/**
 * A flood of refused connections writes a bounded number of log lines: the first refusal of a
 * kind, then one line per interval (refusalLogIntervalMs) counting the others, and what is
 * counted and not yet told when the server closes.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RawPeer } from './helpers/rawPeer.js';
import { makeTestCerts, opensslAvailable } from './helpers/testCerts.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

let server: TestServer | undefined;
const sockets: Socket[] = [];
const peers: RawPeer[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const peer of peers.splice(0)) peer.destroy();
  await server?.stop();
  server = undefined;
});

const refusalLines = (s: TestServer) => s.logs.filter((line) => line.startsWith('refused '));
const perIpRefusals = (s: TestServer) => s.server.counters.refused.get('max_connections_per_ip') ?? 0;

/** Opens `count` sockets the server refuses, and waits until it has refused them all. */
async function refuseMany(s: TestServer, count: number): Promise<void> {
  const before = perIpRefusals(s);
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: '127.0.0.1', port: s.port });
    socket.on('error', () => {});
    sockets.push(socket);
  }
  for (let i = 0; i < 1_000 && perIpRefusals(s) < before + count; i++) await delay(10);
  expect(perIpRefusals(s)).toBe(before + count);
}

describe('refused connections in the log', () => {
  it('get one line for the first, and one counting the rest when the server closes', async () => {
    server = await startServer({ maxConnectionsPerIp: 1 });
    const holder = await RawPeer.open(server.port);
    peers.push(holder);
    await refuseMany(server, 150);
    const lines = refusalLines(server);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^refused 127\.0\.0\.1:\d+: server busy: at most 1 connection from one address$/,
    );
    await server.server.close(0);
    expect(refusalLines(server).slice(1)).toEqual([
      expect.stringMatching(
        /^refused 149 more connections \(server busy: at most 1 connection from one address\) in the last \d+ s$/,
      ),
    ]);
  });

  it('get a line per interval while they go on, and a line of their own again after a quiet interval', async () => {
    const intervalMs = 300;
    server = await startServer({ maxConnectionsPerIp: 1, refusalLogIntervalMs: intervalMs });
    const holder = await RawPeer.open(server.port);
    peers.push(holder);
    await refuseMany(server, 40);
    for (let i = 0; i < 500 && refusalLines(server).length < 2; i++) await delay(10);
    const [first, counted, ...more] = refusalLines(server);
    expect(first).toMatch(/^refused 127\.0\.0\.1:\d+: /);
    // However slow the box, each refusal is in exactly one line.
    const told = (line: string | undefined) => Number(/^refused (\d+) more/.exec(line ?? '')?.[1] ?? 0);
    expect(told(counted) + more.reduce((sum, line) => sum + told(line), 0)).toBe(39);
    // The summary's timer ran, and the one after it found nothing to tell: the kind is quiet again.
    await delay(5 * intervalMs);
    const linesBefore = refusalLines(server).length;
    await refuseMany(server, 1);
    expect(refusalLines(server).slice(linesBefore)).toEqual([
      expect.stringMatching(/^refused 127\.0\.0\.1:\d+: server busy/),
    ]);
  });

  it('with refusalLogIntervalMs 0, gets a line each', async () => {
    server = await startServer({ maxConnectionsPerIp: 1, refusalLogIntervalMs: 0 });
    peers.push(await RawPeer.open(server.port));
    await refuseMany(server, 20);
    expect(refusalLines(server)).toHaveLength(20);
  });

  it.skipIf(!opensslAvailable)('failed TLS handshakes: one line for the first, then a count', async () => {
    const certs = await makeTestCerts();
    try {
      server = await startServer({ tls: { cert: certs.cert, key: certs.key } });
      // A TLS handshake record's first byte (what the server's sniffing takes for TLS), then a
      // length no record may have: OpenSSL fails the handshake on the header alone.
      const garbage = Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 0]);
      const closed = Array.from({ length: 30 }, () => {
        const socket = connect({ host: '127.0.0.1', port: server!.port }, () => socket.write(garbage));
        socket.on('error', () => {});
        socket.resume(); // read the server's alert and its close
        sockets.push(socket);
        return new Promise((resolve) => socket.once('close', resolve));
      });
      await Promise.all(closed);
      const failures = () => server!.logs.filter((line) => /TLS handshake failed/.test(line));
      expect(failures()).toHaveLength(1);
      expect(failures()[0]).toMatch(/^127\.0\.0\.1:\d+ TLS handshake failed: /);
      await server.server.close(0);
      expect(failures().slice(1)).toEqual([
        expect.stringMatching(/^refused 29 more connections \(TLS handshake failed\) in the last \d+ s$/),
      ]);
    } finally {
      await certs.remove();
    }
  });
});
