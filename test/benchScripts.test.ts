/**
 * The benchmark scripts in bench/, run with tiny sizes: they end, say what failed, and leave no
 * process or temporary directory behind. Real child processes on 127.0.0.1. Needs dist/ (npm run
 * build).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const made: string[] = [];

afterEach(async () => {
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh TMPDIR for one script run: what is left in it afterwards, the script left behind. */
async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'muxftp-bench-scripts-'));
  made.push(dir);
  return dir;
}

interface ScriptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}

/**
 * Runs bench/`script` in its own process group (a hung run is killed with everything it started);
 * `signalWhen`, once it resolves, sends `signal` to the script alone.
 */
function runScript(
  script: string,
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    timeoutMs: number;
    signalWhen?: Promise<unknown>;
    signal?: NodeJS.Signals;
    /** After the first `signal`, sends it again every this many ms until the script is gone. */
    signalAgainEveryMs?: number;
    /** `ulimit -n` for the script and what it starts. */
    descriptorLimit?: number;
  },
): Promise<ScriptRun> {
  const command = [process.execPath, join(REPO, 'bench', script), ...args];
  const limited =
    options.descriptorLimit === undefined
      ? command
      : ['/bin/sh', '-c', `ulimit -n ${options.descriptorLimit} && exec "$0" "$@"`, ...command];
  const child = spawn(limited[0]!, limited.slice(1), {
    cwd: REPO,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), options.timeoutMs);
  let again: NodeJS.Timeout | undefined;
  void options.signalWhen?.then(() => {
    child.kill(options.signal ?? 'SIGINT');
    if (options.signalAgainEveryMs !== undefined && child.exitCode === null && child.signalCode === null)
      again = setInterval(() => child.kill(options.signal ?? 'SIGINT'), options.signalAgainEveryMs);
  });
  return new Promise((resolve) => {
    child.once('exit', () => clearInterval(again));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, pid: child.pid! });
    });
  });
}

/** True while any process of the group `pid` led is alive, after up to 2 s for the killed to go. */
async function groupAlive(pid: number): Promise<boolean> {
  for (const started = Date.now(); ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    try {
      process.kill(-pid, 0);
    } catch {
      return false;
    }
    if (Date.now() - started > 2_000) return true;
  }
}

/** The client-side payload directories bench/cli.mjs makes in /dev/shm (tmpfs: memory). */
async function shmPayloadDirs(): Promise<string[]> {
  const names = await readdir('/dev/shm').catch(() => [] as string[]);
  return names.filter((name) => name.startsWith('muxftp-cli-client-'));
}

describe('bench/cli.mjs', () => {
  it('a server that cannot start (--baseline of a checkout without bin/) is an error of that tool', async () => {
    const tmp = await scratch();
    const baseline = await scratch();
    const shmBefore = await shmPayloadDirs();
    const tiny = ['--workloads', 'put-big', '--big-mib', '1', '--files', '1', '--file-mib', '0.01'];
    const result = await runScript('cli.mjs', ['--tools', 'muxftp', ...tiny, '--baseline', baseline], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
    });
    // It waited on the server's stdout, which closed without a line: node ended it with exit 13
    // ("unsettled top-level await"), no table, its server root and /dev/shm payloads left behind.
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/^put one 1 MiB +[\d.]+ /m);
    expect(result.stdout).toContain(
      `round 1 muxftp before: muxftp serve exited (1) before listening: Error: Cannot find module '${baseline}/bin/muxftp.js'`,
    );
    expect(await readdir(tmp)).toEqual([]);
    expect(await shmPayloadDirs()).toEqual(shmBefore);
    expect(await groupAlive(result.pid)).toBe(false);
  }, 70_000);
});

