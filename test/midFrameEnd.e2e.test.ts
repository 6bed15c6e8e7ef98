/**
 * A server that dies while sending (killed mid-download) ends its connection inside a frame: the
 * client takes that for a lost connection (CONNECTION_LOST), which `--retries` reconnect from, not
 * for a protocol error, which ended the command. Through a byte proxy that cuts the first
 * connection half-way into a DATA frame with a FIN, as the kernel closes a killed process's
 * socket; real sockets, real files, the built CLI.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
let proxy: Server | undefined;
const sockets = new Set<Socket>();
const tempDirs = new TempDirs('muxftp-mid-frame-');

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => (proxy === undefined ? resolve(undefined) : proxy.close(resolve)));
  proxy = undefined;
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/** Passes bytes both ways; the first connection's server side is ended after `cutAfter` bytes. */
async function cuttingProxy(serverPort: number, cutAfter: number): Promise<number> {
  let connections = 0;
  proxy = createServer((client) => {
    const cut = ++connections === 1;
    const server = connect({ host: '127.0.0.1', port: serverPort });
    for (const socket of [client, server]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk: Buffer) => server.write(chunk));
    let passed = 0;
    server.on('data', (chunk: Buffer) => {
      if (!cut || passed + chunk.length < cutAfter) {
        passed += chunk.length;
        client.write(chunk);
        return;
      }
      client.end(chunk.subarray(0, cutAfter - passed));
      server.destroy();
    });
    client.on('close', () => server.destroy());
    server.on('close', () => client.end());
  });
  await new Promise<void>((resolve) => proxy!.listen(0, '127.0.0.1', resolve));
  return (proxy.address() as { port: number }).port;
}

describe('a connection that ends inside a frame', () => {
  it('is a lost connection: --retries reconnect and the download completes; without, CONNECTION_LOST', async () => {
    env = await startServer({ backend: 'disk' });
    const content = randomBytes(3 * 1024 * 1024);
    await (await env.connect()).put('big.bin', content);
    const dir = await tempDirs.make();
    // 1.5 MiB in: inside the second of the download's 1 MiB DATA frames.
    const port = await cuttingProxy(env.port, 1.5 * 1024 * 1024);
    const at = ['--server', `127.0.0.1:${port}`];

    const failed = await runCli([...at, 'get', 'big.bin', 'once.bin', '--retries', '0'], dir);
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain('get big.bin: connection ended inside a frame (CONNECTION_LOST)');

    await new Promise((resolve) => proxy!.close(resolve));
    const again = await cuttingProxy(env.port, 1.5 * 1024 * 1024);
    const retried = await runCli(
      ['--server', `127.0.0.1:${again}`, 'get', 'big.bin', 'out.bin', '--retries', '2'],
      dir,
    );
    expect(retried.stderr).toMatch(/get big\.bin: connection ended inside a frame; retry 1\/2/);
    expect(retried.code).toBe(0);
    expect((await readFile(join(dir, 'out.bin'))).equals(content)).toBe(true);
  });
});
