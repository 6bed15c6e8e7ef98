/**
 * A CLI process stopped mid-transfer (kill -STOP, a laptop asleep) for longer than the server's
 * idle timeout: the server fails its stream STREAM_TIMEOUT, and once the process goes on, the
 * transfer is done again under --retries, as after a lost connection. Before, a get failed for
 * good with STREAM_TIMEOUT, while a put in the same spot was retried (it met the closed connection
 * first): which one the user got depended on a race.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_BIN } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const MiB = 1024 * 1024;
const tempDirs = new TempDirs('muxftp-stopped-client-');
let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

describe('a client process stopped past the server idle timeout', () => {
  /**
   * `get a.bin` at 1 MiB/s of 3 MiB (with `files`, as many of 3 MiB, a.bin and b0.bin…, at once
   * at as many MiB/s), stopped once it is under way until the server has timed its streams out
   * (a line logged after the stop for each), then let go on: its exit and stderr.
   */
  async function stoppedGet(idleTimeoutMs: number, retries: number, files = 1) {
    env = await startServer({ backend: 'disk', idleTimeoutMs });
    const content = randomBytes(3 * MiB);
    await writeFile(join(env.root!, 'a.bin'), content);
    const others = Array.from({ length: files - 1 }, (_, index) => `b${index}.bin`);
    for (const name of others) await writeFile(join(env.root!, name), content);
    const local = await tempDirs.make();
    const child = spawn(
      process.execPath,
      [
        CLI_BIN,
        '--server',
        `127.0.0.1:${env.port}`,
        'get',
        'a.bin',
        ...(files === 1 ? ['a.bin'] : [...others, '--to', '.']),
        '--limit-rate',
        `${files}MiB`,
        '--retries',
        String(retries),
      ],
      { cwd: local, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const timeouts = () => env!.logs.filter((line) => line.includes('(STREAM_TIMEOUT)')).length;
    try {
      // Under way: its hidden file has bytes.
      await until(async () => {
        for (const name of await readdir(local)) if ((await stat(join(local, name))).size > 0) return true;
        return false;
      }, 'the download under way (bytes in its hidden file)');
      const before = timeouts();
      child.kill('SIGSTOP');
      expect(before).toBe(0);
      await until(() => timeouts() >= before + files, "the server's timeout of the stopped client's streams");
      child.kill('SIGCONT');
      const code = await exited;
      return { code, stderr, content, local };
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      await exited;
    }
  }

  it('get: the transfer the server timed out is done again once the process goes on', async () => {
    const { code, stderr, content, local } = await stoppedGet(500, 5);
    expect({ code, stderr }).toMatchObject({
      code: 0,
      stderr: expect.stringMatching(/^muxftp: get a\.bin: stream moved no data for 0\.5 s; retry 1\/5 in /),
    });
    expect((await readFile(join(local, 'a.bin'))).equals(content)).toBe(true);
    expect(await readdir(local)).toEqual(['a.bin']);
  });

  it('get of 4 files at once: the transfers the one stall timed out are said retried in one line', async () => {
    // An idle timeout well past how long each transfer waits for its credit once they go on: under
    // --limit-rate the four take turns at a tenth of a second's worth each, so a transfer is
    // granted credit every 0.4 s, and against 0.5 s a loaded machine timed one out again (a second
    // retry line). The stop is waited out by the server's timeouts, however long they take.
    const { code, stderr, content, local } = await stoppedGet(2_000, 5, 4);
    // Before: a line each, as for each lost connection.
    const retryLines = stderr.split('\n').filter((line) => /retry \d/.test(line));
    expect(retryLines).toEqual([
      expect.stringMatching(/^muxftp: get: .*; 4 transfers retry 1\/5 in \d+\.\d(?:–\d+\.\d)? s$/),
    ]);
    expect(code).toBe(0);
    for (const name of ['a.bin', 'b0.bin', 'b1.bin', 'b2.bin'])
      expect((await readFile(join(local, name))).equals(content)).toBe(true);
  });

  it("get: a connection the server closed as idle during the retry's wait is replaced, not a retry spent on it", async () => {
    // The wait before retry 1 (0.5–1 s) outlasts the server's idle timeout (0.3 s): with nothing
    // else open on it, the connection is closed meanwhile. With one retry, the try after the wait
    // must be on a new connection.
    const { code, stderr, content, local } = await stoppedGet(300, 1);
    expect({ code, stderr }).toMatchObject({ code: 0 });
    expect(stderr).not.toMatch(/retry 2/);
    expect((await readFile(join(local, 'a.bin'))).equals(content)).toBe(true);
  });
});
