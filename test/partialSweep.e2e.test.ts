/**
 * The server's retention timer removes expired kept partial uploads (issue #8), and only those.
 * A temporary file it does not know of is not a crash's leftover while it runs (those are swept
 * at start): it may be another process's transfer in progress in the same tree, such as a
 * `muxftp get` downloading into the served directory, or a second server on the same root.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newTemporaryName, partialName, SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { servedByAnother } from '../storage/servedRootLock.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('the partial-retention timer', () => {
  it('removes expired kept partials, and leaves a transfer in progress it does not know of', async () => {
    const retentionMs = 200; // the timer fires every 200 ms
    env = await startServer({ backend: 'disk', partialRetentionMs: retentionMs });
    const root = env.root!;
    const storage = env.storage;
    // The sweeps the timer ran to their end, counted where the server calls them.
    let sweeps = 0;
    const sweep = storage.sweepTemporaryFiles.bind(storage);
    storage.sweepTemporaryFiles = async (options) => {
      const removed = await sweep(options);
      sweeps++;
      return removed;
    };
    // Another process's download in progress: a temporary file it is writing (as old as the
    // expired partial, so its age cannot be what spares it).
    const foreign = newTemporaryName();
    await writeFile(join(root, foreign), 'half a download');
    // A kept partial upload long expired.
    const expired = partialName('big.bin', { size: 10, algorithm: 'xxh128', source: 's' });
    await writeFile(join(root, expired), 'kept');
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(join(root, expired), longAgo, longAgo);
    await utimes(join(root, foreign), longAgo, longAgo);

    await until(async () => !(await readdir(root)).includes(expired), 'the sweep of the expired partial');
    // Two more sweeps: the foreign file stays (before, the first sweep removed it too).
    const swept = sweeps;
    await until(async () => sweeps >= swept + 2, 'two more sweeps');
    expect(await readdir(root)).toEqual([foreign]);
  });

  it('leaves the kept partials of a root inside this one that another live server serves', async () => {
    // A live process of this host stands for the inner server (its lock names it).
    const inner = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      env = await startServer({ backend: 'disk', partialRetentionMs: 200, servedByAnother });
      const root = env.root!;
      await mkdir(join(root, 'inner'));
      await writeFile(
        join(root, 'inner', SERVED_ROOT_LOCK_NAME),
        `${JSON.stringify({ pid: inner.pid, host: hostname(), since: 'now' })}\n`,
      );
      const kept = partialName('big.bin', { size: 10, algorithm: 'xxh128', source: 's' });
      for (const dir of [root, join(root, 'inner')]) await writeFile(join(dir, kept), 'kept');
      await until(async () => !(await readdir(root)).includes(kept), 'the sweep of the outer partial');
      await delay(600); // three sweeps more
      // Before: the outer server's timer removed it by its own retention.
      expect((await readdir(join(root, 'inner'))).sort()).toEqual([SERVED_ROOT_LOCK_NAME, kept].sort());
    } finally {
      inner.kill('SIGKILL');
    }
  });
});
