// npm run bench:cli -- [--rounds 3] [--files 200] [--file-mib 4] [--parallel 50] [--big-mib 1024]
//   [--small-files 5000] [--small-kib 4] [--tools muxftp,pyftpdlib,vsftpd,node]
//   [--workloads put-many,get-many,put-big,get-big,put-small,get-small,bench-up,bench-down]
//   [--timeout-s 300] [--baseline <muxftp checkout, built>]
//
// Issue #11's table: the real CLI (`muxftp put … --to up/ -j 50`, `muxftp get …`) against a
// disk-backed `muxftp serve`, beside curl against pyftpdlib and vsftpd (bench/peers.mjs) on the same
// files, and beside a minimal Node pipeline (bench/nodePipeline.mjs: the runtime's own limit, for
// the many files over as many connections at once as for the single big file). Server
// roots are on disk (os.tmpdir()), client files on tmpfs (/dev/shm). Tools alternate within each
// round; each figure is the best of the rounds; every transfer is verified by hashing the files on
// disk after the clock stops (a failed or mismatched transfer voids that measurement). If the CLI
// offers `--checksum sha256`, that is measured as a tool of its own, and so is a server started with
// `--fsync never` (the peers and the pipeline flush nothing to disk). `muxftp bench` (50 clients ×
// 200 × 4 MiB, upload and download) runs against the same disk-backed server, compared with curl's
// 200-file rows. The small-file rows (5,000 × 4 KiB, 50 at once) measure what each file costs
// rather than bytes. Run as root on loopback only.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runPipeline, runPipelineMany } from './nodePipeline.mjs';
import { numberOption } from './options.mjs';
import {
  curlBatch,
  ensurePackages,
  hashFile,
  makeTempDir,
  packageVersion,
  removeTempDir,
  run,
  startPeer,
  track,
} from './peers.mjs';

/** @typedef {import('../client/bench/report.js').BenchReport} BenchReport `muxftp bench --json` */
/** @typedef {import('./peers.mjs').Peer} Peer */
/** @typedef {import('./peers.mjs').Transfer} Transfer */
/** @typedef {import('./peers.mjs').Payload & { name: string }} NamedPayload a client-side file, by the name it travels under */
/** @typedef {Awaited<ReturnType<typeof startMuxftp>>} MuxftpServer */

/**
 * Who moves the files: the muxftp CLI (against `muxftp serve`), curl (against a peer FTP server)
 * or the minimal Node pipeline (no server).
 * @typedef {{ label: string, kind: 'muxftp', extraArgs: string[], bench: boolean, server: () => Promise<MuxftpServer> }} MuxftpTool
 * @typedef {{ label: string, kind: 'curl', server: () => Promise<Peer> }} CurlTool
 * @typedef {{ label: string, kind: 'node' }} NodeTool
 * @typedef {MuxftpTool | CurlTool | NodeTool} Tool
 */

/**
 * One workload's figure from one round, or why there is none.
 * @typedef {{ seconds: number, mbps: number } | { error: string }} WorkloadFigure
 */

const MIB = 1024 * 1024;
const BIN = fileURLToPath(new URL('../bin/muxftp.js', import.meta.url));
const ALL_TOOLS = ['muxftp', 'pyftpdlib', 'vsftpd', 'node'];
const ALL_WORKLOADS = [
  'put-many',
  'get-many',
  'put-big',
  'get-big',
  'put-small',
  'get-small',
  'bench-up',
  'bench-down',
];

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    files: { type: 'string', default: '200' },
    'file-mib': { type: 'string', default: '4' },
    parallel: { type: 'string', default: '50' },
    'big-mib': { type: 'string', default: '1024' },
    'small-files': { type: 'string', default: '5000' },
    'small-kib': { type: 'string', default: '4' },
    tools: { type: 'string', default: ALL_TOOLS.join(',') },
    workloads: { type: 'string', default: ALL_WORKLOADS.join(',') },
    'timeout-s': { type: 'string', default: '300' },
    baseline: { type: 'string' },
  },
});
/**
 * The names listed in `--${option}`, each one of `known`: a typo measured nothing and exited 0.
 * @param {'tools' | 'workloads'} option @param {string[]} known
 */
