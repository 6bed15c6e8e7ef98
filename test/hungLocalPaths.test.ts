/**
 * A client command whose local path is under a hung mount (an NFS server gone, a FUSE daemon
 * stuck): its stat never returns. Made on the loop, it held the process in the kernel, deaf to
 * Ctrl-C; made through the threadpool, the exit after Ctrl-C waited for that thread (libuv joins
 * its threads at exit): either way only SIGKILL ended it. Now Ctrl-C ends it at once, 130 (by
 * the signal), with a line naming the call. A real hung FUSE mount (test/helpers/hungMount.ts):
 * root only, skipped elsewhere.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { runCli, stopChildren } from './helpers/cliProcess.js';
import { canMountHung, mountHung } from './helpers/hungMount.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

const temps = new TempDirs('muxftp-hung-local-');
const children = new Set<ChildProcess>();
const cleanup: Array<() => Promise<void>> = [];
let server: TestServer | undefined;

afterEach(async () => {
  // SIGKILL first: a child stuck in the mount's call ends by nothing else (the bug).
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await stopChildren(children);
  for (const step of cleanup.splice(0).reverse()) await step();
  await server?.stop();
  server = undefined;
  await temps.removeAll();
});

/** Whether a thread of process `pid` waits in a FUSE request (the hung mount's call). */
async function waitsInFuse(pid: number): Promise<boolean> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => []);
  for (const task of tasks) {
    const wchan = await readFile(`/proc/${pid}/task/${task}/wchan`, 'utf8').catch(() => '');
    if (wchan.startsWith('fuse')) return true;
  }
  return false;
}

/** Runs the CLI with `args`; once one of its threads waits on the hung mount, one SIGINT. */
async function interruptedOnMount(args: string[], cwd: string) {
  let child: ChildProcess | undefined;
  const owner = {
    add(started: ChildProcess) {
      child = started;
      children.add(started);
    },
  };
  let interruptedAt = 0;
  const waiting = until(
    async () => child?.pid !== undefined && (await waitsInFuse(child.pid)),
    'the call on the mount',
    {
      everyMs: 50,
    },
  )
    // Past DEFAULTS.localCallHungMs: a call younger than that is waited for, as one that returns.
    .then(() => delay(DEFAULTS.localCallHungMs + 300))
    .then(() => {
      interruptedAt = Date.now();
    });
  const result = await runCli([...args, '--server', `127.0.0.1:${server!.port}`], cwd, {
    interruptWhen: waiting,
    timeoutMs: 20_000,
    children: owner,
  });
  return { ...result, afterMs: Date.now() - interruptedAt };
}

describe.skipIf(!canMountHung)('Ctrl-C of a command whose local path is under a hung mount', () => {
  async function setUp(): Promise<string> {
    server = await startServer();
    const client = await server.connect();
    await client.put('f', Buffer.from('hello'));
    await client.mkdir('t');
    await client.mkdir('t/m');
    await client.put('t/m/z', Buffer.from('z'));
    await client.close();
    return temps.make();
  }

  async function hungAt(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const hung = await mountHung(dir);
    cleanup.push(() => hung.remove());
  }

  it.each([
    [
      'put FILE',
      (local: string) => ['put', join(local, 'mnt', 'x')],
      'mnt',
      (local: string) => `stat ${join(local, 'mnt', 'x')}`,
    ],
    [
      'get into DIR/',
      (local: string) => ['get', 'f', `${join(local, 'mnt')}/`],
      'mnt',
      (local: string) => `stat ${join(local, 'mnt')}`,
    ],
    [
      'put -r of a tree holding it',
      (local: string) => ['put', '-r', join(local, 'tree')],
      'tree/m',
      (local: string) => `stat ${join(local, 'tree', 'm')}`,
    ],
    [
      'get -r into a tree holding it',
      (local: string) => ['get', '-r', 't', `${join(local, 'dest')}/`],
      'dest/t/m',
      (local: string) => `lstat ${join(local, 'dest', 't', 'm')}`,
    ],
  ])(
    '%s: ends at once, 130, naming the call',
    async (_name, args, mountAt, call) => {
      const local = await setUp();
      await mkdir(join(local, 'tree'));
      await writeFile(join(local, 'tree', 'a'), 'a');
      await hungAt(join(local, mountAt));
      const result = await interruptedOnMount(args(local), local);
      // Before: still running until the test's SIGKILL (20 s).
      expect(result.signal === 'SIGINT' || result.code === 130, result.stderr).toBe(true);
      expect(result.afterMs).toBeLessThan(5_000);
      expect(result.stderr).toContain(
        `muxftp: ${call(local)} had not returned (a hung mount?): ended without waiting for it`,
      );
    },
    40_000,
  );
});
