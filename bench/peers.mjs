// node bench/peers.mjs [--peers vsftpd,pyftpdlib] [--workloads single,many-download,many-upload,connect]
//   [--single-mib 1024] [--clients 300] [--file-mib 10] [--curl-procs 1] [--timeout-s 300]
//   [--connect-timeout-s 5] [--json]
//
// Yardstick, not a muxftp benchmark: real FTP servers from Debian packages (vsftpd, pyftpdlib),
// each on 127.0.0.1 over a fresh temporary root, driven by one common client (curl, passive mode).
// Every transfer is verified (size + SHA-256); a failed or mismatched transfer is an error and its
// bytes are not counted. Run as root (installs packages with apt-get, runs vsftpd). See PEERS.md.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { numberOption } from './options.mjs';

const MIB = 1024 * 1024;
const HOST = '127.0.0.1';
const CURL_PARALLEL_CAP = 300; // curl clamps --parallel-max to 300: more clients need more curl processes
const PYTHON = '/usr/bin/python3'; // Debian's python: python3-pyftpdlib is not visible to a pyenv/venv python3
const ALL_PEERS = ['vsftpd', 'pyftpdlib'];
const ALL_WORKLOADS = ['single', 'many-download', 'many-upload', 'connect'];

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

/**
 * What the command line asked for.
 * @typedef {object} PeerOptions
 * @property {string[]} peers
 * @property {string[]} workloads
 * @property {number} singleMib
 * @property {number} clients
 * @property {number} fileMib
 * @property {number} timeoutMs
 * @property {number} connectTimeoutS
 * @property {number} curlProcs
 * @property {boolean} json
 */

// ---------------------------------------------------------------- options, logging, notes

