/**
 * The `retry k/N` lines of a command whose transfers are cut together: one lost connection (here
 * a server stopped, kill -STOP, past the client's --timeout) sends all its transfers back to
 * retry in one line that says how many, as lftp and rsync say a lost connection once, where a
 * `get -r -j 50` printed one line per file in flight. --json still gives every file's result.
 * A real `muxftp serve` and the real CLI.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { FrameType } from '../shared/protocol/constants.js';
import { CLI_BIN, runCli, startServeChild } from './helpers/cliProcess.js';
import { jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { ownFor } from './helpers/ownedByTest.js';
import { startServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

const MiB = 1024 * 1024;
const FILES = 12;

/** Bytes in the files directly in `dir` (a get's hidden files while under way). */
async function bytesIn(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [])) {
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info?.isFile() === true) total += info.size;
  }
  return total;
}

describe('transfers one lost connection sends back to retry', () => {
  it('get -r -j 12 of a server stopped past --timeout: one retry line for the 12, every file whole', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    await mkdir(join(root, 'tree'));
    const contents = new Map<string, Buffer>();
    for (let i = 0; i < FILES; i++) {
      const content = randomBytes(2 * MiB);
      contents.set(`f${i}`, content);
      await writeFile(join(root, 'tree', `f${i}`), content);
    }
    const serve = await startServeChild(['--root', root, '--fsync', 'never'], own.children);
    // Let go on before it is killed, should the test end while it is stopped.
    own.defer(() => serve.child.kill('SIGCONT'));
    const local = await own.tempDir();
    // At 4 MiB/s for all, 24 MiB take 6 s: all 12 are in flight when the server stops.
    const args = ['--server', `127.0.0.1:${serve.port}`, '--timeout', '2', 'get', '-r', 'tree', local];
    args.push('-j', String(FILES), '--limit-rate', '4MiB', '--retries', '3', '--json');
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      cwd: local,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    own.children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    await until(async () => (await bytesIn(join(local, 'tree'))) > MiB, 'the download under way (1 MiB in)');
    serve.child.kill('SIGSTOP');
    try {
      // Stopped until the client has given up on it (its 2 s) and said so, then let go on before
      // its reconnect (half a second at least after) has waited 2 s for an answer.
      await until(() => /retry \d/.test(stderr), 'a retry line on stderr');
      await delay(DEFAULTS.retryNoticeGatherMs + 100);
    } finally {
      serve.child.kill('SIGCONT');
    }
    const code = await exited;
    const retryLines = stderr.split('\n').filter((line) => /retry \d/.test(line));
    expect(retryLines).toHaveLength(1);
    expect(retryLines[0]).toMatch(
      new RegExp(
        `^muxftp: get: no answer from 127\\.0\\.0\\.1:${serve.port} in 2 s; ${FILES} transfers retry 1/3 in \\d+\\.\\d(?:–\\d+\\.\\d)? s$`,
      ),
    );
    expect(code).toBe(0);
    // --json: every file's result, each whole.
    const outcomes = JSON.parse(stdout) as Array<{ remote: string; ok: boolean; bytes: number }>;
    expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(FILES);
    for (const [name, content] of contents)
      expect((await readFile(join(local, 'tree', name))).equals(content)).toBe(true);
  }, 60_000);

  it("put --ignore-existing -j 8 whose connection goes during the destinations' check: one retry line for the 8", async (test) => {
    const own = ownFor(test);
    const server = await startServer();
    own.defer(() => server.stop());
    const client = await server.connect();
    await client.mkdir('up');
    const local = await own.tempDir();
    const names = Array.from({ length: 8 }, (_, i) => `f${i}`);
    for (const name of names) await writeFile(join(local, name), name);
    // The connection goes as the check first asks what `up` holds (a rewriter that throws drops it).
    let dropped = false;
    const proxy = await startFrameProxy(server.port, {
      fromClient: (frame) => {
        if (!dropped && frame.type === FrameType.OPEN && jsonOf(frame).op === 'list') {
          dropped = true;
          throw new Error('dropped');
        }
        return frame;
      },
    });
    own.defer(() => proxy.close());
    const args = ['put', ...names, '--to', 'up', '--ignore-existing', '-j', '8', '--retries', '1'];
    const run = await runCli([...args, '--server', `127.0.0.1:${proxy.port}`], local, { timeoutMs: 30_000 });
    expect(dropped).toBe(true);
    const retryLines = run.stderr.split('\n').filter((line) => /\bretry \d/.test(line));
    expect(retryLines).toEqual([expect.stringMatching(/^muxftp: put: .*; 8 transfers retry 1\/1 in /)]);
    expect(run.code).toBe(0);
    for (const name of names) expect((await client.getBuffer(`up/${name}`)).toString()).toBe(name);
  }, 60_000);
});
