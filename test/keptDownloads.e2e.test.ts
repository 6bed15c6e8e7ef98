/**
 * A failed or cancelled `get` keeps its whole 4 MiB blocks in a hidden `.muxftp-get-<hash>.part`
 * beside the target, never under the target's name; `get -c` continues from it once its blocks
 * match the server's (only the rest crosses the wire), starts over when it is another version,
 * and a plain `get` replaces it. stdin and stdout refuse -c and --skip-identical.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chown,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import type { Server } from 'node:net';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../client/client.js';
import { LocalPartialRefusedError } from '../client/index.js';
import { SinkFile } from '../client/sinkFile.js';
import { hostTag as currentHostTag, legacyHostTag } from '../shared/hostTag.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeReply } from '../shared/protocol/encoder.js';
import {
  type DownloadOwner,
  downloadInProgressName,
  downloadPartialName,
  isDownloadPartialName,
  parseDownloadInProgress,
} from '../shared/temporaryNames.js';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { IN_NEW_PID_NAMESPACE, unshareRefused } from './helpers/pidNamespace.js';
import { restartablePort } from './helpers/restartPort.js';
import { startScriptedServer } from './helpers/scriptedServer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const MiB = 1024 * 1024;
const BLOCK = INTEGRITY_BLOCK_BYTES;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

const tempDirs = new TempDirs('muxftp-kept-');
const children = new Set<ChildProcess>();
let env: TestServer | undefined;
let scripted: Server | undefined;

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  await env?.stop();
  env = undefined;
  await new Promise<void>((resolve) => (scripted ? scripted.close(() => resolve()) : resolve()));
  scripted = undefined;
  await tempDirs.removeAll();
});

/** `muxftp serve` as a child process (so it can be SIGKILLed); resolves once it listens. */
async function startServe(
  root: string,
  extraArgs: string[] = [],
  port = 0,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [CLI_BIN, 'serve', '--port', String(port), '--root', root, '--fsync', 'never', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  children.add(child);
  const bound = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on [^ ]+:(\d+) \(/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
  });
  return { child, port: bound };
}

async function stopServe(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
  children.delete(child);
}

/** Downloads are looked at every 10 ms, for up to 15 s. */
const UNDER_WAY = { timeoutMs: 15_000, everyMs: 10 };

