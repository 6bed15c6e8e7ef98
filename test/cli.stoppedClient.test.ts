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

const MiB = 1024 * 1024;
const tempDirs = new TempDirs('muxftp-stopped-client-');
let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 20 ms for up to `ms`; false if it never held. */
async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; await delay(20))
    if (await check()) return true;
  return false;
}

describe('a client process stopped past the server idle timeout', () => {
  it('get: the transfer the server timed out is done again once the process goes on', async () => {
    env = await startServer({ backend: 'disk', idleTimeoutMs: 500 });
    const content = randomBytes(3 * MiB);
    await writeFile(join(env.root!, 'a.bin'), content);
    const local = await tempDirs.make();
    const child = spawn(
      process.execPath,
      [CLI_BIN, '--server', `127.0.0.1:${env.port}`, 'get', 'a.bin', 'a.bin', '--limit-rate', '2MiB'],
      { cwd: local, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      // Under way: its hidden file has bytes.
      const started = await until(async () => {
        for (const name of await readdir(local)) if ((await stat(join(local, name))).size > 0) return true;
        return false;
      }, 5_000);
      expect(started).toBe(true);
      child.kill('SIGSTOP');
      const timedOut = await until(() => env!.logs.some((line) => line.includes('(STREAM_TIMEOUT)')), 5_000);
      child.kill('SIGCONT');
      expect(timedOut).toBe(true);
      expect({ code: await exited, stderr }).toMatchObject({
        code: 0,
        stderr: expect.stringMatching(/^muxftp: get a\.bin: stream moved no data for 0\.5 s; retry 1\/5 in /),
      });
      expect((await readFile(join(local, 'a.bin'))).equals(content)).toBe(true);
      expect(await readdir(local)).toEqual(['a.bin']);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      await exited;
    }
  });
});