describe('bench/cli.mjs options', () => {
  it('refuses a number not in decimal, or a fraction of a count, before measuring anything', async () => {
    // Number() took 0x10 as 16 rounds, '' as 0 and `abc` as NaN (no rounds, exit 0); 0.5 floored to 0.
    for (const [script, args, stderr] of [
      [
        'cli.mjs',
        ['--rounds', '0x10'],
        'bench:cli: --rounds must be a positive integer in decimal, not "0x10"\n',
      ],
      [
        'cli.mjs',
        ['--rounds', '0.5'],
        'bench:cli: --rounds must be a positive integer in decimal, not "0.5"\n',
      ],
      ['cli.mjs', ['--file-mib', ''], 'bench:cli: --file-mib must be a positive number in decimal, not ""\n'],
      [
        'fuzz.mjs',
        ['--sessions', '0x10'],
        'fuzz: --sessions must be a non-negative integer in decimal, not "0x10"\n',
      ],
      [
        'metricsOverhead.mjs',
        ['--rounds', 'abc'],
        'bench:metrics: --rounds must be a positive integer in decimal, not "abc"\n',
      ],
    ] as const) {
      const refused = await runScript(script, [...args], { timeoutMs: 30_000 });
      expect(refused).toMatchObject({ code: 2, stderr, stdout: '' });
    }
  });

  it('refuses an unknown --tools or --workloads name (a typo measured nothing and exited 0)', async () => {
    const tmp = await scratch();
    const tiny = ['--big-mib', '1', '--files', '1', '--file-mib', '0.01'];
    const workload = await runScript('cli.mjs', ['--tools', 'muxftp', '--workloads', 'put_big', ...tiny], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
    });
    expect(workload.code).toBe(2);
    expect(workload.stderr).toBe(
      'bench:cli: unknown --workloads put_big (known: put-many,get-many,put-big,get-big,put-small,get-small,bench-up,bench-down)\n',
    );
    expect(workload.stdout).toBe('');
    const tool = await runScript('cli.mjs', ['--tools', 'muxftp,curl', '--workloads', 'put-big', ...tiny], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
    });
    expect(tool.code).toBe(2);
    expect(tool.stderr).toMatch(
      /^bench:cli: unknown --tools curl \(known: muxftp,pyftpdlib,vsftpd,node\)\n$/,
    );
    expect(await readdir(tmp)).toEqual([]);
  }, 130_000);
});

/** Resolves once `dir` holds an entry whose name starts with `prefix` (polls; gives up after 15 s). */
async function appears(dir: string, prefix: string): Promise<void> {
  for (const started = Date.now(); Date.now() - started < 15_000; ) {
    if ((await readdir(dir)).some((name) => name.startsWith(prefix))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('bench/fuzz.mjs stopped', () => {
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`by ${signal}: stops its server, removes its directory, exits ${code}`, async () => {
      const tmp = await scratch();
      // Its server has started and the fuzzing is under way.
      const underWay = appears(tmp, 'muxftp-fuzz-').then(() => new Promise((r) => setTimeout(r, 1_000)));
      const result = await runScript('fuzz.mjs', ['--duration', '30s', '--sessions', '100000'], {
        env: { TMPDIR: tmp },
        timeoutMs: 20_000,
        signalWhen: underWay,
        signal,
      });
      expect(result.code).toBe(code);
      expect(await readdir(tmp)).toEqual([]);
      expect(await groupAlive(result.pid)).toBe(false);
    }, 25_000);

    it(`by ${signal} again and again: still stops its server and removes its directory`, async () => {
      const tmp = await scratch();
      const underWay = appears(tmp, 'muxftp-fuzz-').then(() => new Promise((r) => setTimeout(r, 1_000)));
      // The handler was once-only: a second signal while it waited for the server to exit got the
      // default action, and the directory stayed behind.
      const result = await runScript('fuzz.mjs', ['--duration', '30s', '--sessions', '100000'], {
        env: { TMPDIR: tmp },
        timeoutMs: 20_000,
        signalWhen: underWay,
        signal,
        signalAgainEveryMs: 2,
      });
      expect(result).toMatchObject({ code, signal: null });
      expect(await readdir(tmp)).toEqual([]);
      expect(await groupAlive(result.pid)).toBe(false);
    }, 25_000);
  }
});

/** Resolves once a bench --local --tls is under way: its server's certificate beside the script's own. */
async function tlsBenchUnderWay(tmp: string): Promise<void> {
  for (const started = Date.now(); Date.now() - started < 30_000; ) {
    const certificates = (await readdir(tmp)).filter((name) => name.startsWith('muxftp-bench-tls-'));
    if (certificates.length >= 2) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('bench/tls.mjs', () => {
  const tiny = ['--rounds', '1', '--files', '2', '--file-mib', '1', '--clients', '1'];

  it('a run that fails removes its throwaway certificate (its private key stayed in the temp dir)', async () => {
    const tmp = await scratch();
    // A run failing after its certificate is made: the bench's own server cannot start under 80
    // descriptors (it needs some 112), where node's sockets measured before it can. (`--big-mib x`
    // did it once; the script now refuses it before making the certificate, 10390ec.)
    const result = await runScript('tls.mjs', [...tiny, '--big-mib', '1'], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
      descriptorLimit: 80,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /muxftp bench .* exited 1: muxftp: could not start a local server: serve: the open-file limit/,
    );
    expect(await readdir(tmp)).toEqual([]);
  }, 70_000);

  it('runs to its table with sizes in any decimal it takes (.5, 1e-1), passed on to the bench in bytes', async () => {
    const tmp = await scratch();
    // The script took `.5` and `1e-1`, then built `--size .5MiB`, which muxftp bench refuses.
    const args = ['--rounds', '1', '--files', '2', '--clients', '1', '--big-mib', '.5', '--file-mib', '1e-1'];
    const result = await runScript('tls.mjs', args, { env: { TMPDIR: tmp }, timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('| 1 stream, 0.5 MiB | upload |');
    expect(result.stdout).toContain('| 2 × 0.1 MiB, 1 conn × 2 streams | download |');
    expect(await readdir(tmp)).toEqual([]);
  }, 70_000);

  it('stopped by SIGTERM: stops the bench under way, removes its certificate, exits 143', async () => {
    const tmp = await scratch();
    const underWay = appears(tmp, 'muxftp-bench-tls-').then(() => new Promise((r) => setTimeout(r, 1_500)));
    const result = await runScript('tls.mjs', [...tiny, '--big-mib', '64'], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
      signalWhen: underWay,
      signal: 'SIGTERM',
    });
    expect(result.code).toBe(143);
    // Its own certificate, and the one the bench's --local --tls server made.
    expect(await readdir(tmp)).toEqual([]);
    expect(await groupAlive(result.pid)).toBe(false);
  }, 70_000);

  it("stopped by SIGTERM while a bench --local --tls runs: exits 143, not 1 with the bench's exit as its error", async () => {
    const tmp = await scratch();
    const result = await runScript('tls.mjs', [...tiny, '--big-mib', '64'], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
      signalWhen: tlsBenchUnderWay(tmp),
      signal: 'SIGTERM',
    });
    // The bench's close (it exited 143) rejected the run, which raced the handler to exit 1.
    expect(result, result.stderr).toMatchObject({ code: 143, signal: null, stderr: '' });
    expect(await readdir(tmp)).toEqual([]);
    expect(await groupAlive(result.pid)).toBe(false);
  }, 70_000);

  it('SIGTERM again and again while the bench under way stops: still removes its certificate, exits 143', async () => {
    const tmp = await scratch();
    // The handler was once-only: the next SIGTERM, while it waited for the bench to stop, got the
    // default action, and the script's private key stayed in the temp dir.
    const result = await runScript('tls.mjs', [...tiny, '--big-mib', '64'], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
      signalWhen: tlsBenchUnderWay(tmp),
      signal: 'SIGTERM',
      signalAgainEveryMs: 20,
    });
    expect(result).toMatchObject({ code: 143, signal: null });
    expect(await readdir(tmp)).toEqual([]);
    expect(await groupAlive(result.pid)).toBe(false);
  }, 70_000);
});

describe('bench/cli.mjs stopped', () => {
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`by ${signal}: stops its servers, removes its directories, exits ${code}`, async () => {
      const tmp = await scratch();
      const shmBefore = await shmPayloadDirs();
      // A server root made: a round is under way.
      const underWay = appears(tmp, 'muxftp-cli-root-').then(() => new Promise((r) => setTimeout(r, 300)));
      const args = ['--tools', 'muxftp', '--workloads', 'put-many', '--files', '400', '--file-mib', '0.01'];
      const result = await runScript('cli.mjs', [...args, '--big-mib', '1', '--rounds', '50'], {
        env: { TMPDIR: tmp },
        timeoutMs: 60_000,
        signalWhen: underWay,
        signal,
      });
      expect(result.code).toBe(code);
      expect(await readdir(tmp)).toEqual([]);
      expect(await shmPayloadDirs()).toEqual(shmBefore);
      expect(await groupAlive(result.pid)).toBe(false);
    }, 70_000);
  }
});

