/**
 * `muxftp bench`'s clock. The measured seconds end when the last operation does, not after the
 * clients have closed their connections and the server was asked for its figures once more: round
 * trips that, against a distant server, made a short run look a third slower. A proxy on
 * 127.0.0.1 delays every chunk (both ways) to stand for the distance. They begin once every client
 * has connected, and what comes before (connects, a warm-up) is not counted. Needs dist/.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-bench-clock-');
let env: TestServer | undefined;
let proxy: Server | undefined;
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
  proxy = undefined;
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/**
 * A proxy to 127.0.0.1:`port` that holds what the server sends for `delayMs` (in order), but its
 * first chunk (the WELCOME): connections open in time for the run's start, every request after
 * takes `delayMs` more. With `welcomeDelayMs`, the WELCOME is held that long instead, and what
 * follows is not (a connect or login that takes time: TLS, scrypt, a distant server).
 */
async function delayingProxy(port: number, delayMs: number, welcomeDelayMs?: number): Promise<number> {
  proxy = createServer((client) => {
    const upstream = tcpConnect({ host: '127.0.0.1', port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    let first = true;
    upstream.on('data', (chunk) => {
      if (first && welcomeDelayMs !== undefined) {
        upstream.pause();
        setTimeout(() => {
          client.write(chunk);
          upstream.resume();
        }, welcomeDelayMs);
      } else if (first || welcomeDelayMs !== undefined) client.write(chunk);
      else setTimeout(() => client.write(chunk), delayMs);
      first = false;
    });
    upstream.on('end', () => setTimeout(() => client.end(), delayMs));
  });
  await new Promise<void>((resolve) => proxy!.listen(0, '127.0.0.1', resolve));
  return (proxy.address() as { port: number }).port;
}

it('a --files run is measured until its last operation completed', async () => {
  env = await startServer();
  const port = await delayingProxy(env.port, 300);
  const cwd = await tempDirs.make();
  const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'download', '--clients', '1'];
  const result = await runCli([...args, '--files', '2', '--size', '1KiB', '--workers', '1', '--json'], cwd, {
    timeoutMs: 30_000,
  });
  expect(result.code, result.stderr).toBe(0);
  const report = JSON.parse(result.stdout) as { ops: number; seconds: number; latency_ms: { max: number } };
  expect(report.ops).toBe(2);
  // Two downloads one after the other: at most twice the slower one's latency, and a little (the
  // 300 ms of a close and of the last stats request each came on top).
  const latencies = (2 * report.latency_ms.max) / 1000;
  expect(report.seconds, JSON.stringify(report.latency_ms)).toBeLessThan(latencies + 0.15);
}, 40_000);

it('a timed run is measured until its last operation completed too: what was under way at its end counts whole', async () => {
  env = await startServer();
  const port = await delayingProxy(env.port, 300);
  const cwd = await tempDirs.make();
  const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'download', '--clients', '1'];
  const result = await runCli(
    [...args, '--duration', '250ms', '--size', '1KiB', '--workers', '1', '--json'],
    cwd,
    {
      timeoutMs: 30_000,
    },
  );
  expect(result.code, result.stderr).toBe(0);
  const report = JSON.parse(result.stdout) as { ops: number; seconds: number; latency_ms: { max: number } };
  expect(report.ops).toBeGreaterThanOrEqual(1);
  // Every operation started within the run, so the seconds hold the slowest one whole; they were
  // the 0.25 s asked for, and its bytes (all of them, counted) were said to move in them.
  expect(report.seconds, JSON.stringify(report.latency_ms)).toBeGreaterThanOrEqual(
    report.latency_ms.max / 1000 - 0.01,
  );
}, 40_000);

it('a run is measured from when its clients have connected: their connecting (TLS, a login) is no part of its seconds', async () => {
  env = await startServer();
  // Every connection takes 2.5 s to open: far past the 0.4 s the run gave them before starting.
  const port = await delayingProxy(env.port, 0, 2_500);
  const cwd = await tempDirs.make();
  const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'download', '--clients', '2'];
  const result = await runCli([...args, '--size', '1KiB', '--workers', '1', '--json'], cwd, {
    timeoutMs: 30_000,
  });
  expect(result.code, result.stderr).toBe(0);
  const report = JSON.parse(result.stdout) as { ops: number; seconds: number; latency_ms: { max: number } };
  expect(report.ops).toBe(2);
  // Two downloads at once, started together: the run's seconds are about the slower one's (they
  // were over 2 s more, the connecting that overran the planned start).
  expect(report.seconds * 1000, JSON.stringify(report.latency_ms)).toBeLessThan(
    report.latency_ms.max + 1_000,
  );
}, 40_000);

it('--op connect counts neither the connects nor the refusals of its warm-up (the refusals it did)', async () => {
  // One connection per address: the bench's own control connection takes it, every other is refused.
  env = await startServer({ maxConnectionsPerIp: 1 });
  const cwd = await tempDirs.make();
  const args = ['bench', '--server', `127.0.0.1:${env.port}`, '--op', 'connect', '--clients', '1'];
  const result = await runCli(
    [...args, '--warmup', '1s', '--duration', '1ms', '--workers', '1', '--json'],
    cwd,
    {
      timeoutMs: 30_000,
    },
  );
  const report = JSON.parse(result.stdout) as { error_count: number; connections_failed: number };
  // One client connecting one at a time, for 1 ms after the warm-up: a refusal or two; a second
  // of warm-up had hundreds.
  expect(report.error_count).toBeLessThanOrEqual(3);
  expect(report.connections_failed).toBe(report.error_count);
}, 40_000);