const names = (option, known) => {
  const listed = values[option].split(',');
  const unknown = listed.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    process.stderr.write(`bench:cli: unknown --${option} ${unknown.join(',')} (known: ${known.join(',')})\n`);
    process.exit(2);
  }
  return listed;
};
/** @param {keyof typeof values} name */
const positive = (name) => numberOption('bench:cli', name, /** @type {string} */ (values[name]));
/** @param {keyof typeof values} name a count: `--rounds 0.5` was 0 rounds */
const count = (name) =>
  numberOption('bench:cli', name, /** @type {string} */ (values[name]), { integer: true });
const opts = {
  rounds: count('rounds'),
  files: count('files'),
  fileBytes: Math.round(positive('file-mib') * MIB),
  parallel: count('parallel'),
  bigBytes: Math.round(positive('big-mib') * MIB),
  smallFiles: count('small-files'),
  smallBytes: Math.round(positive('small-kib') * 1024),
  tools: names('tools', ALL_TOOLS),
  workloads: names('workloads', ALL_WORKLOADS),
  timeoutMs: positive('timeout-s') * 1000,
  baselineBin: values.baseline ? path.resolve(values.baseline, 'bin/muxftp.js') : undefined,
};
/** @param {string} msg */
const log = (msg) => process.stderr.write(`${msg}\n`);
/**
 * A rate in MB/s as the table and each round's line show it: one decimal under 100 (a small-file
 * row's 0.4 MB/s is not "0").
 * @param {number | undefined} x
 */
const mb = (x) => (x === undefined ? '-' : x < 100 ? x.toFixed(1) : String(Math.round(x)));

// ---------------------------------------------------------------- payloads (client side, tmpfs)

const clientBase = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

/**
 * `count` random files of `bytes` each (distinct contents) in `dir`/`sub`, named `prefix`NNNN.bin.
 * @param {string} dir @param {string} sub @param {string} prefix @param {number} count @param {number} bytes
 * @returns {Promise<NamedPayload[]>}
 */
async function makeFiles(dir, sub, prefix, count, bytes) {
  /** @type {NamedPayload[]} */
  const files = [];
  const block = Buffer.allocUnsafe(Math.max(4, bytes));
  randomFillSync(block);
  await fsp.mkdir(path.join(dir, sub));
  for (let i = 0; i < count; i++) {
    block.writeUInt32BE(i, 0); // distinct files, so no digest or page is shared by accident
    const content = block.subarray(0, bytes);
    const name = `${prefix}${String(i).padStart(4, '0')}.bin`;
    const file = path.join(dir, sub, name);
    await fsp.writeFile(file, content);
    files.push({ name, file, size: bytes, sha256: createHash('sha256').update(content).digest('hex') });
  }
  return files;
}

/**
 * Random files: `count` small ones (distinct contents) and one big one, with their digests.
 * @param {string} dir
 * @returns {Promise<{ many: NamedPayload[], small: NamedPayload[], big: NamedPayload }>}
 */
async function makePayloads(dir) {
  const many = await makeFiles(dir, 'many', 'f', opts.files, opts.fileBytes);
  const wantsSmall = opts.workloads.includes('put-small') || opts.workloads.includes('get-small');
  const small = wantsSmall ? await makeFiles(dir, 'small', 's', opts.smallFiles, opts.smallBytes) : [];
  const bigFile = path.join(dir, 'big.bin');
  const hash = createHash('sha256');
  const handle = await fsp.open(bigFile, 'w');
  const chunk = Buffer.allocUnsafe(16 * MIB);
  for (let left = opts.bigBytes; left > 0; left -= chunk.length) {
    const part = chunk.subarray(0, Math.min(left, chunk.length));
    randomFillSync(part);
    hash.update(part);
    await handle.write(part);
  }
  await handle.close();
  await fsp.chmod(bigFile, 0o644);
  return {
    many,
    small,
    big: { name: 'big.bin', file: bigFile, size: opts.bigBytes, sha256: hash.digest('hex') },
  };
}

