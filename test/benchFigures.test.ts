/**
 * `muxftp bench`: the figures its report gives and the options it takes, from short real runs of
 * the CLI against a --local server (a child process on 127.0.0.1). Needs dist/ (npm run build).
 */
import { constants } from 'node:buffer';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, startServeChild, stopChildren } from './helpers/cliProcess.js';
import { delay } from './helpers/waits.js';

const run = promisify(execFile);

/** Runs the CLI with `args`: its exit code, stdout and stderr, whether it fails or not. */
async function muxftp(
  args: string[],
  options: { timeout?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI_BIN, ...args], {
      timeout: 60_000,
      ...options,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const bench = (...args: string[]) => muxftp(['bench', '--local', ...args]);

/**
 * Runs `bench --local ARGS` with `preload` (CommonJS source, in a temporary file removed after)
 * required in bench's node process and every one it starts; `timeout` in ms.
 */
async function benchWithPreload(
  preload: string,
  args: string[],
  timeout = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'muxftp-bench-preload-'));
  try {
    const file = join(dir, 'preload.cjs');
    writeFileSync(file, preload);
    return await muxftp(['bench', '--local', ...args], {
      timeout,
      env: { ...process.env, NODE_OPTIONS: `--require ${file}` },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('muxftp bench --local', () => {
  it("says why its server could not start (serve's own reason), not an internal error with a stack", async () => {
    // Under `ulimit -n 80` serve refuses to start; its stderr was thrown away, and bench said
    // "internal error: Error: could not start a local server: it exited" and a stack.
    let result: { code: number; stderr: string };
    try {
      await run(
        '/bin/sh',
        ['-c', 'ulimit -n 80 && exec "$0" "$@"', process.execPath, CLI_BIN, 'bench', '--local'],
        {
          timeout: 30_000,
        },
      );
      result = { code: 0, stderr: '' };
    } catch (error) {
      result = error as { code: number; stderr: string };
    }
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^muxftp: could not start a local server: serve: the open-file limit \(ulimit -n 80\) leaves .* raise it to \d+ or more/,
    );
    expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
  });

  it("says a crash's error, not the last line of what the crashed server wrote", async () => {
    // The server process crashes as it loads (a preload throws in it alone): node writes the
    // error, its stack and `Node.js v20.x` last, which bench gave as the reason.
    const result = await benchWithPreload(
      "if (/localServerProcess\\.js$/.test(process.argv[1] ?? '')) throw new Error('boom in the server');\n",
      [],
      30_000,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('muxftp: could not start a local server: Error: boom in the server\n');
  });
});

describe('muxftp bench report', () => {
  it('counts the load-generator threads it ran, not the ones asked for beyond --clients', async () => {
    // One client runs on one thread: the report said "4 workers" (and the HTML "4 threads").
    const { code, stdout } = await bench(
      '--op',
      'upload',
      '--clients',
      '1',
      '--workers',
      '4',
      '--size',
      '1KiB',
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/^muxftp bench: upload, 1 client × 1 stream, 1 KiB, 1 worker\n/);
    const json = await bench(
      '--op',
      'upload',
      '--clients',
      '2',
      '--workers',
      '4',
      '--size',
      '1KiB',
      '--json',
    );
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, workers: 2 });
  });
});

describe('muxftp bench options that make no sense', () => {
  it('refuses a --mix above 100 % (it was taken as 100: downloads only)', async () => {
    const over = await bench('--op', 'mixed', '--mix', '150', '--size', '1KiB');
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/--mix <percent>.*150.*expected a percentage \(0 to 100\)/);
    expect(over.stdout).toBe('');
  });

  it('refuses numbers not in decimal (Number() took --mix 0x10 as 16), and a fraction of an error', async () => {
    for (const [option, value, message] of [
      ['--mix', '0x10', /--mix <percent>.*0x10.*expected a percentage/],
      ['--max-errors', '0x10', /--max-errors <n>.*0x10.*expected a non-negative integer/],
      ['--max-errors', '1.5', /--max-errors <n>.*1\.5.*expected a non-negative integer/],
      ['--min-mbps', '0b11', /--min-mbps <x>.*0b11.*expected a decimal number/],
      ['--max-p99', '', /--max-p99 <ms>.*expected a decimal number/],
    ] as const) {
      const refused = await bench('--op', 'mixed', option, value, '--size', '1KiB');
      expect(refused.code, `${option} ${value}`).toBe(2);
      expect(refused.stderr).toMatch(message);
      expect(refused.stdout).toBe('');
    }
  });

  it("refuses --files past 2^31 − 1 (the workers' Int32 counter wrapped: the run never ended)", async () => {
    const over = await bench('--files', '2147483648', '--size', '1KiB');
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/--files <n>.*2147483648.*expected at most 2147483647/);
    expect(over.stdout).toBe('');
  });

  // Node 20's limit, 4 GiB; from Node 22 one buffer holds 2^53 − 1 bytes and a 5 GiB --size is a
  // run (this test would fill and send 5 GiB).
  it.skipIf(constants.MAX_LENGTH !== 2 ** 32)(
    'refuses a size past what one buffer holds (the run died: internal error, RangeError, exit 1)',
    async () => {
      for (const sizes of [
        ['--size', '5GiB'],
        ['--size-dist', '1KiB:1,5GiB:1'],
      ]) {
        const over = await bench('--op', 'upload', '--files', '1', ...sizes);
        expect(over.code, over.stderr).toBe(2);
        expect(over.stderr).toMatch(/size "5GiB" too large: a payload is held in memory, at most 4\.00 GiB/);
        expect(over.stdout).toBe('');
      }
    },
  );

  it('refuses --duration 0 (it ran nothing and failed: "no operation completed")', async () => {
    const none = await bench('--duration', '0s', '--size', '1KiB');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--duration <time>.*0s.*expected a duration above 0/);
    expect(none.stdout).toBe('');
  });

  it('refuses --size with --size-dist (the --size was ignored)', async () => {
    const both = await bench('--size', '1MiB', '--size-dist', '1KiB:1,2KiB:1');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^muxftp: bench: give --size or --size-dist, not both\n/);
    expect(both.stdout).toBe('');
  });

  it('refuses --streams with --op connect or idle (one connect, one active stream: it was ignored)', async () => {
    for (const op of ['connect', 'idle']) {
      const ignored = await bench('--op', op, '--streams', '4', '--clients', '2', '--size', '1KiB');
      expect(ignored.code).toBe(2);
      expect(ignored.stderr).toMatch(/^muxftp: bench: --streams goes with --op upload, download or mixed\n/);
      expect(ignored.stdout).toBe('');
    }
  });

  it('refuses --mix without --op mixed (the other workloads ignored it)', async () => {
    const ignored = await bench('--op', 'upload', '--mix', '70', '--size', '1KiB');
    expect(ignored.code).toBe(2);
    expect(ignored.stderr).toMatch(/^muxftp: bench: --mix goes with --op mixed\n/);
    expect(ignored.stdout).toBe('');
  });
});

