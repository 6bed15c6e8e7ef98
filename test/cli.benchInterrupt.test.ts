/**
 * Ctrl-C during `muxftp bench --server …`: like every other command it says in one line what was
 * interrupted (here with what it had measured so far) and exits 130, having stopped its clients
 * and removed what it seeded; before, it died of the signal without a word. Real child processes
 * and sockets on 127.0.0.1 port 0, against a server the test runs. Needs dist/ (npm run build).
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import type { Frame } from '../shared/protocol/frame.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

const tempDirs = new TempDirs('muxftp-bench-interrupt-');
let env: TestServer | undefined;
let silent: Server | undefined;
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await new Promise((resolve) => (silent ? silent.close(resolve) : resolve(undefined)));
  silent = undefined;
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/** A server that accepts connections and never says a word; `connected` resolves at the first. */
async function silentServer(): Promise<{ port: number; connected: Promise<void> }> {
  let arrived: () => void = () => {};
  const connected = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    arrived();
  });
  await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
  return { port: (silent.address() as { port: number }).port, connected };
}

describe('Ctrl-C during bench --server', () => {
  it('stops the clients, says what was measured so far in one line, removes its files, exits 130', async () => {
    env = await startServer();
    const server = env.server;
    const cwd = await tempDirs.make();
    // Well into the run: the server has sent a few dozen of its files.
    const underWay = (async () => {
      for (const started = Date.now(); server.stats().filesOut < 30 && Date.now() - started < 15_000; )
        await delay(20);
    })();
    const args = ['bench', '--server', `127.0.0.1:${env.port}`, '--op', 'download', '--clients', '2'];
    const startedAt = performance.now();
    const result = await runCli([...args, '--size', '64KiB', '--duration', '60s', '--workers', '1'], cwd, {
      interruptWhen: underWay,
      timeoutMs: 20_000,
    });
    expect(result.signal).toBe(null);
    expect(result.code).toBe(130);
    expect(result.stderr).toMatch(
      /^muxftp: bench: interrupted after \d+\.\d s: \d+ operations, \d+\.\d MB \(\d+\.\d MB\/s\) so far \(CANCELLED\)\n$/,
    );
    const [, operations] = /: (\d+) operations/.exec(result.stderr)!;
    expect(Number(operations)).toBeGreaterThan(0);
    expect(result.stdout).toBe('');
    expect(performance.now() - startedAt).toBeLessThan(15_000); // not the 60 s it was asked for
    // Its connections are gone, and so is the directory it seeded.
    for (const started = Date.now(); server.stats().connections > 0 && Date.now() - started < 5_000; )
      await delay(20);
    expect(server.stats().connections).toBe(0);
    expect(await (await env.connect()).list('')).toEqual([]);
  });

  it('stopped by SIGTERM (timeout, a CI job cancelled): the same line, exit 143 (128 + 15)', async () => {
    env = await startServer();
    const server = env.server;
    const cwd = await tempDirs.make();
    const underWay = (async () => {
      for (const started = Date.now(); server.stats().filesOut < 10 && Date.now() - started < 15_000; )
        await delay(20);
    })();
    const args = ['bench', '--server', `127.0.0.1:${env.port}`, '--op', 'download', '--clients', '1'];
    const result = await runCli([...args, '--size', '64KiB', '--duration', '60s', '--workers', '1'], cwd, {
      interruptWhen: underWay,
      interruptSignal: 'SIGTERM',
      timeoutMs: 20_000,
    });
    expect(result.code).toBe(143);
    expect(result.stderr).toMatch(/^muxftp: bench: interrupted after .* so far \(CANCELLED\)\n$/);
  });

  it('after a --warmup: says what the measured run did, over its seconds (not the warm-up too)', async () => {
    env = await startServer();
    const server = env.server;
    const cwd = await tempDirs.make();
    const spawnedAt = performance.now();
    let interruptedAt = 0;
    // 2 s after a 3 s warm-up (and the start-up before it).
    const underWay = (async () => {
      while (performance.now() - spawnedAt < 6_000 || server.stats().filesOut < 10) await delay(20);
      interruptedAt = performance.now();
    })();
    const args = ['bench', '--server', `127.0.0.1:${env.port}`, '--op', 'download', '--clients', '1'];
    const result = await runCli(
      [...args, '--size', '64KiB', '--duration', '60s', '--warmup', '3s', '--workers', '1'],
      cwd,
      { interruptWhen: underWay, timeoutMs: 20_000 },
    );
    expect(result.code).toBe(130);
    const match = /interrupted after (\d+\.\d) s: (\d+) operations, (\d+\.\d) MB \((\d+\.\d) MB\/s\)/.exec(
      result.stderr,
    );
    expect(match, result.stderr).not.toBeNull();
    const [seconds, operations, mb, mbps] = match!.slice(1).map(Number) as [number, number, number, number];
    // Measured from the end of the warm-up: it said "after 5.1 s" for 2 s of counted transfers,
    // and divided their bytes by the 5.1 s.
    const wallSeconds = (interruptedAt - spawnedAt) / 1000;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(wallSeconds - 3);
    expect(operations).toBeGreaterThan(0);
    // Each figure is rounded to a tenth: within 10 %.
    expect(Math.abs(mbps - mb / seconds)).toBeLessThan(0.1 * mbps);
  });

  it('during the warm-up: says so (nothing was measured yet)', async () => {
    env = await startServer();
    const server = env.server;
    const cwd = await tempDirs.make();
    const underWay = (async () => {
      for (const started = Date.now(); server.stats().filesOut < 10 && Date.now() - started < 15_000; )
        await delay(20);
    })();
    const args = ['bench', '--server', `127.0.0.1:${env.port}`, '--op', 'download', '--clients', '1'];
    const result = await runCli(
      [...args, '--size', '64KiB', '--duration', '60s', '--warmup', '30s', '--workers', '1'],
      cwd,
      { interruptWhen: underWay, timeoutMs: 20_000 },
    );
    expect(result.code).toBe(130);
    expect(result.stderr).toBe('muxftp: bench: interrupted during the warm-up (CANCELLED)\n');
  });

  it('while connecting to a server that never answers: says so, exits 130', async () => {
    const cwd = await tempDirs.make();
    const { port, connected } = await silentServer();
    const result = await runCli(['bench', '--server', `127.0.0.1:${port}`], cwd, {
      interruptWhen: connected,
      timeoutMs: 15_000,
    });
    expect(result.code).toBe(130);
    expect(result.stderr).toBe(
      `muxftp: bench: interrupted while connecting to 127.0.0.1:${port} (CANCELLED)\n`,
    );
    expect(result.stdout).toBe('');
  });

  it.skipIf(process.platform !== 'linux')(
    'while making a large payload: heard at once, not once it is made (a 1 GiB one took ~8 s)',
    async () => {
      // The payload is made before anything connects: nothing needs to listen on the port.
      const cwd = await tempDirs.make();
      const children = new Set<ChildProcess>();
      let interruptedAt = 0;
      // Under way: the payload's pages filled (RSS past 200 MB; the signal handlers are set by then).
      const underWay = (async () => {
        const rssMb = (pid: number) => {
          const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          return Number(match?.[1] ?? 0) / 1024;
        };
        for (const started = Date.now(); Date.now() - started < 20_000; ) {
          const [child] = children;
          if (child?.pid !== undefined && child.exitCode === null && rssMb(child.pid) > 200) break;
          await delay(10);
        }
        interruptedAt = performance.now();
      })();
      const args = ['bench', '--server', '127.0.0.1:1', '--op', 'upload', '--clients', '1', '--files', '1'];
      const result = await runCli([...args, '--size', '2GiB', '--workers', '1'], cwd, {
        interruptWhen: underWay,
        timeoutMs: 60_000,
        children,
      });
      expect(result.code).toBe(130);
      expect(result.stderr).toBe('muxftp: bench: interrupted while preparing the run (CANCELLED)\n');
      expect(performance.now() - interruptedAt).toBeLessThan(5_000);
    },
    70_000,
  );

  it('with --json, prints the failure shape with CANCELLED', async () => {
    const cwd = await tempDirs.make();
    const { port, connected } = await silentServer();
    const result = await runCli(['bench', '--json', '--server', `127.0.0.1:${port}`], cwd, {
      interruptWhen: connected,
      timeoutMs: 15_000,
    });
    expect(result.code).toBe(130);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: false,
      error: { code: 'CANCELLED', message: `interrupted while connecting to 127.0.0.1:${port}` },
    });
  });
});