/**
 * How many of `expected` match the file at `where(file)`, by size and SHA-256.
 * @param {NamedPayload[]} expected
 * @param {(payload: NamedPayload) => string} where
 */
async function verified(expected, where) {
  let ok = 0;
  for (const payload of expected) {
    const got = await hashFile(where(payload)).catch(() => null);
    if (got && got.size === payload.size && got.sha256 === payload.sha256) ok++;
  }
  return ok;
}

// ---------------------------------------------------------------- muxftp: server and CLI

/**
 * `muxftp serve` on a fresh root on disk.
 * @param {string} bin the checkout's bin/muxftp.js
 * @param {string[]} [extraServeArgs]
 */
async function startMuxftp(bin, extraServeArgs = []) {
  const root = await makeTempDir('muxftp-cli-root-');
  const child = track(
    spawn(process.execPath, [bin, 'serve', '--root', root, '--port', '0', ...extraServeArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (/** @type {string} */ d) => {
    stderr = (stderr + d).slice(-4000);
  });
  // Its port, or why it has none: a server that exits first (a --baseline not built) left the
  // script waiting on its stdout, and node ended it (exit 13) with the temp dirs still there.
  const port = await new Promise((resolve, reject) => {
    const exited = (/** @type {number | null} */ code, /** @type {string | null} */ signal) => {
      // Its error, not the stack's first line (node:internal/modules/cjs/loader:1210).
      const lines = stderr.split('\n').filter((line) => line.trim() !== '');
      const reason = lines.find((line) => /^(\w*Error\b|muxftp:)/.test(line)) ?? lines.at(-1) ?? '';
      reject(new Error(`muxftp serve exited (${code ?? signal}) before listening: ${reason}`));
    };
    child.once('close', exited); // after 'exit', once its stderr is all read
    child.stdout.once('data', (line) => {
      child.off('close', exited);
      const match = /listening on [^ ]*:(\d+)/.exec(String(line));
      if (match) resolve(Number(match[1]));
      else reject(new Error(`muxftp serve: unexpected output ${line}`));
    });
  }).catch(async (error) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await removeTempDir(root);
    throw error;
  });
  return {
    name: 'muxftp',
    bin,
    root,
    port: /** @type {number} */ (port),
    pid: child.pid,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await removeTempDir(root);
    },
  };
}

/**
 * @param {MuxftpServer} server
 * @param {string[]} args
 */
function muxftp(server, args) {
  return run(process.execPath, [server.bin, '--server', `127.0.0.1:${server.port}`, ...args], {
    timeoutMs: opts.timeoutMs,
  });
}

// ---------------------------------------------------------------- one tool: the four workloads

/**
 * What a workload's body returns: its own verified figure (muxftp bench), an error, or nothing
 * (then the files are checked); the Node pipeline returns its seconds, which the clock ignores.
 * @typedef {{ seconds: number, mbps: number } | { error: string } | number | undefined} BodyOutcome
 */

/**
 * Each tool moves the same files: uploads into `up/` of its root, downloads from there to tmpfs.
 * @param {Tool} tool
 * @param {{ many: NamedPayload[], small: NamedPayload[], big: NamedPayload }} payloads
 * @param {string} workDir
 * @returns {Promise<Record<string, WorkloadFigure>>}
 */
