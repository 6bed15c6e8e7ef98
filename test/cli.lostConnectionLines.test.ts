/**
 * A command that works through many paths on one connection (rm, chmod, ls, stat, …) whose
 * connection goes: the first failure says the loss, the paths after it, which fail at once with
 * it, are one line at the end, with their count; --json still has each path's result and the
 * exit status is 3. Through a proxy whose port shuts; real sockets, the built CLI.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-lost-lines-');

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

const FILES = Array.from({ length: 40 }, (_, i) => `srv/f${String(i).padStart(2, '0')}`);
// The loss as the kernel told it: a close, or (now and then) a reset.
const lost = '(connection to 127\\.0\\.0\\.1:\\d+ closed|connection error: [^()]+) \\(CONNECTION_LOST\\)$';

/** A server holding srv/f00..f39 and srv/d00..d39, behind a proxy that goes at the third request. */
async function setUp(): Promise<{ dir: string; at: string[] }> {
  server = await startServer({ backend: 'disk' });
  for (let i = 0; i < FILES.length; i++) {
    await mkdir(join(server.root!, 'srv', `d${String(i).padStart(2, '0')}`), { recursive: true });
    await writeFile(join(server.root!, FILES[i]!), 'f');
  }
  let opened = 0;
  proxy = await startFrameProxy(server.port, {
    fromClient: (frame) => {
      if (frame.type === FrameType.OPEN && ++opened === 3) {
        void proxy!.close();
        throw new Error('gone');
      }
      return frame;
    },
  });
  return { dir: await tempDirs.make(), at: ['--server', `127.0.0.1:${proxy.port}`] };
}

describe('the paths after a lost connection: one line for them', () => {
  it.each([
    ['rm', ['rm', ...FILES], 'not removed'],
    ['chmod', ['chmod', '600', ...FILES], 'not changed'],
    ['stat', ['stat', ...FILES], 'not looked at'],
    ['ls', ['ls', ...FILES], 'not listed'],
    ['mv', ['mv', ...FILES, 'srv/d00'], 'not moved'],
  ] as const)('%s of 40 paths', async (command, args, notDone) => {
    const { dir, at } = await setUp();
    const result = await runCli([...at, '--json', ...args], dir);
    expect(result.code).toBe(3);
    // Before: a line for each path after the loss.
    expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
      expect.stringMatching(new RegExp(`^muxftp: ${command} srv/f\\d\\d: ${lost}`)),
      expect.stringMatching(
        new RegExp(`^muxftp: ${command}: \\d+ more paths ${notDone}, the connection lost: ${lost}`),
      ),
    ]);
    const outcomes = JSON.parse(result.stdout) as Array<{
      path: string;
      ok: boolean;
      error?: { code: string };
    }>;
    expect(outcomes.map((outcome) => outcome.path)).toEqual(FILES);
    const failed = outcomes.filter((outcome) => !outcome.ok);
    expect(failed.length).toBeGreaterThan(30);
    expect(failed.every((outcome) => outcome.error?.code === 'CONNECTION_LOST')).toBe(true);
  });

  it('ls -r: the directories not listed, one line after the first', async () => {
    const { dir, at } = await setUp();
    const result = await runCli([...at, 'ls', '-r', 'srv'], dir);
    expect(result.code).toBe(3);
    expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
      expect.stringMatching(new RegExp(`^muxftp: ls srv/d\\d\\d: ${lost}`)),
      expect.stringMatching(
        new RegExp(`^muxftp: ls: \\d+ more paths not listed, the connection lost: ${lost}`),
      ),
    ]);
  });

  it('ls -r of a tree and more operands: the directories of the tree not listed are in the count too', async () => {
    const { dir, at } = await setUp();
    const result = await runCli([...at, 'ls', '-r', 'srv', 'srv/f00', 'srv/f01'], dir);
    expect(result.code).toBe(3);
    expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
      expect.stringMatching(new RegExp(`^muxftp: ls srv/f00: ${lost}`)),
      expect.stringMatching(
        new RegExp(`^muxftp: ls: \\d+ more paths not listed, the connection lost: ${lost}`),
      ),
    ]);
  });

  it('a failure that is no lost connection is still said of its own path', async () => {
    const { dir, at } = await setUp();
    const result = await runCli([...at, 'rm', 'srv/missing', 'srv/gone', ...FILES], dir);
    expect(result.code).toBe(3);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines.slice(0, 2)).toEqual([
      expect.stringMatching(/^muxftp: rm srv\/missing: .*\(NOT_FOUND\)$/),
      expect.stringMatching(/^muxftp: rm srv\/gone: .*\(NOT_FOUND\)$/),
    ]);
    expect(lines.slice(2)).toEqual([
      expect.stringMatching(new RegExp(`^muxftp: rm srv/f00: ${lost}`)),
      expect.stringMatching(
        new RegExp(`^muxftp: rm: 39 more paths not removed, the connection lost: ${lost}`),
      ),
    ]);
  });
});
