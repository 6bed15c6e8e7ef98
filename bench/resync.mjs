// npm run bench:resync -- [--rounds 3] [--dirs 70] [--files 100] [--kib 4] [--baseline <muxftp checkout, built>]
//
// What running the same mirror again costs when nothing changed: a tree of --dirs × --files files
// (7,000 × 4 KiB by default), put once, then `put -r --skip-unchanged`, `put -r --skip-identical`
// and `get -r --skip-unchanged` of it again, each through the real CLI against a disk-backed
// `muxftp serve`. Yardsticks in the same rounds: `muxftp ls -r` of the tree (the listing such a
// check cannot do without), and rsync between two local directories (`rsync -a`, and `rsync -a
// --checksum` for the content check), which is what such a re-run is usually compared with and
// crosses no network at all. With --baseline, another built checkout is measured the same way,
// alternating. Each figure is the best of the rounds, in seconds from spawning the command to its
// exit; every muxftp run is checked to have skipped every file (`--json`), or it is dropped.
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { numberOption } from './options.mjs';
import { ensurePackages, makeTempDir, packageVersion, removeTempDir, run, track } from './peers.mjs';

const BIN = fileURLToPath(new URL('../bin/muxftp.js', import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    dirs: { type: 'string', default: '70' },
    files: { type: 'string', default: '100' },
    kib: { type: 'string', default: '4' },
    baseline: { type: 'string' },
  },
});
const count = { integer: true };
const rounds = numberOption('bench:resync', 'rounds', values.rounds, count);
const dirs = numberOption('bench:resync', 'dirs', values.dirs, count);
const filesPerDir = numberOption('bench:resync', 'files', values.files, count);
const fileBytes = Math.round(numberOption('bench:resync', 'kib', values.kib) * 1024);
const files = dirs * filesPerDir;
const TIMEOUT_MS = 300_000;

/** @param {string} line */
const log = (line) => process.stderr.write(`${line}\n`);

/**
 * A disk-backed `muxftp serve` of `bin` on a free port.
 * @param {string} bin
 */
