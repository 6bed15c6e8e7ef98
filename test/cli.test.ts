/**
 * The real CLI, end to end: `muxftp serve` runs as a child process on a temp directory, and every
 * command is a fresh `node bin/muxftp.js …` process against it. Needs dist/ (npm run build).
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import {
  chmod,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType, PROTOCOL_VERSION } from '../shared/protocol/constants.js';
import { encodeFrame, encodeWelcome } from '../shared/protocol/encoder.js';
import { downloadPartialName } from '../shared/temporaryNames.js';
import { CLI_BIN, cliShellLine } from './helpers/cliProcess.js';
import { closedPort } from './helpers/closedPort.js';
import { jsonOf, startFrameProxy, withJson } from './helpers/frameProxy.js';
import { TempDirs } from './helpers/tempDirs.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILT_CLI = join(REPO, 'dist', 'cli', 'main.js');
const MiB = 1024 * 1024;
const COMMAND_TIMEOUT_MS = 15_000;

interface CliResult {
  code: number | null;
  /** The signal that ended the process, if one did. */
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

interface ServeProcess {
  child: ChildProcess;
  port: number;
  firstLine: string;
  stderr(): string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
const tempDirs = new TempDirs('muxftp-cli-');

/** The environment for children, without a MUXFTP_SERVER the developer may have set. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('MUXFTP_SERVER' in extra)) delete env.MUXFTP_SERVER;
  return env;
}

/** `prefix`: a command the CLI runs under (`unshare -rn`), which execs it in place. */
function spawnCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; prefix?: string[] } = {},
): ChildProcess {
  const [command, ...prefixArgs] = [...(options.prefix ?? []), process.execPath];
  const child = spawn(command!, [...prefixArgs, CLI_BIN, ...args], {
    cwd: options.cwd ?? REPO,
    env: childEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function collect(child: ChildProcess, stdin?: Buffer | string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`muxftp timed out; stderr: ${Buffer.concat(err).toString()}`));
    }, COMMAND_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(stdin);
  });
}

function runCli(
  args: string[],
  options: { cwd?: string; stdin?: Buffer | string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return collect(spawnCli(args, options), options.stdin);
}

/**
 * `muxftp ARGS` on a pseudo-terminal (script(1), util-linux), as a user at a terminal runs it;
 * `rows` and `columns`: the terminal's size (else what script gives it).
 */
function runOnTerminal(args: string[], cwd: string, rows?: number, columns = 120): Promise<CliResult> {
  const command = cliShellLine(args);
  const sized = rows === undefined ? command : `stty rows ${rows} cols ${columns}; ${command}`;
  const child = spawn('script', ['-qec', sized, '/dev/null'], { cwd, stdio: 'pipe' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return collect(child);
}

/**
 * `muxftp ARGS` on a pseudo-terminal (script(1)), with Ctrl-C typed once what it shows first
 * matches `when`; `setup` runs in the shell before it (a terminal size). Its exit code and all it showed.
 */
async function ctrlCOnTerminal(
  args: string[],
  when: RegExp,
  cwd?: string,
  setup = '',
): Promise<{ code: number | null; shown: string }> {
  // exec: a shell that forked instead (dash, script's shell where SHELL is unset) died of the
  // Ctrl-C itself, and script(1) reported its 130 whatever muxftp's own exit was.
  const command = `${setup}exec ${cliShellLine(args)}`;
  const child = spawn('script', ['-qec', command, '/dev/null'], { cwd, stdio: 'pipe' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let shown = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const before = shown;
    shown += chunk.toString();
    if (!when.test(before) && when.test(shown)) child.stdin!.write('\u0003');
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, shown };
}

/** `count` files of `bytes` each in a fresh local directory: its path, and their names. */
async function filesToSend(
  prefix: string,
  count: number,
  bytes: number,
): Promise<{ local: string; names: string[] }> {
  const local = await tempDirs.make();
  const names = Array.from({ length: count }, (_, i) => `${prefix}${i}.bin`);
  for (const name of names) await writeFile(join(local, name), Buffer.alloc(bytes, 1));
  return { local, names };
}

/**
 * `use` of a memory server throttled to 256 KiB/s, so that transfers stay in flight for a second
 * or two (bars to see, a Ctrl-C to send); stopped after.
 */
async function withSlowServer<T>(use: (server: ServeProcess) => Promise<T>): Promise<T> {
  const slow = await startServe(['--memory', '--max-rate', '256KiB']);
  try {
    return await use(slow);
  } finally {
    slow.child.kill('SIGTERM');
    await slow.exited;
  }
}

/** Starts `muxftp serve` and waits for its one stdout line, which carries the real port. */
async function startServe(args: string[], cwd?: string, prefix?: string[]): Promise<ServeProcess> {
  const child = spawnCli(['serve', '--port', '0', ...args], { cwd, ...(prefix ? { prefix } : {}) });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start; stderr: ${stderr}`)), 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline === -1) return;
      clearTimeout(timer);
      resolve(buffered.slice(0, newline));
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}; stderr: ${stderr}`)));
  });
  const match = /^muxftp listening on (?:\[[^\]]+\]|[^:]+):(\d+) \(storage: .+\)$/.exec(firstLine);
  if (match === null) throw new Error(`unexpected first line from serve: ${firstLine}`);
  return { child, port: Number(match[1]), firstLine, stderr: () => stderr, exited };
}

/** Every file under `dir`, relative, with its contents. */
async function readTree(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(full.slice(dir.length + 1), await readFile(full, 'utf8'));
  }
  return files;
}

function expectOneErrorLine(result: CliResult, ...parts: string[]): void {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  for (const part of parts) expect(lines[0]).toContain(part);
  expect(result.stderr).not.toMatch(/\bat .+:\d+:\d+/); // no stack trace
}

let server: ServeProcess;
/** The served root sits in a private directory, so "nothing appeared beside the root" is ours to check. */
let rootParent: string;
let root: string;
let remote: string[];

beforeAll(async () => {
  if (!existsSync(BUILT_CLI)) {
    throw new Error(`${BUILT_CLI} is missing: run \`npm run build\` first (npm test does)`);
  }
  rootParent = await mkdtemp(join(tmpdir(), 'muxftp-cli-'));
  root = join(rootParent, 'root');
  await mkdir(root);
  server = await startServe(['--root', root]);
  remote = ['--server', `127.0.0.1:${server.port}`];
});

afterEach(async () => {
  await tempDirs.removeAll();
});

