/**
 * -j caps transfers, not the small requests a multi-file command plans with: `get` stats every
 * remote before it starts, many at once (DEFAULTS.planningRequests), while its downloads run no
 * more than -j at a time. Real CLI process, real server, counted at the storage boundary.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Storage } from '../storage/types.js';
import { runCliQuietly } from './helpers/cliProcess.js';
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
    const names = Array.from({ length: 40 }, (_, i) => `f${i}.bin`);
    const client = await env.connect();
    for (const name of names) await client.put(name, Buffer.from(name));
    await client.close();
    const stats = countInFlight(env.storage, 'stat');
    const reads = countInFlight(env.storage, 'openRead');
    dir = await mkdtemp(join(tmpdir(), 'muxftp-planning-'));
    const outcome = await runCliQuietly(
      ['get', ...names, '--to', dir, '-j', '1', '--server', `127.0.0.1:${env.port}`],
      dir,
    );
    expect(outcome).toEqual({ code: 0, stderr: '' });
    expect((await readdir(dir)).sort()).toEqual([...names].sort());
    expect(reads.most).toBe(1);
    expect(stats.most).toBeGreaterThan(1);
  });
});
