/**
 * The CLI's exit status tells "asked, and it failed" (1) from "the connection failed" (3) on the
 * paths where a failure reaches it from afar: a reconnect refused once retries are spent, a server
 * stopped mid-transfer, a run with both kinds of failure. Real sockets, real files, the built CLI.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ServerBusyError } from '../shared/errors.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeError } from '../shared/protocol/encoder.js';
import { errorPayload } from '../shared/protocol/messages.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { startScriptedServer } from './helpers/scriptedServer.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-exit-');

let scripted: Server | undefined;

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await new Promise((resolve) => (scripted === undefined ? resolve(undefined) : scripted.close(resolve)));
  scripted = undefined;
  await tempDirs.removeAll();
});

/** A disk server holding srv/x and srv/deep/y, and a local dir holding tree/a. */
async function setUp(): Promise<string> {
  server = await startServer({ backend: 'disk' });
  await mkdir(join(server.root!, 'srv', 'deep'), { recursive: true });
  await writeFile(join(server.root!, 'srv', 'x'), 'x');
  await writeFile(join(server.root!, 'srv', 'deep', 'y'), 'y');
  const dir = await tempDirs.make();
  await mkdir(join(dir, 'tree'));
  await writeFile(join(dir, 'tree', 'a'), 'a');
  return dir;
}

/** A proxy that drops the connection at the first `list` and then stops listening: every reconnect is refused. */
async function goneAtFirstList(): Promise<string[]> {
  let dropped = false;
  proxy = await startFrameProxy(server!.port, {
    fromClient: (frame) => {
      if (!dropped && frame.type === FrameType.OPEN && jsonOf(frame).op === 'list') {
        dropped = true;
        void proxy!.close();
        throw new Error('dropped');
      }
      return frame;
    },
  });
  return ['--server', `127.0.0.1:${proxy.port}`];
}

describe('exit status 3: the connection failed', () => {
  it.each([
    ['get -r', ['get', '-r', 'srv', 'out'], 'get srv'],
    // Its first listing: its destination's directory, to tell whether that is a link.
    ['put -r --delete', ['put', '-r', 'tree', '--to', 'srv/', '--delete'], 'put --delete srv/tree'],
  ])(
    '%s: the server gone for good while a tree is listed, retries spent: 3, CONNECT_FAILED',
    async (_, args, subject) => {
      const dir = await setUp();
      const at = await goneAtFirstList();
      const result = await runCli([...at, ...args, '--retries', '1', '--json'], dir);
      expect(result.code).toBe(3);
      // Before: the refused reconnect was reported as INTERNAL_ERROR, exit 1.
      // Said of what it was about. Before, put's line was `muxftp: put: cannot connect …`.
      expect(result.stderr).toMatch(
        new RegExp(
          `^muxftp: ${subject}: cannot connect to 127\\.0\\.0\\.1:\\d+: connection refused.*\\(CONNECT_FAILED\\)$`,
          'm',
        ),
      );
      expect(result.stderr).not.toContain('INTERNAL_ERROR');
      expect(result.stdout).not.toContain('INTERNAL_ERROR');
    },
  );

  it("chmod -R whose directory's listing is lost: that failure, not '1 of the 1 below it kept their bits'", async () => {
    const dir = await setUp();
    const at = await goneAtFirstList();
    const result = await runCli([...at, 'chmod', '-R', '700', 'srv'], dir);
    expect(result.stderr).toMatch(
      /^muxftp: chmod srv: .*\(CONNECTION_LOST\); its own bits were changed; nothing below it could be listed\n$/,
    );
    expect(result.stderr).not.toContain('kept their bits');
    expect(result.code).toBe(3);
  });

  it('a server stopped mid-transfer (SHUTTING_DOWN), --retries 0: 3', async () => {
    const dir = await setUp();
    await writeFile(join(server!.root!, 'big.bin'), Buffer.alloc(20 * 2 ** 20, 7));
    const run = runCli(
      [
        '--server',
        `127.0.0.1:${server!.port}`,
        'get',
        'big.bin',
        'out.bin',
        '--limit-rate',
        '1M',
        '--retries',
        '0',
      ],
      dir,
    );
    for (let waited = 0; !server!.server.connectionFigures().some((c) => c.openStreams > 0); waited += 20) {
      if (waited > 10_000) throw new Error('the download never started');
      await sleep(20);
    }
    await server!.server.close(100); // the transfer in flight is cut at the end of the grace
    const result = await run;
    expect(result.stderr).toContain('(SHUTTING_DOWN)');
    expect(result.code).toBe(3);
  });

  it('a server that closes the connection busy for its storage (a hung disk): retried as a loss, then 3', async () => {
    // What a server sends when it held a connection's reading for its storage work through its
    // idle timeout (server/connection.ts, failHeldByStorage): ERROR on stream 0, then the end. It
    // was taken for a request answered: get's stat was not retried, and the run exited 1.
    let opens = 0;
    const started = await startScriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      opens++;
      const busy = new ServerBusyError(
        'storage',
        "server busy: its storage has not finished this connection's work in 300 s",
      );
      socket.end(encodeError(0, errorPayload(busy)));
    });
    scripted = started.server;
    const dir = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${started.port}`];
    const get = await runCli([...at, 'get', 'f', '--retries', '1'], dir);
    expect(get.stderr).toMatch(/^muxftp: get: server busy: .*; retry 1\/1 in /m);
    expect(get.stderr).toMatch(/^muxftp: get f: server busy: .*\(SERVER_BUSY\)$/m);
    expect(get.code).toBe(3);
    expect(opens).toBe(2);
    await writeFile(join(dir, 'up.txt'), 'up');
    const put = await runCli([...at, 'put', 'up.txt', '--retries', '0'], dir);
    expect(put.stderr).toContain('(SERVER_BUSY)');
    expect(put.code).toBe(3);
  });

  it('a run with a file not found and then the connection lost: 3 over 1', async () => {
    const dir = await setUp();
    proxy = await startFrameProxy(server!.port, {
      fromClient: (frame) => {
        if (frame.type === FrameType.OPEN && jsonOf(frame).op === 'get' && jsonOf(frame).path === 'srv/x')
          throw new Error('dropped');
        return frame;
      },
    });
    const at = ['--server', `127.0.0.1:${proxy.port}`];
    const args = ['get', 'srv/nope', 'srv/x', '--to', 'out/', '-p', '--retries', '0', '--parallel', '1'];
    const result = await runCli([...at, ...args], dir);
    expect(result.stderr).toContain('(NOT_FOUND)');
    expect(result.stderr).toContain('(CONNECTION_LOST)');
    expect(result.code).toBe(3);
    // The same run with only the file not found: 1.
    const answered = await runCli([...at, 'get', 'srv/nope', '--to', 'out/', '-p'], dir);
    expect(answered.code).toBe(1);
  });
});