/** True once `count` downloads in progress in `dir` hold more than `bytes` each. */
function downloadsPast(dir: string, count: number, bytes: number): () => Promise<boolean> {
  return async () => {
    const names = (await readdir(dir).catch(() => [])).filter(
      (name) => name.startsWith('.muxftp-') && !isDownloadPartialName(name),
    );
    const sizes = await Promise.all(
      names.map((name) =>
        stat(join(dir, name)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    return sizes.filter((size) => size > bytes).length >= count;
  };
}

describe('a get that fails for good keeps its whole blocks for get -c', () => {
  it('the server killed mid-way (-r, -j 2, --retries 0): hidden partials, no real names; get -c sends only the rest', async () => {
    const root = await tempDirs.make();
    const local = await tempDirs.make();
    await mkdir(join(root, 'd'));
    const files = { 'a.bin': randomBytes(6 * BLOCK + 123), 'b.bin': randomBytes(5 * BLOCK + MiB) };
    for (const [name, content] of Object.entries(files)) await writeFile(join(root, 'd', name), content);
    const total = files['a.bin'].length + files['b.bin'].length;

    // Held to 6 MiB/s (in bursts), so both downloads are still under way when the server is killed.
    // The connection's rate is not shared evenly (one stream may wait a second for credit while
    // the other takes it): with 4 and 3 blocks, both were past 5 MiB together for under a second
    // before the smaller one finished, and a loaded machine missed it. With these sizes, ~5 s.
    const first = await startServe(root, ['--max-rate', '6MiB']);
    const out = join(local, 'out', 'd');
    const cliArgs = (port: number) => [
      '--server',
      `127.0.0.1:${port}`,
      'get',
      '-r',
      'd',
      '--to',
      'out/',
      '-p',
    ];
    const failing = runCli([...cliArgs(first.port), '-j', '2', '--retries', '0', '--json'], local);
    const early = failing.then((run) => {
      throw new Error(`get ended before the server was killed: ${JSON.stringify(run)}`);
    });
    await Promise.race([
      until(downloadsPast(out, 2, BLOCK + MiB), '2 downloads past BLOCK + 1 MiB', UNDER_WAY),
      early,
    ]);
    await stopServe(first.child, 'SIGKILL');
    const failed = await failing;
    expect(failed.code).toBe(3);

    // Nothing under the real names; each file's whole blocks kept under its hidden name, and they
    // are the server's bytes.
    const names = (await readdir(out)).sort();
    expect(names).toEqual([downloadPartialName('a.bin'), downloadPartialName('b.bin')].sort());
    let keptTotal = 0;
    for (const [name, content] of Object.entries(files)) {
      const kept = await readFile(join(out, downloadPartialName(name)));
      expect(kept.length % BLOCK).toBe(0);
      expect(kept.length).toBeGreaterThanOrEqual(BLOCK);
      expect(kept.length).toBeLessThan(content.length);
      expect(sha256(kept)).toBe(sha256(content.subarray(0, kept.length)));
      keptTotal += kept.length;
    }
    // The failure says so, on stderr and in --json.
    expect(failed.stderr).toMatch(
      /get d\/a\.bin: .*\(CONNECTION_LOST\); [\d.]+ MiB received kept in .*\.muxftp-get-[0-9a-f]{32}\.part: run the same get with -c to continue it/,
    );
    const outcomes = JSON.parse(failed.stdout) as Array<{
      local: string;
      ok: boolean;
      partial?: { path: string; bytes: number; hint: string };
    }>;
    for (const outcome of outcomes) {
      expect(outcome.ok).toBe(false);
      const name = outcome.local.split('/').pop()!;
      expect(outcome.partial).toEqual({
        path: join('out', 'd', downloadPartialName(name)),
        bytes: (await stat(join(out, downloadPartialName(name)))).size,
        hint: 'run the same get with -c to continue it',
      });
    }

    // A fresh server on the same root: get -c sends only what was not kept.
    const second = await startServe(root);
    const resumed = await runCli([...cliArgs(second.port), '-c'], local);
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    const probe = await Client.connect({ host: '127.0.0.1', port: second.port });
    const { bytesOut } = await probe.stats();
    await probe.close();
    await stopServe(second.child, 'SIGTERM');
    expect(bytesOut).toBe(total - keptTotal);
    expect((await readdir(out)).sort()).toEqual(['a.bin', 'b.bin']);
    for (const [name, content] of Object.entries(files))
      expect(sha256(await readFile(join(out, name)))).toBe(sha256(content));
  }, 60_000);

  it('--retries: the next attempt continues what the last one kept, and starts over when the file changed meanwhile', async () => {
    const root = await tempDirs.make();
    const local = await tempDirs.make();
    // The server is killed while both downloads are past 5 MiB, a moment that lasts from ~2 s
    // (the two take turns at 6 MiB/s) until the first one ends: at ~8 s with 6 blocks each, at
    // ~5 s with the 4 this test had (3 s, little for a poll on a loaded machine).
    const size = 6 * BLOCK;
    const files = { 'same.bin': randomBytes(size), 'changed.bin': randomBytes(size) };
    for (const [name, content] of Object.entries(files)) await writeFile(join(root, name), content);
    // Restarted on this port below: one no client connection can take meanwhile.
    const first = await startServe(root, ['--max-rate', '6MiB'], await restartablePort());
    const cli = runCli(
      [
        '--server',
        `127.0.0.1:${first.port}`,
        'get',
        'same.bin',
        'changed.bin',
        '--to',
        '.',
        // The retries must outlast the restart below (a node process started, ~1 s on a loaded
        // machine): 3 wait 0.5-1 s, 1-2 s and 2-4 s, where 2 gave it as little as 1.5 s.
        '--retries',
        '3',
      ],
      local,
    );
    // Should the moment pass (the CLI ended, or a download finished first), fail now and say so:
    // the wait could only run out.
    const early = cli.then((run) => {
      throw new Error(`get ended before the server was killed: ${JSON.stringify(run)}`);
    });
    const bothUnderWay = async () => {
      if (await downloadsPast(local, 2, BLOCK + MiB)()) return true;
      const finished = (await readdir(local)).filter((name) => name in files);
      if (finished.length > 0) throw new Error(`${finished.join(', ')} finished before both were past 5 MiB`);
      return false;
    };
    await Promise.race([until(bothUnderWay, 'both downloads past BLOCK + 1 MiB', UNDER_WAY), early]);
    await stopServe(first.child, 'SIGKILL');
    const changed = randomBytes(size);
    await writeFile(join(root, 'changed.bin'), changed);
    const second = await startServe(root, [], first.port);
    const run = await cli;
    expect(run.code).toBe(0);
    // Both under way when the connection went: one line says both are retried.
    expect(run.stderr).toMatch(/^muxftp: get: .*; 2 transfers retry 1\/3 in /m);
    // Not a line of its own for either as well (a later reconnect that fails is a line of its own).
    expect(run.stderr).not.toMatch(/^muxftp: get (?:same|changed)\.bin: .*retry 1\/3/m);
    expect(run.stderr).not.toMatch(/get same\.bin: .*starting over/);
    expect(run.stderr).toMatch(
      /get changed\.bin: the partial download kept for it differs from the server's file at block 0 .*starting over/,
    );
    const probe = await Client.connect({ host: '127.0.0.1', port: second.port });
    const { bytesOut } = await probe.stats();
    await probe.close();
    await stopServe(second.child, 'SIGTERM');
    // changed.bin again in full; same.bin only past the whole blocks kept (at least one).
    expect(bytesOut).toBeLessThanOrEqual(changed.length + files['same.bin'].length - BLOCK);
    expect(bytesOut).toBeGreaterThan(changed.length);
    expect((await readdir(local)).sort()).toEqual(['changed.bin', 'same.bin']);
    expect(sha256(await readFile(join(local, 'same.bin')))).toBe(sha256(files['same.bin']));
    expect(sha256(await readFile(join(local, 'changed.bin')))).toBe(sha256(changed));
  }, 60_000);

  it('Ctrl-C keeps the partial (replacing an older one) and exits 130; get -c completes it', async () => {
    const content = randomBytes(4 * BLOCK + 77);
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    // What an earlier failed get kept, of another version: a plain get replaces it with its own.
    await writeFile(join(local, downloadPartialName('big.bin')), randomBytes(2 * BLOCK));
    const args = ['--server', `127.0.0.1:${env.port}`, 'get', 'big.bin'];
    const interrupted = await runCli(args, local, {
      interruptWhen: until(downloadsPast(local, 1, BLOCK + MiB), '1 download past BLOCK + 1 MiB', UNDER_WAY),
    });
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(
      /get big\.bin: cancelled \(CANCELLED\); [\d.]+ MiB received kept in \.muxftp-get-[0-9a-f]{32}\.part: run the same get with -c to continue it/,
    );
    expect(await readdir(local)).toEqual([downloadPartialName('big.bin')]);
    const keptBytes = await readFile(join(local, downloadPartialName('big.bin')));
    const kept = keptBytes.length;
    expect(kept % BLOCK).toBe(0);
    expect(kept).toBeGreaterThanOrEqual(BLOCK);
    expect(sha256(keptBytes)).toBe(sha256(content.subarray(0, kept)));

    await env.stop();
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const resumed = await runCli(
      ['--server', `127.0.0.1:${env.port}`, '--json', 'get', '-c', 'big.bin'],
      local,
    );
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(resumed.stdout)).toMatchObject([{ bytes: content.length, continuedFrom: kept }]);
    expect(env.server.stats().bytesOut).toBe(content.length - kept);
    expect(env.logs.join('\n')).toContain(
      `sent big.bin ${content.length} B, continued from ${kept} B: ${content.length - kept} B in `,
    );
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it('get -r of a tree made as a new local name, cut by Ctrl-C: its hint names the source as its contents, and that get -c continues it', async () => {
    const content = randomBytes(4 * BLOCK + 77);
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    await mkdir(join(env.root!, 'd'));
    await writeFile(join(env.root!, 'd', 'big.bin'), content);
    const local = await tempDirs.make();
    const dest = join(local, 'dest');
    // dest is missing: the tree is made as dest (cp -r's rule), its file dest/big.bin.
    const interrupted = await runCli(
      ['--server', `127.0.0.1:${env.port}`, 'get', '-r', '/d', 'dest'],
      local,
      {
        interruptWhen: until(downloadsPast(dest, 1, BLOCK + MiB), '1 download past BLOCK + 1 MiB', UNDER_WAY),
      },
    );
    expect(interrupted.code).toBe(130);
    // Before: "run the same get with -c", which, dest there now, fetched the tree anew into dest/d.
    expect(interrupted.stderr).toMatch(
      /get d\/big\.bin: cancelled \(CANCELLED\); [\d.]+ MiB received kept in dest\/\.muxftp-get-[0-9a-f]{32}\.part: run the same get with -c and \/d\/\. in place of \/d to continue it \(dest is there now: \/d would go inside it\)\n/,
    );
    const kept = (await stat(join(dest, downloadPartialName('big.bin')))).size;
    expect(kept).toBeGreaterThanOrEqual(BLOCK);

    // The get the hint gives continues it, into dest itself.
    await env.stop();
    env = await startServer({ backend: 'disk' });
    await mkdir(join(env.root!, 'd'));
    await writeFile(join(env.root!, 'd', 'big.bin'), content);
    const resumed = await runCli(
      ['--server', `127.0.0.1:${env.port}`, '--json', 'get', '-r', '-c', '/d/.', 'dest'],
      local,
    );
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(resumed.stdout)).toMatchObject([{ bytes: content.length, continuedFrom: kept }]);
    expect(env.server.stats().bytesOut).toBe(content.length - kept);
    expect(await readdir(dest)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(dest, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  /**
   * A get of 4 blocks, `stop`ped once past its first: it ends as `ended` says (by default, exit
   * 130) with its whole blocks kept under the kept name, never the real one.
   */
  async function expectKeptAfter(
    stop: (child: ChildProcess) => void,
    stdio: StdioOptions,
    ended: { code: number | null; signal: NodeJS.Signals | null } = { code: 130, signal: null },
    { wholeBlocks = true }: { wholeBlocks?: boolean } = {},
  ): Promise<void> {
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    const content = randomBytes(4 * BLOCK);
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    const child = spawn(process.execPath, [CLI_BIN, '--server', `127.0.0.1:${env.port}`, 'get', 'big.bin'], {
      cwd: local,
      stdio,
    });
    children.add(child);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    await until(downloadsPast(local, 1, BLOCK + MiB), '1 download past BLOCK + 1 MiB', UNDER_WAY);
    stop(child);
    expect(await exited).toEqual(ended);
    expect(await readdir(local)).toEqual([downloadPartialName('big.bin')]);
    const kept = await readFile(join(local, downloadPartialName('big.bin')));
    expect(kept.length).toBeGreaterThanOrEqual(BLOCK);
    if (wholeBlocks) {
      expect(kept.length % BLOCK).toBe(0);
      expect(sha256(kept)).toBe(sha256(content.subarray(0, kept.length)));
      return;
    }
    // Exiting at once, a write already under way may land past the cut (after zeros): what is
    // sure is its first block, and that get -c makes the whole file of it.
    expect(sha256(kept.subarray(0, BLOCK))).toBe(sha256(content.subarray(0, BLOCK)));
    const resumed = await runCli(['--server', `127.0.0.1:${env.port}`, 'get', '-c', 'big.bin', '-q'], local);
    expect(resumed.code).toBe(0);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  }

  it('a second Ctrl-C exits at once and still keeps its first blocks, never the real name', async () => {
    await expectKeptAfter(
      (child) => {
        child.kill('SIGINT');
        child.kill('SIGINT');
      },
      'ignore',
      undefined,
      { wholeBlocks: false },
    );
  }, 30_000);

  it('a hang-up (the terminal closed, its output gone) keeps the whole blocks as Ctrl-C does', async () => {
    await expectKeptAfter(
      (child) => {
        // Nobody reads its output any more: each line it writes fails.
        child.stdout!.destroy();
        child.stderr!.destroy();
        child.kill('SIGHUP');
      },
      ['ignore', 'pipe', 'pipe'],
      // Ended by the hang-up itself once settled: an exit would set a closed terminal's modes
      // back, on which Node 20 aborts.
      { code: null, signal: 'SIGHUP' },
    );
  }, 30_000);

  it('through the library: a dropped connection keeps the partial (keepPartial); continue sends only the rest', async () => {
    const content = randomBytes(3 * BLOCK + 5);
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    await writeFile(join(env.root!, 'big.bin'), content);
    const dir = await tempDirs.make();
    const target = join(dir, 'big.bin');
    const client = await env.connect();
    const kept: Array<{ path: string; bytes: number }> = [];
    const dropped = client.get('big.bin', target, {
      keepPartial: true,
      onPartialKept: (partial) => kept.push(partial),
      onProgress: (done) => {
        if (done > BLOCK + MiB) void client.destroy();
      },
    });
    await expect(dropped).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(kept).toHaveLength(1);
    expect(kept[0]!.path).toBe(join(dir, downloadPartialName('big.bin')));
    expect(await readdir(dir)).toEqual([downloadPartialName('big.bin')]);
    expect((await stat(kept[0]!.path)).size).toBe(kept[0]!.bytes);

    const before = env.server.stats().bytesOut;
    const again = await env.connect();
    const result = await again.get('big.bin', target, { continue: true });
    expect(result.size).toBe(content.length);
    expect(env.server.stats().bytesOut - before).toBe(content.length - kept[0]!.bytes);
    expect(await readdir(dir)).toEqual(['big.bin']);
    expect(sha256(await readFile(target))).toBe(sha256(content));
  }, 30_000);
});

describe('two downloads of one target at once (overlapping runs) that both fail', () => {
  it('the one that kept less since the other began does not replace what the other kept', async () => {
    // Each connection at 4 MiB/s: A starts, B starts 2 blocks later; A is cut past 3 blocks,
    // B past 1 (fewer than A kept). Renaming B's onto A's threw A's larger one away, and A had
    // told its user it was kept.
    const content = randomBytes(6 * BLOCK + 5);
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    await writeFile(join(env.root!, 'big.bin'), content);
    const dir = await tempDirs.make();
    const target = join(dir, 'big.bin');
    const keptPath = join(dir, downloadPartialName('big.bin'));
    const first = await env.connect();
    const second = await env.connect();
    const keptByFirst: Array<{ path: string; bytes: number }> = [];
    const keptBySecond: Array<{ path: string; bytes: number }> = [];
    let startSecond!: () => void;
    const secondMayStart = new Promise<void>((resolve) => (startSecond = resolve));
    const firstGet = first.get('big.bin', target, {
      keepPartial: true,
      onPartialKept: (partial) => keptByFirst.push(partial),
      onProgress: (done) => {
        if (done > 2 * BLOCK) startSecond();
        if (done > 3 * BLOCK + MiB) void first.destroy();
      },
    });
    await secondMayStart;
    let secondDone = 0;
    const secondGet = second.get('big.bin', target, {
      keepPartial: true,
      onPartialKept: (partial) => keptBySecond.push(partial),
      onProgress: (done) => {
        secondDone = done;
      },
    });
    await expect(firstGet).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(keptByFirst).toEqual([{ path: keptPath, bytes: 3 * BLOCK }]);
    await until(async () => secondDone > BLOCK + MiB, 'the second past 1 block', UNDER_WAY);
    expect(secondDone).toBeLessThan(3 * BLOCK);
    void second.destroy();
    await expect(secondGet).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    // The second is told what is kept there: the first's blocks.
    expect(keptBySecond).toEqual([{ path: keptPath, bytes: 3 * BLOCK }]);
    expect(await readdir(dir)).toEqual([downloadPartialName('big.bin')]);
    expect(sha256(await readFile(keptPath))).toBe(sha256(content.subarray(0, 3 * BLOCK)));
  }, 30_000);
});

describe('a get killed outright (SIGKILL, the out-of-memory killer, a power cut)', () => {
  /** This host, as downloads in progress name it (client/downloadsLeftBehind.ts). */
  const hostTag = currentHostTag();

  /** The id of a process that has exited. */
  async function goneProcessId(): Promise<number> {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve));
    return child.pid!;
  }

  /**
   * The one file a get of big.bin killed outright left in `local`: a download in progress that
   * names its writer, this host's process `pid`.
   */
  async function leftByKilled(local: string, pid: number | undefined): Promise<string> {
    const [left, ...others] = await readdir(local);
    expect(others).toEqual([]);
    expect(parseDownloadInProgress(left!)).toMatchObject({
      keptName: downloadPartialName('big.bin'),
      host: hostTag,
      pid,
    });
    return left!;
  }

  it('leaves its download under a name get -c finds: get -c sends only the rest', async () => {
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    const content = randomBytes(4 * BLOCK + 99);
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    const child = spawn(process.execPath, [CLI_BIN, '--server', `127.0.0.1:${env.port}`, 'get', 'big.bin'], {
      cwd: local,
      stdio: 'ignore',
    });
    children.add(child);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await until(downloadsPast(local, 1, BLOCK + MiB), '1 download past BLOCK + 1 MiB', UNDER_WAY);
    child.kill('SIGKILL');
    await exited;
    children.delete(child);
    // Before: `.muxftp-<random hex>.part`, which nothing found or removed.
    const left = await leftByKilled(local, child.pid);
    const whole = (await stat(join(local, left))).size;
    const reusable = whole - (whole % BLOCK);
    expect(reusable).toBeGreaterThanOrEqual(BLOCK);

    await env.stop();
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const resumed = await runCli(
      ['--server', `127.0.0.1:${env.port}`, '--json', 'get', '-c', 'big.bin'],
      local,
    );
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(resumed.stdout)).toMatchObject([{ bytes: content.length, continuedFrom: reusable }]);
    expect(env.server.stats().bytesOut).toBe(content.length - reusable);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  /**
   * A disk server holding `content` at big.bin, and a local directory where a get of it left
   * `prefix` bytes under the name its process wrote (a process that is gone, of this host, unless
   * `owner` says otherwise); `leftBy` names more such files there.
   */
  async function leftBehind(content: Buffer, prefix: number, owner: Partial<DownloadOwner> = {}) {
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    const gone = await goneProcessId();
    const leftBy = (by: Partial<DownloadOwner>): string =>
      join(
        local,
        downloadInProgressName('big.bin', { host: hostTag, pid: gone, run: 'aaaaaaaa', seq: 0, ...by }),
      );
    const left = leftBy(owner);
    await writeFile(left, content.subarray(0, prefix));
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${env!.port}`, ...args], local);
    return { env: env!, local, left, leftBy, cli };
  }

  it('get -c takes over only what a process that is gone left, of this host: the largest, the others removed', async () => {
    const content = randomBytes(3 * BLOCK + 5);
    // Two left by a process that is gone: the larger is continued, the smaller removed.
    const { env, local, leftBy, cli } = await leftBehind(content, BLOCK);
    await writeFile(leftBy({ seq: 2 }), content.subarray(0, 2 * BLOCK + 10));
    // Being written by a process still running (this one), or on another host sharing the directory.
    const running = leftBy({ pid: process.pid, seq: 7 });
    const elsewhere = leftBy({ host: hostTag === '0123abcd' ? '0123abce' : '0123abcd' });
    await writeFile(running, content.subarray(0, 2 * BLOCK));
    await writeFile(elsewhere, content.subarray(0, 2 * BLOCK));

    expect(await cli('get', '-c', 'big.bin')).toMatchObject({ code: 0, stderr: '' });
    expect(env.server.stats().bytesOut).toBe(content.length - 2 * BLOCK);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
    expect((await readdir(local)).sort()).toEqual(['big.bin', basename(running), basename(elsewhere)].sort());
  }, 30_000);

  it('a plain get does not continue what a gone process left (only get -c does), and removes it once whole', async () => {
    const content = randomBytes(2 * BLOCK + 5);
    const { env, local, leftBy, cli } = await leftBehind(content, BLOCK);
    // Another target's, in the same directory: not this download's to remove.
    const other = join(
      local,
      downloadInProgressName('other.bin', {
        host: hostTag,
        pid: await goneProcessId(),
        run: 'aaaaaaaa',
        seq: 1,
      }),
    );
    await writeFile(other, content.subarray(0, BLOCK));
    const running = leftBy({ pid: process.pid, seq: 7 });
    await writeFile(running, content.subarray(0, BLOCK));
    expect(await cli('get', 'big.bin')).toMatchObject({ code: 0, stderr: '' });
    expect(env.server.stats().bytesOut).toBe(content.length);
    // Before: it stayed, hidden, until a get -c of that target.
    expect((await readdir(local)).sort()).toEqual(['big.bin', basename(other), basename(running)].sort());
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it('get -c of a target already whole does not download it again from what was left, which goes', async () => {
    const content = randomBytes(2 * BLOCK + 5);
    const { env, local, cli } = await leftBehind(content, BLOCK);
    await writeFile(join(local, 'big.bin'), content);
    expect(await cli('get', '-c', 'big.bin')).toMatchObject({ code: 0, stderr: '' });
    // Before: continued from the one block left, 8 MiB sent again; then the 5 bytes past the
    // last whole block; now nothing (found whole, as --skip-identical finds it).
    expect(env.server.stats().bytesOut).toBe(0);
    expect(await readdir(local)).toEqual(['big.bin']);
  }, 30_000);

  it.each(['--skip-unchanged', '--skip-identical'])(
    'get %s of a target already whole removes what was left for it, as a get that succeeds does',
    async (flag) => {
      const content = randomBytes(BLOCK + 5);
      const { env, local, cli } = await leftBehind(content, BLOCK);
      await writeFile(join(local, 'big.bin'), content);
      const remote = await stat(join(env.root!, 'big.bin'));
      await utimes(join(local, 'big.bin'), remote.atime, remote.mtime);
      expect(await cli('get', 'big.bin', flag)).toMatchObject({ code: 0, stderr: '' });
      expect(env.server.stats().bytesOut).toBe(0);
      // Before: the 4 MiB a killed get left stayed beside it, hidden, for good.
      expect(await readdir(local)).toEqual(['big.bin']);
    },
    30_000,
  );

  const unshareSkip = unshareRefused();

  /** `muxftp ARGS` in a pid namespace of its own, under this hostname (as a container of it). */
  function cliInOtherPidNamespace(
    args: string[],
    cwd: string,
  ): Promise<{ code: number | null; stdout: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn('unshare', [...IN_NEW_PID_NAMESPACE, process.execPath, CLI_BIN, ...args], {
        cwd,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.add(child);
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout }));
    });
  }

  it.skipIf(unshareSkip !== undefined)(
    `get -c in another pid namespace of this hostname leaves a running get's download alone${unshareSkip === undefined ? '' : ` (skipped: ${unshareSkip})`}`,
    async () => {
      env = await startServer({ backend: 'disk' });
      const content = randomBytes(3 * BLOCK + 99);
      await writeFile(join(env.root!, 'big.bin'), content);
      const local = await tempDirs.make();
      const server = `127.0.0.1:${env.port}`;
      const first = runCli(['--server', server, 'get', '--limit-rate', '4MiB', 'big.bin'], local, {
        children,
        timeoutMs: 25_000,
      });
      await until(downloadsPast(local, 1, BLOCK + MiB), '1 download past BLOCK + 1 MiB', UNDER_WAY);
      // The first get's pid runs no process in that namespace: it is not gone for that.
      const second = await cliInOtherPidNamespace(
        ['--server', server, '--json', 'get', '-c', 'big.bin'],
        local,
      );
      expect(second.code).toBe(0);
      expect(JSON.parse(second.stdout)[0].continuedFrom ?? 0).toBe(0);
      // Before: the second renamed the running get's file to its own name and continued it, two
      // writers in one file; the first then failed (LOCAL_IO_ERROR) on its file gone.
      expect(await first).toMatchObject({ code: 0, stderr: '' });
      expect(env.server.stats().bytesOut).toBe(2 * content.length);
      expect(await readdir(local)).toEqual(['big.bin']);
      expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
    },
    30_000,
  );

  it("what a get of an older muxftp left under this hostname's tag is neither taken over nor removed", async () => {
    const content = randomBytes(2 * BLOCK + 5);
    // Its pid runs nothing here, but it may in another container of this hostname: unknown.
    const { env, local, left, cli } = await leftBehind(content, BLOCK, { host: legacyHostTag() });
    expect(await cli('get', '-c', 'big.bin')).toMatchObject({
      code: 0,
      stderr: `muxftp: get big.bin: left alone: ${basename(left)}, what a get of an older muxftp was writing (its process may run in another container of this hostname); remove it once no older muxftp get runs\n`,
    });
    // Before: continued from it (4 MiB fewer sent), as if its writer were surely gone.
    expect(env.server.stats().bytesOut).toBe(content.length);
    expect((await readdir(local)).sort()).toEqual(['big.bin', basename(left)].sort());
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
    // Nor does a plain get that succeeds remove it (before: it went as a gone process's).
    expect(await cli('get', 'big.bin')).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(local)).sort()).toEqual(['big.bin', basename(left)].sort());
  }, 30_000);

  it('one left by an earlier run under the same process id (a pid reused) is continued, not collided with', async () => {
    const content = randomBytes(2 * BLOCK + 5);
    // This process's id, another run's tag: that run is over.
    const { env, local } = await leftBehind(content, BLOCK, { pid: process.pid, run: '00000000' });
    const client = await env.connect();
    // Before: its name was this run's first, so the download failed EEXIST on it, every time.
    const result = await client.get('big.bin', join(local, 'big.bin'), { continue: true, keepPartial: true });
    expect(result.size).toBe(content.length);
    expect(env.server.stats().bytesOut).toBe(content.length - BLOCK);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  /** The client library of the build (dist/), as a program that imports muxftp runs it. */
  const LIBRARY = join(import.meta.dirname, '..', 'dist', 'client', 'index.js');

  it('a library get without keepPartial killed outright leaves a name of its writer, which a later get removes once whole', async () => {
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    const content = randomBytes(4 * BLOCK + 99);
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    const script = `import { Client } from ${JSON.stringify(LIBRARY)};
const client = await Client.connect({ host: '127.0.0.1', port: ${env.port} });
await client.get('big.bin', ${JSON.stringify(join(local, 'big.bin'))});`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    children.add(child);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await until(downloadsPast(local, 1, BLOCK), '1 download past BLOCK', UNDER_WAY);
    child.kill('SIGKILL');
    await exited;
    children.delete(child);
    // Before: `.muxftp-dl-<32 hex digits>.part`, which says nothing of its writer: nothing removed it.
    await leftByKilled(local, child.pid);

    // Beside it: one an older build's plain get left (its name says no writer), one being written
    // by a process that runs, one of another host tag's, and another target's.
    const hex = 'ab'.repeat(16);
    const gone = await goneProcessId();
    const running = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    children.add(running);
    const named = (target: string, by: Partial<DownloadOwner>): string =>
      downloadInProgressName(target, { host: hostTag, pid: gone, run: 'aaaaaaaa', seq: 0, ...by });
    const stay = [
      `.muxftp-dl-${hex}.part`,
      named('big.bin', { pid: running.pid!, seq: 7 }),
      named('big.bin', { host: hostTag === '0123456789abcdef' ? 'fedcba9876543210' : '0123456789abcdef' }),
      named('other.bin', {}),
    ];
    for (const name of stay) await writeFile(join(local, name), content.subarray(0, BLOCK));

    await env.stop();
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const client = await env.connect();
    try {
      const result = await client.get('big.bin', join(local, 'big.bin'));
      expect(result.size).toBe(content.length);
    } finally {
      await client.close();
    }
    // Before: the killed get's file stayed beside the target, hidden, for good.
    expect((await readdir(local)).sort()).toEqual(['big.bin', ...stay].sort());
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  }, 30_000);

  it.skipIf(process.getuid?.() !== 0)(
    "leaves alone another user's file under such a name: neither claimed nor removed",
    async () => {
      const content = randomBytes(2 * BLOCK + 5);
      const { env, local, left, cli } = await leftBehind(content, BLOCK);
      await chown(left, 65534, 65534);
      expect(await cli('get', '-c', 'big.bin')).toMatchObject({ code: 0, stderr: '' });
      expect(env.server.stats().bytesOut).toBe(content.length);
      expect((await readdir(local)).sort()).toEqual(['big.bin', basename(left)].sort());
    },
    30_000,
  );
});

describe('a download that fails writing locally', () => {
  // The local disk's failure, injected at the file's writes once a whole block is written (a
  // full disk cannot be made here without mounting a filesystem); the rest is real.
  async function getFailingWrites(code: string): Promise<{ dir: string; error: unknown; kept: unknown[] }> {
    const content = randomBytes(3 * BLOCK);
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const dir = await tempDirs.make();
    let written = 0;
    const writeAll = SinkFile.prototype.writeAll;
    const spy = vi.spyOn(SinkFile.prototype, 'writeAll').mockImplementation(function (
      this: SinkFile,
      chunks,
    ) {
      // Writes come in groups of any size: the first past the first block fails.
      if (written >= BLOCK) return Promise.reject(Object.assign(new Error(`${code}: failed`), { code }));
      written += chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      return writeAll.call(this, chunks);
    });
    const client = await env.connect();
    const kept: unknown[] = [];
    try {
      const error = await client
        .get('big.bin', join(dir, 'big.bin'), {
          keepPartial: true,
          onPartialKept: (partial) => kept.push(partial),
        })
        .then(
          () => undefined,
          (failure: unknown) => failure,
        );
      return { dir, error, kept };
    } finally {
      spy.mockRestore();
      await client.close();
    }
  }

  it('keeps nothing when the disk is full: what it kept would be what fills it', async () => {
    const { dir, error, kept } = await getFailingWrites('ENOSPC');
    expect(error).toMatchObject({
      code: 'LOCAL_IO_ERROR',
      message: expect.stringContaining('no space left on device'),
    });
    expect(kept).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  }, 30_000);

  it('get -c continuing a kept partial puts its blocks back when the disk is full: they took no new room', async () => {
    const content = randomBytes(3 * BLOCK);
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const dir = await tempDirs.make();
    const keptPath = join(dir, downloadPartialName('big.bin'));
    await writeFile(keptPath, content.subarray(0, BLOCK));
    // A kept partial is continued in place, through a FileHandle: its writes land for a block and
    // a half past the kept one (a whole block among them), then fail as a full disk's.
    const probe = await open(keptPath, 'r');
    const fileHandles = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const realWritev = fileHandles.writev;
    const room = BLOCK + BLOCK / 2;
    let written = 0;
    const spy = vi.spyOn(fileHandles, 'writev').mockImplementation(async function (
      this: FileHandle,
      buffers: readonly NodeJS.ArrayBufferView[],
      position?: number,
    ) {
      if (written >= room)
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      // A write past the room lands in part, as on a disk filling up: on a loaded machine the
      // received chunks gather into one writev of all that is left.
      const part: Buffer[] = [];
      let taken = 0;
      for (const buffer of buffers) {
        const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
        const take = Math.min(bytes.length, room - written - taken);
        if (take <= 0) break;
        part.push(bytes.subarray(0, take));
        taken += take;
      }
      const result = await realWritev.call(this, part, position);
      written += result.bytesWritten;
      return { bytesWritten: result.bytesWritten, buffers: [...buffers] };
    });
    const client = await env.connect();
    const kept: unknown[] = [];
    try {
      const error = await client
        .get('big.bin', join(dir, 'big.bin'), {
          continue: true,
          keepPartial: true,
          onPartialKept: (partial) => kept.push(partial),
        })
        .then(
          () => undefined,
          (failure: unknown) => failure,
        );
      expect(error).toMatchObject({
        code: 'LOCAL_IO_ERROR',
        message: expect.stringContaining('no space left'),
      });
    } finally {
      spy.mockRestore();
    }
    // Before: removed with the failure, and the block an earlier run received with it (found by
    // a get -c into a full tmpfs: a 4 MiB partial gone, and nothing said so). Only what it
    // continued from: what it wrote on a disk filling up goes, as with a fresh download.
    expect(written).toBeGreaterThanOrEqual(BLOCK);
    expect(kept).toEqual([{ path: keptPath, bytes: BLOCK }]);
    expect(await readdir(dir)).toEqual([downloadPartialName('big.bin')]);
    expect((await readFile(keptPath)).equals(content.subarray(0, BLOCK))).toBe(true);
    const result = await client.get('big.bin', join(dir, 'big.bin'), { continue: true, keepPartial: true });
    await client.close();
    expect(result.continuedFrom).toBe(BLOCK);
    expect(await readdir(dir)).toEqual(['big.bin']);
    expect((await readFile(join(dir, 'big.bin'))).equals(content)).toBe(true);
  }, 30_000);

  it('keeps the whole blocks for get -c after another write failure', async () => {
    const { dir, error, kept } = await getFailingWrites('EIO');
    expect(error).toMatchObject({ code: 'LOCAL_IO_ERROR' });
    const path = join(dir, downloadPartialName('big.bin'));
    expect(kept).toEqual([{ path, bytes: expect.any(Number) }]);
    const { bytes } = kept[0] as { bytes: number };
    expect(bytes % BLOCK).toBe(0);
    expect(bytes).toBeGreaterThanOrEqual(BLOCK);
    expect((await stat(path)).size).toBe(bytes);
    expect(await readdir(dir)).toEqual([downloadPartialName('big.bin')]);
  }, 30_000);
});

describe('a directory where the downloaded file goes', () => {
  it('fails the get before a byte comes, as the rename onto it would have after all of them; a link to one is replaced', async () => {
    const content = randomBytes(2 * BLOCK + 5);
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const dir = await tempDirs.make();
    await mkdir(join(dir, 'big.bin', 'inside'), { recursive: true });
    const client = await env.connect();
    for (const options of [{ keepPartial: true }, { keepPartial: true, continue: true }, {}]) {
      let received = 0;
      const error = await client
        .get('big.bin', join(dir, 'big.bin'), {
          ...options,
          onProgress: (done) => {
            received = Math.max(received, done);
          },
        })
        .then(
          () => undefined,
          (failure: unknown) => failure,
        );
      expect(error).toMatchObject({
        code: 'LOCAL_IO_ERROR',
        message: `is a directory: ${join(dir, 'big.bin')}`,
        cause: { code: 'EISDIR' },
      });
      // It downloaded all of it, then failed the rename and kept nothing.
      expect(received).toBe(0);
      expect((await readdir(dir)).sort()).toEqual(['big.bin']);
      expect(await readdir(join(dir, 'big.bin'))).toEqual(['inside']);
    }
    // A symbolic link to a directory is no directory there: replaced by the file, as before.
    await symlink(join(dir, 'big.bin'), join(dir, 'link.bin'));
    await client.get('big.bin', join(dir, 'link.bin'), { keepPartial: true });
    expect(sha256(await readFile(join(dir, 'link.bin')))).toBe(sha256(content));
    expect((await lstat(join(dir, 'link.bin'))).isFile()).toBe(true);
    expect(await readdir(join(dir, 'big.bin'))).toEqual(['inside']);
  });
});

describe('get -c of a partial file under the real name that fails for good', () => {
  it('keeps the copy with what arrived under the kept name, leaves the file as it was, and the next get -c continues the copy', async () => {
    const content = randomBytes(4 * BLOCK + 9);
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    await writeFile(join(env.root!, 'big.bin'), content);
    const dir = await tempDirs.make();
    const target = join(dir, 'big.bin');
    const mine = content.subarray(0, BLOCK + 100);
    await writeFile(target, mine);
    const client = await env.connect();
    const dropped = client.get('big.bin', target, {
      continue: true,
      keepPartial: true,
      onProgress: (done) => {
        if (done > 2 * BLOCK + MiB) void client.destroy();
      },
    });
    await expect(dropped).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(sha256(await readFile(target))).toBe(sha256(mine));
    const kept = await readFile(join(dir, downloadPartialName('big.bin')));
    expect(kept.length).toBeGreaterThanOrEqual(2 * BLOCK);
    expect(kept.length % BLOCK).toBe(0);
    expect(sha256(kept)).toBe(sha256(content.subarray(0, kept.length)));

    const before = env.server.stats().bytesOut;
    await (await env.connect()).get('big.bin', target, { continue: true, keepPartial: true });
    expect(env.server.stats().bytesOut - before).toBe(content.length - kept.length);
    expect(sha256(await readFile(target))).toBe(sha256(content));
    expect(await readdir(dir)).toEqual(['big.bin']);
  }, 30_000);
});

describe('what get and get -c do with a kept partial', () => {
  /** A disk server holding `content` at big.bin, and a local dir with `partial` kept for big.bin. */
  async function withKept(content: Buffer, partial: Buffer): Promise<string> {
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    await writeFile(join(local, downloadPartialName('big.bin')), partial);
    return local;
  }

  it('one of another version is not spliced: get -c says so, starts over, and the file is the server’s', async () => {
    const content = randomBytes(3 * BLOCK + 10);
    const older = Buffer.from(content.subarray(0, 2 * BLOCK));
    older[BLOCK + 3] = older[BLOCK + 3]! ^ 0xff; // its second block differs
    const local = await withKept(content, older);
    const run = await runCli(['--server', `127.0.0.1:${env!.port}`, 'get', '-c', 'big.bin'], local);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(
      /get big\.bin: the partial download kept for it differs from the server's file at block 1 .*starting over/,
    );
    expect(env!.server.stats().bytesOut).toBe(content.length);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  });

  it('get -c continues the kept partial before a partial file under the real name, which it leaves until the end', async () => {
    const content = randomBytes(3 * BLOCK + 10);
    const local = await withKept(content, content.subarray(0, 2 * BLOCK));
    await writeFile(join(local, 'big.bin'), content.subarray(0, BLOCK));
    const run = await runCli(['--server', `127.0.0.1:${env!.port}`, 'get', '-c', 'big.bin'], local);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(env!.server.stats().bytesOut).toBe(content.length - 2 * BLOCK);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  });

  it('a symbolic link planted at the kept name is not followed: the file it leads to is left alone', async () => {
    const content = randomBytes(2 * BLOCK + 10);
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    const elsewhere = await tempDirs.make();
    // A file of the user's whose first block is the server's: followed, it would be cut and written.
    const precious = Buffer.concat([content.subarray(0, BLOCK), Buffer.from('mine')]);
    await writeFile(join(elsewhere, 'precious'), precious);
    await symlink(join(elsewhere, 'precious'), join(local, downloadPartialName('big.bin')));
    const run = await runCli(['--server', `127.0.0.1:${env.port}`, 'get', '-c', 'big.bin'], local);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(sha256(await readFile(join(elsewhere, 'precious')))).toBe(sha256(precious));
    expect(env.server.stats().bytesOut).toBe(content.length);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  });

  it('a hard link at the kept name is not written in place: its other name is left alone', async () => {
    const content = randomBytes(2 * BLOCK + 10);
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'big.bin'), content);
    const local = await tempDirs.make();
    // A snapshot of the directory made with hard links (cp -al, rsnapshot) holds the same file.
    const snapshot = join(local, 'snapshot.part');
    const partial = Buffer.from(content.subarray(0, BLOCK));
    await writeFile(snapshot, partial);
    await link(snapshot, join(local, downloadPartialName('big.bin')));
    const run = await runCli(['--server', `127.0.0.1:${env.port}`, 'get', '-c', 'big.bin'], local);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(sha256(await readFile(snapshot))).toBe(sha256(partial));
    expect(env.server.stats().bytesOut).toBe(content.length);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
    expect((await stat(join(local, 'big.bin'))).nlink).toBe(1);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "one another user owns is not continued in place: the target is this user's, not theirs",
    async () => {
      const content = randomBytes(2 * BLOCK + 10);
      const local = await withKept(content, content.subarray(0, BLOCK));
      // Planted in a directory others may write, with the server's first block (public, say).
      await chown(join(local, downloadPartialName('big.bin')), 65534, 65534);
      const run = await runCli(['--server', `127.0.0.1:${env!.port}`, 'get', '-c', 'big.bin'], local);
      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect((await stat(join(local, 'big.bin'))).uid).toBe(process.getuid!());
      expect(env!.server.stats().bytesOut).toBe(content.length);
      expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
    },
  );

  it('get --skip-identical of a target already whole removes what was kept for it', async () => {
    const content = randomBytes(BLOCK + 10);
    const local = await withKept(content, content.subarray(0, BLOCK));
    await writeFile(join(local, 'big.bin'), content);
    const run = await runCli(
      ['--server', `127.0.0.1:${env!.port}`, 'get', 'big.bin', '--skip-identical'],
      local,
    );
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(env!.server.stats().bytesOut).toBe(0);
    expect(await readdir(local)).toEqual(['big.bin']);
  });

  it('through the library, continue without keepPartial still keeps again what it took over when it fails', async () => {
    const content = randomBytes(4 * BLOCK);
    const dir = await tempDirs.make();
    env = await startServer({ backend: 'disk', maxRateBytesPerSecond: 4 * MiB });
    await writeFile(join(env.root!, 'big.bin'), content);
    await writeFile(join(dir, downloadPartialName('big.bin')), content.subarray(0, BLOCK));
    const client = await env.connect();
    const dropped = client.get('big.bin', join(dir, 'big.bin'), {
      continue: true,
      onProgress: (done) => {
        if (done > 2 * BLOCK + MiB) void client.destroy();
      },
    });
    await expect(dropped).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(await readdir(dir)).toEqual([downloadPartialName('big.bin')]);
    const kept = await readFile(join(dir, downloadPartialName('big.bin')));
    expect(kept.length).toBeGreaterThanOrEqual(2 * BLOCK);
    expect(sha256(kept)).toBe(sha256(content.subarray(0, kept.length)));
  }, 30_000);

  it('a plain get does not continue it: it downloads everything and removes it on success', async () => {
    const content = randomBytes(2 * BLOCK + 10);
    const local = await withKept(content, content.subarray(0, 2 * BLOCK));
    const run = await runCli(['--server', `127.0.0.1:${env!.port}`, 'get', 'big.bin'], local);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(env!.server.stats().bytesOut).toBe(content.length);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(sha256(await readFile(join(local, 'big.bin')))).toBe(sha256(content));
  });
});

describe('get -c whose download fails its final check', () => {
  /**
   * A stand-in server whose one file, `f.bin`, always fails the client's final check: REPLY offers
   * no kept block (offset 0), then every byte, then an END with a wrong digest.
   */
  async function failingDigestServer(content: Buffer, offsets: unknown[]): Promise<number> {
    const { server, port } = await startScriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      const request = JSON.parse(frame.payload.toString()) as { op: string; offset?: number };
      const entry = { name: 'f.bin', type: 'file', size: content.length, mtime: 1_700_000_000_000 };
      if (request.op === 'stat') {
        socket.write(encodeReply(frame.streamId, { entry }));
      } else if (request.op === 'get') {
        offsets.push(request.offset);
        socket.write(
          encodeReply(frame.streamId, { size: content.length, mtime: entry.mtime, offset: 0, blocks: [] }),
        );
        socket.write(encodeData(frame.streamId, content));
        socket.write(encodeEnd(frame.streamId, content.length, 'xxh128', Buffer.alloc(16)));
      }
    });
    scripted = server;
    return port;
  }

  it('does not tell the user to remove a local file it did not refuse (a kept partial was continued, or none)', async () => {
    const content = randomBytes(1000);
    const offsets: unknown[] = [];
    const port = await failingDigestServer(content, offsets);
    const local = await tempDirs.make();
    // What an earlier failed get kept: claimed by the first get -c (which asks for its block);
    // the second finds nothing kept and no local file.
    await writeFile(join(local, downloadPartialName('f.bin')), randomBytes(BLOCK));
    for (let i = 0; i < 2; i++) {
      const run = await runCli(
        ['--server', `127.0.0.1:${port}`, 'get', '-c', 'f.bin', '--retries', '0'],
        local,
      );
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        /muxftp: get f\.bin: download failed verification: xxh128 digest mismatch \(INTEGRITY_ERROR\)\n/,
      );
      expect(run.stderr).not.toMatch(/remove the local file/);
      // Nothing under the real name, no temporary file; nothing kept of bytes that failed their check.
      expect(await readdir(local)).toEqual([]);
    }
    expect(offsets).toEqual([BLOCK, undefined]);
  });

  it('still says what to do when it refused the local file under the real name (another version)', async () => {
    env = await startServer({ backend: 'disk' });
    const content = randomBytes(BLOCK + 10);
    await writeFile(join(env.root!, 'f.bin'), content);
    const local = await tempDirs.make();
    const mine = randomBytes(BLOCK);
    await writeFile(join(local, 'f.bin'), mine);
    const run = await runCli(['--server', `127.0.0.1:${env.port}`, 'get', '-c', 'f.bin'], local);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "muxftp: get f.bin: the local partial file differs from the server's at block 0 (another version?): not continued, left as it was (INTEGRITY_ERROR); remove the local file, or get without -c to replace it\n",
    );
    expect(await readdir(local)).toEqual(['f.bin']);
    expect(sha256(await readFile(join(local, 'f.bin')))).toBe(sha256(mine));
  });
});

describe('get -r -c continuing a sync', () => {
  it('downloads afresh, with a line, the files found in the tree that changed on the server since; continues the partial ones', async () => {
    env = await startServer({ backend: 'disk' });
    const tree = join(env.root!, 'tree');
    await mkdir(tree);
    const changed = randomBytes(BLOCK + 10);
    const shrunk = randomBytes(BLOCK + 5);
    const partial = randomBytes(2 * BLOCK + 3);
    await writeFile(join(tree, 'changed.bin'), changed);
    await writeFile(join(tree, 'shrunk.bin'), shrunk);
    await writeFile(join(tree, 'partial.bin'), partial);
    const local = await tempDirs.make();
    await mkdir(join(local, 'tree'));
    // An older complete copy of each of two files that changed on the server, and a partial copy.
    await writeFile(join(local, 'tree', 'changed.bin'), randomBytes(BLOCK + 10));
    await writeFile(join(local, 'tree', 'shrunk.bin'), randomBytes(BLOCK + 100));
    await writeFile(join(local, 'tree', 'partial.bin'), partial.subarray(0, BLOCK + 7));
    const run = await runCli(
      ['--server', `127.0.0.1:${env.port}`, 'get', '-r', '-c', 'tree', '-j', '1'],
      local,
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(
      "muxftp: get tree/changed.bin: the local file differs from the server's at block 0 (another version of it): downloading it afresh\n",
    );
    expect(run.stderr).toContain(
      `muxftp: get tree/shrunk.bin: the local file is larger than the server's (${BLOCK + 100} > ${BLOCK + 5} bytes), so it is not a partial copy of it: downloading it afresh\n`,
    );
    expect(run.stderr).not.toMatch(/partial\.bin/);
    for (const [name, content] of [
      ['changed.bin', changed],
      ['shrunk.bin', shrunk],
      ['partial.bin', partial],
    ] as const)
      expect(sha256(await readFile(join(local, 'tree', name))), name).toBe(sha256(content));
    expect((await readdir(join(local, 'tree'))).sort()).toEqual(['changed.bin', 'partial.bin', 'shrunk.bin']);
  });

  it('a file the user named is still refused under -r', async () => {
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'f.bin'), randomBytes(BLOCK + 10));
    const local = await tempDirs.make();
    const mine = randomBytes(BLOCK + 10);
    await writeFile(join(local, 'f.bin'), mine);
    const run = await runCli(['--server', `127.0.0.1:${env.port}`, 'get', '-r', '-c', 'f.bin'], local);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /differs from the server's at block 0 \(another version\?\): not continued, left as it was \(INTEGRITY_ERROR\)/,
    );
    expect(sha256(await readFile(join(local, 'f.bin')))).toBe(sha256(mine));
  });

  it('the library refuses it as LocalPartialRefusedError, or replaces it when asked', async () => {
    env = await startServer({ backend: 'disk' });
    const theirs = randomBytes(BLOCK + 10);
    await writeFile(join(env.root!, 'f.bin'), theirs);
    const local = await tempDirs.make();
    const mine = randomBytes(BLOCK + 10);
    const target = join(local, 'f.bin');
    await writeFile(target, mine);
    const client = await env.connect();
    const refused = await client.get('f.bin', target, { continue: true }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(LocalPartialRefusedError);
    expect(refused).toMatchObject({ code: 'INTEGRITY_ERROR' });
    expect(sha256(await readFile(target))).toBe(sha256(mine));
    const restarts: string[] = [];
    const result = await client.get('f.bin', target, {
      continue: true,
      replaceDiffering: true,
      onRestart: (reason) => restarts.push(reason),
    });
    expect(result.continuedFrom ?? 0).toBe(0);
    expect(restarts).toEqual([
      expect.stringMatching(/differs from the server's at block 0.*downloading it afresh/),
    ]);
    expect(sha256(await readFile(target))).toBe(sha256(theirs));
  });
});

describe('put -r of a tree that holds what a failed get kept', () => {
  it('uploads the tree without it (the server reserves such names) and exits 0', async () => {
    env = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'tree'));
    await writeFile(join(local, 'tree', 'a.txt'), 'a');
    await writeFile(join(local, 'tree', downloadPartialName('big.bin')), randomBytes(100));
    const run = await runCli(['--server', `127.0.0.1:${env.port}`, 'put', '-r', 'tree'], local);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(await readdir(join(env.root!, 'tree'))).toEqual(['a.txt']);
  });
});

describe('stdin and stdout refuse what needs a local file', () => {
  it.each([
    [['put', '-', 'x.bin', '-c'], /-c\/--continue does not apply to stdin \('-'\)/],
    [['put', '-', 'x.bin', '--skip-identical'], /--skip-identical does not apply to stdin \('-'\)/],
    [['put', 'a', '-', '--to', 'd/', '--continue'], /-c\/--continue does not apply to stdin \('-'\)/],
    [['get', 'x.bin', '-', '-c'], /-c\/--continue does not apply to stdout \('-'\)/],
    [['get', 'x.bin', '-', '--skip-identical'], /--skip-identical does not apply to stdout \('-'\)/],
  ])('muxftp %j: a usage error, exit 2', async (args, message) => {
    const run = await runCli(args, await tempDirs.make(), { stdin: 'not read' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  });

  it('a remote file named - is no stdin: put FILE - -c is allowed past the usage check', async () => {
    // Nothing listens there: the command gets as far as connecting (exit 3, not 2).
    const run = await runCli(
      ['--server', '127.0.0.1:1', 'put', 'a.txt', '-', '-c', '--retries', '0'],
      await tempDirs.make(),
    );
    expect(run.code).toBe(3);
  });
});