/** The direct children of process `pid` (from /proc). */
function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid of `bench`'s local server (its child), once started; undefined if none within 15 s. */
async function localServerOf(bench: ChildProcess): Promise<number | undefined> {
  for (const started = Date.now(); Date.now() - started < 15_000; ) {
    await delay(50);
    const server = childPids(bench.pid!).find((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('localServerProcess'),
    );
    if (server !== undefined) return server;
  }
  return undefined;
}

describe('muxftp bench --local killed', () => {
  it.skipIf(process.platform !== 'linux')(
    'its server stops when the bench is gone (SIGKILL, the OOM killer): it served on, for ever',
    async () => {
      const args = [
        'bench',
        '--local',
        '--duration',
        '60s',
        '--size',
        '64KiB',
        '--clients',
        '1',
        '--workers',
        '1',
      ];
      const bench = spawn(process.execPath, [CLI_BIN, ...args], { stdio: 'ignore' });
      const exited = new Promise((resolve) => bench.once('exit', resolve));
      let server: number | undefined;
      try {
        server = await localServerOf(bench);
        expect(server).toBeDefined();
        await delay(2_000); // under way: the server listening, the clients transferring
        bench.kill('SIGKILL');
        await exited;
        for (const started = Date.now(); alive(server!) && Date.now() - started < 5_000; ) await delay(50);
        expect(alive(server!)).toBe(false);
      } finally {
        bench.kill('SIGKILL');
        if (server !== undefined && alive(server)) process.kill(server, 'SIGKILL');
      }
    },
    30_000,
  );

  it.skipIf(process.platform !== 'linux')(
    '--tls: leaves no certificate directory (with its private key) in the temporary directory',
    async () => {
      // Removed only by a clean end: each run killed (or stopped by a second Ctrl-C) left a
      // muxftp-bench-tls-* directory with the throwaway key in it.
      const tmp = mkdtempSync(join(tmpdir(), 'muxftp-bench-tmp-'));
      const left = () => readdirSync(tmp).filter((name) => name.startsWith('muxftp-bench-tls-'));
      const args = ['bench', '--local', '--tls', '--duration', '60s', '--size', '64KiB', '--clients', '1'];
      const bench = spawn(process.execPath, [CLI_BIN, ...args, '--workers', '1'], {
        stdio: 'ignore',
        env: { ...process.env, TMPDIR: tmp },
      });
      const exited = new Promise((resolve) => bench.once('exit', resolve));
      let server: number | undefined;
      try {
        server = await localServerOf(bench);
        expect(server).toBeDefined();
        // Its server up (the certificate read), the run under way.
        for (const started = Date.now(); left().length > 0 && Date.now() - started < 10_000; )
          await delay(50);
        await delay(500);
        expect(bench.exitCode).toBe(null);
        bench.kill('SIGKILL');
        await exited;
        for (const started = Date.now(); alive(server!) && Date.now() - started < 5_000; ) await delay(50);
        expect(alive(server!)).toBe(false);
        expect(left()).toEqual([]);
      } finally {
        bench.kill('SIGKILL');
        if (server !== undefined && alive(server)) process.kill(server, 'SIGKILL');
        rmSync(tmp, { recursive: true, force: true });
      }
    },
    40_000,
  );
});

describe('muxftp bench --warmup', () => {
  it('counts the bytes a transfer begun in the warm-up moved after it: its stream was busy with them', async () => {
    // One stream, 2 MiB files at 1 MiB/s (serve --max-rate): the warm-up's transfer ran a second
    // into the measured run, which counted that second and none of its bytes: 0.7 MB/s reported.
    const children = new Set<ChildProcess>();
    try {
      const { port } = await startServeChild(['--memory', '--max-rate', '1MiB'], children);
      const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'download', '--clients', '1'];
      const { stdout } = await run(
        process.execPath,
        [
          CLI_BIN,
          ...args,
          '--size',
          '2MiB',
          '--duration',
          '2s',
          '--warmup',
          '1s',
          '--workers',
          '1',
          '--json',
        ],
        { timeout: 60_000 },
      );
      const report = JSON.parse(stdout) as { ops: number; bytes: number; seconds: number; mbps: number };
      expect(report.ops).toBeGreaterThan(0);
      // More than its operations' bytes: the warm-up transfer's tail.
      expect(report.bytes).toBeGreaterThan(report.ops * 2 * 1024 * 1024);
      // The link's rate (1 MiB/s = 1.05 MB/s), not 2/3 of it.
      expect(report.mbps).toBeGreaterThan(0.85 * 1.048576);
      expect(report.mbps).toBeLessThan(1.3 * 1.048576);
    } finally {
      await stopChildren(children);
    }
  }, 60_000);
});

