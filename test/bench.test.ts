/** `muxftp bench`: option parsing, and short real runs of the CLI against a --local server. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSizeDistribution } from '../client/bench/options.js';
import { parseDecimal, parseDuration, parseSize } from '../shared/humanUnits.js';
import { CLI_BIN } from './helpers/cliProcess.js';

const run = promisify(execFile);

async function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [CLI_BIN, 'bench', '--local', '--workers', '2', ...args],
      {
        timeout: 60_000,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('bench option parsing', () => {
  it('parses sizes with binary and decimal units', () => {
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('10MiB')).toBe(10 * 1024 * 1024);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('10MB')).toBe(10_000_000);
    expect(parseSize('123')).toBe(123);
    expect(() => parseSize('ten')).toThrow(/invalid size/);
    expect(() => parseSize('5XB')).toThrow(/invalid size/);
  });

  it('parses durations and size distributions', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(() => parseDuration('soon')).toThrow(/invalid duration/);
    expect(parseSizeDistribution('64KiB:70,1MiB:25,10MiB')).toEqual([
      { bytes: 65536, weight: 70 },
      { bytes: 1048576, weight: 25 },
      { bytes: 10485760, weight: 1 },
    ]);
    expect(() => parseSizeDistribution('1KiB:0')).toThrow(/weight/);
    // Infinity drew the first size every time, and printed as null in --json.
    expect(() => parseSizeDistribution('64KiB:Infinity,1MiB:1')).toThrow(
      /invalid weight in "64KiB:Infinity"/,
    );
    expect(() => parseSizeDistribution('1KiB:1e400')).toThrow(/weight/);
    expect(() => parseSizeDistribution('1KiB:1:2')).toThrow(/invalid weight in "1KiB:1:2"/);
    // Number() read these as 16, 3 and 15.
    for (const weight of ['0x10', '0b11', '0o17', ''])
      expect(() => parseSizeDistribution(`1KiB:${weight}`)).toThrow(/invalid weight/);
  });

  it('reads numbers in decimal only, as the CLI reads its own', () => {
    expect([' 5 ', '1.5', '.5', '1e3', '0'].map(parseDecimal)).toEqual([5, 1.5, 0.5, 1000, 0]);
    for (const text of ['0x10', '0b11', '0o17', '', ' ', 'Infinity', 'NaN', '1e400', '-1', '5x'])
      expect(() => parseDecimal(text), text).toThrow(/invalid number/);
  });
});

describe('muxftp bench --local', () => {
  beforeAll(() => {
    if (!existsSync(join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'))) {
      throw new Error('dist/ is not built: run npm run build (npm test does)');
    }
  });

  it('runs a mixed workload with every transfer verified and zero errors', async () => {
    const { code, stdout } = await bench(
      '--op',
      'mixed',
      '--clients',
      '3',
      '--streams',
      '4',
      '--files',
      '60',
      '--size-dist',
      '1KiB:1,256KiB:1',
      '--json',
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.ops).toBe(60);
    expect(report.verified).toBe(60);
    expect(report.error_count).toBe(0);
    expect(report.bytes).toBeGreaterThan(60 * 1024);
    // Throughput is the bytes over the measured time (MB/s, 1 decimal), not a figure of its own.
    const mbps = report.bytes / report.seconds / 1e6;
    expect(Math.abs(report.mbps - mbps)).toBeLessThanOrEqual(0.01 * mbps + 0.1);
    // Percentiles in order, and no operation took longer than the measured run.
    const { p50, p90, p99, p999, max } = report.latency_ms;
    expect(p50).toBeGreaterThan(0);
    expect([p50, p90, p99, p999, max]).toEqual([p50, p90, p99, p999, max].sort((a, b) => a - b));
    expect(max).toBeLessThanOrEqual(report.seconds * 1000 + 1);
    expect(report.connections_opened).toBe(3);
    // The server's own figures, sampled during the run: a Node process's RSS in MB, never above
    // the process's maximum; the bench's control connection and stream are not counted.
    expect(report.server.rss_mb).toBeGreaterThanOrEqual(20);
    expect(report.server.rss_mb).toBeLessThanOrEqual(report.server.max_rss_mb);
    expect(report.server.max_rss_mb).toBeLessThan(4096);
    expect(report.server.connections).toBeGreaterThanOrEqual(1);
    expect(report.server.connections).toBeLessThanOrEqual(3);
    expect(report.server.streams).toBeLessThanOrEqual(3 * 4);
    expect(report.thresholds.passed).toBe(true);
  });

  it('measures connects and idle connections', async () => {
    const connect = JSON.parse((await bench('--op', 'connect', '--clients', '40', '--json')).stdout);
    expect(connect).toMatchObject({
      ok: true,
      ops: 40,
      verified: 40,
      error_count: 0,
      connections_opened: 40,
    });
    // A timed run: the server is sampled every 250 ms, so the 51 connections must stay open for
    // longer than that (a 2-operation run could finish between two samples on a fast machine).
    const idle = JSON.parse(
      (await bench('--op', 'idle', '--clients', '50', '--size', '1MiB', '--duration', '1s', '--json')).stdout,
    );
    expect(idle).toMatchObject({ error_count: 0, connections_opened: 51 });
    expect(idle.ops).toBeGreaterThanOrEqual(2);
    expect(idle.verified).toBe(idle.ops);
    expect(idle.server.connections).toBe(51);
  });

  it('exits non-zero when a threshold is not met, and prints a readable table otherwise', async () => {
    const unmet = ['--op', 'upload', '--clients', '2', '--size', '64KiB', '--min-mbps', '1000000'];
    const failed = await bench(...unmet);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/FAILED\s+.*below --min-mbps/);
    expect(failed.stdout).toMatch(/throughput\s+[\d.]+ MB\/s/);
    // Counted in words that agree with their number, every line within 80 columns (the server's
    // figures were one line of 81 to 90, and "1 streams").
    expect(failed.stdout).toMatch(/^muxftp bench: upload, 2 clients × 1 stream, /);
    expect(failed.stdout).toMatch(/server load +\d+ connections?, \d+ streams? at peak/);
    for (const line of failed.stdout.trimEnd().split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    // --json says it too: `ok` is what the exit status says, as for every other command.
    const failedJson = await bench(...unmet, '--json');
    expect(failedJson.code).toBe(1);
    expect(JSON.parse(failedJson.stdout)).toMatchObject({ ok: false, thresholds: { passed: false } });
    const usage = await bench('--files', '3', '--duration', '1s');
    expect(usage.code).toBe(2);
  });
});