afterAll(async () => {
  try {
    if (server !== undefined) {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
  } finally {
    for (const child of children) child.kill('SIGKILL');
    if (rootParent !== undefined) await rm(rootParent, { recursive: true, force: true });
  }
});

describe('muxftp CLI', () => {
  it('announces a disk server with its real port and absolute root', () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.firstLine).toBe(`muxftp listening on 127.0.0.1:${server.port} (storage: disk:${root})`);
  });

  it('round-trips a few MiB byte for byte', async () => {
    const local = await tempDirs.make();
    const bytes = randomBytes(3 * MiB + 12_345);
    await writeFile(join(local, 'random.bin'), bytes);

    const up = await runCli(['put', 'random.bin', 'round/trip.bin', '-p', ...remote], { cwd: local });
    expect(up).toMatchObject({ code: 0, stderr: '' });
    expect((await readFile(join(root, 'round', 'trip.bin'))).equals(bytes)).toBe(true);

    const down = await runCli(['get', 'round/trip.bin', 'back.bin', ...remote], { cwd: local });
    expect(down).toMatchObject({ code: 0, stderr: '' });
    expect((await readFile(join(local, 'back.bin'))).equals(bytes)).toBe(true);
  });

  // Node decodes argv as UTF-8, a Latin-1 byte becoming U+FFFD; only Linux shows the bytes typed.
  it.runIf(process.platform === 'linux')(
    'refuses an argument whose bytes are not UTF-8 rather than store or read another name',
    async () => {
      const local = await tempDirs.make();
      await writeFile(join(local, 'src.txt'), 'hi');
      await writeFile(Buffer.concat([Buffer.from(`${local}/caf`), Buffer.from([0xe9])]), 'x');
      const typed = (script: string) =>
        collect(
          spawn('sh', ['-c', `exec "$0" "$1" ${script} "$2" "$3"`, process.execPath, CLI_BIN, ...remote], {
            cwd: local,
            env: childEnv(),
            stdio: 'pipe',
          }),
        );
      const put = await typed(`put src.txt "$(printf 'rem\\351')"`);
      expect(put.code).toBe(2);
      expect(put.stderr).toBe(
        "muxftp: argument 'rem\ufffd' is not UTF-8 (shown with U+FFFD for each byte that is not): muxftp names files in UTF-8 only\n",
      );
      expect((await readdir(root)).filter((name) => name.startsWith('rem'))).toEqual([]);
      const local1 = await typed(`put "$(printf 'caf\\351')" cafe`);
      expect(local1).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("argument 'caf\ufffd' is not UTF-8"),
      });
      // U+FFFD typed as such is a name like any other.
      const literal = await runCli(['put', 'src.txt', 'rem\ufffd', ...remote], { cwd: local });
      expect(literal).toMatchObject({ code: 0, stderr: '' });
      expect(await readdir(root)).toContain('rem\ufffd');
    },
  );

  it.runIf(process.platform === 'linux')(
    'says an argument that is not UTF-8 with its control characters as ?, not driving the terminal',
    async () => {
      const local = await tempDirs.make();
      // A name such as `put *` meets among downloaded files: Latin-1, and an OSC that sets the title.
      const shown = await collect(
        spawn(
          'sh',
          [
            '-c',
            `exec "$0" "$1" put "$(printf 'caf\\351\\033]0;owned\\007')" x "$2" "$3"`,
            process.execPath,
            CLI_BIN,
            ...remote,
          ],
          {
            cwd: local,
            env: childEnv(),
            stdio: 'pipe',
          },
        ),
      );
      expect(shown.code).toBe(2);
      // Before: the ESC and BEL reached stderr as they were.
      expect(shown.stderr).toBe(
        "muxftp: argument 'caf\ufffd?]0;owned?' is not UTF-8 (shown with U+FFFD for each byte that is not): muxftp names files in UTF-8 only\n",
      );
    },
  );

  it('put and get --checksum sha256 verify with SHA-256 blocks (Dropbox content_hash) and say so in --json', async () => {
    const local = await tempDirs.make();
    const bytes = randomBytes(4 * MiB + 1); // two blocks, the last of one byte
    await writeFile(join(local, 'sha.bin'), bytes);
    const expected = contentDigest('sha256', bytes).toString('hex');

    const up = await runCli(
      ['put', 'sha.bin', 'sums/sha.bin', '-p', '--checksum', 'sha256', '--json', ...remote],
      {
        cwd: local,
      },
    );
    expect(up.code).toBe(0);
    expect(JSON.parse(up.stdout.toString())).toEqual([
      {
        local: 'sha.bin',
        remote: 'sums/sha.bin',
        ok: true,
        bytes: bytes.length,
        algorithm: 'sha256',
        digest: expected,
      },
    ]);
    const down = await runCli(
      ['get', 'sums/sha.bin', 'back.bin', '--checksum', 'sha256', '--json', ...remote],
      {
        cwd: local,
      },
    );
    expect(down.code).toBe(0);
    expect(JSON.parse(down.stdout.toString())).toMatchObject([
      { ok: true, algorithm: 'sha256', digest: expected },
    ]);
    expect((await readFile(join(local, 'back.bin'))).equals(bytes)).toBe(true);

    const bad = await runCli(['get', 'sums/sha.bin', 'x.bin', '--checksum', 'md5', ...remote], {
      cwd: local,
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected one of xxh128, sha256');
  });

  it('stat --hash prints the content digest, by default and for a named algorithm', async () => {
    const local = await tempDirs.make();
    const bytes = randomBytes(100_000);
    await writeFile(join(local, 'h.bin'), bytes);
    expect((await runCli(['put', 'h.bin', 'hashed/h.bin', '-p', ...remote], { cwd: local })).code).toBe(0);

    const plain = await runCli(['stat', 'hashed/h.bin', '--hash', ...remote]);
    expect(plain).toMatchObject({ code: 0, stderr: '' });
    expect(plain.stdout.toString()).toContain(`xxh128 ${contentDigest('xxh128', bytes).toString('hex')}\n`);

    const sha = await runCli(['stat', 'hashed/h.bin', '--hash', 'sha256', '--json', ...remote]);
    expect(sha.code).toBe(0);
    expect(JSON.parse(sha.stdout.toString())).toMatchObject({
      name: 'h.bin',
      type: 'file',
      size: 100_000,
      algorithm: 'sha256',
      digest: contentDigest('sha256', bytes).toString('hex'),
    });

    // --hash before the path: the path is not taken for an algorithm.
    const before = await runCli(['stat', '--hash', 'hashed/h.bin', ...remote]);
    expect(before).toMatchObject({ code: 0, stderr: '' });
    expect(before.stdout.toString()).toContain(`xxh128 ${contentDigest('xxh128', bytes).toString('hex')}\n`);
    const named = await runCli(['stat', '--hash', 'sha256', 'hashed/h.bin', ...remote]);
    expect(named.stdout.toString()).toContain(`sha256 ${contentDigest('sha256', bytes).toString('hex')}\n`);
    // Several paths after --hash: the first is a path too, not a wrong algorithm.
    const two = await runCli(['stat', '--hash', 'hashed/h.bin', 'hashed/h.bin', ...remote]);
    expect(two).toMatchObject({ code: 0, stderr: '' });
    expect(two.stdout.toString().match(/^xxh128 [0-9a-f]{32}$/gm)).toHaveLength(2);
    // A name that starts as a hash family's does (sha…) is a path too: only md5, sha265… are not.
    const bare = await runCli(['stat', '--hash', 'hashed', 'hashed/h.bin', ...remote]);
    expect(bare.code).toBe(1); // a directory has no digest: the path was taken as one
    expectOneErrorLine(bare, 'stat hashed', 'IS_A_DIRECTORY');
    expect(bare.stdout.toString().match(/^xxh128 [0-9a-f]{32}$/gm)).toHaveLength(1);
    const shared = await runCli(['stat', '--hash', 'shared', 'hashed/h.bin', ...remote]);
    expect(shared.code).toBe(1); // not there, but looked for
    expectOneErrorLine(shared, 'stat shared', 'NOT_FOUND');
    const wrongBefore = await runCli(['stat', '--hash', 'sha265', 'hashed/h.bin', ...remote]);
    expect(wrongBefore.code).toBe(2);
    expect(wrongBefore.stderr).toContain('(if sha265 is a path, put --hash after the paths)');
    const wrong = await runCli(['stat', 'hashed/h.bin', '--hash', 'md5', ...remote]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('expected one of xxh128, sha256');
    const none = await runCli(['stat', '--hash', ...remote]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("missing required argument 'path'");

    const dir = await runCli(['stat', 'hashed', '--hash', ...remote]);
    expect(dir.code).toBe(1);
    expectOneErrorLine(dir, 'stat hashed', 'IS_A_DIRECTORY');
  }, 60_000); // ten CLI runs: past 30 s once on a machine loaded by other tests

  it('puts several files with --to and -j, and gets them back with --to', async () => {
    const local = await tempDirs.make();
    const names = ['a.txt', 'b.txt', 'c.txt', 'd.txt'];
    for (const name of names) await writeFile(join(local, name), `contents of ${name}\n`);

    const up = await runCli(['put', ...names, '--to', 'many/', '-p', '-j', '2', '--json', ...remote], {
      cwd: local,
    });
    expect(up.code).toBe(0);
    const outcomes = JSON.parse(up.stdout.toString()) as Array<Record<string, unknown>>;
    expect(outcomes.map((o) => [o.local, o.remote, o.ok, o.bytes])).toEqual(
      names.map((name) => [name, `many/${name}`, true, `contents of ${name}\n`.length]),
    );
    for (const [i, outcome] of outcomes.entries()) {
      expect(outcome.algorithm).toBe('xxh128');
      expect(outcome.digest).toBe(
        contentDigest('xxh128', Buffer.from(`contents of ${names[i]}\n`)).toString('hex'),
      );
    }

    const down = await runCli(
      ['get', ...names.map((n) => `many/${n}`), '--to', 'copies', '-p', '-j', '3', ...remote],
      {
        cwd: local,
      },
    );
    expect(down).toMatchObject({ code: 0, stderr: '' });
    for (const name of names) {
      expect(await readFile(join(local, 'copies', name), 'utf8')).toBe(`contents of ${name}\n`);
    }
  });

  it('copies a directory tree both ways with -r', async () => {
    const local = await tempDirs.make();
    const tree = join(local, 'tree');
    await mkdir(join(tree, 'sub', 'deeper'), { recursive: true });
    await mkdir(join(tree, 'empty'));
    await writeFile(join(tree, 'top.txt'), 'top\n');
    await writeFile(join(tree, 'sub', 'mid.txt'), 'mid\n');
    await writeFile(join(tree, 'sub', 'deeper', 'low.txt'), 'low\n');

    const up = await runCli(['put', '-r', 'tree', '--to', 'mirror', '-p', ...remote], { cwd: local });
    expect(up).toMatchObject({ code: 0, stderr: '' });
    expect(await readTree(join(root, 'mirror', 'tree'))).toEqual(await readTree(tree));
    expect((await stat(join(root, 'mirror', 'tree', 'empty'))).isDirectory()).toBe(true);

    const down = await runCli(['get', '-r', 'mirror/tree', 'fetched', ...remote], { cwd: local });
    expect(down).toMatchObject({ code: 0, stderr: '' });
    expect(await readTree(join(local, 'fetched'))).toEqual(await readTree(tree));
    expect((await stat(join(local, 'fetched', 'empty'))).isDirectory()).toBe(true);
  });

  it('lists as a table and as JSON, and stats as JSON', async () => {
    await mkdir(join(root, 'listing', 'child'), { recursive: true });
    await writeFile(join(root, 'listing', 'file.txt'), 'twelve bytes');

    const table = await runCli(['ls', 'listing', ...remote]);
    expect(table.code).toBe(0);
    const lines = table.stdout.toString().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^dir\s+-\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+child\/$/);
    expect(lines[1]).toMatch(/^file\s+12\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+file\.txt$/);

    // The address may also come from MUXFTP_SERVER.
    const json = await runCli(['ls', 'listing', '--json'], {
      env: { MUXFTP_SERVER: `127.0.0.1:${server.port}` },
    });
    expect(json.code).toBe(0);
    const entries = JSON.parse(json.stdout.toString()) as Array<Record<string, unknown>>;
    expect(entries.map((e) => [e.name, e.type])).toEqual([
      ['child', 'dir'],
      ['file.txt', 'file'],
    ]);
    expect(typeof entries[1]!.mtime).toBe('number');

    const entry = await runCli(['stat', 'listing/file.txt', '--json', ...remote]);
    expect(entry.code).toBe(0);
    expect(JSON.parse(entry.stdout.toString())).toMatchObject({ name: 'file.txt', type: 'file', size: 12 });
  });

  it('makes, moves and removes remote files and directories', async () => {
    const mkdirP = await runCli(['mkdir', '-p', 'ops/a/b', '--json', ...remote]);
    expect(mkdirP.code).toBe(0);
    expect(JSON.parse(mkdirP.stdout.toString())).toEqual([{ path: 'ops/a/b', ok: true }]);
    expect((await stat(join(root, 'ops', 'a', 'b'))).isDirectory()).toBe(true);

    await writeFile(join(root, 'ops', 'old.txt'), 'moving');
    const mv = await runCli(['mv', 'ops/old.txt', 'ops/a/new.txt', '--json', ...remote]);
    expect(mv.code).toBe(0);
    expect(JSON.parse(mv.stdout.toString())).toEqual({ ok: true });
    expect(existsSync(join(root, 'ops', 'old.txt'))).toBe(false);
    expect(await readFile(join(root, 'ops', 'a', 'new.txt'), 'utf8')).toBe('moving');

    const rmdirBusy = await runCli(['rmdir', 'ops/a', ...remote]);
    expect(rmdirBusy.code).toBe(1);
    expectOneErrorLine(rmdirBusy, 'rmdir ops/a', 'DIRECTORY_NOT_EMPTY');

    const rmFile = await runCli(['rm', 'ops/a/new.txt', ...remote]);
    expect(rmFile).toMatchObject({ code: 0, stderr: '' });
    expect(existsSync(join(root, 'ops', 'a', 'new.txt'))).toBe(false);

    const rmdir = await runCli(['rmdir', 'ops/a/b', 'ops/a', ...remote]);
    expect(rmdir).toMatchObject({ code: 0, stderr: '' });
    expect(await readdir(join(root, 'ops'))).toEqual([]);
  });

  it('mv moves into a directory that exists, as mv(1) and put do, and replaces a file', async () => {
    await mkdir(join(root, 'mvs', 'box', 'inner'), { recursive: true });
    await writeFile(join(root, 'mvs', 'a.txt'), 'a');
    await writeFile(join(root, 'mvs', 'b.txt'), 'b');
    await writeFile(join(root, 'mvs', 'c.txt'), 'c');
    const mv = (from: string, to: string) => runCli(['mv', from, to, ...remote]);

    expect(await mv('mvs/a.txt', 'mvs/box')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(root, 'mvs', 'box', 'a.txt'), 'utf8')).toBe('a');
    expect(await mv('mvs/b.txt', '/mvs/box/inner/')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(root, 'mvs', 'box', 'inner', 'b.txt'), 'utf8')).toBe('b');
    expect(await mv('mvs/box/inner', 'mvs')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(root, 'mvs', 'inner', 'b.txt'), 'utf8')).toBe('b');
    // A file at <to> is replaced; a trailing / insists on a directory.
    expect(await mv('mvs/c.txt', 'mvs/box/a.txt')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(root, 'mvs', 'box', 'a.txt'), 'utf8')).toBe('c');
    const notDir = await mv('mvs/inner/b.txt', 'mvs/box/a.txt/');
    expect(notDir.code).toBe(1);
    expectOneErrorLine(notDir, 'mv mvs/inner/b.txt', 'NOT_A_DIRECTORY');
    const noDir = await mv('mvs/inner/b.txt', 'mvs/nowhere/');
    expect(noDir.code).toBe(1);
    expectOneErrorLine(noDir, 'mv mvs/inner/b.txt', 'NOT_FOUND');
    expect(await readFile(join(root, 'mvs', 'inner', 'b.txt'), 'utf8')).toBe('b');
    await rm(join(root, 'mvs'), { recursive: true });
  });

  it('mv moves several paths, or what a pattern matches, into a directory, and nowhere else', async () => {
    await mkdir(join(root, 'mvm', 'box'), { recursive: true });
    await mkdir(join(root, 'mvm', 'logs'));
    for (const name of ['a.txt', 'b.txt', 'c.txt']) await writeFile(join(root, 'mvm', name), name);
    for (const name of ['1.log', '2.log', 'keep.txt']) await writeFile(join(root, 'mvm', 'logs', name), name);

    const two = await runCli(['mv', 'mvm/a.txt', 'mvm/b.txt', 'mvm/box', ...remote]);
    expect(two).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(join(root, 'mvm', 'box'))).sort()).toEqual(['a.txt', 'b.txt']);

    const pattern = await runCli(['mv', 'mvm/logs/*.log', 'mvm/box/', '--json', ...remote]);
    expect(pattern.code).toBe(0);
    expect(JSON.parse(pattern.stdout.toString())).toEqual([
      { path: 'mvm/logs/1.log', ok: true },
      { path: 'mvm/logs/2.log', ok: true },
    ]);
    expect(await readdir(join(root, 'mvm', 'logs'))).toEqual(['keep.txt']);
    expect(await readFile(join(root, 'mvm', 'box', '2.log'), 'utf8')).toBe('2.log');

    // Into a file, or a directory that is not there: nothing moves (one line per path).
    for (const to of ['mvm/box/a.txt', 'mvm/nowhere']) {
      const refused = await runCli(['mv', 'mvm/c.txt', 'mvm/logs/keep.txt', to, ...remote]);
      expect(refused.code).toBe(1);
      const lines = refused.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain('mv mvm/c.txt');
      expect(lines[1]).toContain('mv mvm/logs/keep.txt');
      // Named as given: <to> itself is what is wrong, not a path inside it.
      const code = to === 'mvm/nowhere' ? 'NOT_FOUND' : 'NOT_A_DIRECTORY';
      for (const line of lines) expect(line).toContain(`: ${to} (${code})`);
    }
    expect(await readFile(join(root, 'mvm', 'box', 'a.txt'), 'utf8')).toBe('a.txt');
    expect(await readFile(join(root, 'mvm', 'c.txt'), 'utf8')).toBe('c.txt');

    // One source missing: the others still move, and the command fails naming it.
    const partly = await runCli(['mv', 'mvm/gone.txt', 'mvm/c.txt', 'mvm/box', ...remote]);
    expect(partly.code).toBe(1);
    expectOneErrorLine(partly, 'mv mvm/gone.txt', 'NOT_FOUND');
    expect(await readFile(join(root, 'mvm', 'box', 'c.txt'), 'utf8')).toBe('c.txt');

    // A pattern that matches one path renames it, as one path does.
    const one = await runCli(['mv', 'mvm/box/c.*', 'mvm/renamed.txt', '--json', ...remote]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout.toString())).toEqual({ ok: true });
    expect(await readFile(join(root, 'mvm', 'renamed.txt'), 'utf8')).toBe('c.txt');

    // Two sources of one name: the first moves, the second is refused rather than replace it.
    for (const dir of ['x', 'y']) {
      await mkdir(join(root, 'mvm', dir));
      await writeFile(join(root, 'mvm', dir, 'dup.txt'), dir);
    }
    const dup = await runCli(['mv', 'mvm/x/dup.txt', 'mvm/y/dup.txt', 'mvm/box', ...remote]);
    expect(dup.code).toBe(1);
    expectOneErrorLine(dup, 'mv mvm/y/dup.txt', 'ALREADY_EXISTS');
    expect(dup.stderr.toString()).toContain('just moved there from mvm/x/dup.txt');
    expect(await readFile(join(root, 'mvm', 'box', 'dup.txt'), 'utf8')).toBe('x');
    expect(await readFile(join(root, 'mvm', 'y', 'dup.txt'), 'utf8')).toBe('y');

    const alone = await runCli(['mv', 'mvm/box', ...remote]);
    expect(alone.code).toBe(2);
    expect(alone.stderr.toString()).toContain("missing required argument 'to'");
    await rm(join(root, 'mvm'), { recursive: true });
  });

  it('mv --no-clobber keeps a file already there: that path stays, the others move', async () => {
    await mkdir(join(root, 'mvn', 'box'), { recursive: true });
    for (const name of ['a.txt', 'b.txt', 'box/a.txt']) await writeFile(join(root, 'mvn', name), name);
    const keep = await runCli(['mv', '--no-clobber', 'mvn/a.txt', 'mvn/box/a.txt', ...remote]);
    expect(keep.code).toBe(1);
    expectOneErrorLine(keep, 'mv mvn/a.txt', 'ALREADY_EXISTS');
    expect(await readFile(join(root, 'mvn', 'box', 'a.txt'), 'utf8')).toBe('box/a.txt');
    expect(await readFile(join(root, 'mvn', 'a.txt'), 'utf8')).toBe('a.txt');
    // Several into a directory: the one with a file of its name there stays, the other moves.
    const several = await runCli([
      'mv',
      '--no-clobber',
      'mvn/a.txt',
      'mvn/b.txt',
      'mvn/box',
      '--json',
      ...remote,
    ]);
    expect(several.code).toBe(1);
    expect(JSON.parse(several.stdout.toString())).toEqual([
      { path: 'mvn/a.txt', ok: false, error: expect.objectContaining({ code: 'ALREADY_EXISTS' }) },
      { path: 'mvn/b.txt', ok: true },
    ]);
    expect((await readdir(join(root, 'mvn'))).sort()).toEqual(['a.txt', 'box']);
    expect(await readFile(join(root, 'mvn', 'box', 'b.txt'), 'utf8')).toBe('b.txt');
    // Nothing there: it moves.
    expect(await runCli(['mv', '--no-clobber', 'mvn/a.txt', 'mvn/c.txt', ...remote])).toMatchObject({
      code: 0,
      stderr: '',
    });
    // mv(1)'s -n is --no-clobber, put's -n a dry run: neither is guessed, nothing moves.
    const n = await runCli(['mv', '-n', 'mvn/c.txt', 'mvn/box/a.txt', ...remote]);
    expect(n.code).toBe(2);
    expect(n.stderr.toString()).toContain('mv has no -n: --no-clobber keeps a file already at <to>');
    expect(await readFile(join(root, 'mvn', 'box', 'a.txt'), 'utf8')).toBe('box/a.txt');
    // -f, as mv(1) takes it: replacing is what mv does; with --no-clobber, which is meant is asked.
    const both = await runCli(['mv', '--no-clobber', '-f', 'mvn/c.txt', 'mvn/box/a.txt', ...remote]);
    expect(both.code).toBe(2);
    expect(both.stderr.toString()).toContain('-f replaces a file at <to>, --no-clobber keeps it');
    expect(await readFile(join(root, 'mvn', 'box', 'a.txt'), 'utf8')).toBe('box/a.txt');
    await writeFile(join(root, 'mvn', 'f.txt'), 'f');
    expect((await runCli(['mv', '-f', 'mvn/f.txt', 'mvn/box/a.txt', ...remote])).code).toBe(0);
    expect(await readFile(join(root, 'mvn', 'box', 'a.txt'), 'utf8')).toBe('f');
    await writeFile(join(root, 'mvn', 'box', 'a.txt'), 'box/a.txt');
    // A server from before it would replace the file: the client sends no rename at all.
    let renames = 0;
    const older = await startFrameProxy(server.port, {
      fromServer: (frame) => {
        if (frame.type !== FrameType.WELCOME) return frame;
        const { renameNoReplace: _, ...welcome } = jsonOf(frame);
        return withJson(frame, welcome);
      },
      fromClient: (frame) => {
        if (frame.type === FrameType.OPEN && jsonOf(frame).op === 'rename') renames++;
        return frame;
      },
    });
    try {
      const at = ['--server', `127.0.0.1:${older.port}`];
      const refused = await runCli(['mv', '--no-clobber', 'mvn/c.txt', 'mvn/box/a.txt', ...at]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr.toString()).toContain('the server cannot keep a file a move would replace');
      // Several paths: said once, not once for each.
      const several = await runCli(['mv', '--no-clobber', 'mvn/c.txt', 'mvn/box/b.txt', 'mvn', ...at]);
      expect(several.code).not.toBe(0);
      expect(several.stderr.toString().match(/cannot keep a file a move would replace/g)).toHaveLength(1);
      expect(renames).toBe(0);
      expect(await readFile(join(root, 'mvn', 'box', 'a.txt'), 'utf8')).toBe('box/a.txt');
      // Without it, the same server moves as before.
      expect((await runCli(['mv', 'mvn/c.txt', 'mvn/d.txt', ...at])).code).toBe(0);
      expect(renames).toBe(1);
    } finally {
      await older.close();
    }
    await rm(join(root, 'mvn'), { recursive: true });
  });

  it('puts from stdin and gets to stdout with -', async () => {
    const bytes = randomBytes(200_000);
    const up = await runCli(['put', '-', 'piped.bin', ...remote], { stdin: bytes });
    expect(up).toMatchObject({ code: 0, stderr: '' });
    expect((await readFile(join(root, 'piped.bin'))).equals(bytes)).toBe(true);

    const down = await runCli(['get', 'piped.bin', '-', ...remote]);
    expect(down.code).toBe(0);
    expect(down.stderr).toBe('');
    expect(down.stdout.equals(bytes)).toBe(true);
  });

  it('fails a get of a missing file with one line naming it, and creates nothing', async () => {
    const local = await tempDirs.make();
    const result = await runCli(['get', 'nope.txt', ...remote], { cwd: local });
    expect(result.code).toBe(1);
    expectOneErrorLine(result, 'muxftp: get nope.txt:', 'NOT_FOUND');
    expect(await readdir(local)).toEqual([]);
  });

  it('leaves no file at the local target when a download is interrupted: at most the kept partial', async () => {
    const local = await tempDirs.make();
    // Sparse on the server's disk: instant to make, and long enough to download that we catch it.
    await writeFile(join(root, 'huge.bin'), '');
    await truncate(join(root, 'huge.bin'), 768 * MiB);
    try {
      const child = spawnCli(['get', 'huge.bin', 'huge.bin', ...remote], { cwd: local });
      const result = collect(child);
      // The download writes to a hidden temporary file beside the target: wait until it exists.
      const deadline = Date.now() + 10_000;
      while ((await readdir(local)).length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(await readdir(local)).toHaveLength(1); // interrupted mid-download, not before it began
      child.kill('SIGINT');
      const { code, stderr } = await result;
      expect(code).toBe(130);
      expect(stderr).toContain('CANCELLED');
      // A cancelled get keeps its whole blocks for get -c when 4 MiB had arrived before the signal
      // (b95fb47: how fast that is depends on the machine's load); never its temporary file, nor
      // anything under the real name.
      const left = await readdir(local);
      expect(left.filter((name) => name !== downloadPartialName('huge.bin'))).toEqual([]);
      for (const name of left) expect((await stat(join(local, name))).size % (4 * MiB)).toBe(0);
    } finally {
      await rm(join(root, 'huge.bin'), { force: true });
    }
  });

  it('Ctrl-C says once how many transfers had not started, rather than a line each', async () => {
    const local = await tempDirs.make();
    const names = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
    await mkdir(join(root, 'queued'));
    for (const name of names) {
      await writeFile(join(root, 'queued', name), '');
      await truncate(join(root, 'queued', name), 768 * MiB);
    }
    try {
      const args = ['get', ...names.map((name) => `queued/${name}`), '--to', '.', '-j', '2', ...remote];
      const child = spawnCli(args, { cwd: local });
      const result = collect(child);
      const deadline = Date.now() + 10_000;
      while ((await readdir(local)).length < 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      child.kill('SIGINT');
      const { code, stderr } = await result;
      expect(code).toBe(130);
      const lines = stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(4);
      expect(lines.slice(0, 2).every((line) => /^muxftp: get queued\/h[12]: cancelled/.test(line))).toBe(
        true,
      );
      expect(lines[2]).toBe('muxftp: get: interrupted before 4 files started (CANCELLED)');
      // Not on a terminal too, a run where files failed ends with its count (for a log).
      expect(lines[3]).toMatch(/^muxftp: 0 files \(0 B\), 2 failed, 4 not started in /);
      expect(await readdir(local)).toEqual([]);
    } finally {
      await rm(join(root, 'queued'), { recursive: true, force: true });
    }
  });

  it('a second Ctrl-C exits at once and leaves no temporary file: at most the kept partial', async () => {
    await writeFile(join(root, 'huge2.bin'), '');
    await truncate(join(root, 'huge2.bin'), 768 * MiB);
    const leftovers: string[] = [];
    try {
      // The second signal must land after the first was handled and before the download's own
      // (asynchronous) cleanup finished: a race, so several tries with slightly different gaps.
      for (let trial = 0; trial < 8; trial++) {
        const local = await tempDirs.make();
        const child = spawnCli(['get', 'huge2.bin', 'huge2.bin', ...remote], { cwd: local });
        const result = collect(child);
        const deadline = Date.now() + 10_000;
        while ((await readdir(local)).length === 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        expect(await readdir(local)).toHaveLength(1); // the hidden temporary file, filling
        child.kill('SIGINT');
        const spinUntil = performance.now() + (trial % 4) * 0.5;
        while (performance.now() < spinUntil);
        child.kill('SIGINT');
        const { code, signal } = await result;
        // Exit 130, or — when the second signal lands while the process is already tearing down
        // (seen only under heavy load) — death by SIGINT, which a shell also reports as 130.
        expect(code === 130 || (code === null && signal === 'SIGINT')).toBe(true);
        // A cancelled get keeps its whole blocks for get -c (none when the signal came before the
        // first 4 MiB arrived; a write in flight at the exit may land past the cut, which get -c
        // checks): never its temporary file, nor anything under the real name.
        leftovers.push(...(await readdir(local)));
      }
      expect(leftovers.filter((name) => name !== downloadPartialName('huge2.bin'))).toEqual([]);
    } finally {
      await rm(join(root, 'huge2.bin'), { force: true });
    }
  });

  // sysfs refuses new files to everyone, root included: a real EACCES wherever the tests run as.
  it.skipIf(process.platform !== 'linux' || !existsSync('/sys/kernel'))(
    'names a local failure in words and by the target, not by errno and temporary file',
    async () => {
      const local = await tempDirs.make();
      await writeFile(join(local, 'x'), 'x');
      expect((await runCli(['put', 'x', 'local-failure.txt', ...remote], { cwd: local })).code).toBe(0);
      const target = '/sys/muxftp-cli-test.bin';
      const down = await runCli(['get', 'local-failure.txt', target, ...remote], { cwd: local });
      expect(down.code).toBe(1);
      expect(down.stderr).toBe(
        `muxftp: get local-failure.txt: permission denied: ${target} (LOCAL_IO_ERROR)\n`,
      );
    },
  );

  // procfs answers ENOENT to a new name: Node's recursive mkdir then never settled.
  it.skipIf(process.platform !== 'linux' || !existsSync('/proc/self'))(
    'get -p into a directory that cannot be made fails at once, even under /proc',
    async () => {
      const local = await tempDirs.make();
      await writeFile(join(local, 'x'), 'x');
      expect((await runCli(['put', 'x', 'made-dir.txt', ...remote], { cwd: local })).code).toBe(0);
      const down = await runCli(['get', 'made-dir.txt', '--to', '/proc/muxftp-cli-test/a/', '-p', ...remote]);
      expect(down.code).toBe(1);
      expectOneErrorLine(down, 'no such file or directory: /proc/muxftp-cli-test/a', 'LOCAL_IO_ERROR');
      // Where it can, -p makes every missing level.
      const deep = await runCli(['get', 'made-dir.txt', 'n1/n2/n3/', '-p', ...remote], { cwd: local });
      expect(deep).toMatchObject({ code: 0, stderr: '' });
      expect(await readFile(join(local, 'n1', 'n2', 'n3', 'made-dir.txt'), 'utf8')).toBe('x');
      // A file in the way is named as the user wrote the path.
      const blocked = await runCli(['get', 'made-dir.txt', 'x/sub/', '-p', ...remote], { cwd: local });
      expect(blocked.code).toBe(1);
      expectOneErrorLine(blocked, 'not a directory: x/sub (LOCAL_IO_ERROR)');
      expect((await runCli(['put', 'x', 'made/sub/x', '-p', ...remote], { cwd: local })).code).toBe(0);
      // One line for the directory that cannot be made, none for each thing inside it.
      const tree = await runCli(['get', '-r', 'made', 'x', '--json', ...remote], { cwd: local });
      expect(tree.code).toBe(1);
      expectOneErrorLine(tree, 'muxftp: get made: not a directory: x (LOCAL_IO_ERROR)');
      const outcomes = JSON.parse(tree.stdout.toString()) as Array<{ local: string; ok: boolean }>;
      expect(outcomes.map(({ local, ok }) => ({ local, ok }))).toEqual([
        { local: 'x', ok: false },
        { local: join('x', 'sub'), ok: false },
        { local: join('x', 'sub', 'x'), ok: false },
      ]);
    },
  );

  it('refuses a path that climbs out of the root (INVALID_PATH)', async () => {
    const local = await tempDirs.make();
    await writeFile(join(local, 'x'), 'escape attempt');
    const up = await runCli(['put', 'x', '../x', ...remote], { cwd: local });
    expect(up.code).toBe(1);
    expectOneErrorLine(up, 'put x', 'INVALID_PATH');
    expect(existsSync(join(root, '..', 'x'))).toBe(false);

    const down = await runCli(['get', '../x', ...remote], { cwd: local });
    expect(down.code).toBe(1);
    expectOneErrorLine(down, 'get ../x', 'INVALID_PATH');
  });

  it('says clearly when it cannot connect', async () => {
    const port = await closedPort();
    const result = await runCli(['ls', '--server', `127.0.0.1:${port}`]);
    expect(result.code).toBe(3);
    expectOneErrorLine(result, `muxftp: cannot connect to 127.0.0.1:${port}:`, 'connection refused');
  });

  it('says a muxftp server whose WELCOME it cannot take is one, not that no muxftp server is there', async () => {
    // The protocol lets a client refuse another block size: the server is muxftp all the same.
    const welcome = Buffer.from(
      JSON.stringify({
        version: 2,
        limits: { maxFramePayload: 1 << 20, maxStreams: 16, maxPathBytes: 4096, streamWindow: 1 << 20 },
        integrity: { algorithm: 'xxh128', blockBytes: 1 << 20 },
      }),
    );
    const header = Buffer.alloc(12);
    header.writeUInt8(FrameType.WELCOME, 0);
    header.writeUInt32BE(welcome.length, 8);
    const muxftp = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end(Buffer.concat([header, welcome])));
      socket.resume();
    });
    const port = await new Promise<number>((resolve) =>
      muxftp.listen(0, '127.0.0.1', () => resolve((muxftp.address() as { port: number }).port)),
    );
    try {
      const result = await runCli(['ls', '--server', `127.0.0.1:${port}`]);
      expect(result.code).toBe(3);
      expectOneErrorLine(
        result,
        `muxftp: cannot connect to 127.0.0.1:${port}: the muxftp server there answers on terms this client cannot take`,
        'integrity.blockBytes must be 4194304, got 1048576',
      );
      expect(result.stderr).not.toContain('is the port right?');
    } finally {
      await new Promise((resolve) => muxftp.close(resolve));
    }
  });

  it('says there is no muxftp server on a port where something else answers', async () => {
    // Read (and drop) what the client sends, so its close is seen and http.close() can finish.
    const http = createServer((socket) => socket.resume().end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const port = await new Promise<number>((resolve) =>
      http.listen(0, '127.0.0.1', () => resolve((http.address() as { port: number }).port)),
    );
    try {
      const result = await runCli(['ls', '--server', `127.0.0.1:${port}`]);
      expect(result.code).toBe(3);
      expectOneErrorLine(
        result,
        `muxftp: cannot connect to 127.0.0.1:${port}: no muxftp server there, by its first bytes`,
        'is the port right?',
      );
    } finally {
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('says a muxftp server that breaks the protocol during the login did, not that no muxftp server is there', async () => {
    const welcome = encodeWelcome({
      version: PROTOCOL_VERSION,
      limits: { maxFramePayload: 1 << 20, maxStreams: 16, maxPathBytes: 4096, streamWindow: 1 << 20 },
      integrity: { algorithm: 'xxh128', blockBytes: INTEGRITY_BLOCK_BYTES },
      login: { required: true, anonymous: false, passwordNeedsTls: false },
    });
    // WELCOME after HELLO, then an AUTH answer that is not JSON.
    const muxftp = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write(welcome);
        socket.once('data', () => socket.write(encodeFrame(FrameType.AUTH, 0, 0, Buffer.from('not json'))));
      });
    });
    const port = await new Promise<number>((resolve) =>
      muxftp.listen(0, '127.0.0.1', () => resolve((muxftp.address() as { port: number }).port)),
    );
    try {
      const result = await runCli(['ls', '--server', `127.0.0.1:${port}`, '--user', 'u'], {
        env: { MUXFTP_PASSWORD: 'pw' },
      });
      expect(result.code).toBe(3);
      // Before: "no muxftp server there, by its first bytes (AUTH: payload is not valid JSON): is the port right?"
      expectOneErrorLine(
        result,
        `muxftp: cannot connect to 127.0.0.1:${port}: the server broke the protocol during the login (AUTH: payload is not valid JSON)`,
        'CONNECT_FAILED',
      );
    } finally {
      await new Promise((resolve) => muxftp.close(resolve));
    }
  });

  it('exits at once when a peer that is no muxftp server keeps the connection open', async () => {
    // The client's ERROR and FIN go unanswered: its socket lingered 2 s for the close, and held
    // the process that long after the error line.
    const held: Socket[] = [];
    let helloAt = 0;
    const http = createServer({ allowHalfOpen: true }, (socket) => {
      held.push(socket);
      socket.on('error', () => {});
      socket.once('data', () => {
        helloAt = performance.now();
        socket.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      });
    });
    const port = await new Promise<number>((resolve) =>
      http.listen(0, '127.0.0.1', () => resolve((http.address() as { port: number }).port)),
    );
    try {
      const result = await runCli(['ls', '--server', `127.0.0.1:${port}`]);
      expect(result.code).toBe(3);
      expect(result.stderr).toContain('no muxftp server there, by its first bytes');
      expect(performance.now() - helloAt).toBeLessThan(1_500);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('stops quietly with 141, as cat does, when the reader of its stdout goes away (| head)', async () => {
    const local = await tempDirs.make();
    await writeFile(join(local, 'peek.bin'), randomBytes(4 * MiB));
    expect((await runCli(['put', 'peek.bin', 'pipe/peek.bin', '-p', ...remote], { cwd: local })).code).toBe(
      0,
    );
    // The read end is closed before the command writes a byte: every write of it fails EPIPE.
    const closedReader = (args: string[]): Promise<CliResult> => {
      const child = spawnCli(args, { cwd: local });
      child.stdout!.destroy();
      child.stdout!.on('data', () => {});
      return collect(child);
    };
    for (const args of [
      ['ls', 'pipe', ...remote],
      ['get', 'pipe/peek.bin', '-', ...remote],
      ['--json', 'stat', 'pipe/peek.bin', ...remote],
      ['--help'],
    ]) {
      const result = await closedReader(args);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 141, stderr: '' });
    }
  });

  // /dev/full fails every write with ENOSPC: a full disk under `> file`, made certain.
  it.skipIf(!existsSync('/dev/full'))(
    'says in one line, in words, that stdout cannot be written',
    async () => {
      const local = await tempDirs.make();
      await writeFile(join(local, 'full.bin'), randomBytes(256 * 1024));
      expect((await runCli(['put', 'full.bin', 'full/full.bin', '-p', ...remote], { cwd: local })).code).toBe(
        0,
      );
      for (const args of [
        ['ls', 'full', ...remote],
        ['get', 'full/full.bin', '-', ...remote],
      ]) {
        const full = await open('/dev/full', 'w');
        try {
          const child = spawn(process.execPath, [CLI_BIN, ...args], {
            cwd: local,
            env: childEnv(),
            stdio: ['ignore', full.fd, 'pipe'],
          });
          children.add(child);
          let stderr = '';
          child.stderr!.on('data', (chunk: Buffer) => {
            stderr += chunk.toString();
          });
          const [code] = (await once(child, 'close')) as [number | null];
          children.delete(child);
          expect({ args, code, stderr }).toEqual({
            args,
            code: 1,
            stderr: 'muxftp: cannot write stdout: no space left on device (LOCAL_IO_ERROR)\n',
          });
        } finally {
          await full.close();
        }
      }
    },
  );

  it.skipIf(!existsSync('/dev/full') || spawnSync('script', ['--version']).status !== 0)(
    'on a terminal, stdout full or its reader gone: the bars go, the cursor comes back, the line is said',
    async () => {
      const local = await tempDirs.make();
      await writeFile(join(local, 'gone.bin'), randomBytes(MiB));
      expect((await runCli(['put', 'gone.bin', 'gone/gone.bin', '-p', ...remote], { cwd: local })).code).toBe(
        0,
      );
      const get = cliShellLine(['get', 'gone/gone.bin', '-', ...remote]);
      const ESC = String.fromCharCode(27);
      // A MiB does not fit the pipe's buffer: once `true` has gone, a write fails EPIPE.
      for (const [shell, said] of [
        [`${get} > /dev/full`, 'muxftp: cannot write stdout: no space left on device (LOCAL_IO_ERROR)'],
        [`${get} | true`, undefined],
      ] as const) {
        const child = spawn('script', ['-qec', `stty rows 24 cols 80; ${shell}`, '/dev/null'], {
          cwd: local,
          stdio: 'pipe',
        });
        children.add(child);
        child.once('exit', () => children.delete(child));
        const shown = (await collect(child)).stdout.toString();
        // Before: the exit left the cursor hidden and the bars drawn under the prompt, and the
        // line, queued for the bars' next frame, was never written.
        expect(shown).toContain(`${ESC}[?25l`);
        expect(shown.lastIndexOf(`${ESC}[?25h`)).toBeGreaterThan(shown.lastIndexOf(`${ESC}[?25l`));
        expect(shown.lastIndexOf(`${ESC}[0J`)).toBeGreaterThan(shown.lastIndexOf('total '));
        if (said !== undefined) expect(shown).toContain(said);
        else expect(shown).not.toContain('muxftp:');
      }
    },
  );

  it("lists the global options in each client command's help, and each default once", async () => {
    const ls = await runCli(['ls', '--help']);
    expect(ls.code).toBe(0);
    const help = ls.stdout.toString();
    expect(help).toContain('remote directories or files (default: the root)\n');
    expect(help).toMatch(/Global Options:[\s\S]*--server <host:port>[\s\S]*--json/);
    for (const command of ['put', 'get', 'stat', 'rm', 'mkdir', 'mv']) {
      expect((await runCli([command, '--help'])).stdout.toString()).toContain('--server <host:port>');
    }
    // serve takes none of the client's options.
    expect((await runCli(['serve', '--help'])).stdout.toString()).not.toContain('--server');
  });

  // script(1) (util-linux) runs the command on a pseudo-terminal, as a user at a terminal would.
  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'sums a run up counting files that failed before they began (not on a terminal: only when some failed); no ETA while stdin has no size',
    async () => {
      const local = await tempDirs.make();
      await writeFile(join(local, 'ok.txt'), 'fine');
      const args = ['put', 'ok.txt', 'missing.txt', '--to', 'pty/', '-p', ...remote];
      const onTerminal = await runOnTerminal(args, local);
      expect(onTerminal.code).toBe(1);
      const shown = onTerminal.stdout.toString();
      expect(shown).toContain('muxftp: put missing.txt: no such local file or directory: missing.txt');
      expect(shown).toMatch(/muxftp: 1 file \(4 B\), 1 failed in /);

      // Not on a terminal (cron, a log): no bars, but the count a log is searched for, as rsync's
      // error line (before: the failure alone); a run where nothing failed says nothing.
      const piped = await runCli(args, { cwd: local });
      expect(piped.code).toBe(1);
      const [failure, summary, ...rest] = piped.stderr.trimEnd().split('\n');
      expect(failure).toMatch(/^muxftp: put missing\.txt: no such local file or directory/);
      expect(summary).toMatch(/^muxftp: 1 file \(4 B\), 1 failed in \d/);
      expect(rest).toEqual([]);
      await writeFile(join(local, 'ok2.txt'), 'fine too');
      const fine = await runCli(['put', 'ok.txt', 'ok2.txt', '--to', 'pty/', ...remote], { cwd: local });
      expect(fine).toMatchObject({ code: 0, stderr: '' });

      // While stdin is still coming, neither its size nor the total's is known: no "ETA 0 s".
      const upload = `${cliShellLine()} put - pty/stdin.txt ${remote.join(' ')}`;
      const slowStdin = spawn(
        'script',
        ['-qec', `(printf abc; sleep 1.2; printf def) | ${upload}`, '/dev/null'],
        {
          cwd: local,
          stdio: 'pipe',
        },
      );
      children.add(slowStdin);
      slowStdin.once('exit', () => children.delete(slowStdin));
      const drawn = await collect(slowStdin);
      expect(drawn.code).toBe(0);
      const totals = drawn.stdout
        .toString()
        .split(/[\r\n]/)
        .filter((line) => line.includes('total  '));
      expect(totals.some((line) => /3 B \/ \? {2}.*ETA --/.test(line))).toBe(true);
      expect(totals.filter((line) => /3 B \/ 3 B/.test(line))).toEqual([]);
      expect(await readFile(join(root, 'pty', 'stdin.txt'), 'utf8')).toBe('abcdef');
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'on a short terminal: no more bars than it has rows, the total counting the transfers without one',
    async () => {
      // A throttled server keeps twelve transfers in flight together for a second or two.
      await withSlowServer(async (slow) => {
        const { local, names } = await filesToSend('f', 12, 32 * 1024);
        const args = [
          'put',
          ...names,
          '--to',
          'short/',
          '-p',
          '-j',
          '12',
          '--server',
          `127.0.0.1:${slow.port}`,
        ];
        const drawn = await runOnTerminal(args, local, 6);
        expect(drawn.code).toBe(0);
        const shown = drawn.stdout.toString();
        // cli-progress redraws by moving the cursor up over what it drew: past the terminal's
        // rows that scrambles the screen (it went up 12 lines here, one per transfer).
        const cursorUp = new RegExp(`${String.fromCharCode(27)}\\[(\\d+)A`, 'g');
        const ups = [...shown.matchAll(cursorUp)].map((match) => Number(match[1]));
        expect(ups.length).toBeGreaterThan(0);
        expect(Math.max(...ups)).toBeLessThanOrEqual(5);
        expect(shown).toMatch(/total \(\+\d+ not shown\)/);
        expect(shown).toMatch(/muxftp: 12 files \(384 KiB\) in /);
      });
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'on 80 columns: bars fit with their figures and ETA, and a failure printed above them wraps whole',
    async () => {
      // A throttled server keeps one upload going while the other fails (a directory is there).
      await withSlowServer(async (slow) => {
        const local = await tempDirs.make();
        const long = `${'a-long-file-name-'.repeat(5)}.dat`;
        await writeFile(join(local, 'slow.bin'), Buffer.alloc(512 * 1024, 1));
        await writeFile(join(local, long), 'x');
        const at = ['--server', `127.0.0.1:${slow.port}`];
        expect((await runCli(['mkdir', '-p', `wide/${long}`, ...at], { cwd: local })).code).toBe(0);
        const drawn = await runOnTerminal(
          ['put', 'slow.bin', long, '--to', 'wide/', '-j', '2', ...at],
          local,
          24,
          80,
        );
        expect(drawn.code).toBe(1);
        const shown = drawn.stdout.toString();
        const ESC = String.fromCharCode(27);
        // Before: line wrapping off while bars showed, so the end of this line (why) was lost.
        expect(shown).not.toContain(`${ESC}[?7l`);
        expect(shown).toContain(`${ESC}[Jmuxftp: put ${long}: is a directory: wide/${long} (IS_A_DIRECTORY)`);
        const bars = [...shown.matchAll(new RegExp(`${ESC}\\[1G([^${ESC}\r\n]*)${ESC}\\[0K`, 'g'))].map(
          (match) => match[1]!,
        );
        expect(bars.length).toBeGreaterThan(0);
        // Before: 92 columns for the total, cut at 80 before its ETA.
        for (const bar of bars) expect(bar.length).toBeLessThanOrEqual(79);
        expect(
          bars.some(
            (bar) => bar.startsWith('total') && /MiB\/s|KiB\/s|B\/s/.test(bar) && bar.includes('ETA'),
          ),
        ).toBe(true);
      });
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'Ctrl-C on a terminal: the summary counts the files never started apart from those that failed',
    async () => {
      await withSlowServer(async (slow) => {
        const { local, names } = await filesToSend('q', 6, 512 * 1024);
        const args = ['put', ...names, '--to', 'q/', '-p', '-j', '2', '--server', `127.0.0.1:${slow.port}`];
        // Ctrl-C typed at the terminal once two transfers show their bars.
        const { code, shown } = await ctrlCOnTerminal(args, /q1\.bin/, local, 'stty rows 24 cols 100; ');
        expect(code).toBe(130);
        // Before: "0 files (0 B), 6 failed", as if the four never begun had failed.
        expect(shown).toMatch(/muxftp: 0 files \(0 B\), 2 failed, 4 not started in /);
      });
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'get FILE - onto the terminal draws no bars into the file',
    async () => {
      const local = await tempDirs.make();
      const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n');
      await writeFile(join(local, 'lines.txt'), lines);
      expect((await runCli(['put', 'lines.txt', 'lines.txt', ...remote], { cwd: local })).code).toBe(0);
      const drawn = await runOnTerminal(['get', 'lines.txt', '-', ...remote], local, 24, 80);
      expect(drawn.code).toBe(0);
      const shown = drawn.stdout.toString();
      // Before: the bars, drawn between chunks, moved the cursor up into the lines and over them.
      expect(shown).not.toContain('total ');
      expect(shown).not.toContain(`${String.fromCharCode(27)}[`);
      expect(shown.replaceAll('\r\n', '\n')).toBe(lines);
    },
  );

  // A terminal made shorter mid-run needs a resize, which script(1) cannot do: python3's pty can.
  it.skipIf(spawnSync('python3', ['-c', 'import pty, fcntl, termios']).status !== 0)(
    'a window made shorter mid-run: the bars shrink to its rows rather than scroll',
    async () => {
      await withSlowServer(async (slow) => {
        const { local, names } = await filesToSend('r', 12, 64 * 1024);
        const argv = [process.execPath, CLI_BIN, 'put', ...names, '--to', 'rows/', '-p', '-j', '12'];
        argv.push('--server', `127.0.0.1:${slow.port}`);
        // 100x30, then 100x8 once the bars show; prints where in the output the resize came.
        const driver = `
import json, os, pty, select, signal, struct, sys, time, fcntl, termios
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
size = lambda rows: fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, 100, 0, 0))
size(30)
out, resized, start = b'', None, time.time()
while time.time() - start < 30:
    if resized is None and b'total' in out and time.time() - start > 0.5:
        size(8); os.kill(pid, signal.SIGWINCH); resized = len(out)
    if select.select([fd], [], [], 0.05)[0]:
        try: chunk = os.read(fd, 65536)
        except OSError: break
        if not chunk: break
        out += chunk
os.waitpid(pid, 0)
sys.stdout.write(json.dumps({'resized': resized, 'out': out.decode('utf8', 'replace')}))`;
        const child = spawn('python3', ['-c', driver, JSON.stringify(argv)], { cwd: local, stdio: 'pipe' });
        children.add(child);
        child.once('exit', () => children.delete(child));
        const { stdout } = await collect(child);
        const { resized, out } = JSON.parse(stdout.toString()) as { resized: number | null; out: string };
        expect(resized).not.toBeNull();
        expect(out).toMatch(/muxftp: 12 files \(768 KiB\) in /);
        const ups = [
          ...out.slice(resized!).matchAll(new RegExp(`${String.fromCharCode(27)}\\[(\\d+)A`, 'g')),
        ].map((match) => Number(match[1]));
        // Once the bars past the 8 rows have gone (one redraw each), every frame stays within them.
        // Before: 12 lines up on 8 rows, every frame, each one scrolling.
        const fitted = ups.findIndex((up) => up <= 7);
        expect(fitted).toBeGreaterThanOrEqual(0);
        expect(ups.slice(fitted).filter((up) => up > 7)).toEqual([]);
        expect(ups.length - fitted).toBeGreaterThan(3);
      });
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'serve stopped by Ctrl-C at a terminal: its log line starts a line, not after the echoed ^C',
    async () => {
      const { code, shown } = await ctrlCOnTerminal(['serve', '--memory', '--port', '0'], /listening/);
      expect(code).toBe(0);
      // Before: "^C2026-12-06T07:22:59.826Z SIGINT: shutting down; …".
      expect(shown).toMatch(/\^C\r?\n\d{4}-\d\d-\d\dT[\d:.]+Z SIGINT: shutting down/);
    },
  );

  // Closing the terminal needs its master side in our hands, which script(1) does not give.
  it.skipIf(spawnSync('python3', ['-c', 'import pty']).status !== 0)(
    'a terminal closed mid-transfer: the download keeps its blocks and the process ends by the hang-up',
    async () => {
      await writeFile(join(root, 'hangup.bin'), randomBytes(16 * MiB));
      const local = await tempDirs.make();
      const argv = [process.execPath, CLI_BIN, 'get', 'hangup.bin', '--limit-rate', '8MiB', ...remote];
      // Closes the terminal once the bars have shown for a while; prints how the process ended.
      const driver = `
import json, os, pty, select, sys, time
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out, start = b'', time.time()
while time.time() - start < 20 and not (b'total' in out and time.time() - start > 1.5):
    if select.select([fd], [], [], 0.05)[0]:
        try: chunk = os.read(fd, 65536)
        except OSError: break
        if not chunk: break
        out += chunk
os.close(fd)
_, status = os.waitpid(pid, 0)
ended = {'signal': os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {'code': os.WEXITSTATUS(status)}
sys.stdout.write(json.dumps({'ended': ended, 'bars': b'total' in out}))`;
      const child = spawn('python3', ['-c', driver, JSON.stringify(argv)], { cwd: local, stdio: 'pipe' });
      children.add(child);
      child.once('exit', () => children.delete(child));
      const { stdout } = await collect(child);
      const { ended, bars } = JSON.parse(stdout.toString()) as { ended: object; bars: boolean };
      expect(bars).toBe(true);
      // Before: SIGABRT (6), Node 20 asserting when it set the closed terminal's modes back at exit.
      expect(ended).toEqual({ signal: 1 });
      // Nothing under the real name; what it received, kept as whole 4 MiB blocks under the kept
      // name (1.5 s at 8 MiB/s is well past the first block).
      expect(await readdir(local)).toEqual([downloadPartialName('hangup.bin')]);
      const kept = (await stat(join(local, downloadPartialName('hangup.bin')))).size;
      expect(kept).toBeGreaterThanOrEqual(4 * MiB);
      expect(kept % (4 * MiB)).toBe(0);
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'redraws its bars at its own rate, not once per file that ends',
    async () => {
      const server = await startServe(['--memory']);
      try {
        const local = await tempDirs.make();
        const names = Array.from({ length: 300 }, (_, i) => `f${i}`);
        for (const name of names) await writeFile(join(local, name), name);
        const args = [
          'put',
          ...names,
          '--to',
          'many/',
          '-p',
          '-j',
          '8',
          '--server',
          `127.0.0.1:${server.port}`,
        ];
        const drawn = await runOnTerminal(args, local, 12);
        expect(drawn.code).toBe(0);
        const shown = drawn.stdout.toString();
        expect(shown).toMatch(/muxftp: 300 files \([^)]+\) in /);
        // Each redraw moves the cursor up over the bars: one per file ended before (at least 300);
        // at ten a second, a few dozen even on a slow machine.
        const redraws = shown.match(new RegExp(`${String.fromCharCode(27)}\\[\\d+A`, 'g'))?.length ?? 0;
        expect(redraws).toBeLessThan(150);
        // A bar whose transfer ended, waiting for the next, says so rather than show a rate.
        expect(shown).toContain(' done\u001b');
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    },
  );

  it('serve --umask: what uploads and new directories get, less those bits; a bad one is a usage error', async () => {
    const umaskRoot = await tempDirs.make();
    const strict = await startServe(['--root', umaskRoot, '--umask', '077']);
    try {
      const local = await tempDirs.make();
      await mkdir(join(local, 'tree'));
      await writeFile(join(local, 'tree', 'run.sh'), '#!/bin/sh\n');
      await chmod(join(local, 'tree', 'run.sh'), 0o755);
      await chmod(join(local, 'tree'), 0o755);
      const at = ['--server', `127.0.0.1:${strict.port}`];
      expect((await runCli(['put', '-r', 'tree', 'kept', ...at], { cwd: local })).code).toBe(0);
      expect(
        (await runCli(['put', '--no-perms', 'tree/run.sh', 'plain.sh', ...at], { cwd: local })).code,
      ).toBe(0);
      const bits = async (name: string) => (await stat(join(umaskRoot, name))).mode & 0o777;
      expect([await bits('kept'), await bits('kept/run.sh'), await bits('plain.sh')]).toEqual([
        0o700, 0o700, 0o600,
      ]);
      // Said in WELCOME: this client's own umask (022) is not the server's.
      const client = await Client.connect({ port: strict.port });
      expect(client.serverInfo.umask).toBe(0o077);
      await client.close();
      // No chmod gives more than it lets through.
      expect((await runCli(['chmod', '777', 'kept/run.sh', ...at], { cwd: local })).code).toBe(0);
      expect(await bits('kept/run.sh')).toBe(0o700);
      // A skipped remote copy gets what an upload would have given it, by one chmod, sent only
      // when the server's umask says the copy has other bits: a second run sends none.
      let chmods = 0;
      const proxy = await startFrameProxy(strict.port, {
        fromClient: (frame) => {
          if (frame.type === FrameType.OPEN && jsonOf(frame).op === 'chmod') chmods++;
          return frame;
        },
      });
      try {
        await chmod(join(umaskRoot, 'kept', 'run.sh'), 0o644);
        const putSkipping = [
          'put',
          '-q',
          '--skip-unchanged',
          'tree/run.sh',
          'kept/run.sh',
          '--server',
          `127.0.0.1:${proxy.port}`,
        ];
        expect((await runCli(putSkipping, { cwd: local })).code).toBe(0);
        expect([await bits('kept/run.sh'), chmods]).toEqual([0o700, 1]);
        expect((await runCli(putSkipping, { cwd: local })).code).toBe(0);
        expect(chmods).toBe(1);
      } finally {
        await proxy.close();
      }
    } finally {
      strict.child.kill('SIGTERM');
      await strict.exited;
    }
    const bad = await runCli(['serve', '--memory', '--port', '0', '--umask', '999']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected octal bits');
  });

  it("serve --umask (or the umask it starts with) taking the owner's bits, 700: a disk keeps the server's own, as memory storage does", async () => {
    const local = await tempDirs.make();
    await mkdir(join(local, 'tree'));
    await writeFile(join(local, 'tree', 'run.sh'), '#!/bin/sh\n');
    await chmod(join(local, 'tree', 'run.sh'), 0o755);
    await chmod(join(local, 'tree'), 0o755);
    const modesOn = async (args: string[], prefix?: string[]): Promise<string[][]> => {
      const served = await startServe(args, undefined, prefix);
      try {
        const at = ['--server', `127.0.0.1:${served.port}`];
        for (const command of [
          ['mkdir', 'd'],
          ['mkdir', '-p', 'p/q'],
          ['put', '-r', 'tree', 'kept'],
          ['put', '-', 'p/stdin'],
        ])
          expect(await runCli([...command, ...at], { cwd: local, stdin: 'x' })).toMatchObject({ code: 0 });
        const listed = await runCli(['--json', 'ls', '-r', '/', ...at], { cwd: local });
        return (JSON.parse(listed.stdout.toString()) as Array<{ path: string; mode: number }>).map(
          ({ path, mode }) => [path, mode.toString(8)],
        );
      } finally {
        served.child.kill('SIGTERM');
        await served.exited;
      }
    };
    // Whatever the umask takes of the owner's, a new directory keeps rwx for the server and a new
    // file rw (a disk's were 077 and 066: the kernel took them, a directory the server could not
    // enter); what a client sends loses only what is not the server's own.
    const wanted = [
      ['d', '777'],
      ['kept', '755'],
      ['kept/run.sh', '655'],
      ['p', '777'],
      ['p/q', '777'],
      ['p/stdin', '666'],
    ];
    expect(await modesOn(['--memory', '--umask', '700'])).toEqual(wanted);
    expect(await modesOn(['--root', await tempDirs.make(), '--umask', '700'])).toEqual(wanted);
    // The same umask inherited, not given.
    const inherited = ['sh', '-c', 'umask 700 && exec "$@"', 'sh'];
    expect(await modesOn(['--root', await tempDirs.make()], inherited)).toEqual(wanted);
  });

  it('exits 2 on usage errors', async () => {
    const result = await runCli(['put', 'a', 'b', 'c', ...remote]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--to');
  });

  it('serves memory storage on the --host address (127.0.0.2: loopback, no warning), and exits 0 on SIGTERM', async () => {
    const memory = await startServe(['--memory', '--host', '127.0.0.2']);
    expect(memory.firstLine).toBe(`muxftp listening on 127.0.0.2:${memory.port} (storage: memory)`);
    const put = await runCli(['put', '-', 'note.txt', '--server', `127.0.0.2:${memory.port}`], {
      stdin: 'hi',
    });
    expect(put.code).toBe(0);
    memory.child.kill('SIGTERM');
    expect(await memory.exited).toBe(0);
    expect(memory.stderr()).not.toMatch(/warning/);
  });

  it('warns when it listens beyond loopback, for the protocol and the metrics port (in a network namespace of its own)', async (context) => {
    // Tests listen on loopback only: 0.0.0.0 is bound where it reaches nothing, in a new network
    // namespace (unshare -rn: no interface but a loopback of its own, which is down).
    const unshare = spawnSync('unshare', ['-rn', 'true'], { stdio: 'ignore', timeout: 5_000 });
    if (unshare.status !== 0) context.skip('no unprivileged network namespace here (unshare -rn failed)');
    const wide = await startServe(['--memory', '--host', '0.0.0.0', '--metrics', '0.0.0.0:0'], undefined, [
      'unshare',
      '-rn',
    ]);
    expect(wide.firstLine).toBe(`muxftp listening on 0.0.0.0:${wide.port} (storage: memory)`);
    // Not in this namespace, so 0.0.0.0 reaches nothing: the process's network namespace is not
    // ours. (Connecting to its port number here, as before, reached whatever else on this machine
    // listened on that number, and then waited for an error that never came.)
    const namespaceOf = (pid: number | string) => readlink(`/proc/${pid}/ns/net`);
    expect(await namespaceOf(wide.child.pid!)).not.toBe(await namespaceOf('self'));
    wide.child.kill('SIGTERM');
    expect(await wide.exited).toBe(0);
    expect(wide.stderr()).toMatch(/warning: listening on 0\.0\.0\.0 with no users file/);
    expect(wide.stderr()).toMatch(/warning: listening on 0\.0\.0\.0 without TLS/);
    expect(wide.stderr()).toMatch(/warning: metrics listening on 0\.0\.0\.0, reachable from other machines/);
  });

  it('passes --stream-window to the server, which announces it and uses it', async () => {
    const server = await startServe(['--memory', '--stream-window', '64KiB']);
    try {
      const client = await Client.connect({ port: server.port });
      expect(client.serverInfo.limits.streamWindow).toBe(64 * 1024);
      const bytes = Buffer.alloc(300 * 1024, 7);
      expect((await client.put('w.bin', bytes)).entry.size).toBe(bytes.length);
      await client.close();
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