describe('muxftp bench --op idle', () => {
  it('counts an idle connection the server closed during the run as an error', async () => {
    // The server's --idle-timeout closed the idle connections a second into the run: the report
    // said 3 connections held, 0 errors, exit 0, while the active client ran beside none.
    const children = new Set<ChildProcess>();
    try {
      const { port } = await startServeChild(['--memory', '--idle-timeout', '1'], children);
      const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'idle', '--clients', '2'];
      const result = await muxftp([
        ...args,
        '--workers',
        '1',
        '--duration',
        '3s',
        '--size',
        '64KiB',
        '--json',
      ]);
      const report = JSON.parse(result.stdout) as {
        ok: boolean;
        ops: number;
        errors: Record<string, number>;
      };
      expect(report.ops).toBeGreaterThan(0);
      expect(report.errors).toEqual({ IDLE_TIMEOUT: 2 });
      expect(report.ok).toBe(false);
      expect(result.code).toBe(1);
    } finally {
      await stopChildren(children);
    }
  }, 60_000);

  it("keeps its idle connections on the bench's own server however long the run (--local)", async () => {
    // The --local server had --idle-timeout 600: a `--local --op idle` run longer than 10 min had
    // its idle connections closed under it, now counted as IDLE_TIMEOUT errors (exit 1). Its
    // long timers run a thousand times faster here (a preload in the server child alone): 600 s
    // is 0.6 s, and the run of 3 s outlasts it.
    const result = await benchWithPreload(
      [
        "if (/localServerProcess\\.js$/.test(process.argv[1] ?? '')) {",
        '  const original = globalThis.setTimeout;',
        '  globalThis.setTimeout = (callback, ms, ...args) =>',
        '    original(callback, typeof ms === "number" && ms >= 300000 ? ms / 1000 : ms, ...args);',
        '}',
        '',
      ].join('\n'),
      ['--op', 'idle', '--clients', '2', '--workers', '1', '--duration', '3s', '--size', '64KiB', '--json'],
    );
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      ops: number;
      errors: Record<string, number>;
    };
    expect(report.ops).toBeGreaterThan(0);
    expect(report.errors).toEqual({});
    expect(report.ok).toBe(true);
    expect(result.code).toBe(0);
  }, 60_000);
});

