// npm run bench:metrics -- [--rounds 3] [--duration 8s] [--size 4KiB]
// What `serve --metrics` costs: the same small-file workload (`muxftp bench --op mixed`, many tiny
// transfers, so per-stream and per-transfer hooks weigh the most) against `muxftp serve --memory`
// without and with --metrics, scraped every second (Prometheus usually scrapes every 15 s).
// Rounds alternate off/on; the table shows each round and the medians. Indicative on a busy machine.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { numberOption } from './options.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '8s' },
    size: { type: 'string', default: '4KiB' },
  },
});
const BIN = fileURLToPath(new URL('../bin/muxftp.js', import.meta.url));

/** @typedef {import('../client/bench/report.js').BenchReport} BenchReport `muxftp bench --json` */

/** How long `muxftp serve` may take to print its port (and, with --metrics, its metrics port). */
const SERVE_START_MS = 15_000;

/** @param {boolean} metrics serve with --metrics on a port of its own */
async function startServe(metrics) {
  const args = [BIN, 'serve', '--memory', '--port', '0', ...(metrics ? ['--metrics', '127.0.0.1:0'] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  /** @type {number | null | undefined} */
  let exitCode;
  child.once('exit', (code) => {
    exitCode = code;
  });
  // Bounded: a serve that never prints a port (or dies first) is an error, not a wait for ever.
  const deadline = Date.now() + SERVE_START_MS;
  for (;;) {
    const port = /:(\d+) /.exec(stdout)?.[1];
    const metricsPort = /metrics at http:\/\/[^ ]+:(\d+)\//.exec(stderr)?.[1];
    if (port !== undefined && (!metrics || metricsPort !== undefined)) {
      return { child, port: Number(port), metricsPort: metrics ? metricsPort : undefined };
    }
    if (exitCode !== undefined || Date.now() >= deadline) {
      child.kill('SIGKILL');
      const what = `muxftp serve${metrics ? ' --metrics' : ''}`;
      const why = exitCode !== undefined ? `exited (${exitCode})` : `not within ${SERVE_START_MS / 1000} s`;
      const missing = port === undefined ? 'port' : 'metrics port';
      throw new Error(`${what} printed no ${missing} (${why})\nstdout: ${stdout}\nstderr: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * @param {number} port
 * @returns {Promise<BenchReport>}
 */
async function runBench(port) {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'bench',
      '--server',
      `127.0.0.1:${port}`,
      '--op',
      'mixed',
      '--clients',
      '8',
      '--streams',
      '8',
      '--size',
      values.size,
      '--duration',
      values.duration,
      '--warmup',
      '1s',
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  await once(child, 'exit');
  return JSON.parse(stdout);
}

const rows = [];
const rounds = numberOption('bench:metrics', 'rounds', values.rounds, { integer: true });
for (let round = 1; round <= rounds; round++) {
  for (const metrics of round % 2 === 1 ? [false, true] : [true, false]) {
    const server = await startServe(metrics);
    let scrapes = 0;
    const scraper =
      server.metricsPort === undefined
        ? undefined
        : setInterval(() => {
            fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)
              .then((r) => r.text())
              .then(
                () => scrapes++,
                () => {},
              );
          }, 1000);
    const report = await runBench(server.port);
    clearInterval(scraper);
    server.child.kill('SIGTERM');
    await once(server.child, 'exit');
    rows.push({
      round,
      metrics,
      ops_per_s: report.files_per_s,
      p99_ms: report.latency_ms.p99,
      errors: report.error_count,
      scrapes,
    });
  }
}
console.table(rows);
/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const metrics of [false, true]) {
  const mine = rows.filter((r) => r.metrics === metrics);
  console.log(
    `metrics ${metrics ? 'on ' : 'off'}: median ${median(mine.map((r) => r.ops_per_s))} ops/s, p99 ${median(mine.map((r) => r.p99_ms))} ms`,
  );
}
