/**
 * The served root's lock heartbeat (storage/servedRootLock.ts): a lock whose pid cannot be
 * probed from here (another pid namespace under this hostname, another boot under it, another
 * host) is watched for 2.5 of its heartbeats: refused while it changes, taken over once it does
 * not. Before, containers sharing a hostname probed each other's pids in their own namespace,
 * found them dead and took a live lock over: two servers on one root, each sweep removing the
 * other's uploads in flight (review K, K3). A lock from an older muxftp (no heartbeat) from
 * another host is still honoured, and a crash-restart on one host still taken over at once. Real
 * `muxftp serve` children on 127.0.0.1, port 0; the small heartbeat is the lock's own (the
 * watcher waits by what the lock declares). Needs dist/ (npm run build).
 */

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, type TestContext } from 'vitest';
import { Client } from '../client/client.js';
import { machineTag } from '../shared/hostTag.js';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { lockServedRoot, RootInUseError, servedAbove, servedByAnother } from '../storage/servedRootLock.js';
import { CLI_BIN, type ServeChild, ServeExitedError, startServeChild } from './helpers/cliProcess.js';
import { type OwnedByTest, ownFor } from './helpers/ownedByTest.js';
import { canMountTmpfs, mountTmpfs } from './helpers/tmpfsMount.js';
import { until } from './helpers/waits.js';

async function serve(
  own: OwnedByTest,
  root: string,
): Promise<ServeChild | { code: number | null; stderr: string }> {
  try {
    return await startServeChild(['--root', root], own.children);
  } catch (error) {
    if (error instanceof ServeExitedError) return { code: error.code, stderr: error.stderr };
    throw error;
  }
}

const linux = process.platform === 'linux';
/** Root may still lack the capability (CAP_SYS_ADMIN: Docker's default drops it): tried, not assumed. */
const canUnsharePid =
  linux &&
  process.getuid?.() === 0 &&
  spawnSync('unshare', ['--pid', '--fork', '--kill-child', 'true'], { stdio: 'ignore', timeout: 5_000 })
    .status === 0;
const bootId = linux ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : undefined;
const ownNamespace = linux ? (await import('node:fs')).readlinkSync('/proc/self/ns/pid') : undefined;

/** Locks whose pid cannot be probed here, as a server there writes them, with a 200 ms heartbeat. */
const elsewhere: Array<[string, Record<string, unknown>]> = [
  ['another host', { host: 'another-host.example' }],
  ...(linux
    ? ([
        // Docker --uts=host, Kubernetes hostNetwork: this hostname, this boot, another pid namespace.
        [
          'another container of this hostname',
          { host: hostname(), bootId, pidNamespace: 'pid:[4026532999]' },
        ],
        // A cloned VM of this name on an NFS root: another boot; its init namespace is everyone's.
        [
          'another machine of this hostname',
          { host: hostname(), bootId: '00000000-0000-4000-8000-000000000000', pidNamespace: ownNamespace },
        ],
      ] as Array<[string, Record<string, unknown>]>)
    : []),
];

/** A lock as a server elsewhere writes it: its pid is dead here, or another process here. */
function lockFrom(where: Record<string, unknown>, heartbeatMs: number | undefined): string {
  return `${JSON.stringify({ pid: 999_999_999, since: '2026-01-01T00:00:00.000Z', startTicks: '1', ...where, ...(heartbeatMs === undefined ? {} : { heartbeatMs }) })}\n`;
}

/** A root `outer` (the test's own temporary directory, removed after it) and a root `inner` in it. */
async function nestedRoots(test: TestContext): Promise<{ outer: string; inner: string }> {
  const outer = await ownFor(test).tempDir();
  const inner = join(outer, 'pub');
  await mkdir(inner);
  return { outer, inner };
}

/**
 * A lock of this hostname from another boot, in the init pid namespace (this one after a reboot,
 * and every machine's), its pid dead here; `more` adds to it (a machine tag).
 */
const otherBootLock = (more: Record<string, unknown> = {}) => ({
  pid: 999_999_999,
  host: hostname(),
  since: 'then',
  bootId: '00000000-0000-4000-8000-000000000000',
  startTicks: '1',
  pidNamespace: ownNamespace,
  ...more,
  heartbeatMs: 2000,
});

/** Touches `path` every `ms` as its holder's heartbeat would, until the returned stop is called. */
function beat(path: string, ms: number): () => void {
  const timer = setInterval(() => {
    const at = new Date();
    utimes(path, at, at).catch(() => {});
  }, ms);
  return () => clearInterval(timer);
}

