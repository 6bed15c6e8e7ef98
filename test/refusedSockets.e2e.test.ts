/**
 * A refused socket is left open briefly so its peer can read the one ERROR; peers that never
 * close must not turn that into a way to hold the server's descriptors (ulimit -n 1024 was all
 * taken by one host refused by --max-connections-per-ip).
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { canCountDescriptors, openDescriptors } from './helpers/openDescriptors.js';
import { RawPeer } from './helpers/rawPeer.js';
import { makeTestCerts, opensslAvailable } from './helpers/testCerts.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const sockets: Socket[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  for (const socket of sockets.splice(0)) socket.destroy();
  await server?.stop();
  server = undefined;
});

describe.skipIf(!canCountDescriptors)('refused sockets', () => {
  it('are kept open for their ERROR at most maxLingeringRefusals at once, however many peers never close', async () => {
    server = await startServer({ maxConnectionsPerIp: 1 });
    const holder = await RawPeer.open(server.port);
    const before = openDescriptors();
    const count = 200;
    const refused = () => server!.server.counters.refused.get('max_connections_per_ip') ?? 0;
    for (let i = 0; i < count; i++) {
      const socket = connect({ host: '127.0.0.1', port: server.port });
      socket.on('error', () => {});
      socket.pause(); // reads nothing, closes nothing
      sockets.push(socket);
    }
    for (let i = 0; i < 500 && refused() < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refused()).toBe(count);
    // This process holds both ends: the peers' 200, and the server's sockets still open.
    const serverSide = openDescriptors() - before - count;
    expect(serverSide).toBeLessThanOrEqual(DEFAULTS.maxLingeringRefusals + 4);
    // The first ones were still told why.
    const first = sockets[0]!;
    const answer = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      first.on('data', (c: Buffer) => chunks.push(c));
      first.once('end', () => resolve(Buffer.concat(chunks)));
      first.resume();
    });
    expect(answer.toString()).toContain('SERVER_BUSY');
    holder.destroy();
  });

  // Before: close() resolved with them open, and they (the process with them) lived on for their
  // linger: 2 s, or 2 s more with TLS, whose refusal waits for a first byte (a port scanner's).
  for (const tls of [false, true]) {
    it.skipIf(tls && !opensslAvailable)(
      `are closed by the server's close(), not left to outlive it${tls ? ' (TLS)' : ''}`,
      async () => {
        const certs = tls ? await makeTestCerts() : undefined;
        if (certs !== undefined) cleanups.push(() => certs.remove());
        server = await startServer({
          maxConnectionsPerIp: 1,
          ...(certs !== undefined ? { tls: { cert: certs.cert, key: certs.key } } : {}),
        });
        const holder = await server.connect(certs !== undefined ? { tls: { ca: certs.ca } } : {});
        const refused = () => server!.server.counters.refused.get('max_connections_per_ip') ?? 0;
        const before = openDescriptors();
        const count = 8;
        for (let i = 0; i < count; i++) {
          const socket = connect({ host: '127.0.0.1', port: server.port });
          socket.on('error', () => {});
          socket.pause(); // reads nothing, sends nothing, closes nothing
          sockets.push(socket);
        }
        for (let i = 0; i < 500 && refused() < count; i++)
          await new Promise((resolve) => setTimeout(resolve, 10));
        expect(refused()).toBe(count);
        expect(openDescriptors() - before).toBe(2 * count); // both ends of each
        await server.server.close();
        // Well within the 2 s linger: the server's ends are closed (the peers' 8 remain).
        for (let i = 0; i < 50 && openDescriptors() - before > count; i++)
          await new Promise((resolve) => setTimeout(resolve, 10));
        expect(openDescriptors() - before).toBeLessThanOrEqual(count);
        await holder.closed;
      },
    );
  }
});
