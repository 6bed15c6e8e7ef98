// npm run bench:tls -- [--rounds 3] [--big-mib 512] [--files 200] [--file-mib 4] [--clients 50]
//
// TLS against plain TCP through `muxftp bench --local` (an in-memory server in its own process,
// TLS-only with a throwaway P-256 certificate for the TLS runs): one stream moving one big file,
// and 200 × 4 MiB over 50 connections × 4 streams, each uploaded and downloaded. Plain and TLS
// alternate within each round; each figure is the best of the rounds; every transfer is verified
// by the bench. Prints a table and one JSON line per measurement.
//
// The yardstick, measured in the same rounds: node's own sockets between two processes moving the
// same bytes in 1 MiB writes with no framing and no hash (bench/loopback.mjs), plain and TLS with the
// same kind of certificate. TLS / plain there is what node's TLS leaves of plain TCP on this machine
// before muxftp does anything.
//
// And the cipher's own rate: node:crypto's AES-256-GCM (TLS_AES_256_GCM_SHA384, the suite node
// negotiates first) on one core, in 16 KiB records. Each side of a TLS transfer encrypts or decrypts
// every byte on its one thread, so where plain TCP already keeps that thread busy at P bytes/s, TLS
// can reach at most X / (X + P) of plain, X being the cipher's rate: the "cipher bound" column.
import { spawn } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeThrowawayCertificate } from '#dist/cli/throwawayCertificate.js';
import { measureNodeSockets } from './loopback.mjs';
import { numberOption } from './options.mjs';

const BIN = fileURLToPath(new URL('../bin/muxftp.js', import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    'big-mib': { type: 'string', default: '512' },
    files: { type: 'string', default: '200' },
    'file-mib': { type: 'string', default: '4' },
    clients: { type: 'string', default: '50' },
  },
});
const count = { integer: true };
const rounds = numberOption('bench:tls', 'rounds', values.rounds, count);
const files = numberOption('bench:tls', 'files', values.files, count);
const clients = numberOption('bench:tls', 'clients', values.clients, count);
// Passed on to `muxftp bench --size` in bytes: the text checked here (`1e3`, `.5`) is not a size it takes.
const bigMib = numberOption('bench:tls', 'big-mib', values['big-mib']);
const fileMib = numberOption('bench:tls', 'file-mib', values['file-mib']);

const MiB = 1024 * 1024;
const WORKLOADS = [
  {
    name: `1 stream, ${bigMib} MiB`,
    raw: { connections: 1, bytesEach: Math.round(bigMib * MiB) },
    args: ['--clients', '1', '--streams', '1', '--files', '1', '--size', String(Math.round(bigMib * MiB))],
  },
  {
    name: `${files} × ${fileMib} MiB, ${clients} conn × ${Math.ceil(files / clients)} streams`,
    raw: {
      connections: clients,
      bytesEach: Math.round((files * Math.round(fileMib * MiB)) / clients),
    },
    args: [
      '--clients',
      String(clients),
      '--streams',
      String(Math.ceil(files / clients)),
      '--files',
      String(files),
      '--size',
      String(Math.round(fileMib * MiB)),
    ],
  },
];

/** The `muxftp bench` under way, told when this script is stopped. */
/** @type {import('node:child_process').ChildProcess | undefined} */
let running;
/** A signal came: its handler cleans up and exits (130, 143). */
let stopping = false;

/** @param {string[]} args */
function bench(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'bench', '--local', '--json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running = child;
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (code) => {
      running = undefined;
      // Stopped with this script: its handler exits 143; this failure raced it to exit 1.
      if (stopping) return;
      if (code !== 0) return reject(new Error(`muxftp bench ${args.join(' ')} exited ${code}: ${err}`));
      const report = JSON.parse(out);
      if (report.error_count !== 0 || report.verified !== report.ops)
        return reject(new Error(`errors: ${out}`));
      resolve(report);
    });
  });
}

