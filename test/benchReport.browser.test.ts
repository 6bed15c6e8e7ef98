/**
 * `muxftp bench --html`: a real run against a real server (one whose connection cap refuses some of
 * the bench's clients, so the errors chart has data), its HTML opened from disk in headless
 * Chromium with the network off, and every chart checked against the run's `--json` output:
 * the number of points, the series and axis labels, the data, and pixels of each series' colour
 * actually painted on the canvas. Any page error or network request fails the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../client/bench/report.js';
import { systemChromium } from './helpers/chromium.js';
import { CLI_BIN } from './helpers/cliProcess.js';

const browserPath = await systemChromium();
if ('skip' in browserPath) console.warn(`bench report browser test skipped: ${browserPath.skip}`);

let dir: string;
let server: ChildProcess | undefined;
let browser: Browser | undefined;
let report: BenchReport;
let html: string;

async function startServer(): Promise<number> {
  server = spawn(process.execPath, [CLI_BIN, 'serve', '--memory', '--port', '0', '--max-connections', '3'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [line] = (await once(server.stdout!, 'data')) as [Buffer];
  const match = /listening on [^ ]+:(\d+)/.exec(line.toString());
  if (match === null) throw new Error(`unexpected serve output: ${line}`);
  return Number(match[1]);
}

async function runBench(port: number): Promise<string> {
  const child = spawn(
    process.execPath,
    [
      CLI_BIN,
      'bench',
      '--server',
      `127.0.0.1:${port}`,
      '--op',
      'mixed',
      '--clients',
      '4',
      '--streams',
      '2',
      '--size-dist',
      '64KiB:70,1MiB:30',
      '--duration',
      '3s',
      '--workers',
      '1',
      '--html',
      join(dir, 'report.html'),
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const [code] = await once(child, 'exit');
  // Two clients are refused (SERVER_BUSY), so the run fails --max-errors 0 and exits 1.
  if (code !== 1) throw new Error(`bench exited ${code}: ${stderr}`);
  return stdout;
}

describe.skipIf('skip' in browserPath)('muxftp bench --html in Chromium', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muxftp-report-'));
    report = JSON.parse(await runBench(await startServer())) as BenchReport;
    html = await readFile(join(dir, 'report.html'), 'utf8');
    browser = await chromium.launch({
      executablePath: (browserPath as { path: string }).path,
      args: ['--no-sandbox', '--disable-gpu'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (server !== undefined && server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('the run had transfers and refused connections, with the same series in --json', () => {
    expect(report.ops).toBeGreaterThan(0);
    expect(report.errors.SERVER_BUSY).toBe(2);
    expect(report.timeseries.t.length).toBe(3);
    // Rates are per second of the time each point covers (the last may be shorter, or longer: the
    // transfers under way at the end are waited for).
    const points = report.timeseries.t.length;
    const covered = (i: number) => (i < points - 1 ? 1 : Math.max(0.001, report.seconds - i));
    const opsFromSeries = report.timeseries.ops_per_s.reduce((sum, rate, i) => sum + rate * covered(i), 0);
    expect(opsFromSeries).toBeCloseTo(report.ops, 1);
    expect(report.timeseries.errors.SERVER_BUSY?.reduce((a, b) => a + b, 0)).toBe(2);
    expect(report.timeseries.server.t.length).toBeGreaterThan(3);
    expect(report.latency_distribution.at(-1)).toEqual({
      percentile: 100,
      latency_ms: report.latency_ms.max,
    });
  });

  it('is self-contained: no external references', () => {
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|@import|url\(\s*['"]?https?:/i);
    expect(html).toContain('uPlot');
  });

  it('renders every chart with the run’s data, offline, with no page error', async () => {
    const context = await browser!.newContext({ offline: true, viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      problems.push(`network request: ${url}`);
      return route.abort();
    });
    await page.goto(pathToFileURL(join(dir, 'report.html')).href);
    await page.waitForFunction(
      () => (window as unknown as { muxftpCharts?: object }).muxftpCharts !== undefined,
    );

    const charts = await page.evaluate(() => {
      type Chart = {
        data: Array<Array<number | null>>;
        series: Array<{ label?: string; stroke?: () => string }>;
        axes: Array<{ label?: string }>;
        ctx: CanvasRenderingContext2D;
        setSeries(index: number | null, options: { show: boolean }): void;
        batch(fn: () => void): void;
      };
      const all = (window as unknown as { muxftpCharts: Record<string, Chart> }).muxftpCharts;
      const out: Record<string, unknown> = {};
      for (const [id, u] of Object.entries(all)) {
        const { width, height } = u.ctx.canvas;
        // Pixels painted in each series' own colour, drawn alone: its line is on the canvas. (Drawn
        // together, two lines whose values are proportional lie on top of each other on their own
        // axes, and the one drawn first can be all but hidden.)
        const strokePixels = u.series.slice(1).map((s, index) => {
          u.batch(() => {
            u.setSeries(null, { show: false });
            u.setSeries(index + 1, { show: true });
          });
          const pixels = u.ctx.getImageData(0, 0, width, height).data;
          const hex = String(typeof s.stroke === 'function' ? s.stroke() : s.stroke);
          const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
          let n = 0;
          for (let i = 0; i < pixels.length; i += 4) {
            if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b && pixels[i + 3] === 255) n++;
          }
          return n;
        });
        u.batch(() => u.setSeries(null, { show: true }));
        const legend = [...(document.querySelectorAll(`#${id} .u-legend th`) as NodeListOf<HTMLElement>)].map(
          (th) => th.textContent?.trim(),
        );
        out[id] = {
          points: u.data[0]!.length,
          data: u.data,
          series: u.series.map((s) => s.label),
          axes: u.axes.map((a) => a.label),
          strokePixels,
          canvas: [width, height],
          legend,
        };
      }
      return out as Record<
        string,
        {
          points: number;
          data: Array<Array<number | null>>;
          series: string[];
          axes: string[];
          strokePixels: number[];
          canvas: number[];
          legend: string[];
        }
      >;
    });

    const ts = report.timeseries;
    expect(Object.keys(charts).sort()).toEqual(['distribution', 'errors', 'latency', 'server', 'throughput']);
    for (const [id, chart] of Object.entries(charts)) {
      expect(chart.canvas[0], id).toBeGreaterThan(300);
      expect(
        chart.axes.every((label) => typeof label === 'string' && label.length > 0),
        id,
      ).toBe(true);
      expect(chart.legend, id).toEqual(chart.series);
    }
    const t = charts.throughput!;
    expect(t.points).toBe(ts.t.length);
    expect(t.series).toEqual(['s', 'MB/s', 'ops/s']);
    expect(t.axes).toEqual(['seconds into the run', 'MB/s', 'ops/s']);
    expect(t.data).toEqual([ts.t, ts.mbps, ts.ops_per_s]);
    expect(t.strokePixels.every((n) => n > 20)).toBe(true);

    const l = charts.latency!;
    expect(l.series).toEqual(['s', 'p50', 'p90', 'p99', 'max']);
    expect(l.data.slice(1)).toEqual([
      ts.latency_ms.p50,
      ts.latency_ms.p90,
      ts.latency_ms.p99,
      ts.latency_ms.max,
    ]);
    expect(l.strokePixels.every((n) => n > 20)).toBe(true);

    const d = charts.distribution!;
    expect(d.points).toBe(report.latency_distribution.length);
    expect(d.data[1]).toEqual(report.latency_distribution.map((p) => p.latency_ms));
    expect(d.axes[0]).toBe('percentile');
    expect(d.strokePixels[0]).toBeGreaterThan(20);
    // The x axis is 1/(1-p), log-scaled: 0% at 1, 90% at 10, and rising.
    expect(d.data[0]![0]).toBe(1);
    expect(d.data[0]!.every((x, i, xs) => i === 0 || (x as number) > (xs[i - 1] as number))).toBe(true);

    const e = charts.errors!;
    expect(e.series).toEqual(['s', 'SERVER_BUSY']);
    expect(e.data[1]).toEqual(ts.errors.SERVER_BUSY);
    expect(e.strokePixels[0]).toBeGreaterThan(20);

    const s = charts.server!;
    expect(s.points).toBe(ts.server.t.length);
    expect(s.series).toEqual(['s', 'RSS MB', 'connections', 'streams']);
    expect(s.data).toEqual([ts.server.t, ts.server.rss_mb, ts.server.connections, ts.server.streams]);
    expect(s.strokePixels.every((n) => n > 20)).toBe(true);

    const summary = await page.locator('.tables').innerText();
    expect(summary).toContain(`${report.ops} (${report.verified} verified, 2 errors: SERVER_BUSY 2)`);
    expect(summary).toContain(`${report.mbps} MB/s`);
    expect(problems).toEqual([]);
    await context.close();
  });
});
