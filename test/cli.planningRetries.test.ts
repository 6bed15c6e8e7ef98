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
import { type FrameProxy, jsonOf, proxyDroppingFirst, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { writeTree } from './helpers/tree.js';

let server: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-planning-');

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

/** A proxy whose first connection drops when the client asks its first `op`. */
async function droppingFirst(op: string): Promise<string[]> {
  proxy = await proxyDroppingFirst(server!.port, op);
  return ['--server', `127.0.0.1:${proxy.port}`];
}

/** A local dir holding tree/a and tree/sub/b, and a server root holding srv/x and srv/deep/y. */
async function setUp(): Promise<string> {
  server = await startServer({ backend: 'disk' });
  const dir = await tempDirs.make();
  await writeTree(dir, { 'tree/a': 'a', 'tree/sub/b': 'b' });
  await writeTree(server.root!, { 'srv/x': 'x', 'srv/deep/y': 'y' });
  return dir;
}

/** A proxy that goes, its port shut, at the `nth` OPEN of `op` (of those `which` picks). */
async function goneAt(
  op: string,
  nth: number,
  which: (request: Record<string, unknown>) => boolean = () => true,
): Promise<string[]> {
  let seen = 0;
  proxy = await startFrameProxy(server!.port, {
    fromClient: (frame) => {
      if (frame.type !== FrameType.OPEN) return frame;
      const request = jsonOf(frame);
      if (request.op === op && which(request) && ++seen === nth) {
        void proxy!.close();
        throw new Error('gone');
      }
      return frame;
    },
  });
  return ['--server', `127.0.0.1:${proxy.port}`];
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

  it('a server gone for good while a tree is listed: one line for the listings given up, none waits retries of its own', async () => {
    const dir = await setUp();
    // More than DEFAULTS.planningRequests (64): some wait for their turn when the server goes.
    const subdirs = 100;
    for (let i = 0; i < subdirs; i++) {
      const sub = join(server!.root!, 'srv', `d${String(i).padStart(3, '0')}`);
      await mkdir(sub);
      await writeFile(join(sub, 'f'), 'f');
    }
    // The server goes, and its port stays shut, at the first listing below srv.
    const at = await goneAt('list', 2);
    const result = await runCli([...at, '--json', 'get', '-r', 'srv', 'out', '--retries', '2'], dir);
    expect(result.code).toBe(3);
    const refused = 'cannot connect to 127\\.0\\.0\\.1:\\d+: connection refused .*\\(CONNECT_FAILED\\)$';
    // Before: a retry line and a failure line for each directory (202 lines), and those that
    // waited for their turn waited out retries of their own.
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines).toEqual([
      expect.stringMatching(
        /^muxftp: get: (connection to .* closed|connection error: .*); \d+ requests retry 1\/2 in \d\.\d s$/,
      ),
      expect.stringMatching(/^muxftp: get: .*; \d+ requests retry 2\/2 in \d\.\d s$/),
      expect.stringMatching(new RegExp(`^muxftp: get srv/(d\\d{3}|deep): ${refused}`)),
      // The other 100 of the 101 below srv (deep too).
      expect.stringMatching(
        new RegExp(`^muxftp: get: ${subdirs} directories not listed, the server still away: ${refused}`),
      ),
      // srv/x, listed before the server went: not tried, as the files after a transfer's retries.
      expect.stringMatching(
        new RegExp(`^muxftp: get: 1 file not started, the server still away: ${refused}`),
      ),
    ]);
    // Each is still a result of its own.
    const outcomes = JSON.parse(result.stdout) as Array<{
      remote: string;
      ok: boolean;
      error?: { code: string };
    }>;
    expect(outcomes).toHaveLength(subdirs + 2);
    expect(outcomes.every((outcome) => !outcome.ok && outcome.error?.code === 'CONNECT_FAILED')).toBe(true);
  }, 60_000);

  it('put -r, the server gone for good while the tree is made: one line for the directories given up', async () => {
    const dir = await setUp();
    for (let i = 0; i < 100; i++) {
      const sub = join(dir, 'tree', `d${String(i).padStart(3, '0')}`);
      await mkdir(sub);
      await writeFile(join(sub, 'f'), 'f');
    }
    // The server goes, and its port stays shut, at the second mkdir of a directory in the tree.
    const at = await goneAt('mkdir', 2, (request) => String(request.path).includes('/d'));
    const result = await runCli([...at, 'put', '-r', 'tree', '--to', 'up/', '--retries', '1'], dir);
    expect(result.code).toBe(3);
    const refused = 'cannot connect to 127\\.0\\.0\\.1:\\d+: connection refused .*\\(CONNECT_FAILED\\)$';
    // Before: a retry line and a failure line for each directory.
    expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
      expect.stringMatching(
        /^muxftp: put: (connection to .* closed|connection error: .*); \d+ requests retry 1\/1 in \d\.\d s$/,
      ),
      expect.stringMatching(new RegExp(`^muxftp: put tree/(d\\d{3}|sub): ${refused}`)),
      expect.stringMatching(
        new RegExp(`^muxftp: put: \\d+ directories not made, the server still away: ${refused}`),
      ),
      expect.stringMatching(
        new RegExp(`^muxftp: put: \\d+ files? not started, the server still away: ${refused}`),
      ),
      // The files in the directories not made failed; the directories are counted apart.
      expect.stringMatching(
        /^muxftp: 0 files \(0 B\), \d+ failed, \d+ not started, \d+ directories failed in /,
      ),
    ]);
  }, 60_000);
});

