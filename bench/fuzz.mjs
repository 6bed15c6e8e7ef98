#!/usr/bin/env node
// Fuzzes a running muxftp server: fuzzer connections throw mutated and random frames at it while
// a verifier keeps uploading and downloading files over its own connection and checks every one
// by SHA-256, then every file it stored on disk once more at the end. Bounded by --sessions and
// --duration. Prints one JSON report; exits 1 on any crash (the server process exited or stopped
// accepting) or corrupted file. Reproducible: the same --seed gives the same fuzz input.
//
//   node bench/fuzz.mjs [--sessions 300] [--duration 20s] [--concurrency 8] [--seed N] [--server host:port]
//
// Without --server it starts `muxftp serve --root <temp dir>` itself (disk, fsync off) and
// removes the directory afterwards.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '#dist/client/client.js';
import { prepareBlockHashes } from '#dist/shared/integrity/blockHash.js';
import { contentDigest } from '#dist/shared/integrity/contentDigest.js';
import { FrameType } from '#dist/shared/protocol/constants.js';
import { FrameDecoder } from '#dist/shared/protocol/decoder.js';
import {
  encodeCancel,
  encodeData,
  encodeEnd,
  encodeFrame,
  encodeHello,
  encodeOpen,
  encodeWindow,
} from '#dist/shared/protocol/encoder.js';
import { numberOption } from './options.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
// The sessions' frames carry digests computed here, before any transfer of this process loads the hash.
await prepareBlockHashes();

/**
 * The JSON line the run prints.
 * @typedef {object} FuzzReport
 * @property {number} seed
 * @property {number} sessions
 * @property {number} fuzzBytes
 * @property {number} verifiedTransfers
 * @property {number} crashes
 * @property {Record<string, number>} errorCodes ERROR codes the fuzz connections got back, `connection:` or `stream:` level.
 * @property {string[]} corrupted
 * @property {string[]} verifierErrors
 * @property {number} seconds
 * @property {string} [serverStderrTail] after a crash
 */

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '300' },
    duration: { type: 'string', default: '20s' },
    concurrency: { type: 'string', default: '8' },
    seed: { type: 'string' },
    server: { type: 'string' },
  },
});
const whole = { integer: true, zero: true };
const SESSIONS = numberOption('fuzz', 'sessions', args.sessions, whole);
const DURATION_MS = parseDuration(args.duration);
const CONCURRENCY = numberOption('fuzz', 'concurrency', args.concurrency, whole);
const SEED = args.seed === undefined ? Date.now() >>> 0 : numberOption('fuzz', 'seed', args.seed, whole);

/**
 * @param {string} message
 * @returns {never}
 */
function usage(message) {
  process.stderr.write(`fuzz: ${message}\n`);
  process.exit(2);
}

/** @param {string} text */
function parseDuration(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!match) usage(`bad duration: ${text}`);
  const unit = /** @type {'ms' | 's' | 'm' | undefined} */ (match[2]);
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[unit ?? 's'];
}

/**
 * @typedef {object} Rng
 * @property {() => number} float in [0, 1)
 * @property {(n: number) => number} int in [0, n)
 * @property {<T>(list: readonly T[]) => T} pick one of a non-empty list
 * @property {(n: number) => Buffer} bytes
 */

/**
 * xorshift32: a small seeded generator, so a failing run can be replayed with its seed.
 * @param {number} seed
 * @returns {Rng}
 */