describe('muxftp bench --html', () => {
  it('gives the operations asked for and the transport, when some connections were refused', async () => {
    // The parameters' "run" said "operations made and failed": 6 for --files 4 when the server's
    // connection cap refused two of its four clients, their refusals counted as errors.
    const children = new Set<ChildProcess>();
    const dir = mkdtempSync(join(tmpdir(), 'muxftp-bench-html-'));
    try {
      const { port } = await startServeChild(['--memory', '--max-connections', '3'], children);
      const html = join(dir, 'report.html');
      const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'upload', '--clients', '4'];
      const { stdout } = await muxftp([
        ...args,
        '--workers',
        '1',
        '--files',
        '4',
        '--size',
        '1KiB',
        '--html',
        html,
        '--json',
      ]);
      const report = JSON.parse(stdout) as {
        ops: number;
        error_count: number;
        parameters: { files: number };
      };
      // The control connection took one place: two of the four clients were refused.
      expect(report).toMatchObject({ ops: 4, error_count: 2, parameters: { files: 4 } });
      const page = readFileSync(html, 'utf8');
      expect(page).toContain('<tr><th>run</th><td>4 operations</td></tr>');
      expect(page).toContain('<tr><th>transport</th><td>plain TCP</td></tr>');
      // 4 KiB moved, as the text report says it (the page said "0.0 MB").
      expect(page).toMatch(/<tr><th>moved<\/th><td>4\.00 KiB in [\d.]+ s<\/td><\/tr>/);
      expect(page).toContain('<title>muxftp bench: upload, 4 clients × 1 stream, 1 KiB</title>');
    } finally {
      await stopChildren(children);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('naming a directory is refused before the run (it failed after it, the run spent)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'muxftp-bench-html-'));
    try {
      const result = await bench('--files', '1', '--size', '1KiB', '--clients', '1', '--html', dir);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(
        `muxftp: bench: cannot write --html ${dir}: is a directory (LOCAL_IO_ERROR)\n`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('muxftp bench with no operation completed', () => {
  it('says so in its table (not "moved 0 B in 0.001 s", latencies of 0 ms), and --json keeps numbers', async () => {
    // The server takes one connection, the bench's own control one: its client is refused.
    const children = new Set<ChildProcess>();
    try {
      const { port } = await startServeChild(['--memory', '--max-connections', '1'], children);
      const args = ['bench', '--server', `127.0.0.1:${port}`, '--op', 'upload', '--clients', '1'];
      const text = await muxftp([...args, '--workers', '1', '--files', '10', '--size', '64KiB']);
      expect((text as { code?: number }).code).toBe(1);
      const lines = text.stdout.split('\n');
      // Before: `operations   0 (0 verified, 1 errors: SERVER_BUSY 1)`, `moved        0 B in 0.001 s`,
      // `throughput   0 MB/s, 0 ops/s`, `latency ms   p50 0  p90 0 …`.
      expect(lines.slice(1, 6)).toEqual([
        '  operations   none completed (1 error: SERVER_BUSY 1)',
        '  moved        nothing',
        '  throughput   none (no operation completed)',
        '  latency ms   none (no operation completed)',
        '  ttfb ms      none (no operation completed)',
      ]);
      expect(text.stdout).toContain('  FAILED       no operation completed');
      const json = await muxftp([...args, '--workers', '1', '--files', '10', '--json']);
      const report = JSON.parse(json.stdout) as Record<string, unknown> & {
        latency_ms: Record<string, number>;
      };
      expect(report).toMatchObject({ ok: false, ops: 0, bytes: 0, mbps: 0, files_per_s: 0, error_count: 1 });
      // What was measured (nothing ran past the start: 0 s), not the floor rates are taken over.
      expect(report.seconds).toBeGreaterThanOrEqual(0);
      expect(report.seconds).not.toBe(0.001);
      for (const value of [report.seconds, report.mbps, ...Object.values(report.latency_ms)])
        expect(Number.isFinite(value)).toBe(true);
    } finally {
      await stopChildren(children);
    }
  }, 60_000);
});