describe('bench/integrity.mjs', () => {
  it('takes a size that is not a multiple of a 4 MiB block (--size-mib 1 threw RangeError)', async () => {
    const result = await runScript('integrity.mjs', ['--size-mib', '1', '--rounds', '1'], {
      timeoutMs: 60_000,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^1 MiB per run, best of 1,/m);
    expect(result.stdout).toMatch(/^sha256 blocks on 2 worker thread\(s\) +wall GB\/s +\d/m);
  }, 70_000);
});

describe('bench/resync.mjs', () => {
  it('a --baseline server that cannot start is an error of that build: the run ended, its root left', async () => {
    const tmp = await scratch();
    const baseline = await scratch(); // no bin/muxftp.js in it
    // No package is installed or looked for: dpkg-query and apt-get that fail (no rsync rows).
    const fakeBin = await scratch();
    for (const tool of ['apt-get', 'dpkg-query']) {
      await writeFile(join(fakeBin, tool), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    }
    const args = ['--rounds', '1', '--dirs', '1', '--files', '2', '--baseline', baseline];
    const result = await runScript('resync.mjs', args, {
      env: { TMPDIR: tmp, PATH: `${fakeBin}:${process.env.PATH}` },
      timeoutMs: 60_000,
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/^put --skip-unchanged +[\d.]+ +- *$/m);
    expect(result.stdout).toContain(
      `round 1 muxftp before: muxftp serve exited (1) before listening: Error: Cannot find module '${baseline}/bin/muxftp.js'`,
    );
    expect(await readdir(tmp)).toEqual([]);
  }, 70_000);
});