async function runTool(tool, payloads, workDir) {
  /** @type {Record<string, WorkloadFigure>} */
  const results = {};
  const dl = path.join(workDir, 'dl');
  const cleanDl = async () => {
    await fsp.rm(dl, { recursive: true, force: true });
    await fsp.mkdir(dl);
  };
  /**
   * One workload on the clock, then its files checked (unless the body verified them itself).
   * @param {string} name
   * @param {number} bytes
   * @param {() => Promise<BodyOutcome>} body
   * @param {() => Promise<{ ok: number, of: number }>} [check] required unless the body measures itself
   */
  const timed = async (name, bytes, body, check) => {
    if (!opts.workloads.includes(name)) return;
    await cleanDl();
    await run('sync', []); // the previous step's dirty pages are not this step's to write back
    const t0 = performance.now();
    /** @type {BodyOutcome} */
    let outcome;
    try {
      outcome = await body();
    } catch (err) {
      outcome = { error: String(/** @type {Error} */ (err).message ?? err) };
    }
    const seconds = (performance.now() - t0) / 1000;
    if (typeof outcome === 'object' && 'error' in outcome) {
      results[name] = { error: outcome.error };
      log(`  ${tool.label} ${name}: ERROR ${outcome.error.split('\n')[0]}`);
      return;
    }
    if (typeof outcome === 'object') {
      results[name] = outcome; // measured and verified by the tool itself (muxftp bench)
      log(`  ${tool.label} ${name}: ${mb(outcome.mbps)} MB/s`);
      return;
    }
    if (check === undefined) throw new Error(`${name}: the body measured nothing and there is no check`);
    const { ok, of } = await check();
    /** @type {WorkloadFigure} */
    const figure =
      ok === of ? { seconds, mbps: bytes / 1e6 / seconds } : { error: `${of - ok} of ${of} not verified` };
    results[name] = figure;
    log(`  ${tool.label} ${name}: ${'mbps' in figure ? `${mb(figure.mbps)} MB/s` : figure.error}`);
  };

  const many = payloads.many;
  const small = payloads.small;
  const smallBytes = small.reduce((sum, p) => sum + p.size, 0);
  const big = payloads.big;
  const manyBytes = many.length * opts.fileBytes;
  const server = 'server' in tool ? await tool.server() : undefined;
  try {
    const root = server?.root ?? (await makeTempDir('muxftp-cli-node-root-'));
    if (!server) await fsp.mkdir(path.join(root, 'up'));
    /** @param {NamedPayload} p */
    const upPath = (p) => path.join(root, 'up', p.name);
    /** @param {NamedPayload} p */
    const dlPath = (p) => path.join(dl, p.name);
    /** @param {NamedPayload[]} list */
    const checkUp = (list) => async () => ({ ok: await verified(list, upPath), of: list.length });
    /** @param {NamedPayload[]} list */
    const checkDl = (list) => async () => ({ ok: await verified(list, dlPath), of: list.length });
    if (tool.kind === 'muxftp') {
      const muxServer = /** @type {MuxftpServer} */ (server); // a muxftp tool's server() starts one
      const x = tool.extraArgs;
      /**
       * @param {string[]} args
       * @returns {Promise<BodyOutcome>}
       */
      const mux = async (args) => {
        const r = await muxftp(muxServer, ['-q', ...args]);
        if (r.code !== 0)
          return { error: `exit ${r.code}${r.timedOut ? ' (timeout)' : ''}: ${r.stderr.trim()}` };
      };
      await timed(
        'put-many',
        manyBytes,
        () =>
          mux(['put', ...many.map((p) => p.file), '--to', 'up/', '-p', '-j', String(opts.parallel), ...x]),
        checkUp(many),
      );
      await timed(
        'get-many',
        manyBytes,
        () => mux(['get', ...many.map((p) => `up/${p.name}`), '--to', dl, '-j', String(opts.parallel), ...x]),
        checkDl(many),
      );
      // -p: up/ exists only if put-many ran (--workloads may leave it out), as the peers make it.
      await timed(
        'put-big',
        big.size,
        () => mux(['put', big.file, 'up/big.bin', '-p', ...x]),
        checkUp([big]),
      );
      await timed('get-big', big.size, () => mux(['get', 'up/big.bin', dlPath(big), ...x]), checkDl([big]));
      await timed(
        'put-small',
        smallBytes,
        () =>
          mux(['put', ...small.map((p) => p.file), '--to', 'up/', '-p', '-j', String(opts.parallel), ...x]),
        checkUp(small),
      );
      await timed(
        'get-small',
        smallBytes,
        () =>
          mux(['get', ...small.map((p) => `up/${p.name}`), '--to', dl, '-j', String(opts.parallel), ...x]),
        checkDl(small),
      );
      if (tool.bench) {
        for (const [name, op] of /** @type {Array<[workload: string, op: string]>} */ ([
          ['bench-up', 'upload'],
          ['bench-down', 'download'],
        ])) {
          await timed(name, manyBytes, async () => {
            const r = await muxftp(muxServer, [
              'bench',
              '--json',
              ...['--op', op, '--clients', String(opts.parallel), '--files', String(opts.files)],
              ...['--size', `${opts.fileBytes / 1024}KiB`],
            ]);
            const report = /** @type {Partial<BenchReport>} */ (JSON.parse(r.stdout || '{}'));
            if (
              r.code !== 0 ||
              report.error_count !== 0 ||
              report.mbps === undefined ||
              report.seconds === undefined
            )
              return { error: `exit ${r.code}, errors ${report.error_count}: ${r.stderr.trim()}` };
            return { mbps: report.mbps, seconds: report.seconds };
          });
        }
      }
    } else if (tool.kind === 'curl') {
      const peer = /** @type {Peer} */ (server); // a curl tool's server() starts one
      const configDir = await makeTempDir('muxftp-cli-curl-');
      try {
        /**
         * @param {Transfer[]} transfers
         * @returns {Promise<BodyOutcome>}
         */
        const curl = async (transfers) => {
          const r = await curlBatch(peer, transfers, {
            timeoutMs: opts.timeoutMs,
            connectTimeoutS: 5,
            curlProcs: 1,
            configDir,
            // As many at once as muxftp's -j: curl ran every transfer at once (200, or 5,000
            // over 17 processes), though this table said --parallel-max 50.
            parallelMax: opts.parallel,
          });
          const failed = r.exitCodes.filter((c) => c !== 0).length;
          if (failed > 0) return { error: `${failed} curl transfers failed: ${r.lastError ?? ''}` };
        };
        await timed(
          'put-many',
          manyBytes,
          () => curl(many.map((p) => ({ upload: p.file, remote: `up/${p.name}` }))),
          checkUp(many),
        );
        await timed(
          'get-many',
          manyBytes,
          () => curl(many.map((p) => ({ remote: `up/${p.name}`, local: dlPath(p) }))),
          checkDl(many),
        );
        await timed(
          'put-big',
          big.size,
          () => curl([{ upload: big.file, remote: 'up/big.bin' }]),
          checkUp([big]),
        );
        await timed(
          'get-big',
          big.size,
          () => curl([{ remote: 'up/big.bin', local: dlPath(big) }]),
          checkDl([big]),
        );
        await timed(
          'put-small',
          smallBytes,
          () => curl(small.map((p) => ({ upload: p.file, remote: `up/${p.name}` }))),
          checkUp(small),
        );
        await timed(
          'get-small',
          smallBytes,
          () => curl(small.map((p) => ({ remote: `up/${p.name}`, local: dlPath(p) }))),
          checkDl(small),
        );
      } finally {
        await removeTempDir(configDir);
      }
    } else {
      await timed(
        'put-many',
        manyBytes,
        () =>
          runPipelineMany(
            many.map((p) => p.file),
            path.join(root, 'up'),
            opts.parallel,
          ),
        checkUp(many),
      );
      await timed(
        'get-many',
        manyBytes,
        () => runPipelineMany(many.map(upPath), dl, opts.parallel),
        checkDl(many),
      );
      await timed('put-big', big.size, () => runPipeline(big.file, upPath(big)), checkUp([big]));
      await timed('get-big', big.size, () => runPipeline(upPath(big), dlPath(big)), checkDl([big]));
      await timed(
        'put-small',
        smallBytes,
        () =>
          runPipelineMany(
            small.map((p) => p.file),
            path.join(root, 'up'),
            opts.parallel,
          ),
        checkUp(small),
      );
      await timed(
        'get-small',
        smallBytes,
        () => runPipelineMany(small.map(upPath), dl, opts.parallel),
        checkDl(small),
      );
    }
    if (!server) await removeTempDir(root);
  } finally {
    await server?.stop();
  }
  return results;
}