function rng(seed) {
  let state = seed || 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  /**
   * @template T
   * @param {readonly T[]} list
   */
  const pick = (list) => /** @type {T} */ (list[Math.floor(next() * list.length)]);
  return {
    float: next,
    int: (n) => Math.floor(next() * n),
    pick,
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}

const PATHS = ['v/a.bin', 'v/b.bin', 'fuzz/x.bin', 'fuzz', 'nope/y', '../etc/passwd', '', 'a'.repeat(300)];

/**
 * One valid frame a client could send, for stream `id`.
 * @param {Rng} r
 * @param {number} id
 * @returns {Buffer}
 */
function plausibleFrame(r, id) {
  switch (r.int(8)) {
    case 0:
      return encodeOpen(id, {
        op: 'put',
        path: r.pick(PATHS),
        size: r.int(3) === 0 ? undefined : r.int(5000),
      });
    case 1:
      return encodeOpen(id, {
        op: r.pick(/** @type {const} */ (['get', 'list', 'stat', 'delete', 'mkdir', 'rmdir', 'space'])),
        path: r.pick(PATHS),
      });
    case 2:
      return encodeOpen(id, { op: 'rename', from: r.pick(PATHS), to: r.pick(PATHS) });
    case 3:
      return encodeData(id, r.bytes(r.int(3) === 0 ? r.int(70_000) : r.int(200)));
    case 4:
      return encodeEnd(id, r.int(5000), 'xxh128', r.bytes(16));
    case 5:
      return encodeWindow(id, 1 + r.int(2 ** 31 - 2));
    case 6:
      return encodeCancel(id);
    default:
      return encodeFrame(
        FrameType.ERROR,
        0,
        id,
        Buffer.from(JSON.stringify({ status: r.pick([100, 210, 304]), code: 'X', message: 'fuzz' })),
      );
  }
}

/**
 * Flips, overwrites, inserts or deletes a few bytes.
 * @param {Rng} r
 * @param {Buffer} bytes
 * @returns {Buffer}
 */
function mutate(r, bytes) {
  const out = Buffer.from(bytes);
  const edits = 1 + r.int(4);
  let result = out;
  for (let i = 0; i < edits && result.length > 0; i++) {
    const at = r.int(result.length);
    switch (r.int(4)) {
      case 0:
        result.writeUInt8(result.readUInt8(at) ^ (1 << r.int(8)), at);
        break;
      case 1:
        result[at] = r.pick([0, 0xff, 0x7f, 0x80, r.int(256)]);
        break;
      case 2:
        result = Buffer.concat([result.subarray(0, at), r.bytes(1 + r.int(8)), result.subarray(at)]);
        break;
      default:
        result = Buffer.concat([result.subarray(0, at), result.subarray(at + 1 + r.int(8))]);
    }
  }
  return result;
}

/** Waits (briefly) for the server's credit on a stream before the frames after it go out. */
class WaitForWindow {
  /** @param {number} streamId */
  constructor(streamId) {
    this.streamId = streamId;
  }
}

/**
 * What one fuzz session sends: a handshake (usually valid), then frames, some mutated, some
 * aimed at a random stream; and now and then a well-formed upload (OPEN, wait for credit, DATA,
 * END with a right or wrong digest) so that the fuzz reaches deep into the upload path too.
 * @param {Rng} r
 * @returns {Array<Buffer | WaitForWindow>}
 */
function sessionSteps(r) {
  /** @type {Array<Buffer | WaitForWindow>} */
  const steps = [];
  const hello = encodeHello({
    protocol: 'muxftp',
    versions: [2],
    maxFramePayload: 1024 * 1024,
    integrity: ['xxh128'],
  });
  const style = r.int(10);
  if (style === 0) return [r.bytes(r.int(4000))]; // pure noise
  steps.push(style === 1 ? mutate(r, hello) : hello);
  let id = 1;
  const frames = 1 + r.int(30);
  for (let i = 0; i < frames; i++) {
    if (r.int(4) === 0) id += 1 + r.int(2);
    if (r.int(5) === 0) {
      id += 1;
      const body = r.bytes(r.int(20_000));
      steps.push(
        encodeOpen(id, { op: 'put', path: r.pick(['fuzz/x.bin', 'fuzz/y.bin']), size: body.length }),
      );
      steps.push(new WaitForWindow(id));
      const data = encodeData(id, body);
      steps.push(r.int(4) === 0 ? mutate(r, data) : data);
      const digest = contentDigest('xxh128', body);
      if (r.int(2) === 0) digest.writeUInt8(digest.readUInt8(0) ^ 1, 0);
      steps.push(encodeEnd(id, body.length, 'xxh128', digest));
      continue;
    }
    const frame = plausibleFrame(r, r.int(6) === 0 ? r.int(id + 3) : id);
    steps.push(r.int(5) === 0 ? mutate(r, frame) : frame);
  }
  return steps;
}

/**
 * Runs one session: its bytes go out in random pieces; then it closes. Tallies the ERROR codes
 * the server sent back in `codes` (an INTERNAL_ERROR there is a server bug the fuzz found).
 * @param {number} port
 * @param {Rng} r
 * @param {Record<string, number>} codes
 * @returns {Promise<number>} the bytes sent
 */
async function runSession(port, r, codes) {
  const steps = sessionSteps(r);
  const socket = connect({ host: '127.0.0.1', port });
  /** @type {Set<number>} */
  const credited = new Set();
  /** @type {(value?: unknown) => void} */
  let wake = () => {};
  const decoder = new FrameDecoder(
    { maxFramePayloadBytes: 16 * 1024 * 1024, maxControlPayloadBytes: 256 * 1024 },
    (frame) => {
      if (frame.type === FrameType.WINDOW) credited.add(frame.streamId);
      if (frame.type !== FrameType.ERROR) return;
      let code = 'UNPARSEABLE';
      try {
        code = JSON.parse(frame.payload.toString()).code;
      } catch {}
      const key = frame.streamId === 0 ? `connection:${code}` : `stream:${code}`;
      codes[key] = (codes[key] ?? 0) + 1;
    },
  );
  const closed = new Promise((resolve) => {
    socket.on('error', resolve);
    socket.on('close', resolve);
  });
  socket.on('data', (chunk) => {
    try {
      decoder.push(chunk);
    } catch {
      codes['server sent an undecodable frame'] = (codes['server sent an undecodable frame'] ?? 0) + 1;
    }
    wake();
  });
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closed]);
  let sent = 0;
  for (const step of steps) {
    if (socket.destroyed) break;
    if (step instanceof WaitForWindow) {
      const deadline = Date.now() + 200;
      while (!credited.has(step.streamId) && !socket.destroyed && Date.now() < deadline) {
        await Promise.race([new Promise((resolve) => (wake = resolve)), delay(20), closed]);
      }
      continue;
    }
    for (let offset = 0; offset < step.length && !socket.destroyed; ) {
      const piece = step.subarray(offset, offset + 1 + r.int(4000));
      offset += piece.length;
      sent += piece.length;
      socket.write(piece);
      if (r.int(4) === 0) await delay(r.int(5));
    }
  }
  await Promise.race([delay(r.int(50)), closed]);
  socket.destroy();
  await closed;
  return sent;
}

