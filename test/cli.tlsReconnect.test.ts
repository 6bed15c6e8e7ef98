/**
 * A transfer's reconnect over TLS that meets a server certificate the client refuses (another CA's,
 * one expired since, one for another name): trying again meets the same certificate, so it is
 * not tried again under --retries. Real sockets, the built CLI, two TLS servers behind a TCP
 * relay: the first connection goes to one the client trusts and is cut mid-transfer, the later
 * ones to one whose certificate another CA signed.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { makeTestCerts, opensslAvailable, type TestCerts } from './helpers/testCerts.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let trusted: TestCerts;
let otherCa: TestCerts;
beforeAll(async () => {
  if (!opensslAvailable) return;
  trusted = await makeTestCerts();
  otherCa = await makeTestCerts();
});
afterAll(async () => {
  await trusted?.remove();
  await otherCa?.remove();
});

const servers: TestServer[] = [];
let relay: Server | undefined;
const sockets = new Set<Socket>();
const tempDirs = new TempDirs('muxftp-tls-reconnect-');
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await new Promise((resolve) => (relay === undefined ? resolve(undefined) : relay.close(resolve)));
  relay = undefined;
  for (const server of servers.splice(0)) await server.stop();
  await tempDirs.removeAll();
});

/** Connections to the relay: the first to `first` (cut after `cutAfter` bytes either way), the rest to `later`. */
async function startRelay(
  first: number,
  later: number,
  cutAfter: number,
): Promise<{ port: number; later: () => number }> {
  let accepted = 0;
  let laterCount = 0;
  relay = createServer((client) => {
    sockets.add(client);
    const isFirst = accepted++ === 0;
    if (!isFirst) laterCount++;
    const upstream = connect({ host: '127.0.0.1', port: isFirst ? first : later });
    sockets.add(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    // Both ways, so that an upload is cut as a download is.
    let relayed = 0;
    const relay = (to: Socket) => (chunk: Buffer) => {
      relayed += chunk.length;
      if (isFirst && relayed > cutAfter) {
        client.destroy();
        upstream.destroy();
        return;
      }
      to.write(chunk);
    };
    client.on('data', relay(upstream));
    upstream.on('data', relay(client));
  });
  await new Promise<void>((resolve) => relay!.listen(0, '127.0.0.1', resolve));
  const address = relay.address();
  if (address === null || typeof address === 'string') throw new Error('relay not listening');
  return { port: address.port, later: () => laterCount };
}

describe.skipIf(!opensslAvailable)('a reconnect that meets a certificate the client refuses', () => {
  it('is not tried again under --retries: the transfer fails at once with why', async () => {
    const content = randomBytes(4 * 1024 * 1024);
    for (const certs of [trusted, otherCa]) {
      const server = await startServer({ backend: 'disk', tls: { cert: certs.cert, key: certs.key } });
      servers.push(server);
      await writeFile(join(server.root!, 'big.bin'), content);
    }
    const { port, later } = await startRelay(servers[0]!.port, servers[1]!.port, 256 * 1024);
    const result = await runCli(
      ['--server', `127.0.0.1:${port}`, '--ca', trusted.caPath, 'get', 'big.bin', '--retries', '3'],
      await tempDirs.make(),
    );
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    // Before: "…not signed by the CA given…; retry 2/3 in 1.4 s", then 3/3, a reconnect each.
    expect(lines).toEqual([
      expect.stringMatching(/^muxftp: get big\.bin: .*; retry 1\/3 in \d\.\d s$/),
      expect.stringMatching(
        /^muxftp: get big\.bin: cannot connect to .*: the server's TLS certificate is not signed by the CA given .*\(CONNECT_FAILED\)$/,
      ),
    ]);
    expect(later()).toBe(1);
    expect(result.code).toBe(3);
  });

  it('an upload cut so still says the server keeps its whole blocks, for put -c once the certificate is right', async () => {
    for (const certs of [trusted, otherCa]) {
      const server = await startServer({ backend: 'disk', tls: { cert: certs.cert, key: certs.key } });
      servers.push(server);
    }
    const { port, later } = await startRelay(servers[0]!.port, servers[1]!.port, 6 * 1024 * 1024);
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'big.bin'), randomBytes(12 * 1024 * 1024));
    const result = await runCli(
      ['--server', `127.0.0.1:${port}`, '--ca', trusted.caPath, 'put', 'big.bin', '--retries', '3'],
      dir,
    );
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines).toEqual([
      expect.stringMatching(/^muxftp: put big\.bin: .*; retry 1\/3 in \d\.\d s$/),
      expect.stringMatching(
        /^muxftp: put big\.bin: cannot connect to .*: the server's TLS certificate is not signed by the CA given .*\(CONNECT_FAILED\); the server keeps the whole 4 MiB blocks it received for a while: run the same put with -c to continue it$/,
      ),
    ]);
    expect(later()).toBe(1);
    expect(result.code).toBe(3);
  });
});