async function startServer(bin) {
  const root = await makeTempDir('muxftp-resync-root-');
  const child = track(
    spawn(process.execPath, [bin, 'serve', '--root', root, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (/** @type {string} */ d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (/** @type {string} */ d) => {
      out += d;
      const match = /listening on [^ ]*:(\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    // After 'exit', once its stderr is all read; its error, not the stack's first line.
    child.once('close', (code, signal) => {
      const lines = stderr.split('\n').filter((line) => line.trim() !== '');
      const reason = lines.find((line) => /^(\w*Error\b|muxftp:)/.test(line)) ?? lines.at(-1) ?? out;
      reject(new Error(`muxftp serve exited (${code ?? signal}) before listening: ${reason}`));
    });
  }).catch(async (error) => {
    // Its root went with it: a baseline that is not built left the directory behind.
    await removeTempDir(root);
    throw error;
  });
  return {
    root,
    port: /** @type {number} */ (port),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      await removeTempDir(root);
    },
  };
}

/**
 * Runs a command from `cwd`, timed from spawn to exit.
 * @param {string} cmd
 * @param {string[]} args
 * @returns {Promise<{ seconds: number, code: number | null, stdout: string, stderr: string }>}
 */
async function timed(cmd, args) {
  const started = performance.now();
  const r = await run(cmd, args, { timeoutMs: TIMEOUT_MS });
  return { seconds: (performance.now() - started) / 1000, code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** @type {Map<string, number>} `${tool} ${row}` -> best seconds */
const best = new Map();
/** @type {string[]} */
const errors = [];
/**
 * @param {string} key
 * @param {number} seconds
 */
const record = (key, seconds) => {
  if (seconds < (best.get(key) ?? Number.POSITIVE_INFINITY)) best.set(key, seconds);
};

/**
 * One round of a muxftp build: a fresh server, the tree put once (not timed), then each re-run.
 * @param {string} label
 * @param {string} bin
 * @param {string} tree
 * @param {string} work
 */
async function muxftpRound(label, bin, tree, work) {
  const server = await startServer(bin);
  const back = path.join(work, `back-${label.replace(/\W/g, '')}`);
  try {
    const cli = (/** @type {string[]} */ ...args) =>
      timed(process.execPath, [bin, '--server', `127.0.0.1:${server.port}`, ...args]);
    const first = await cli('-q', 'put', '-r', tree, '--to', 'm/', '-p');
    if (first.code !== 0) throw new Error(`first put: ${first.stderr.trim()}`);
    const got = await cli('-q', 'get', '-r', 'm/tree', '--to', back, '-p');
    if (got.code !== 0) throw new Error(`first get: ${got.stderr.trim()}`);
    /** @type {Array<[row: string, args: string[]]>} */
    const reruns = [
      ['put --skip-unchanged', ['--json', 'put', '-r', tree, '--to', 'm/', '--skip-unchanged']],
      ['put --skip-identical', ['--json', 'put', '-r', tree, '--to', 'm/', '--skip-identical']],
      ['get --skip-unchanged', ['--json', 'get', '-r', 'm/tree', '--to', back, '--skip-unchanged']],
    ];
    for (const [row, args] of reruns) {
      const r = await cli(...args);
      const outcomes = r.code === 0 ? /** @type {Array<{ skipped?: boolean }>} */ (JSON.parse(r.stdout)) : [];
      const skipped = outcomes.filter((o) => o.skipped === true).length;
      if (r.code !== 0 || skipped !== files)
        errors.push(`${label} ${row}: exit ${r.code}, ${skipped} of ${files} skipped ${r.stderr.trim()}`);
      else record(`${label} ${row}`, r.seconds);
    }
    const listed = await cli('ls', '-r', 'm/tree');
    const lines = listed.stdout.split('\n').filter((line) => line.trim() !== '').length;
    if (listed.code !== 0 || lines !== files + dirs)
      errors.push(`${label} ls -r: exit ${listed.code}, ${lines} lines`);
    else record(`${label} ls -r`, listed.seconds);
  } finally {
    await server.stop();
    await removeTempDir(back).catch(() => {});
  }
}

/**
 * rsync between two local directories, the copy made first; a re-run with nothing to do.
 * @param {string} tree
 * @param {string} work
 */
async function rsyncRound(tree, work) {
  const copy = path.join(work, 'rsync-copy');
  try {
    await run('rsync', ['-a', `${tree}/`, `${copy}/`], { timeoutMs: TIMEOUT_MS });
    for (const [row, flags] of /** @type {Array<[string, string[]]>} */ ([
      ['put --skip-unchanged', ['-a']],
      ['put --skip-identical', ['-a', '--checksum']],
    ])) {
      const r = await timed('rsync', [...flags, '--stats', `${tree}/`, `${copy}/`]);
      const sent = /Number of regular files transferred: (\d+)/.exec(r.stdout)?.[1];
      if (r.code !== 0 || sent !== '0')
        errors.push(`rsync ${row}: exit ${r.code}, ${sent} files transferred`);
      else record(`rsync ${row}`, r.seconds);
    }
  } finally {
    await fsp.rm(copy, { recursive: true, force: true });
  }
}

const work = await makeTempDir('muxftp-resync-');
try {
  const tree = path.join(work, 'tree');
  log(`bench:resync: making ${files} files of ${fileBytes} B in ${tree}`);
  const content = Buffer.alloc(fileBytes);
  for (let d = 0; d < dirs; d++) {
    await fsp.mkdir(path.join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < filesPerDir; f++) {
      content.write(`${d}/${f}\n`);
      await fsp.writeFile(path.join(tree, `d${d}`, `f${f}`), content);
    }
  }
  const hasRsync = (await ensurePackages(['rsync'])).has('rsync');
  /** @type {Array<[label: string, run: () => Promise<void>]>} */
  const tools = [['muxftp', () => muxftpRound('muxftp', BIN, tree, work)]];
  const baseline = values.baseline;
  if (baseline !== undefined) {
    const bin = path.join(path.resolve(baseline), 'bin', 'muxftp.js');
    tools.push(['muxftp before', () => muxftpRound('muxftp before', bin, tree, work)]);
  }
  if (hasRsync) tools.push(['rsync', () => rsyncRound(tree, work)]);
  else log('note: rsync not installed: its rows are left empty');
  for (let round = 0; round < rounds; round++) {
    const shift = round % tools.length;
    for (const [label, runRound] of [...tools.slice(shift), ...tools.slice(0, shift)]) {
      log(`round ${round + 1}/${rounds}: ${label}`);
      // A server that does not start costs its build the round, not the run (it ended the run).
      await runRound().catch((/** @type {Error} */ error) => {
        errors.push(`round ${round + 1} ${label}: ${error.message.split('\n')[0]}`);
        log(`  ${label}: ERROR ${error.message.split('\n')[0]}`);
      });
    }
  }
  const labels = tools.map(([label]) => label);
  const rows = ['put --skip-unchanged', 'put --skip-identical', 'get --skip-unchanged', 'ls -r'];
  const header = ['re-run with nothing changed', ...labels];
  const table = [
    header,
    ...rows.map((row) => [row, ...labels.map((label) => best.get(`${label} ${row}`)?.toFixed(2) ?? '-')]),
  ];
  const widths = header.map((_, c) => Math.max(...table.map((r) => String(r[c]).length)));
  console.log(
    `bench:resync: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ` +
      `rsync ${packageVersion('rsync') || '-'}; ${files} files (${dirs} directories × ${filesPerDir}) of ` +
      `${fileBytes} B; seconds, best of ${rounds} round(s); server root on disk (${os.tmpdir()}); rsync ` +
      'between two local directories',
  );
  console.log(
    table
      .map((r) =>
        r
          .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
          .join('  '),
      )
      .join('\n'),
  );
  if (errors.length > 0)
    console.log(`\nerrors (those measurements were dropped):\n${errors.map((e) => `- ${e}`).join('\n')}`);
  process.exitCode = errors.length > 0 ? 1 : 0;
} finally {
  await removeTempDir(work);
}