describe.concurrent('the served root lock’s heartbeat', () => {
  for (const [where, fields] of elsewhere) {
    it(`a lock from ${where}: refused while its heartbeat goes on, taken over once it stopped`, async (test) => {
      const own = ownFor(test);
      const root = await own.tempDir();
      const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
      const lock = lockFrom(fields, 200);
      await writeFile(lockPath, lock);
      const stop = beat(lockPath, 40);
      own.defer(stop);

      const refused = await serve(own, root);
      expect(refused).toMatchObject({ code: 1 });
      const { stderr } = refused as { stderr: string };
      expect(stderr).toContain(
        'cannot be checked from here (another host, container or boot): waiting 0.5 s to see whether it is alive',
      );
      expect(stderr).toContain(`is already served by muxftp (pid 999999999 on host ${fields.host}`);
      expect(stderr).toContain('its lock is kept fresh');
      expect(await readFile(lockPath, 'utf8')).toBe(lock);

      stop();
      const taken = await serve(own, root);
      expect(taken).toHaveProperty('port');
      const server = taken as ServeChild;
      const now = JSON.parse(await readFile(lockPath, 'utf8'));
      expect(now.pid).toBe(server.child.pid);
      expect(now.heartbeatMs).toBe(2000);
      if (linux) expect(now.pidNamespace).toBe(ownNamespace);
      expect(server.stderr()).toContain('waiting 0.5 s to see whether it is alive');
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    });
  }

  it('stopped while it waits on a lock (SIGTERM), it leaves no copy of its own lock in the root', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    // Another host's lock whose heartbeat stopped: watched for 5 s before it is taken over.
    await writeFile(join(root, SERVED_ROOT_LOCK_NAME), lockFrom({ host: 'another-host.example' }, 2000));
    const child = spawn(process.execPath, [CLI_BIN, 'serve', '--root', root, '--port', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    own.children.add(child);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const deadline = Date.now() + 10_000;
    while (!stderr.includes('to see whether it is alive') && Date.now() < deadline) await sleep(20);
    expect(stderr).toContain('to see whether it is alive');
    child.kill('SIGTERM');
    await exited;
    // Before, its staging copy (.muxftp-serve.lock.<pid>.<hex>.new) stayed, and no sweep takes it.
    expect((await readdir(root)).filter((name) => name.endsWith('.new'))).toEqual([]);
  });

  it('a lock from another host without a heartbeat (an older muxftp) is honoured, at once; one declaring an unbounded heartbeat too', async (test) => {
    const own = ownFor(test);
    for (const heartbeatMs of [undefined, 86_400_000]) {
      const root = await own.tempDir();
      const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
      await writeFile(lockPath, lockFrom({ host: 'another-host.example' }, heartbeatMs));
      const waits: number[] = [];
      const started = performance.now();
      await expect(lockServedRoot(root, { onWait: (_holder, ms) => waits.push(ms) })).rejects.toBeInstanceOf(
        RootInUseError,
      );
      expect(waits).toEqual([]);
      expect(performance.now() - started).toBeLessThan(1000);
      const refused = await serve(own, root);
      expect(refused).toEqual({
        code: 1,
        stderr: `muxftp: serve: ${root} is already served by muxftp (pid 999999999 on host another-host.example, since 2026-01-01T00:00:00.000Z: it cannot be checked from here); stop that server first, or remove ${lockPath} if it is not running\n`,
      });
    }
  });

  it('a crash-restart on this host is taken over at once, without a wait', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const killed = (await serve(own, root)) as ServeChild;
    const left = JSON.parse(await readFile(lockPath, 'utf8'));
    expect(left).toMatchObject({ pid: killed.child.pid, heartbeatMs: 2000 });
    killed.child.kill('SIGKILL');
    await killed.exited;

    const next = (await serve(own, root)) as ServeChild;
    expect(next.stderr()).not.toContain('waiting');
    expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe(next.child.pid);
    // In-process, with the same kind of lock left by a dead pid here: no watch at all.
    next.child.kill('SIGKILL');
    await next.exited;
    const waits: number[] = [];
    const held = await lockServedRoot(root, { onWait: (_holder, ms) => waits.push(ms) });
    expect(waits).toEqual([]);
    expect(held.lock).toBeDefined();
    await held.lock?.release();
  });

  it('a lock removed while its server runs is made again at the next beat; one another server took is lost', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const events: string[] = [];
    const { lock } = await lockServedRoot(root, {
      heartbeatMs: 50,
      onRecreated: () => events.push('recreated'),
      onLost: () => events.push('lost'),
    });
    own.defer(() => lock?.release());
    const ours = await readFile(lockPath, 'utf8');
    // Removed by hand (taken for a dead server's): before, no more beats, and a second server
    // then started on this root unopposed.
    await unlink(lockPath);
    for (let i = 0; i < 100 && !events.includes('recreated'); i++) await sleep(10);
    expect(events).toEqual(['recreated']);
    expect(await readFile(lockPath, 'utf8')).toBe(ours);
    await expect(lockServedRoot(root, { heartbeatMs: 50 })).rejects.toBeInstanceOf(RootInUseError);
    // Another's in its place: lost, and left as it is.
    const another = lockFrom({ host: 'another-host.example' }, 2000);
    await writeFile(lockPath, another);
    for (let i = 0; i < 100 && !events.includes('lost'); i++) await sleep(10);
    expect(events).toEqual(['recreated', 'lost']);
    expect(await readFile(lockPath, 'utf8')).toBe(another);
    expect((await readdir(root)).filter((name) => name.endsWith('.new'))).toEqual([]);
  });

  it('a live server’s lock is refreshed while it runs, and the refreshes stop when it exits', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
    const server = (await serve(own, root)) as ServeChild;
    const stamp = async () =>
      (await import('node:fs/promises')).stat(lockPath, { bigint: true }).then((s) => s.mtimeNs);
    const first = await stamp();
    // A beat every 2 s: polled, not slept for 2.6 s (a loaded machine's beat came later once).
    await until(async () => (await stamp()) !== first, 'a refresh of the lock', { everyMs: 100 });
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    await expect(readFile(lockPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.skipIf(!canMountTmpfs)(
    'a refresh that fails (its root remounted read-only) is logged and the server goes on serving; refreshed again once it can be',
    async (test) => {
      const own = ownFor(test);
      const disk = mountTmpfs('1m');
      own.defer(() => disk.remove());
      const lockPath = join(disk.dir, SERVED_ROOT_LOCK_NAME);
      const server = (await serve(own, disk.dir)) as ServeChild;
      execFileSync('mount', ['-o', 'remount,ro', disk.dir], { stdio: 'ignore' });
      for (let i = 0; i < 400 && !server.stderr().includes('cannot refresh'); i++) await sleep(20);
      expect(server.stderr()).toContain(`cannot refresh ${SERVED_ROOT_LOCK_NAME} in ${disk.dir} (EROFS)`);
      const client = own.destroys(await Client.connect({ host: '127.0.0.1', port: server.port }));
      expect(await client.list('')).toEqual([]);
      expect(server.child.exitCode).toBeNull();

      execFileSync('mount', ['-o', 'remount,rw', disk.dir], { stdio: 'ignore' });
      const before = (await stat(lockPath, { bigint: true })).mtimeNs;
      for (let i = 0; i < 400 && (await stat(lockPath, { bigint: true })).mtimeNs === before; i++)
        await sleep(20);
      expect((await stat(lockPath, { bigint: true })).mtimeNs).not.toBe(before);
      await client.close();
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
      await expect(readFile(lockPath)).rejects.toMatchObject({ code: 'ENOENT' });
    },
    30_000,
  );

  it.skipIf(!linux)(
    'a root inside one served by another container of this hostname, under this pid (both pid 1), is served from above',
    async (test) => {
      const { outer, inner } = await nestedRoots(test);
      // Before, this pid and hostname made it "this process's own lock": the inner server swept
      // the outer one's uploads in flight.
      const there = {
        pid: process.pid,
        host: hostname(),
        since: 'then',
        bootId,
        pidNamespace: 'pid:[4026532999]',
        heartbeatMs: 200,
      };
      await writeFile(join(outer, SERVED_ROOT_LOCK_NAME), JSON.stringify(there));
      expect(await servedAbove(inner)).toEqual({ directory: outer, holder: there });
    },
  );

  it.skipIf(!linux)(
    'a lock above (or below) left on this host before a reboot, its pid dead, is stale: the root inside gets its sweep',
    async (test) => {
      const { outer, inner } = await nestedRoots(test);
      // This host, this pid namespace (the init one, the same after a reboot), another boot: on
      // main the boot id made it stale; with a heartbeat it is now taken for a live server for good.
      const before = otherBootLock();
      await writeFile(join(outer, SERVED_ROOT_LOCK_NAME), JSON.stringify(before));
      expect(await servedAbove(inner)).toBeUndefined();
      await writeFile(join(inner, SERVED_ROOT_LOCK_NAME), JSON.stringify(before));
      expect(await servedByAnother(inner)).toBe(false);
    },
  );

  it.skipIf(!linux || machineTag() === undefined)(
    'a lock above (or below) of another machine of this hostname (another machine tag), its pid dead here, is honoured: no sweep',
    async (test) => {
      const { outer, inner } = await nestedRoots(test);
      // Two machines named alike (raspberrypi, localhost) on one NFS tree: another boot, the init
      // pid namespace everyone's. Before, taken for this machine restarted: the root inside swept
      // that live server's uploads in flight.
      const there = otherBootLock({
        machine: machineTag() === '0'.repeat(32) ? '1'.repeat(32) : '0'.repeat(32),
      });
      await writeFile(join(outer, SERVED_ROOT_LOCK_NAME), JSON.stringify(there));
      expect(await servedAbove(inner)).toEqual({ directory: outer, holder: there });
      await writeFile(join(inner, SERVED_ROOT_LOCK_NAME), JSON.stringify(there));
      expect(await servedByAnother(inner)).toBe(true);
      // This machine's, before a reboot: stale, as before.
      const before = { ...there, machine: machineTag() };
      await writeFile(join(outer, SERVED_ROOT_LOCK_NAME), JSON.stringify(before));
      expect(await servedAbove(inner)).toBeUndefined();
    },
  );

  it('writes its machine tag (never the machine id itself) in its lock, where there is one', async (test) => {
    const root = await ownFor(test).tempDir();
    const taken = await lockServedRoot(root);
    try {
      const text = await readFile(join(root, SERVED_ROOT_LOCK_NAME), 'utf8');
      expect(JSON.parse(text).machine).toBe(machineTag());
      const id = await readFile('/etc/machine-id', 'utf8').then(
        (t) => t.trim(),
        () => undefined,
      );
      if (id) expect(text).not.toContain(id);
    } finally {
      await taken.lock?.release();
    }
  });

  it.skipIf(!canUnsharePid)(
    'a real server in another pid namespace (unshare --pid, as root): refused while it runs, taken over once it is killed',
    async (test) => {
      const own = ownFor(test);
      const root = await own.tempDir();
      const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
      const module = join(import.meta.dirname, '..', 'dist', 'storage', 'servedRootLock.js');
      // It is pid 1 there; here pid 1 is another live process, with another start time.
      const script = `
        const { lockServedRoot } = await import(${JSON.stringify(module)});
        const { lock } = await lockServedRoot(process.argv[1], { heartbeatMs: 200 });
        console.log(lock === undefined ? 'UNLOCKED' : 'GOT');
        setInterval(() => {}, 1000);
      `;
      // --kill-child: unshare killed, its child (the namespace's init) is killed with it.
      const holder = own.kills(
        spawn(
          'unshare',
          [
            '--pid',
            '--fork',
            '--mount-proc',
            '--kill-child',
            process.execPath,
            '--input-type=module',
            '-e',
            script,
            root,
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        ),
      );
      const said = await new Promise<string>((resolve) => {
        let out = '';
        holder.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
        holder.once('exit', () => resolve(`EXITED ${out}`));
      });
      expect(said).toBe('GOT');
      const lock = JSON.parse(await readFile(lockPath, 'utf8'));
      expect(lock).toMatchObject({ pid: 1, host: hostname(), heartbeatMs: 200 });
      expect(lock.pidNamespace).not.toBe(ownNamespace);

      const refused = await serve(own, root);
      expect(refused).toMatchObject({ code: 1 });
      expect((refused as { stderr: string }).stderr).toContain('waiting 0.5 s to see whether it is alive');
      expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe(1);

      const gone = new Promise((resolve) => holder.once('exit', resolve));
      holder.kill('SIGKILL');
      await gone;
      // Killed: its lock stays, and stops changing.
      expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe(1);
      const taken = await serve(own, root);
      expect(taken).toHaveProperty('port');
      expect(JSON.parse(await readFile(lockPath, 'utf8')).pid).toBe((taken as ServeChild).child.pid);
    },
    30_000,
  );
});