/** @param {number} ms @returns {Promise<void>} */
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** @param {Buffer} data */
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/**
 * Keeps putting and getting files, each checked by hash; remembers what it stored where.
 * @param {number} port
 * @param {Rng} r
 * @param {number} deadline epoch ms
 * @param {() => boolean} stopped
 * @param {FuzzReport} report
 * @returns {Promise<Map<string, string>>} path to SHA-256 hex of what it last stored there
 */
async function verifier(port, r, deadline, stopped, report) {
  const client = await Client.connect({ host: '127.0.0.1', port });
  /** @type {Map<string, string>} */
  const stored = new Map();
  try {
    await client.mkdir('v', { parents: true });
    await client.mkdir('fuzz', { parents: true });
    let n = 0;
    while (!stopped() && Date.now() < deadline) {
      const path = `v/file-${n++ % 20}.bin`;
      const content = r.bytes(r.int(3) === 0 ? 1 + r.int(2 * 1024 * 1024) : r.int(4096));
      const put = await client.put(path, content);
      if (put.digest !== contentDigest(put.algorithm, content).toString('hex'))
        report.corrupted.push(`${path}: server digest differs after put`);
      stored.set(path, sha256(content));
      const back = await client.getBuffer(path);
      if (sha256(back) !== stored.get(path)) report.corrupted.push(`${path}: downloaded bytes differ`);
      report.verifiedTransfers += 2;
    }
  } catch (error) {
    const failure = /** @type {Error & { code?: string }} */ (error);
    report.verifierErrors.push(`${failure.code ?? ''} ${failure.message}`);
  } finally {
    await client.close().catch(() => {});
  }
  return stored;
}

/**
 * Starts `muxftp serve` on a temp dir; resolves once it prints its port.
 * @param {string} root
 */
