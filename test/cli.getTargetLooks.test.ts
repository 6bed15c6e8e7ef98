/**
 * `muxftp get` looks at each local target once before it downloads: the CLI asks whether it is
 * written in place (a FIFO or device: then it is not retried), and the download it starts is told
 * the answer instead of asking again (a stat each, on the loop: a threadpool hand-off would cost
 * ~100–180 µs here). One more comes as the download opens its hidden file (a directory there fails
 * it before a byte comes), whose answer the rename into place goes by.
 * The real CLI against a real server on 127.0.0.1, with fs's stat calls counted in the child
 * process (test/helpers/countPathStats.mjs). Needs dist/ (npm run build).
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_BIN } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const COUNTER = pathToFileURL(join(import.meta.dirname, 'helpers', 'countPathStats.mjs')).href;

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-target-looks-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** The CLI with `args`, its stat calls on paths under `under` counted; its exit code and the counts. */
function cliCountingStats(
  args: string[],
  cwd: string,
  under: string,
): Promise<{ code: number | null; stderr: string; counts: Record<string, number> | undefined }> {
  const out = join(cwd, 'stat-counts.json');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', COUNTER, CLI_BIN, ...args], {
      cwd,
      env: { ...process.env, MUXFTP_TEST_STATS_UNDER: under, MUXFTP_TEST_STATS_OUT: out },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      readFile(out, 'utf8').then(
        (text) => resolve({ code, stderr, counts: JSON.parse(text) }),
        () => resolve({ code, stderr, counts: undefined }),
      );
    });
  });
}

describe('get looks at each local target once before it downloads', () => {
  it('one stat per target, and one for the rename, whether it exists (replaced) or not (created)', async () => {
    server = await startServer({ backend: 'memory' });
    const a = randomBytes(100_000);
    const b = randomBytes(70_000);
    const uploader = await server.connect();
    await uploader.put('a.bin', a);
    await uploader.put('b.bin', b);
    const cwd = await tempDirs.make();
    const into = join(cwd, 'out');
    await mkdir(into);
    await writeFile(join(into, 'a.bin'), 'an older copy');

    const run = await cliCountingStats(
      ['--server', `127.0.0.1:${server.port}`, 'get', 'a.bin', 'b.bin', '--to', 'out/'],
      cwd,
      into,
    );

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await readFile(join(into, 'a.bin'))).toEqual(a);
    expect(await readFile(join(into, 'b.bin'))).toEqual(b);
    // The look when planned, and the lstat as the download starts, which the rename into place
    // goes by (client/sinkFile.ts: onto nothing it renames on the loop, onto a file through the
    // threadpool). Both on the loop.
    expect(run.counts).toEqual({ [join(into, 'a.bin')]: 2, [join(into, 'b.bin')]: 2 });
  });
});
