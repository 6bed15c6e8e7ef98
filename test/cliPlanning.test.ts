/**
 * How put and get plan a multi-file run. -j caps transfers, not the small requests they plan
 * with: `get` stats every remote before it starts, many at once (DEFAULTS.planningRequests), while
 * its downloads run no more than -j at a time. Two files bound for one place in one run: the
 * later one fails, instead of silently replacing the earlier. Real CLI process, real server.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Storage } from '../storage/types.js';
import { runCli, runCliQuietly } from './helpers/cliProcess.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Wraps `name` on `storage` to count calls in flight at once (each held 5 ms so they overlap). */
function countInFlight(storage: Storage, name: 'stat' | 'openRead'): { most: number } {
  const counter = { most: 0 };
  let now = 0;
  const original = (storage[name] as (path: string) => Promise<unknown>).bind(storage);
  (storage as unknown as Record<string, unknown>)[name] = async (path: string) => {
    counter.most = Math.max(counter.most, ++now);
    try {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return await original(path);
    } finally {
      now--;
    }
  };
  return counter;
}

describe('muxftp get -j', () => {
  it('plans with many stats at once, and downloads no more than -j at a time', async () => {
    env = await startServer();
    // A directory each: many files in one are looked up with one listing, not a stat each.
    const names = Array.from({ length: 40 }, (_, i) => `f${i}.bin`);
    const remotes = names.map((name, i) => `d${i}/${name}`);
    const client = await env.connect();
    for (const [i, remote] of remotes.entries()) {
      await client.mkdir(`d${i}`);
      await client.put(remote, Buffer.from(remote));
    }
    await client.close();
    const stats = countInFlight(env.storage, 'stat');
    const reads = countInFlight(env.storage, 'openRead');
    dir = await mkdtemp(join(tmpdir(), 'muxftp-planning-'));
    const outcome = await runCliQuietly(
      ['get', ...remotes, '--to', dir, '-j', '1', '--server', `127.0.0.1:${env.port}`],
      dir,
    );
    expect(outcome).toEqual({ code: 0, stderr: '' });
    expect((await readdir(dir)).sort()).toEqual([...names].sort());
    expect(reads.most).toBe(1);
    expect(stats.most).toBeGreaterThan(1);
  });
});

describe('two files bound for one place in one run', () => {
  it('get a/x b/x --to out: the second fails, the first arrives', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.mkdir('a');
    await client.mkdir('b');
    await client.put('a/x', Buffer.from('from a'));
    await client.put('b/x', Buffer.from('from b'));
    await client.close();
    dir = await mkdtemp(join(tmpdir(), 'muxftp-planning-'));
    const server = ['--server', `127.0.0.1:${env.port}`];
    const outcome = await runCliQuietly(['get', 'a/x', 'b/x', '--to', 'out', '-p', ...server], dir);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain('out/x is where a/x goes too');
    expect(await readFile(join(dir, 'out', 'x'), 'utf8')).toBe('from a');
  });

  it("get '*.log' 'app*' --to out: a file both patterns match is fetched once, not failed as bound for its own place", async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('app.log', Buffer.from('app'));
    await client.put('db.log', Buffer.from('db'));
    await client.close();
    dir = await mkdtemp(join(tmpdir(), 'muxftp-planning-'));
    const server = ['--server', `127.0.0.1:${env.port}`];
    const outcome = await runCli(
      ['get', '*.log', 'app*', './db.log', '--to', 'out', '-p', '--json', ...server],
      dir,
    );
    // Before: exit 1, `out/app.log is where app.log goes too`, and a failed result beside the good one.
    expect({ code: outcome.code, stderr: outcome.stderr }).toEqual({ code: 0, stderr: '' });
    const results = JSON.parse(outcome.stdout) as Array<{ remote: string; ok: boolean }>;
    expect(results.map(({ remote, ok }) => ({ remote, ok }))).toEqual([
      { remote: 'app.log', ok: true },
      { remote: 'db.log', ok: true },
    ]);
    expect(await readFile(join(dir, 'out', 'app.log'), 'utf8')).toBe('app');
  });

  it('put x x ./x --to d/: the file named thrice is sent once', async () => {
    env = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'muxftp-planning-'));
    await writeFile(join(dir, 'x'), 'x');
    const server = ['--server', `127.0.0.1:${env.port}`];
    const outcome = await runCli(['put', 'x', 'x', './x', '--to', 'd/', '-p', '--json', ...server], dir);
    expect({ code: outcome.code, stderr: outcome.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(outcome.stdout) as unknown[]).length).toBe(1);
  });

  it('put p/x q/x --to d/: the second fails, the first arrives', async () => {
    env = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'muxftp-planning-'));
    for (const name of ['p', 'q']) {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'x'), `from ${name}`);
    }
    const server = ['--server', `127.0.0.1:${env.port}`];
    const outcome = await runCliQuietly(['put', 'p/x', 'q/x', '--to', 'd/', '-p', ...server], dir);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain('d/x is where p/x goes too');
    const client = await env.connect();
    expect((await client.getBuffer('d/x')).toString()).toBe('from p');
    await client.close();
  });
});