// ---------------------------------------------------------------- main

const cliHelp = (await run(process.execPath, [BIN, 'put', '--help'])).stdout;
const hasChecksum = /--checksum/.test(cliHelp);

/** @type {Tool[]} */
const tools = [];
if (opts.tools.includes('muxftp')) {
  tools.push({ label: 'muxftp', kind: 'muxftp', extraArgs: [], bench: true, server: () => startMuxftp(BIN) });
  // The peers and the node pipeline flush nothing; muxftp's default flushes each upload before it
  // confirms it (fsync always). The same server with --fsync never shows what that costs.
  tools.push({
    label: 'muxftp fsync never',
    kind: 'muxftp',
    extraArgs: [],
    bench: true,
    server: () => startMuxftp(BIN, ['--fsync', 'never']),
  });
  if (hasChecksum) {
    tools.push({
      label: 'muxftp sha256',
      kind: 'muxftp',
      extraArgs: ['--checksum', 'sha256'],
      bench: false,
      server: () => startMuxftp(BIN),
    });
  }
  if (opts.baselineBin) {
    const bin = opts.baselineBin;
    tools.push({
      label: 'muxftp before',
      kind: 'muxftp',
      extraArgs: [],
      bench: true,
      server: () => startMuxftp(bin),
    });
  }
}
const peerNames = opts.tools.filter((t) => t === 'pyftpdlib' || t === 'vsftpd');
const installed =
  peerNames.length > 0 ? await ensurePackages(['curl', 'vsftpd', 'python3-pyftpdlib']) : new Set();