/**
 * Ctrl-C once the measured run has ended, while the bench takes the server's last figures or
 * removes its directory, from a server that has just stopped answering (here its control
 * connection frozen by a proxy, as a SIGSTOP'd server is): the first one was not heard until each
 * request's 60 s response timeout, and the run then exited 0 as if never interrupted.
 */
describe('Ctrl-C during bench clean-up, the server silent', () => {
  let proxy: FrameProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /** Runs a small download bench through a proxy whose first (control) connection goes silent at `freezeAt`. */
  async function benchFrozenAt(freezeAt: (op: string) => boolean, json = false) {
    env = await startServer();
    const server = env.server;
    let frozen = false;
    let froze: () => void = () => {};
    const frozenNow = new Promise<void>((resolve) => {
      froze = resolve;
    });
    const silence = (frame: Frame, connection: number): Frame | undefined => {
      if (connection !== 0) return frame;
      if (!frozen && frame.type === FrameType.OPEN && freezeAt(String(jsonOf(frame).op))) {
        frozen = true;
        froze();
      }
      return frozen ? undefined : frame;
    };
    proxy = await startFrameProxy(env.port, {
      fromClient: silence,
      fromServer: (f, c) => (frozen && c === 0 ? undefined : f),
    });
    let interruptedAt = 0;
    const cwd = await tempDirs.make();
    const args = ['bench', '--server', `127.0.0.1:${proxy.port}`, '--op', 'download', '--clients', '2'];
    const result = await runCli(
      [...args, '--files', '10', '--size', '64KiB', '--workers', '1', ...(json ? ['--json'] : [])],
      cwd,
      {
        interruptWhen: frozenNow
          .then(() => delay(300))
          .then(() => {
            interruptedAt = performance.now();
          }),
        timeoutMs: 30_000,
      },
    );
    return { ...result, afterMs: performance.now() - interruptedAt, server };
  }

  it('while removing its directory: ends within its 2 s, prints the report, names the directory left, exits 130', async () => {
    const result = await benchFrozenAt((op) => op === 'list');
    // Before: 20+ s (each request's 60 s response timeout; the test's SIGKILL at 30 s), then exit 0.
    expect(result.code, result.stderr).toBe(130);
    expect(result.afterMs).toBeLessThan(5_000);
    expect(result.stdout).toMatch(/operations {3}10 \(10 verified, 0 errors\)/);
    expect(result.stderr).toMatch(
      /^muxftp: warning: bench: could not remove bench-\d+-[0-9a-z]+\/, its files on the server: not removed within 2 s of the interruption \(CANCELLED\)\n/m,
    );
    expect(result.stderr).toMatch(
      /muxftp: bench: interrupted after the measured run, while cleaning up: its report stands \(CANCELLED\)\n$/,
    );
  }, 40_000);

  it("while taking the server's last figures: the same, and --json says ok false, CANCELLED, with the report", async () => {
    // A stats request after the last transfer was served: the run's last sample (or one then in flight).
    let armed = false;
    const result = await benchFrozenAt((op) => {
      armed ||= env!.server.stats().filesOut >= 10;
      return armed && op === 'stats';
    }, true);
    expect(result.code, result.stderr).toBe(130);
    expect(result.afterMs).toBeLessThan(5_000);
    const report = JSON.parse(result.stdout);
    expect(report.ok).toBe(false);
    expect(report.error).toEqual({
      code: 'CANCELLED',
      message: 'interrupted after the measured run, while cleaning up: its report stands',
    });
    expect(report.ops).toBe(10);
    expect(result.stderr).toMatch(/could not remove bench-\d+-[0-9a-z]+\/, its files on the server/);
  }, 40_000);
});
