/**
 * put and get --retries reconnect when the connection goes during their planning (the stats,
 * listings and mkdirs before any transfer), as they do during transfers: a server restarted while
 * a tree was listed ended the command. Through a proxy that drops the connection at one request;
 * real sockets, real files, the built CLI.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-planning-');

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

/** A proxy whose first connection drops when the client asks its first `op`. */
async function droppingFirst(op: string): Promise<string[]> {
  let dropped = false;
  proxy = await startFrameProxy(server!.port, {
    fromClient: (frame) => {
      if (!dropped && frame.type === FrameType.OPEN && jsonOf(frame).op === op) {
        dropped = true;
        throw new Error('dropped');
      }
      return frame;
    },
  });
  return ['--server', `127.0.0.1:${proxy.port}`];
}

/** A local dir holding tree/a and tree/sub/b, and a server root holding srv/x and srv/deep/y. */
async function setUp(): Promise<string> {
  server = await startServer({ backend: 'disk' });
  const dir = await tempDirs.make();
  await mkdir(join(dir, 'tree', 'sub'), { recursive: true });
  await writeFile(join(dir, 'tree', 'a'), 'a');
  await writeFile(join(dir, 'tree', 'sub', 'b'), 'b');
  await mkdir(join(server.root!, 'srv', 'deep'), { recursive: true });
  await writeFile(join(server.root!, 'srv', 'x'), 'x');
  await writeFile(join(server.root!, 'srv', 'deep', 'y'), 'y');
  return dir;
}

describe('--retries during planning', () => {
  it.each([
    ['put -p', ['put', '-p', 'tree/a', 'new/dir/a'], 'mkdir', [['new/dir/a', 'a']]],
    [
      'put -r to a new name',
      ['put', '-r', 'tree', 't1'],
      'mkdir',
      [
        ['t1/a', 'a'],
        ['t1/sub/b', 'b'],
      ],
    ],
    ['get of a file', ['get', 'srv/x', 'x'], 'stat', [['x', 'x']]],
    [
      'get -r',
      ['get', '-r', 'srv', 'out'],
      'list',
      [
        ['out/x', 'x'],
        ['out/deep/y', 'y'],
      ],
    ],
  ] as const)(
    '%s: a connection lost at its first planning request reconnects and the command completes',
    async (_name, args, op, files) => {
      const dir = await setUp();
      const at = await droppingFirst(op);
      const result = await runCli([...at, ...args, '--retries', '2'], dir);
      expect(result.stderr).toMatch(new RegExp(`^muxftp: ${args[0]}: .*; retry 1/2 in \\d\\.\\d s$`, 'm'));
      expect(result.code).toBe(0);
      const [side, base] = args[0] === 'put' ? [server!.root!, ''] : [dir, ''];
      for (const [path, content] of files)
        expect(await readFile(join(side, base, path), 'utf8')).toBe(content);
    },
  );

  it('--retries 0 does not reconnect: the command fails, saying the connection went', async () => {
    const dir = await setUp();
    const at = await droppingFirst('list');
    const result = await runCli([...at, 'get', '-r', 'srv', 'out', '--retries', '0'], dir);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('(CONNECTION_LOST)');
    expect(result.stderr).not.toContain('retry');
  });

  it('a mkdir whose answer was lost is not refused as ALREADY_EXISTS when asked again: the directory is there', async () => {
    const dir = await setUp();
    // The server makes `made/`, and the connection drops with its answer.
    const mkdirs = new Set<number>();
    let dropped = false;
    proxy = await startFrameProxy(server!.port, {
      fromClient: (frame) => {
        if (frame.type === FrameType.OPEN && jsonOf(frame).op === 'mkdir') mkdirs.add(frame.streamId);
        return frame;
      },
      fromServer: (frame) => {
        if (!dropped && mkdirs.has(frame.streamId)) {
          dropped = true;
          throw new Error('dropped');
        }
        return frame;
      },
    });
    const result = await runCli(
      ['--server', `127.0.0.1:${proxy.port}`, 'put', '-r', 'tree', '--to', 'made/', '--retries', '2'],
      dir,
    );
    expect(dropped).toBe(true);
    expect(result.stderr).toMatch(/^muxftp: put: .*; retry 1\/2/m);
    expect(result.code).toBe(0);
    expect(await readFile(join(server!.root!, 'made', 'tree', 'sub', 'b'), 'utf8')).toBe('b');
    expect((await stat(join(server!.root!, 'made'))).isDirectory()).toBe(true);
  });
});