async function startServe(root) {
  const child = spawn(
    process.execPath,
    [join(REPO, 'bin', 'muxftp.js'), 'serve', '--port', '0', '--root', root, '--fsync', 'never'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} */
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  /** @type {number} */
  const port = await new Promise((resolve, reject) => {
    let line = '';
    child.stdout.on('data', (chunk) => {
      line += chunk.toString();
      const match = /listening on .*:(\d+) \(/.exec(line);
      if (match) resolve(Number(match[1]));
    });
    exited.then(({ code }) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return { child, port, exited, stderr: () => stderr };
}

/** Ctrl-C or SIGTERM came: the handler stops the server, removes its directory and exits. */
let signalled = false;

async function main() {
  /** @type {FuzzReport} */
  const report = {
    seed: SEED,
    sessions: 0,
    fuzzBytes: 0,
    verifiedTransfers: 0,
    crashes: 0,
    errorCodes: {},
    corrupted: [],
    verifierErrors: [],
    seconds: 0,
  };
  let root;
  let serve;
  let port;
  if (args.server) {
    const [host, portText] = args.server.split(':');
    if (host !== '127.0.0.1' && host !== 'localhost') usage('--server must be on loopback');
    port = Number(portText);
  } else {
    root = await mkdtemp(join(tmpdir(), 'muxftp-fuzz-'));
    serve = await startServe(root);
    port = serve.port;
    // Ctrl-C, or SIGTERM (timeout, a CI job cancelled): the server and its directory go too (the
    // directory stayed behind).
    const made = { root, serve };
    for (const [signal, code] of /** @type {const} */ ([
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ])) {
      process.on(signal, async () => {
        // The clean-up under way goes on: a default kill by the next signal left the directory.
        if (signalled) return;
        // The run ends here, not with a report of the crash this kill looks like.
        signalled = true;
        made.serve.child.kill('SIGKILL');
        await made.serve.exited;
        await rm(made.root, { recursive: true, force: true });
        process.exit(code);
      });
    }
  }
  let crashed = false;
  serve?.exited.then(() => {
    crashed = true;
  });
  const started = Date.now();
  const deadline = started + DURATION_MS;
  let fuzzing = true;
  // The verifier stops with the server, or one round after the fuzzers are done.
  const stopped = () => crashed || !fuzzing;
  try {
    const verifying = verifier(port, rng(SEED ^ 0x5bd1e995), deadline, stopped, report);
    let next = 0;
    const worker = async () => {
      while (!crashed && next < SESSIONS && Date.now() < deadline) {
        next++;
        report.fuzzBytes += await runSession(port, rng((SEED + next * 0x9e3779b9) >>> 0), report.errorCodes);
        report.sessions++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    fuzzing = false;
    // The verifier runs at least one more round after the last fuzz session.
    const stored = await verifying;
    if (!crashed) {
      // The server still accepts and serves a fresh connection.
      const probe = await Client.connect({ host: '127.0.0.1', port }).catch(() => undefined);
      if (probe === undefined) crashed = true;
      else {
        const content = Buffer.from(`probe ${SEED}`);
        await probe.put('v/probe.bin', content);
        if (!(await probe.getBuffer('v/probe.bin')).equals(content)) report.corrupted.push('probe differs');
        await probe.close();
      }
    }
    if (root !== undefined) {
      for (const [path, digest] of stored) {
        const onDisk = await readFile(join(root, path)).catch(() => undefined);
        if (onDisk === undefined || sha256(onDisk) !== digest)
          report.corrupted.push(`${path}: on disk differs`);
      }
    }
  } finally {
    report.crashes = crashed ? 1 : 0;
    report.seconds = Number(((Date.now() - started) / 1000).toFixed(1));
    if (serve) {
      if (crashed) report.serverStderrTail = serve.stderr().slice(-2000);
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  }
  if (signalled) return; // the signal's handler exits
  process.stdout.write(`${JSON.stringify(report)}\n`);
  const internal = Object.keys(report.errorCodes).filter((key) => /INTERNAL_ERROR|undecodable/.test(key));
  const ok =
    report.crashes === 0 &&
    report.corrupted.length === 0 &&
    report.verifierErrors.length === 0 &&
    internal.length === 0;
  process.exit(ok ? 0 : 1);
}

await main();