/** Bytes/s node:crypto's AES-256-GCM encrypts on this thread, 512 MiB in TLS-record-sized updates. */
function measureCipher() {
  const record = randomBytes(16 * 1024);
  const cipher = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  const total = 512 * MiB;
  const started = process.hrtime.bigint();
  for (let done = 0; done < total; done += record.length) cipher.update(record);
  cipher.final();
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

const certificate = await makeThrowawayCertificate();
// Its key goes whatever happens: a failed run, Ctrl-C or SIGTERM left the directory behind.
for (const [signal, code] of /** @type {const} */ ([
  ['SIGINT', 130],
  ['SIGTERM', 143],
])) {
  process.on(signal, async () => {
    // Once: a later signal leaves the clean-up under way to end (its default kill left the key).
    if (stopping) return;
    stopping = true;
    // SIGTERM comes to this script alone (timeout, a CI job cancelled): the bench under way is
    // stopped too, and cleans up. Ctrl-C reaches it already (the terminal signals the whole
    // group), and a second one would make it exit before its clean-up.
    if (signal === 'SIGTERM' && running !== undefined && running.exitCode === null) {
      const closed = once(running, 'close');
      running.kill('SIGTERM');
      await closed;
    }
    await certificate.remove();
    process.exit(code);
  });
}
const best = new Map();
/** @param {string} key @param {number} mbps */
const keepBest = (key, mbps) => best.set(key, Math.max(best.get(key) ?? 0, mbps));
try {
  for (let round = 1; round <= rounds; round++) {
    const cipherMbps = measureCipher() / 1e6;
    console.log(JSON.stringify({ round, op: 'aes-256-gcm', mbps: Number(cipherMbps.toFixed(1)) }));
    keepBest('cipher', cipherMbps);
    for (const workload of WORKLOADS) {
      for (const tls of round % 2 ? [false, true] : [true, false]) {
        const bytesPerSecond = await measureNodeSockets({
          ...workload.raw,
          ...(tls ? { tls: certificate } : {}),
        });
        const mbps = bytesPerSecond / 1e6;
        console.log(
          JSON.stringify({
            round,
            workload: workload.name,
            op: 'node sockets',
            tls,
            mbps: Number(mbps.toFixed(1)),
          }),
        );
        keepBest(`${workload.name}|raw|${tls ? 'tls' : 'plain'}`, mbps);
      }
      for (const op of ['upload', 'download']) {
        for (const tls of round % 2 ? [false, true] : [true, false]) {
          const report = await bench([...workload.args, '--op', op, ...(tls ? ['--tls'] : [])]);
          const key = `${workload.name}|${op}|${tls ? 'tls' : 'plain'}`;
          console.log(
            JSON.stringify({
              round,
              workload: workload.name,
              op,
              tls,
              mbps: report.mbps,
              seconds: report.seconds,
              loadgen_cpu_s: report.loadgen?.cpu_s,
              server_rss_mb: report.server?.rss_mb,
            }),
          );
          keepBest(key, report.mbps);
        }
      }
    }
  }
} finally {
  await certificate.remove();
}

/** @param {number} part @param {number} whole */
const percent = (part, whole) => `${((part / whole) * 100).toFixed(0)}%`;
const cipher = best.get('cipher');
console.log(`\naes-256-gcm on one core: ${cipher.toFixed(0)} MB/s`);
console.log(
  '\n| workload | op | plain MB/s | TLS MB/s | TLS / plain | cipher bound | node sockets, plain / TLS MB/s | their TLS / plain |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const workload of WORKLOADS) {
  const rawPlain = best.get(`${workload.name}|raw|plain`);
  const rawTls = best.get(`${workload.name}|raw|tls`);
  for (const op of ['upload', 'download']) {
    const plain = best.get(`${workload.name}|${op}|plain`);
    const tls = best.get(`${workload.name}|${op}|tls`);
    console.log(
      `| ${workload.name} | ${op} | ${plain.toFixed(0)} | ${tls.toFixed(0)} | ${percent(tls, plain)} | ` +
        `${percent(cipher, cipher + plain)} | ` +
        `${rawPlain.toFixed(0)} / ${rawTls.toFixed(0)} | ${percent(rawTls, rawPlain)} |`,
    );
  }
}