for (const name of peerNames) {
  const pkg = name === 'vsftpd' ? 'vsftpd' : 'python3-pyftpdlib';
  if (!installed.has(pkg) || !installed.has('curl')) {
    log(`note: ${name} skipped (${pkg} or curl not installed)`);
    continue;
  }
  tools.push({
    label: `curl → ${name}`,
    kind: 'curl',
    server: () => startPeer(name, { clients: opts.parallel }),
  });
}
if (opts.tools.includes('node')) tools.push({ label: 'node pipeline', kind: 'node' });

const workDir = await makeTempDir('muxftp-cli-client-', clientBase);
/** @type {Map<string, { seconds: number, mbps: number }>} `${tool} ${workload}` -> best verified result */
const best = new Map();
/** @type {string[]} */
const errors = [];
try {
  log(`bench:cli: making payloads in ${workDir}`);
  const payloads = await makePayloads(workDir);
  for (let round = 0; round < opts.rounds; round++) {
    // Rotate the order each round, so no tool always runs first (or right after another's writeback).
    const shift = round % tools.length;
    const order = [...tools.slice(shift), ...tools.slice(0, shift)];
    for (const tool of order) {
      log(`round ${round + 1}/${opts.rounds}: ${tool.label}`);
      // A server that does not start costs its tool the round, not the run.
      const results = await runTool(tool, payloads, workDir).catch((/** @type {Error} */ error) => {
        errors.push(`round ${round + 1} ${tool.label}: ${error.message.split('\n')[0]}`);
        log(`  ${tool.label}: ERROR ${error.message.split('\n')[0]}`);
        return {};
      });
      for (const [workload, r] of Object.entries(results)) {
        const key = `${tool.label} ${workload}`;
        if ('error' in r) errors.push(`round ${round + 1} ${key}: ${r.error}`);
        else if ((best.get(key)?.mbps ?? Number.NEGATIVE_INFINITY) < r.mbps) best.set(key, r);
      }
    }
  }
} finally {
  await removeTempDir(workDir);
}

// ---------------------------------------------------------------- the table