describe('--retries 0: a lost connection is said once, not once for each request or file after it', () => {
  // The loss as the kernel told it: a close, or (now and then) a reset.
  const lost = '(connection to 127\\.0\\.0\\.1:\\d+ closed|connection error: [^()]+) \\(CONNECTION_LOST\\)$';

  it('get -r: the listings not yet answered, in one line', async () => {
    const dir = await setUp();
    for (let i = 0; i < 100; i++) await mkdir(join(server!.root!, 'srv', `d${String(i).padStart(3, '0')}`));
    const at = await goneAt('list', 2);
    const result = await runCli([...at, 'get', '-r', 'srv', 'out', '--retries', '0'], dir);
    expect(result.code).toBe(3);
    // Before: a line for each of the 101 directories.
    expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
      expect.stringMatching(new RegExp(`^muxftp: get srv/(d\\d{3}|deep): ${lost}`)),
      expect.stringMatching(
        new RegExp(`^muxftp: get: 100 directories not listed, the connection lost: ${lost}`),
      ),
      expect.stringMatching(new RegExp(`^muxftp: get: 1 file not started, the connection lost: ${lost}`)),
      // Before: `101 failed`, as if the 101 directories not listed were files.
      expect.stringMatching(/^muxftp: 0 files \(0 B\), 1 not started, 101 directories failed in /),
    ]);
  });

  it('put of many files: those in flight say it, the rest fail at once in one line, each still a result', async () => {
    const dir = await setUp();
    const names = Array.from({ length: 40 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    for (const name of names) await writeFile(join(dir, name), name);
    const at = await goneAt('put', 5);
    const result = await runCli(
      [...at, '--json', 'put', ...names, '--to', 'up/', '-p', '-j', '2', '--retries', '0'],
      dir,
    );
    expect(result.code).toBe(3);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    // Before: a line for each of the files after the loss, 36 or so.
    const own = lines.filter((line) => /^muxftp: put f\d\d: /.test(line));
    expect(own.length).toBeGreaterThan(0);
    expect(own.length).toBeLessThanOrEqual(2);
    expect(lines.slice(own.length)).toEqual([
      expect.stringMatching(new RegExp(`^muxftp: put: \\d+ files not started, the connection lost: ${lost}`)),
    ]);
    const outcomes = JSON.parse(result.stdout) as Array<{ ok: boolean }>;
    expect(outcomes).toHaveLength(names.length);
  });
});