/** @returns {PeerOptions} */
function parseOptions() {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: ALL_PEERS.join(',') },
      workloads: { type: 'string', default: ALL_WORKLOADS.join(',') },
      'single-mib': { type: 'string', default: '1024' },
      clients: { type: 'string', default: '300' },
      'file-mib': { type: 'string', default: '10' },
      'timeout-s': { type: 'string', default: '300' },
      'connect-timeout-s': { type: 'string', default: '5' },
      'curl-procs': { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  /** @param {string} s */
  const list = (s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter((x, i, all) => x && all.indexOf(x) === i); // results are keyed by name: no duplicates
  /** @param {keyof typeof values} name */
  const positive = (name) => numberOption('bench:peers', name, /** @type {string} */ (values[name]));
  /** @param {keyof typeof values} name */
  const count = (name) =>
    numberOption('bench:peers', name, /** @type {string} */ (values[name]), { integer: true });
  return {
    peers: list(values.peers),
    workloads: list(values.workloads),
    singleMib: positive('single-mib'),
    clients: count('clients'),
    fileMib: positive('file-mib'),
    timeoutMs: positive('timeout-s') * 1000,
    connectTimeoutS: positive('connect-timeout-s'),
    curlProcs: count('curl-procs'),
    json: values.json,
  };
}

/** @type {string[]} */
const notes = [];
/** @param {string} msg */
const log = (msg) => process.stderr.write(`${msg}\n`);
/** @param {string} msg */
function note(msg) {
  notes.push(msg);
  log(`note: ${msg}`);
}

// ---------------------------------------------------------------- cleanup of everything we start

/** @type {Set<ChildProcess>} */
const children = new Set();
/** @type {Set<string>} */
const tempDirs = new Set();

/**
 * Remembers a child process until it exits, so that cleanup can kill it.
 * @template {ChildProcess} C
 * @param {C} child
 * @returns {C}
 */
export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/**
 * @param {string} prefix
 * @param {string} [parent]
 * @returns {Promise<string>}
 */
export async function makeTempDir(prefix, parent = os.tmpdir()) {
  const dir = await fsp.mkdtemp(path.join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

/** @param {string} dir */
export async function removeTempDir(dir) {
  await fsp.rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Direct children of a process (vsftpd forks a process per session).
 * @param {number} pid
 * @returns {number[]}
 */
function childPids(pid) {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' '))
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * @param {number} pid
 * @returns {number[]}
 */
function descendants(pid) {
  return childPids(pid).flatMap((child) => [child, ...descendants(child)]);
}

/**
 * Signal a process we started and everything it forked (vsftpd sessions outlive a killed listener).
 * @param {number | undefined} pid undefined when the process never started
 * @param {NodeJS.Signals} signal
 */
export function killTree(pid, signal) {
  if (pid === undefined) return;
  for (const p of [...descendants(pid), pid]) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
}

// Each peer runs in a cgroup v2 of its own: its cpu.stat counts every process the peer forks,
// including vsftpd session processes that exit unreaped by their parent (their CPU would never
// reach the listener's cutime), and cgroup.procs lists them all for killing.
/** @type {Set<string>} */
const cgroups = new Set();
let cgroupSeq = 0;

/**
 * This process's own cgroup v2 directory (new cgroups go below it), or null.
 * @returns {string | null}
 */
function ownCgroup() {
  try {
    const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n');
    const mount = mounts.map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2');
    const own = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    const mountPoint = mount?.[1];
    return mountPoint && own ? path.join(mountPoint, own.slice(3)) : null;
  } catch {
    return null;
  }
}

/**
 * @param {string} name
 * @returns {string | null}
 */
function createCgroup(name) {
  const parent = ownCgroup();
  if (!parent) return null;
  const dir = path.join(parent, `muxftp-peers-${process.pid}-${name}-${++cgroupSeq}`);
  try {
    fs.mkdirSync(dir);
  } catch {
    return null;
  }
  cgroups.add(dir);
  return dir;
}

/**
 * @param {string} dir
 * @returns {number[]}
 */
function cgroupPids(dir) {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * CPU seconds used by every process that ever ran in the cgroup (cpu.stat exists without controllers).
 * @param {string} dir
 */
function cgroupCpu(dir) {
  const usage = /usage_usec (\d+)/.exec(fs.readFileSync(path.join(dir, 'cpu.stat'), 'utf8'));
  if (usage === null) throw new Error(`${dir}/cpu.stat has no usage_usec`);
  return Number(usage[1]) / 1e6;
}

/**
 * @param {string} dir
 * @param {NodeJS.Signals} signal
 */
function killCgroup(dir, signal) {
  for (const pid of cgroupPids(dir)) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * rmdir succeeds once the last process in it has exited.
 * @param {string} dir
 */
function tryRemoveCgroup(dir) {
  try {
    fs.rmdirSync(dir);
    cgroups.delete(dir);
    return true;
  } catch {
    return false;
  }
}

/** @param {string} dir */
async function removeCgroup(dir) {
  for (let i = 0; i < 100 && !tryRemoveCgroup(dir); i++) await sleep(50);
}

export function emergencyCleanup() {
  for (const child of children) killTree(child.pid, 'SIGKILL');
  for (const dir of cgroups) killCgroup(dir, 'SIGKILL');
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  for (const dir of cgroups) {
    // Killed processes take a moment to leave the cgroup; wait (synchronously) up to ~1 s.
    for (let i = 0; i < 20 && !tryRemoveCgroup(dir); i++) Atomics.wait(new Int32Array(4), 0, 0, 50);
  }
}

// 128 + the signal's number, as a shell reports it: SIGTERM (timeout, a CI job cancelled) said 130.
for (const [signal, code] of /** @type {const} */ ([
  ['SIGINT', 130],
  ['SIGTERM', 143],
])) {
  process.on(signal, () => {
    log(`\n${signal}: stopping peers and removing temp dirs`);
    emergencyCleanup();
    process.exit(code);
  });
}

// ---------------------------------------------------------------- processes

/**
 * @typedef {object} RunResult
 * @property {number | null} code
 * @property {NodeJS.Signals | null} signal
 * @property {string} stdout
 * @property {string} stderr
 * @property {boolean} timedOut
 */

/**
 * Run a command to completion, killed (with its children) if it outlives timeoutMs.
 * @param {string} cmd
 * @param {readonly string[]} args
 * @param {{ timeoutMs?: number, env?: NodeJS.ProcessEnv }} [options]
 * @returns {Promise<RunResult>}
 */
export function run(cmd, args, { timeoutMs = 0, env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env }));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (/** @type {string} */ d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (/** @type {string} */ d) => {
      stderr += d;
    });
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            killTree(child.pid, 'SIGKILL');
          }, timeoutMs)
        : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/**
 * A command's trimmed stdout, or '' if it fails.
 * @param {string} cmd
 * @param {string[]} args
 */
function commandOutput(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------- packages

/** One field of an installed package as dpkg-query's -f format, e.g. `${Version}`. */
/** @param {string} pkg @param {string} field */
const dpkgField = (pkg, field) => commandOutput('dpkg-query', ['-W', `-f=\${${field}}`, pkg]);
/** @param {string} pkg */
export const packageVersion = (pkg) => dpkgField(pkg, 'Version');
/** @param {string} pkg */
const isInstalled = (pkg) => dpkgField(pkg, 'Status').includes('install ok installed');

/**
 * apt-get install whatever is missing; returns the set of packages that are usable afterwards.
 * @param {string[]} packages
 * @returns {Promise<Set<string>>}
 */
export async function ensurePackages(packages) {
  const missing = packages.filter((p) => !isInstalled(p));
  if (missing.length === 0) return new Set(packages);
  if (process.getuid?.() !== 0) {
    note(`not root: cannot install ${missing.join(', ')}`);
    return new Set(packages.filter(isInstalled));
  }
  log(`installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  /** @param {string[]} args */
  const apt = (args) => run('apt-get', args, { timeoutMs: 10 * 60_000, env }).catch(() => ({ code: -1 }));
  await apt(['update', '-q']);
  const all = await apt(['install', '-y', '-q', ...missing]);
  // If the batch failed, try one by one so one broken package does not take the others down.
  if (all.code !== 0) for (const p of missing) await apt(['install', '-y', '-q', p]);
  for (const p of missing.filter((p) => !isInstalled(p))) note(`apt-get install ${p} failed`);
  return new Set(packages.filter(isInstalled));
}

// ---------------------------------------------------------------- ports

/**
 * @param {number} port
 * @returns {Promise<number>} the port bound (0 for any), or 0 if it is taken
 */
async function bindable(port) {
  const server = net.createServer();
  try {
    server.listen({ host: HOST, port, exclusive: true });
    await once(server, 'listening');
    return /** @type {net.AddressInfo} */ (server.address()).port;
  } catch {
    return 0;
  } finally {
    server.close();
  }
}

const freePort = () => bindable(0);

/** A block of free ports for vsftpd's passive data connections, below the kernel's ephemeral range
 * so that curl's outgoing connections cannot take them during the run.
 * @param {number} size
 * @returns {Promise<[number, number]>} first and last port
 */
async function freePortRange(size) {
  const [ephemeralLow] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/);
  const low = 10_000;
  const high = Math.max(low + size, Number(ephemeralLow) - size);
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = low + Math.floor(Math.random() * (high - low - size));
    let ok = true;
    for (let p = base; p < base + size && ok; p++) ok = (await bindable(p)) === p;
    if (ok) return [base, base + size - 1];
  }
  throw new Error(`no free block of ${size} ports`);
}

// ---------------------------------------------------------------- files and hashes

/**
 * @param {string} file
 * @returns {Promise<{ size: number, sha256: string }>}
 */
export async function hashFile(file) {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(4 * MIB);
  const fh = await fsp.open(file, 'r');
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest('hex') };
}

/**
 * A file with its size and SHA-256 (hex), to send and to check what arrived against.
 * @typedef {{ file: string, size: number, sha256: string }} Payload
 */

/**
 * Random payload of `mib` MiB, written once; returns its path, size and digest.
 * @param {string} dir
 * @param {number} mib
 * @returns {Promise<Payload>}
 */
async function makePayload(dir, mib) {
  const file = path.join(dir, `payload-${mib}MiB.bin`);
  const size = Math.round(mib * MIB);
  const chunk = Buffer.allocUnsafe(Math.min(size, 16 * MIB));
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'w');
  try {
    for (let left = size; left > 0; left -= chunk.length) {
      const part = chunk.subarray(0, Math.min(left, chunk.length));
      randomFillSync(part);
      hash.update(part);
      await fh.write(part);
    }
    await fh.chmod(0o644); // vsftpd serves anonymous users world-readable files only
  } finally {
    await fh.close();
  }
  return { file, size, sha256: hash.digest('hex') };
}

/**
 * True if `file` has the payload's size and digest (missing file = false).
 * @param {string} file
 * @param {Payload} payload
 */
async function matches(file, payload) {
  try {
    const got = await hashFile(file);
    return got.size === payload.size && got.sha256 === payload.sha256;
  } catch {
    return false;
  }
}

/**
 * Put a payload into a server root without copying it (hard link; copy across filesystems).
 * @param {Payload} payload
 * @param {string} dest
 */
async function placeFile(payload, dest) {
  try {
    await fsp.link(payload.file, dest);
  } catch {
    await fsp.copyFile(payload.file, dest);
  }
}

// ---------------------------------------------------------------- CPU accounting

const CLK_TCK = Number(commandOutput('getconf', ['CLK_TCK'])) || 100;

/**
 * utime, stime, cutime, cstime of a process in seconds (fields 14-17 of /proc/<pid>/stat).
 * @param {number} pid
 */
function procTimes(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = /** @type {[number, number, number, number]} */ (
    f.slice(11, 15).map((t) => Number(t) / CLK_TCK)
  );
  return { self: utime + stime, children: cutime + cstime };
}

/**
 * The first line of /proc/stat: jiffies the machine spent in each state.
 * @typedef {[user: number, nice: number, system: number, idle: number, iowait: number, irq: number, softirq: number, steal: number]} CpuJiffies
 */

/**
 * @typedef {object} MachineTimes
 * @property {number} busy
 * @property {number} iowait
 * @property {number} total
 */

/**
 * Busy, iowait and total jiffies of the whole machine (first line of /proc/stat).
 * @returns {MachineTimes}
 */
function machineTimes() {
  const [cpuLine = ''] = fs.readFileSync('/proc/stat', 'utf8').split('\n');
  const fields = /** @type {CpuJiffies} */ (cpuLine.split(/\s+/).slice(1, 9).map(Number));
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - fields[3] - fields[4], iowait: fields[4], total }; // busy: minus idle and iowait
}

/** The kernel's count of connections dropped because a listen queue was full (system-wide). */
function listenOverflows() {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const header = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[header]?.split(/\s+/);
  const counts = lines[header + 1]?.split(/\s+/);
  if (names === undefined || counts === undefined) throw new Error('/proc/net/netstat has no TcpExt lines');
  return Number(counts[names.indexOf('ListenOverflows')]);
}

/**
 * Waits until only the server's main process is left (sessions have exited and been counted).
 * @param {{ pids: () => number[] }} server
 * @param {number} timeoutMs
 */
async function waitForIdle(server, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (server.pids().length > 1 && Date.now() < deadline) await sleep(50);
}

/**
 * Percentage of all cores' time spent in `field` between two machineTimes() readings.
 * @param {MachineTimes} after
 * @param {MachineTimes} before
 * @param {'busy' | 'iowait'} field
 */
const share = (after, before, field) =>
  fixed((100 * (after[field] - before[field])) / (after.total - before.total || 1), 0);

/**
 * Time `body` (the curl run) and account CPU over it: the server's (sessions included, after they
 * have exited), curl's (this process's reaped children) and the whole machine's.
 * @template {object} T
 * @param {Peer} server
 * @param {() => Promise<T>} body
 * @returns {Promise<T & Measured>}
 */
async function measure(server, body) {
  const before = {
    server: server.cpu(),
    curl: procTimes(process.pid).children,
    machine: machineTimes(),
    overflows: listenOverflows(),
  };
  const t0 = performance.now();
  const out = await body();
  const seconds = (performance.now() - t0) / 1000;
  const curlCpu = procTimes(process.pid).children - before.curl;
  const machine = machineTimes();
  const overflows = listenOverflows() - before.overflows;
  await waitForIdle(server, 10_000);
  return {
    ...out,
    seconds,
    server_cpu_s: fixed(server.cpu() - before.server, 2),
    curl_cpu_s: fixed(curlCpu, 2),
    machine_busy_pct: share(machine, before.machine, 'busy'),
    machine_iowait_pct: share(machine, before.machine, 'iowait'),
    listen_overflows: overflows,
  };
}

// ---------------------------------------------------------------- peers

/**
 * @param {string} user
 * @returns {{ uid: number, gid: number }}
 */
function passwdEntry(user) {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`user ${user} does not exist`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Root layout shared by both peers: files to download at the top, uploads into up/. The root itself
 * stays root-owned and not writable: vsftpd refuses a writable chroot for anonymous users.
 * @param {string} root
 * @param {{ uid: number, gid: number } | null} uploadOwner
 */
async function prepareRoot(root, uploadOwner) {
  await fsp.chmod(root, 0o755);
  await fsp.mkdir(path.join(root, 'up'), { mode: 0o755 });
  if (uploadOwner) await fsp.chown(path.join(root, 'up'), uploadOwner.uid, uploadOwner.gid);
}

/** @param {{ root: string, port: number, pasv: [number, number] }} where */
function vsftpdConfig({ root, port, pasv }) {
  return [
    'listen=YES',
    'listen_ipv6=NO',
    `listen_address=${HOST}`,
    `listen_port=${port}`,
    'background=NO',
    'anonymous_enable=YES',
    'local_enable=NO',
    'ftp_username=ftp',
    `anon_root=${root}`,
    'write_enable=YES',
    'anon_upload_enable=YES',
    'anon_mkdir_write_enable=YES',
    'anon_umask=022',
    'pasv_enable=YES',
    `pasv_address=${HOST}`,
    `pasv_min_port=${pasv[0]}`,
    `pasv_max_port=${pasv[1]}`,
    'connect_from_port_20=NO',
    'max_clients=0',
    'max_per_ip=0',
    'seccomp_sandbox=NO',
    'use_localtime=NO',
    'xferlog_enable=NO',
    'dirmessage_enable=NO',
    'secure_chroot_dir=/var/run/vsftpd/empty',
    '',
  ].join('\n');
}

const PYFTPDLIB_SCRIPT = `
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(level=logging.WARNING)  # no per-command INFO log, like vsftpd's xferlog_enable=NO
root, port = sys.argv[1], int(sys.argv[2])
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root, perm='elradfmw')
FTPHandler.authorizer = authorizer
server = FTPServer(('127.0.0.1', port), FTPHandler, backlog=1024)  # default backlog 100 < clients
server.max_cons = 0         # unlimited (default 512 counts control + data sockets)
server.max_cons_per_ip = 0  # unlimited
server.serve_forever(handle_exit=True)
`;

/**
 * @typedef {object} PeerSpec
 * @property {string[]} packages Debian packages it needs
 * @property {string} model how it serves many clients
 * @property {(where: { root: string, port: number, workDir: string, clients: number }) => Promise<[string, string[]]>} command
 */

/**
 * How to start each peer; `command` prepares the root and returns the argv (port already chosen).
 * @type {Record<PeerName, PeerSpec>}
 */
const PEERS = {
  vsftpd: {
    packages: ['vsftpd'],
    model: 'fork per session (privilege separation: 2 processes per client)',
    async command({ root, port, workDir, clients }) {
      await prepareRoot(root, passwdEntry('ftp'));
      await fsp.mkdir('/var/run/vsftpd/empty', { recursive: true, mode: 0o755 });
      const pasv = await freePortRange(Math.max(1000, 4 * clients));
      const conf = path.join(workDir, 'vsftpd.conf');
      await fsp.writeFile(conf, vsftpdConfig({ root, port, pasv }), { mode: 0o600 });
      return ['/usr/sbin/vsftpd', [conf]];
    },
  },
  pyftpdlib: {
    packages: ['python3-pyftpdlib'],
    model: 'one process, one thread (async loop): at most one core',
    async command({ root, port, workDir }) {
      await prepareRoot(root, null);
      const script = path.join(workDir, 'pyftpdlib_server.py');
      await fsp.writeFile(script, PYFTPDLIB_SCRIPT);
      return [PYTHON, ['-W', 'ignore', script, root, String(port)]];
    },
  },
};

/**
 * Resolves once the server sends its 220 greeting; rejects if it exits or stays silent.
 * @param {number} port
 * @param {ChildProcess} child
 * @param {number} timeoutMs
 */
async function waitForGreeting(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('exited during startup');
    const greeted = await new Promise((resolve) => {
      const socket = net.connect({ host: HOST, port });
      socket.setTimeout(1000, () => socket.destroy());
      socket.once('data', (d) => {
        socket.destroy();
        resolve(String(d).startsWith('220'));
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });
    if (greeted) return;
    await sleep(100);
  }
  throw new Error('no FTP greeting within 10 s');
}

/**
 * Spawn the server, joined to `cgroup` (if any) before it execs, so everything it forks is counted.
 * @param {string} cmd
 * @param {string[]} args
 * @param {string | null} cgroup
 */
function spawnServer(cmd, args, cgroup) {
  /** @type {import('node:child_process').SpawnOptionsWithStdioTuple<'ignore', 'pipe', 'pipe'>} */
  const options = { stdio: ['ignore', 'pipe', 'pipe'] };
  if (!cgroup) return spawn(cmd, args, options);
  const join = 'echo $$ > "$0/cgroup.procs" 2>/dev/null; exec "$@"';
  return spawn('/bin/sh', ['-c', join, cgroup, cmd, ...args], options);
}

/**
 * How a peer's CPU and processes are counted: its cgroup's, or else /proc's (the listener's cutime).
 * @typedef {object} Accounting
 * @property {'cgroup' | 'proc'} method
 * @property {() => number} cpu CPU seconds so far
 * @property {() => number[]} pids
 */

/**
 * CPU and process list of a peer: from its cgroup, or else from /proc (the listener's cutime).
 * @param {number} pid
 * @param {string | null} cgroup
 * @returns {Accounting}
 */
function accounting(pid, cgroup) {
  if (cgroup && cgroupPids(cgroup).includes(pid)) {
    return { method: 'cgroup', cpu: () => cgroupCpu(cgroup), pids: () => cgroupPids(cgroup) };
  }
  const cpu = () => {
    const t = procTimes(pid);
    return t.self + t.children;
  };
  return { method: 'proc', cpu, pids: () => [pid, ...descendants(pid)] };
}

/** @typedef {'vsftpd' | 'pyftpdlib'} PeerName */

/**
 * An FTP server curl can reach: a peer here, `muxftp serve` in bench/cli.mjs.
 * @typedef {object} FtpServer
 * @property {string} name
 * @property {string} root its root directory on disk
 * @property {number} port on 127.0.0.1
 * @property {() => Promise<void>} stop
 */

/**
 * A running peer, with its CPU accounting.
 * @typedef {FtpServer & Accounting & { pid: number }} Peer
 */

/**
 * Start a peer over a fresh root; the returned handle's stop() kills it (and its sessions).
 * @param {PeerName} name
 * @param {{ clients: number }} options
 * @returns {Promise<Peer>}
 */
export async function startPeer(name, { clients }) {
  const root = await makeTempDir(`muxftp-peer-${name}-root-`);
  const workDir = await makeTempDir(`muxftp-peer-${name}-etc-`);
  const cgroup = createCgroup(name);
  /** @type {ChildProcess | null} */
  let child = null;
  let output = '';
  /** @param {NodeJS.Signals} signal */
  const signalAll = (signal) => {
    if (cgroup) killCgroup(cgroup, signal);
    if (child) killTree(child.pid, signal);
  };
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      signalAll('SIGTERM');
      const exited = once(child, 'exit');
      if ((await Promise.race([exited, sleep(5000, 'late')])) === 'late') signalAll('SIGKILL');
      await exited;
    }
    if (cgroup) {
      signalAll('SIGKILL'); // sessions that outlived their listener
      await removeCgroup(cgroup);
    }
    await removeTempDir(root);
    await removeTempDir(workDir);
  };
  try {
    const port = await freePort();
    const [cmd, args] = await PEERS[name].command({ root, port, workDir, clients });
    const spawned = track(spawnServer(cmd, args, cgroup));
    child = spawned;
    /** @param {Buffer | string | Error} d */
    const keepTail = (d) => {
      output = (output + d).slice(-2000);
    };
    spawned.stdout.on('data', keepTail);
    spawned.stderr.on('data', keepTail);
    spawned.on('error', keepTail);
    await waitForGreeting(port, spawned, 10_000);
    // A child that greeted has a pid.
    const pid = /** @type {number} */ (spawned.pid);
    const server = { name, root, port, pid, stop, ...accounting(pid, cgroup) };
    await waitForIdle(server, 5000); // the greeting probe's session must be gone before measuring
    return server;
  } catch (err) {
    await stop();
    const message = /** @type {Error} */ (err).message;
    throw new Error(`${message}${output ? `: ${output.trim().split('\n').pop()}` : ''}`);
  }
}

// ---------------------------------------------------------------- the client: curl

/**
 * One curl transfer: a download (remote -> local), an upload (local -> remote) or a login only.
 * @typedef {{ remote: string, upload?: string, local?: string }} Transfer
 */

/** @param {{ port: number }} server @param {string} remote */
const url = (server, remote) => `ftp://${HOST}:${server.port}/${remote}`;
/** @param {string} s */
const quote = (s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * One curl config entry: a download (remote -> local), an upload (local -> remote) or a login only.
 * @param {{ port: number }} server
 * @param {Transfer} t
 */
function configEntry(server, t) {
  if (t.upload) return `upload-file = ${quote(t.upload)}\nurl = ${quote(url(server, t.remote))}\n`;
  if (t.local) return `url = ${quote(url(server, t.remote))}\noutput = ${quote(t.local)}\n`;
  return `url = ${quote(url(server, t.remote))}\n`;
}

class WorkloadTimeout extends Error {}

/**
 * @typedef {object} CurlOptions
 * @property {number} timeoutMs for the whole batch
 * @property {number} connectTimeoutS per connection attempt
 * @property {number} curlProcs curl processes to spread the transfers over
 * @property {string[]} [extraArgs]
 * @property {string} configDir where the curl config files go
 * @property {number} [parallelMax] transfers at once, all processes together (at most 300 a
 *   process); without it, every transfer at once, one connection each
 */

/**
 * @typedef {object} CurlResult
 * @property {Array<number | null>} exitCodes per transfer; null when curl never reported it
 * @property {number} retries connection attempts curl retried
 * @property {string | undefined} lastError
 */

/**
 * Split transfers over `procs` curl processes (more if one would exceed curl's 300 cap).
 * @param {Transfer[]} transfers
 * @param {number} procs
 */
function splitForCurl(transfers, procs, parallelMax = transfers.length) {
  const atOnce = Math.min(transfers.length, parallelMax);
  const count = Math.min(transfers.length, Math.max(procs, Math.ceil(atOnce / CURL_PARALLEL_CAP)));
  const size = Math.ceil(transfers.length / count);
  /** @type {Array<{ offset: number, list: Transfer[] }>} */
  const chunks = [];
  for (let i = 0; i < transfers.length; i += size)
    chunks.push({ offset: i, list: transfers.slice(i, i + size) });
  return chunks;
}

/**
 * Run all transfers at once: curl --parallel, one connection per transfer, over --curl-procs
 * processes. Returns curl's exit code per transfer and how many connection attempts curl retried.
 * @param {{ port: number }} server
 * @param {Transfer[]} transfers
 * @param {CurlOptions} options
 * @returns {Promise<CurlResult>}
 */
export async function curlBatch(
  server,
  transfers,
  { timeoutMs, connectTimeoutS, curlProcs, extraArgs = [], configDir, parallelMax },
) {
  const chunks = splitForCurl(transfers, curlProcs, parallelMax);
  // Each process's share of parallelMax, or all of its transfers at once.
  const atOnceEach = (/** @type {number} */ length) =>
    parallelMax === undefined ? length : Math.min(length, Math.ceil(parallelMax / chunks.length));
  const runs = await Promise.all(
    chunks.map(async (chunk, c) => {
      const config = path.join(configDir, `curl-${c}.conf`);
      await fsp.writeFile(config, chunk.list.map((t) => configEntry(server, t)).join(''));
      return run(
        'curl',
        [
          ...['--parallel', '--parallel-immediate', '--parallel-max', String(atOnceEach(chunk.list.length))],
          // = --silent --show-error, except that curl's "Will retry" warnings stay visible to be counted.
          ...['--no-progress-meter', '--show-error', '--fail', '--ftp-pasv'],
          // A connection lost in a full listen queue would hang until TCP keepalive (~60 s): give up
          // on the greeting + login after a few seconds and retry, as an interactive client would.
          ...['--connect-timeout', String(connectTimeoutS), '--retry', '3'],
          ...['--write-out', '%{urlnum} %{exitcode}\\n', '--config', config, ...extraArgs],
        ],
        { timeoutMs },
      );
    }),
  );
  if (runs.some((r) => r.timedOut)) throw new WorkloadTimeout(`timed out after ${timeoutMs / 1000} s`);
  /** @type {Array<number | null>} */
  const exitCodes = transfers.map(() => null); // null: curl never reported the transfer
  /** @type {string[]} */
  const errorLines = [];
  runs.forEach((r, c) => {
    const { offset } = /** @type {{ offset: number }} */ (chunks[c]); // one run per chunk
    for (const line of r.stdout.split('\n').filter((l) => /^\d+ \d+$/.test(l))) {
      // The filter above: two numbers.
      const [num, code] = /** @type {[number, number]} */ (line.split(' ').map(Number));
      exitCodes[offset + num] = code;
    }
    errorLines.push(...r.stderr.split('\n').filter((l) => l.startsWith('curl:')));
  });
  const retries = runs.reduce((n, r) => n + (r.stderr.match(/Will retry/g) ?? []).length, 0);
  return { exitCodes, retries, lastError: errorLines.at(-1) };
}

// ---------------------------------------------------------------- workloads

/**
 * A rate to `digits` decimals; null (JSON has no Infinity) when it was over zero seconds.
 * @param {number} x
 * @param {number} digits
 */
const round = (x, digits) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);
/**
 * A measured figure (CPU seconds, a percentage), always finite, to `digits` decimals.
 * @param {number} x
 * @param {number} digits
 */
const fixed = (x, digits) => Number(x.toFixed(digits));
/** @param {number} i */
const pad = (i) => `c${String(i).padStart(4, '0')}.bin`;

/**
 * What measure() adds to the body's result.
 * @typedef {object} Measured
 * @property {number} seconds
 * @property {number} server_cpu_s
 * @property {number} curl_cpu_s
 * @property {number} machine_busy_pct
 * @property {number} machine_iowait_pct
 * @property {number} listen_overflows
 */

/**
 * One measured phase: curl's transfers, each verified, and what they cost.
 * @typedef {object} Phase
 * @property {number} seconds
 * @property {number} ok transfers verified
 * @property {number} errors transfers failed or mismatched
 * @property {number} retries
 * @property {number} server_cpu_s
 * @property {number} curl_cpu_s
 * @property {number} machine_busy_pct
 * @property {number} machine_iowait_pct
 * @property {number} listen_overflows
 * @property {number | null} [mbps] over verified bytes
 * @property {number | null} [per_second] `connect`: verified logins per second
 */

/** @typedef {Phase | { error: string }} PhaseOutcome a phase, or why it has no figures */

/**
 * What a workload works with: the options, curl's settings and the payloads.
 * @typedef {object} WorkloadContext
 * @property {PeerOptions} opts
 * @property {number} timeoutMs
 * @property {number} connectTimeoutS
 * @property {number} curlProcs
 * @property {string} configDir
 * @property {(mib: number) => Promise<Payload>} payload made once per size
 * @property {string} [label] the phase, for notes
 */

/**
 * Run transfers under measurement, then verify each one; only verified bytes count as throughput.
 * @param {Peer} server
 * @param {Transfer[]} transfers
 * @param {Payload | null} payload what each transfer should have produced (null: nothing to check)
 * @param {((t: Transfer) => string) | null} verifyFile where a transfer's result lands
 * @param {WorkloadContext} ctx
 * @param {string[]} [extraArgs]
 * @returns {Promise<Phase>}
 */
async function transferPhase(server, transfers, payload, verifyFile, ctx, extraArgs = []) {
  const m = await measure(server, () => curlBatch(server, transfers, { ...ctx, extraArgs }));
  let ok = 0;
  for (const [i, t] of transfers.entries()) {
    // One file at a time: hashing 300 files at once would hold 300 read buffers.
    if (m.exitCodes[i] === 0 && (!payload || !verifyFile || (await matches(verifyFile(t), payload)))) ok++;
  }
  const { exitCodes, lastError, seconds, ...rest } = m;
  const errors = transfers.length - ok;
  if (errors > 0)
    note(`${server.name} ${ctx.label}: ${errors} failed or mismatched (${lastError ?? 'verify'})`);
  return { seconds: fixed(seconds, 3), ok, errors, ...rest };
}

/** Rate over verified bytes only; null (not 0) when nothing verified, so it cannot pass for a figure. */
/** @param {number} bytes @param {number} seconds */
const mbps = (bytes, seconds) => (bytes > 0 ? round(bytes / 1e6 / seconds, 1) : null);

/**
 * `count` downloads of `remote`, each to a file of its own.
 * @param {Peer} server
 * @param {WorkloadContext} ctx
 * @param {Payload} payload
 * @param {string} remote
 * @param {number} count
 * @returns {Promise<Phase>}
 */
async function downloadPhase(server, ctx, payload, remote, count) {
  const dir = await makeTempDir('muxftp-peers-dl-');
  try {
    const transfers = Array.from({ length: count }, (_, i) => ({ remote, local: path.join(dir, pad(i)) }));
    const r = await transferPhase(server, transfers, payload, (t) => /** @type {string} */ (t.local), ctx);
    return { ...r, mbps: mbps(r.ok * payload.size, r.seconds) };
  } finally {
    await removeTempDir(dir);
  }
}

/**
 * One upload of the payload per name, into up/.
 * @param {Peer} server
 * @param {WorkloadContext} ctx
 * @param {Payload} payload
 * @param {string[]} names
 * @returns {Promise<Phase>}
 */
async function uploadPhase(server, ctx, payload, names) {
  const transfers = names.map((name) => ({ upload: payload.file, remote: `up/${name}` }));
  const r = await transferPhase(server, transfers, payload, (t) => path.join(server.root, t.remote), ctx);
  return { ...r, mbps: mbps(r.ok * payload.size, r.seconds) };
}

/** @typedef {{ upload: PhaseOutcome, download?: PhaseOutcome }} SinglePhases */

/** Workloads get a fresh, idle server each; they return one or more measured phases. */
const WORKLOADS = {
  /**
   * @param {Peer} server
   * @param {WorkloadContext} ctx
   * @returns {Promise<SinglePhases>}
   */
  async single(server, ctx) {
    const payload = await ctx.payload(ctx.opts.singleMib);
    const upload = await uploadPhase(server, { ...ctx, label: 'single upload' }, payload, ['single.bin']);
    const download = await downloadPhase(
      server,
      { ...ctx, label: 'single download' },
      payload,
      'up/single.bin',
      1,
    );
    return { upload, download };
  },
  /**
   * @param {Peer} server
   * @param {WorkloadContext} ctx
   */
  async 'many-download'(server, ctx) {
    const payload = await ctx.payload(ctx.opts.fileMib);
    await placeFile(payload, path.join(server.root, 'payload.bin'));
    return downloadPhase(
      server,
      { ...ctx, label: 'many-download' },
      payload,
      'payload.bin',
      ctx.opts.clients,
    );
  },
  /**
   * @param {Peer} server
   * @param {WorkloadContext} ctx
   */
  async 'many-upload'(server, ctx) {
    const payload = await ctx.payload(ctx.opts.fileMib);
    const names = Array.from({ length: ctx.opts.clients }, (_, i) => pad(i));
    return uploadPhase(server, { ...ctx, label: 'many-upload' }, payload, names);
  },
  /**
   * @param {Peer} server
   * @param {WorkloadContext} ctx
   * @returns {Promise<Phase>}
   */
  async connect(server, ctx) {
    // Connect, read the greeting, USER/PASS, PWD, quit: no data connection (curl --head on a directory).
    const transfers = Array.from({ length: ctx.opts.clients }, () => ({ remote: '' }));
    const r = await transferPhase(server, transfers, null, null, { ...ctx, label: 'connect' }, ['--head']);
    return { ...r, per_second: r.ok > 0 ? round(r.ok / r.seconds, 0) : null };
  },
};

// ---------------------------------------------------------------- what limited a phase

/**
 * A one-line reading of the figures: which process (or the machine, or the accept queue) was saturated.
 * @param {Phase} phase
 * @param {string} peerName
 * @param {number} cores
 * @param {number} curlProcs
 */
function limitOf(phase, peerName, cores, curlProcs) {
  const serverShare = phase.server_cpu_s / phase.seconds; // in cores
  const curlShare = phase.curl_cpu_s / phase.seconds;
  // One transfer is one vsftpd session process; pyftpdlib is always one thread.
  const serverOneCore = peerName === 'pyftpdlib' || phase.ok + phase.errors === 1;
  const parts = [];
  if (phase.machine_busy_pct >= 90) parts.push(`all ${cores} cores busy`);
  // Writes into the page cache block once too much is dirty: the writer then waits for the disk.
  if (phase.machine_iowait_pct >= 10) parts.push(`disk (iowait ${phase.machine_iowait_pct}%)`);
  if (serverShare >= 0.85 * (serverOneCore ? 1 : cores))
    parts.push(serverOneCore ? 'server (one core)' : 'server CPU');
  if (curlShare >= 0.85 * Math.min(curlProcs, cores))
    parts.push(`curl (${curlProcs} process, one core each)`);
  // SYNs dropped by a full accept queue cost the client a SYN retransmit (1 s, then 3 s, 7 s, ...);
  // a handshake dropped after a syncookie leaves a connection that never gets its greeting, which
  // curl abandons after --connect-timeout-s and retries.
  if (phase.listen_overflows > 0) parts.push(`accept queue full: ${phase.listen_overflows} drops`);
  if (phase.retries > 0) parts.push(`${phase.retries} connects retried`);
  return parts.length > 0 ? parts.join('; ') : 'not CPU-bound (waits/latency)';
}

// ---------------------------------------------------------------- report

/**
 * A peer's workloads as JSON says them.
 * @typedef {{ single?: SinglePhases, 'many-download'?: PhaseOutcome, 'many-upload'?: PhaseOutcome, connect?: PhaseOutcome }} WorkloadResults
 */

/** @typedef {WorkloadResults | { skipped: string }} PeerResults */

/** @param {PhaseOutcome | undefined} phase */
const mbpsOf = (phase) => (phase !== undefined && 'mbps' in phase ? (phase.mbps ?? null) : null);

/** @param {PeerResults} results */
function peerJson(results) {
  if ('skipped' in results) return { skipped: results.skipped };
  /** @type {Record<string, unknown>} */
  const out = {};
  if (results.single) {
    out.single_upload_mbps = mbpsOf(results.single.upload);
    out.single_download_mbps = mbpsOf(results.single.download);
    out.single = results.single;
  }
  if (results['many-download']) out.many_download = results['many-download'];
  if (results['many-upload']) out.many_upload = results['many-upload'];
  if (results.connect) out.connect = results.connect;
  return out;
}

/**
 * Flatten results into table rows: one per measured phase.
 * @param {Record<string, PeerResults>} allResults
 * @param {number} cores
 * @param {number} curlProcs
 * @returns {string[][]}
 */
function tableRows(allResults, cores, curlProcs) {
  /** @type {string[][]} */
  const rows = [];
  for (const [peer, results] of Object.entries(allResults)) {
    if ('skipped' in results) {
      rows.push([peer, 'skipped', '', '', '', '', '', '', results.skipped]);
      continue;
    }
    /** @type {Array<[string, PhaseOutcome | undefined]>} */
    const phases = [];
    if (results.single)
      phases.push(['single upload', results.single.upload], ['single download', results.single.download]);
    for (const w of /** @type {const} */ (['many-download', 'many-upload', 'connect']))
      if (results[w]) phases.push([w, results[w]]);
    for (const [label, p] of phases) {
      if (!p || 'error' in p) {
        rows.push([peer, label, '', '', '', '', '', '', `ERROR: ${p?.error ?? 'not run'}`]);
        continue;
      }
      const [value, unit] = label === 'connect' ? [p.per_second, 'conn/s'] : [p.mbps, 'MB/s'];
      const rate = value === null ? 'n/a' : `${value} ${unit}`;
      /** @param {number} cpu */
      const pct = (cpu) => `${cpu.toFixed(2)} (${Math.round((100 * cpu) / p.seconds)}%)`;
      rows.push([
        peer,
        label,
        p.seconds.toFixed(2),
        rate,
        `${p.errors}/${p.ok + p.errors}`,
        pct(p.server_cpu_s),
        pct(p.curl_cpu_s),
        `${p.machine_busy_pct}% / ${p.machine_iowait_pct}%`,
        limitOf(p, peer, cores, curlProcs),
      ]);
    }
  }
  return rows;
}

/** @param {string[][]} rows */
function formatTable(rows) {
  const header = [
    'peer',
    'workload',
    'seconds',
    'rate',
    'errors',
    'server cpu s',
    'curl cpu s',
    'busy/iowait',
    'limit',
  ];
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => String(r[c]).length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => String(cell).padEnd(widths[c] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function machineInfo() {
  return {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    vsftpd: packageVersion('vsftpd') || null,
    pyftpdlib: packageVersion('python3-pyftpdlib') || null,
    curl: commandOutput('curl', ['--version']).split(' ')[1] || null,
  };
}

// ---------------------------------------------------------------- main

/** @typedef {keyof typeof WORKLOADS} WorkloadName */

/** @param {string} name @returns {name is PeerName} */
const isPeerName = (name) => Object.hasOwn(PEERS, name);
/** @param {string} name @returns {name is WorkloadName} */
const isWorkloadName = (name) => Object.hasOwn(WORKLOADS, name);

/**
 * Each workload on a fresh peer of its own.
 * @param {PeerName} name
 * @param {WorkloadName[]} workloads
 * @param {PeerOptions} opts
 * @param {Omit<WorkloadContext, 'configDir'>} ctx
 * @returns {Promise<PeerResults>}
 */
async function runPeer(name, workloads, opts, ctx) {
  /** @type {WorkloadResults} */
  const results = {};
  let procAccountingNoted = false;
  for (const workload of workloads) {
    log(`${name}: ${workload}`);
    let server;
    try {
      server = await startPeer(name, opts);
    } catch (err) {
      const message = /** @type {Error} */ (err).message;
      note(`${name}: skipped, failed to start (${message})`);
      return { skipped: `failed to start: ${message}` };
    }
    if (server.method !== 'cgroup' && !procAccountingNoted) {
      note(`${name}: no usable cgroup v2; server CPU from /proc (misses sessions their parent did not reap)`);
      procAccountingNoted = true;
    }
    const configDir = await makeTempDir('muxftp-peers-curl-');
    try {
      const workloadCtx = { ...ctx, configDir };
      if (workload === 'single') results.single = await WORKLOADS.single(server, workloadCtx);
      else results[workload] = await WORKLOADS[workload](server, workloadCtx);
    } catch (err) {
      if (!(err instanceof WorkloadTimeout)) throw err;
      note(`${name} ${workload}: ${err.message}; peer killed`);
      if (workload === 'single') results.single = { upload: { error: err.message } };
      else results[workload] = { error: err.message };
    } finally {
      await server.stop();
      await removeTempDir(configDir);
    }
  }
  return results;
}

async function main() {
  const opts = parseOptions();
  for (const p of opts.peers.filter((p) => !isPeerName(p))) note(`unknown peer ${p} ignored`);
  for (const w of opts.workloads.filter((w) => !isWorkloadName(w))) note(`unknown workload ${w} ignored`);
  const peerNames = opts.peers.filter(isPeerName);
  const workloads = opts.workloads.filter(isWorkloadName);
  opts.peers = peerNames;
  opts.workloads = workloads;

  const installed = await ensurePackages(['curl', ...peerNames.flatMap((p) => PEERS[p].packages)]);
  const machine = machineInfo();
  const payloadDir = await makeTempDir('muxftp-peers-payload-');
  /** @type {Map<number, Promise<Payload>>} */
  const payloads = new Map();
  /** @type {Omit<WorkloadContext, 'configDir'>} */
  const ctx = {
    opts,
    timeoutMs: opts.timeoutMs,
    connectTimeoutS: opts.connectTimeoutS,
    curlProcs: opts.curlProcs,
    // Payloads are generated once per size and reused by every peer.
    payload: (mib) => {
      let made = payloads.get(mib);
      if (made === undefined) {
        made = makePayload(payloadDir, mib);
        payloads.set(mib, made);
      }
      return made;
    },
  };

  /** @type {Record<string, PeerResults>} */
  const results = {};
  try {
    for (const name of peerNames) {
      const missing = ['curl', ...PEERS[name].packages].filter((p) => !installed.has(p));
      if (missing.length > 0) {
        note(`${name}: skipped, ${missing.join(', ')} not installed`);
        results[name] = { skipped: `${missing.join(', ')} not installed` };
        continue;
      }
      results[name] = await runPeer(name, workloads, opts, ctx);
    }
  } finally {
    await removeTempDir(payloadDir);
  }

  for (const name of peerNames) {
    const result = results[name];
    if (result !== undefined && !('skipped' in result)) note(`${name}: ${PEERS[name].model}`);
  }
  if (opts.json) {
    const peers = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, peerJson(v)]));
    console.log(JSON.stringify({ peers, notes, machine, options: opts }, null, 2));
    return;
  }
  console.log(
    `peer FTP servers on loopback (yardstick only, not muxftp): ${machine.cores} cores (${machine.cpu}), ` +
      `node ${machine.node}, vsftpd ${machine.vsftpd}, pyftpdlib ${machine.pyftpdlib}, curl ${machine.curl}`,
  );
  console.log(
    `single ${opts.singleMib} MiB; many-*: ${opts.clients} clients x ${opts.fileMib} MiB; ` +
      `connect: ${opts.clients} clients; ${opts.curlProcs} curl process(es); MB = 10^6 bytes; ` +
      'cpu % = share of one core over the wall time\n',
  );
  console.log(formatTable(tableRows(results, machine.cores, opts.curlProcs)));
  if (notes.length > 0) console.log(`\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}`);
}

// Run as a script; imported (bench/cli.mjs), it only lends its peers, curl driver and cleanup.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    log(`peers: ${err.stack ?? err}`);
    emergencyCleanup();
    process.exit(1);
  });
}