/** @param {string} tool @param {string} workload */
const fig = (tool, workload) => best.get(`${tool} ${workload}`)?.mbps;
/** @param {number | undefined} a @param {number | undefined} b */
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-');
/** @param {number} b */
const sizeLabel = (b) =>
  b >= 1024 * MIB ? `${b / 1024 / MIB} GiB` : b >= MIB ? `${b / MIB} MiB` : `${b / 1024} KiB`;
const many = `${opts.files} × ${sizeLabel(opts.fileBytes)}`;
const smallMany = `${opts.smallFiles} × ${sizeLabel(opts.smallBytes)}`;
/** @type {Array<[workload: string, label: string]>} */
const rows = [
  ['put-many', `put ${many}, ${opts.parallel} at once`],
  ['get-many', `get ${many}, ${opts.parallel} at once`],
  ['put-big', `put one ${sizeLabel(opts.bigBytes)}`],
  ['get-big', `get one ${sizeLabel(opts.bigBytes)}`],
  ['put-small', `put ${smallMany}, ${opts.parallel} at once`],
  ['get-small', `get ${smallMany}, ${opts.parallel} at once`],
];
const muxLabels = tools.filter((t) => t.kind === 'muxftp').map((t) => t.label);
const header = [
  'workload',
  ...muxLabels,
  'curl → pyftpdlib',
  'curl → vsftpd',
  'node pipeline',
  'mux/pyftpdlib',
  'mux/vsftpd',
  'mux/node',
  'node/pyftpdlib',
];
const table = [];
for (const [workload, label] of rows) {
  if (!opts.workloads.includes(workload)) continue;
  const m = fig('muxftp', workload);
  const py = fig('curl → pyftpdlib', workload);
  const vs = fig('curl → vsftpd', workload);
  const node = fig('node pipeline', workload);
  table.push([
    label,
    ...muxLabels.map((l) => mb(fig(l, workload))),
    mb(py),
    mb(vs),
    mb(node),
    ratio(m, py),
    ratio(m, vs),
    ratio(m, node),
    ratio(node, py),
  ]);
}
for (const [
  workload,
  label,
  peerWorkload,
] of /** @type {Array<[workload: string, label: string, peerWorkload: string]>} */ ([
  ['bench-up', `muxftp bench upload, ${opts.parallel} clients × ${many}`, 'put-many'],
  ['bench-down', `muxftp bench download, ${opts.parallel} clients × ${many}`, 'get-many'],
])) {
  if (!opts.workloads.includes(workload)) continue;
  const m = fig('muxftp', workload);
  const py = fig('curl → pyftpdlib', peerWorkload);
  const vs = fig('curl → vsftpd', peerWorkload);
  table.push([
    label,
    ...muxLabels.map((l) => mb(fig(l, workload))),
    mb(py),
    mb(vs),
    '-',
    ratio(m, py),
    ratio(m, vs),
    '-',
    '-',
  ]);
}
const all = [header, ...table];
const widths = header.map((_, c) => Math.max(...all.map((r) => String(r[c]).length)));
console.log(
  `bench:cli: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ` +
    `vsftpd ${packageVersion('vsftpd') || '-'}, pyftpdlib ${packageVersion('python3-pyftpdlib') || '-'}; ` +
    `best of ${opts.rounds} round(s), MB/s (10^6 bytes), every transfer verified; server roots on disk ` +
    `(${os.tmpdir()}), client files on ${clientBase}; curl --parallel-max ${opts.parallel}` +
    (hasChecksum ? '' : '; this CLI has no --checksum option'),
);
console.log(
  all
    .map((r) =>
      r
        .map((cell, c) =>
          c === 0 ? String(cell).padEnd(widths[c] ?? 0) : String(cell).padStart(widths[c] ?? 0),
        )
        .join('  '),
    )
    .join('\n'),
);
if (errors.length > 0)
  console.log(`\nerrors (those measurements were dropped):\n${errors.map((e) => `- ${e}`).join('\n')}`);
process.exitCode = errors.length > 0 ? 1 : 0;
