// npm run bench:compare -- [--quick] [--no-peers]
// Issue #3's table: muxftp's workloads (muxftp bench --local --json) beside the raw loopback limit
// and real FTP servers (bench/peers.mjs: vsftpd, pyftpdlib, driven by curl), all in one run.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { measureLoopback, measureLoopbackParallel } from './loopback.mjs';

/** @typedef {import('../client/bench/report.js').BenchReport} BenchReport `muxftp bench --json` */

const run = promisify(execFile);
const { values } = parseArgs({ options: { quick: { type: 'boolean' }, 'no-peers': { type: 'boolean' } } });
const quick = values.quick === true;
const single = quick ? '256MiB' : '1GiB';
const clients = quick ? 50 : 300;
const fileSize = quick ? '2MiB' : '10MiB';
const idleMany = quick ? 1000 : 5000;

const bin = fileURLToPath(new URL('../bin/muxftp.js', import.meta.url));
/**
 * One `muxftp bench --local --json` run; a run that missed a threshold exits 1 but still reports.
 * @param {...string} args
 * @returns {Promise<BenchReport>}
 */
async function muxftp(...args) {
  const { stdout } = await run(process.execPath, [bin, 'bench', '--local', '--json', ...args], {
    maxBuffer: 1 << 24,
    timeout: 15 * 60_000,
  }).catch((error) => /** @type {{ stdout: string }} */ (error));
  return JSON.parse(stdout);
}

async function peers() {
  if (values['no-peers']) return { peers: {}, notes: ['peers skipped (--no-peers)'] };
  const args = quick ? ['--single-mib', '256', '--clients', '50', '--file-mib', '2'] : [];
  try {
    const { stdout } = await run(
      process.execPath,
      [fileURLToPath(new URL('./peers.mjs', import.meta.url)), '--json', ...args],
      {
        maxBuffer: 1 << 24,
        timeout: 30 * 60_000,
      },
    );
    return JSON.parse(stdout);
  } catch (error) {
    return {
      peers: {},
      notes: [`peers failed: ${String(/** @type {Error} */ (error).message).split('\n')[0]}`],
    };
  }
}

/** @param {number | null | undefined} x */
const mb = (x) => (x === undefined || x === null || Number.isNaN(x) ? '-' : `${Math.round(x)}`);
/** @param {number | undefined} a @param {number | undefined} b */
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-');

console.error(`muxftp compare (${quick ? 'quick' : 'full'}): measuring...`);
const loopback1 = (await measureLoopback(1 << 30)) / 1e6;
const loopback8 = (await measureLoopbackParallel(8, 1 << 29)) / 1e6;
const up = await muxftp('--op', 'upload', '--clients', '1', '--size', single);
const down = await muxftp('--op', 'download', '--clients', '1', '--size', single);
const connect = await muxftp('--op', 'connect', '--clients', String(clients));
const idleSingle = await muxftp('--op', 'idle', '--clients', String(clients), '--size', single);
const manyDown = await muxftp('--op', 'download', '--clients', String(clients), '--size', fileSize);
const manyUp = await muxftp('--op', 'upload', '--clients', String(clients), '--size', fileSize);
const idleMem = await muxftp('--op', 'idle', '--clients', String(clients), '--size', '1KiB');
const idleMemMany = await muxftp('--op', 'idle', '--clients', String(idleMany), '--size', '1KiB');
const idleManySingle = await muxftp('--op', 'idle', '--clients', String(idleMany), '--size', single);
const muxed = await muxftp(
  '--op',
  'download',
  '--clients',
  String(clients / 10),
  '--streams',
  '10',
  '--size',
  fileSize,
);
const { peers: peerFigures, notes } = await peers();
const vs = peerFigures.vsftpd ?? {};
const py = peerFigures.pyftpdlib ?? {};

const rows = [
  ['1 single upload MB/s', up.mbps, vs.single_upload_mbps, py.single_upload_mbps, loopback1],
  ['1 single download MB/s', down.mbps, vs.single_download_mbps, py.single_download_mbps, loopback1],
  [
    `2 ${clients} connects, per s`,
    connect.files_per_s,
    vs.connect?.per_second,
    py.connect?.per_second,
    undefined,
  ],
  [`3 single up+down with ${clients} idle, MB/s`, idleSingle.mbps, undefined, undefined, loopback1],
  [
    `4 ${clients} x ${fileSize} download MB/s`,
    manyDown.mbps,
    vs.many_download?.mbps,
    py.many_download?.mbps,
    loopback8,
  ],
  [
    `4 ${clients} x ${fileSize} upload MB/s`,
    manyUp.mbps,
    vs.many_upload?.mbps,
    py.many_upload?.mbps,
    loopback8,
  ],
  [`6 ${clients / 10} conns x 10 streams download MB/s`, muxed.mbps, undefined, undefined, loopback8],
];

console.log(`\nraw loopback: 1 connection ${mb(loopback1)} MB/s, 8 connections ${mb(loopback8)} MB/s`);
console.log(
  '\nworkload                                   muxftp   vsftpd  pyftpdlib  limit   mux/vsftpd  mux/pyftpdlib  mux/limit',
);
for (const [name, m, v, p, limit] of rows) {
  console.log(
    `${name.padEnd(42)} ${mb(m).padStart(6)}  ${mb(v).padStart(7)}  ${mb(p).padStart(9)}  ${mb(limit).padStart(5)}   ${ratio(m, v).padStart(10)}  ${ratio(m, p).padStart(13)}  ${ratio(m, limit).padStart(9)}`,
  );
}
console.log(`\n2 ${clients} connects + handshakes: ${connect.seconds} s (p99 ${connect.latency_ms.p99} ms)`);
// The server's peak RSS is null when the bench could not sample it: '-' then.
const idleRss = idleMem.server?.rss_mb;
console.log(
  `5 server RSS: ${clients} idle ${idleRss ?? '-'} MB (${mb(idleRss === undefined ? undefined : (idleRss * 1e6) / clients / 1024)} KiB/conn incl. base), ` +
    `${idleMany} idle ${idleMemMany.server?.rss_mb ?? '-'} MB; single up+down with ${idleMany} idle: ${idleManySingle.mbps} MB/s (${ratio(idleManySingle.mbps, loopback1)} of loopback)`,
);
const errors = [
  up,
  down,
  connect,
  idleSingle,
  manyDown,
  manyUp,
  idleMem,
  idleMemMany,
  idleManySingle,
  muxed,
].reduce((n, r) => n + r.error_count, 0);
console.log(
  `muxftp errors across all workloads: ${errors}; load generator peak cpu ${Math.max(manyDown.loadgen.cpu_percent_of_machine, manyUp.loadgen.cpu_percent_of_machine)}% of the machine`,
);
for (const note of notes ?? []) console.log(`note: ${note}`);