describe('--dry-run --ignore-existing under --retries N', () => {
  it('a look whose connection went reconnects: not taken as --retries 0, so --delete still lists', async () => {
    const dir = await setUp();
    await mkdir(join(server!.root!, 'srv', 'tree'));
    await writeFile(join(server!.root!, 'srv', 'tree', 'old'), 'o');
    let dropped = false;
    proxy = await startFrameProxy(server!.port, {
      fromClient: (frame) => {
        const asked = frame.type === FrameType.OPEN ? jsonOf(frame) : undefined;
        if (!dropped && asked?.op === 'stat' && asked.path === 'srv/tree/a') {
          dropped = true;
          throw new Error('dropped');
        }
        return frame;
      },
    });
    const at = ['--server', `127.0.0.1:${proxy.port}`];
    const result = await runCli(
      [
        ...at,
        'put',
        '-r',
        'tree/',
        '--to',
        'srv',
        '--dry-run',
        '--delete',
        '--ignore-existing',
        '--retries',
        '3',
      ],
      dir,
    );
    // Before: the look given up as --retries 0's, the server taken as gone, and --delete's
    // listing after it failed at once (exit 3).
    expect(dropped).toBe(true);
    expect(result.stderr).toMatch(/retry 1\/3/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/would put tree\/a → srv\/tree\/a/);
    expect(result.stdout).toMatch(/srv\/tree\/old/);
  });
});

describe('--dry-run --delete --ignore-existing under --retries 0', () => {
  it('a look that lost the connection: --delete says its listing failed, each result still in --json', async () => {
    const dir = await setUp();
    await mkdir(join(server!.root!, 'srv', 'tree'));
    await writeFile(join(server!.root!, 'srv', 'tree', 'old'), 'o');
    const at = await goneAt('stat', 2);
    const result = await runCli(
      [
        ...at,
        '--json',
        'put',
        '-r',
        'tree/',
        '--to',
        'srv',
        '--dry-run',
        '--delete',
        '--ignore-existing',
        '--retries',
        '0',
      ],
      dir,
    );
    expect(result.code).toBe(3);
    // Before: the listing, not asked with the server taken as gone, failed the whole command: a
    // line without its path, and --json one failure for the tree instead of each file's result.
    expect(result.stderr).toMatch(/^muxftp: put --delete srv\/tree: connection to .* \(CONNECTION_LOST\)$/m);
    const outcomes = JSON.parse(result.stdout) as Array<{ local: string; remote: string; deleted?: boolean }>;
    expect(outcomes.map((outcome) => outcome.remote).sort()).toEqual([
      'srv/tree',
      'srv/tree/a',
      'srv/tree/sub/b',
    ]);
  });
});

describe('--retries 0: a failure that is no lost connection', () => {
  it('fails its own file only: the files after it still run', async () => {
    const dir = await setUp();
    for (const name of ['a', 'b', 'c']) await writeFile(join(dir, name), name);
    // up/b a directory on the server: the put of b is refused, the connection stays up.
    await mkdir(join(server!.root!, 'up', 'b'), { recursive: true });
    const result = await runCli(
      [
        '--server',
        `127.0.0.1:${server!.port}`,
        'put',
        'a',
        'b',
        'c',
        '--to',
        'up/',
        '-j',
        '1',
        '--retries',
        '0',
      ],
      dir,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^muxftp: put b: /m);
    expect(result.stderr).not.toMatch(/not started/);
    expect(await readFile(join(server!.root!, 'up', 'c'), 'utf8')).toBe('c');
  });
});

describe('--retries N: a transfer lost again on each reconnect', () => {
  it('fails alone: the server came back each time, so it is not taken as gone', async () => {
    const dir = await setUp();
    for (const name of ['a', 'b']) await writeFile(join(dir, name), name);
    proxy = await startFrameProxy(server!.port, {
      fromClient: (frame) => {
        const asked = frame.type === FrameType.OPEN ? jsonOf(frame) : undefined;
        if (asked?.op === 'put' && asked.path === 'up/a') throw new Error('dropped');
        return frame;
      },
    });
    const result = await runCli(
      [
        '--server',
        `127.0.0.1:${proxy.port}`,
        'put',
        'a',
        'b',
        '--to',
        'up/',
        '-p',
        '-j',
        '1',
        '--retries',
        '1',
      ],
      dir,
    );
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^muxftp: put a: /m);
    expect(result.stderr).not.toMatch(/not started/);
    expect(await readFile(join(server!.root!, 'up', 'b'), 'utf8')).toBe('b');
  }, 30_000);
});
