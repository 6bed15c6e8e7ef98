/**
 * `muxftp bench --html FILE`: the report as one self-contained HTML page. uPlot (its script and
 * stylesheet) is read from node_modules and inlined with the run's data, so the file opens with no
 * network: throughput, latency percentiles and errors over time, the HDR percentile distribution
 * (log x axis, as HdrHistogram plots it), and the server's RSS, connections and streams, under the
 * run's parameters and the summary table.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type BenchReport, counted, summaryFigures } from './report.js';

const require = createRequire(import.meta.url);

/** uPlot's files, read once. */
function uplotAssets(): { script: string; css: string } {
  return {
    script: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** JSON that is safe inside a <script> element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

function table(rows: Array<[string, string]>): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

/** The whole page for `report`; `sizes` is the human description of the file sizes. */
export function renderHtmlReport(report: BenchReport, sizes: string): string {
  const { script, css } = uplotAssets();
  const p = report.parameters;
  const percentiles = (x: BenchReport['latency_ms']) =>
    `p50 ${x.p50} · p90 ${x.p90} · p99 ${x.p99} · p99.9 ${x.p999} · max ${x.max}`;
  const figures = summaryFigures(report, percentiles);
  const parameters = table([
    ['operation', report.op],
    ['clients × streams', `${report.clients} × ${report.streams}`],
    ['sizes', sizes],
    [
      'run',
      // The operations asked for: those made and failed counted a refused connection too.
      p.duration_ms !== null
        ? `${p.duration_ms / 1000} s after ${p.warmup_ms / 1000} s warm-up`
        : counted(p.files ?? 0, 'operation'),
    ],
    ['transport', report.tls ? 'TLS' : 'plain TCP'],
    ...(report.op === 'mixed' ? ([['downloads', `${p.download_percent}%`]] as Array<[string, string]>) : []),
    ['load-generator threads', String(report.workers)],
    ['started', p.started_at],
  ]);
  const summary = table([
    ['operations', figures.operations],
    // As the text report says it: "0.0 MB" was all a run of small files moved.
    ['moved', figures.moved],
    ['throughput', figures.throughput],
    ['latency ms', figures.latency],
    ['time to first byte ms', figures.ttfb],
    ['connections', `${report.connections_opened} opened, ${report.connections_failed} failed`],
    [
      'server',
      report.server
        ? `peak RSS ${report.server.rss_mb} MB, peak ${report.server.connections} connections, ${report.server.streams} streams`
        : 'no figures (stats unavailable)',
    ],
    [
      'load generator CPU',
      `${report.loadgen.cpu_s} s (${report.loadgen.cpu_percent_of_machine}% of ${report.loadgen.cores} cores)`,
    ],
    ['thresholds', report.thresholds.passed ? 'passed' : report.thresholds.failures.join('; ')],
  ]);
  const title = `muxftp bench: ${report.op}${report.tls ? ' over TLS' : ''}, ${counted(report.clients, 'client')} × ${counted(report.streams, 'stream')}, ${sizes}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>${css}</style>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1060px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 28px 0 4px; }
.tables { display: flex; gap: 32px; flex-wrap: wrap; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 2px 12px 2px 0; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
.note { color: #666; font-size: 12px; margin: 0 0 6px; }
.empty { color: #a33; font-weight: 600; margin: 4px 0; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<div class="tables"><div><h2>Parameters</h2>${parameters}</div><div><h2>Summary</h2>${summary}</div></div>
<section id="throughput"><h2>Throughput per second</h2><p class="note">Completed, verified transfers by the second they finished.</p></section>
<section id="latency"><h2>Latency percentiles over time</h2><p class="note">Operations completed in each second; gaps where none completed.</p></section>
<section id="distribution"><h2>Latency by percentile (HDR distribution)</h2><p class="note">The x axis is log-scaled in 1/(1−percentile), as HdrHistogram plots it.</p></section>
<section id="errors"><h2>Errors over time</h2><p class="note">By error code, per second.</p></section>
<section id="server"><h2>Server</h2><p class="note">The server's own figures, sampled every 250 ms (the bench's control connection excluded).</p></section>
<script>${script}</script>
<script type="application/json" id="report-data">${scriptJson(report)}</script>
<script>${CHART_SCRIPT}</script>
</body>
</html>
`;
}

/** Runs in the page: builds the five uPlot charts from #report-data, exposed as window.muxftpCharts. */
const CHART_SCRIPT = `
'use strict';
const report = JSON.parse(document.getElementById('report-data').textContent);
const ts = report.timeseries;
const width = Math.min(1040, document.body.clientWidth || 1040);
const height = 260;
const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const charts = {};
function chart(id, options, data, emptyNote) {
  const el = document.getElementById(id);
  charts[id] = new uPlot(Object.assign({ width, height }, options), data, el);
  const plotted = data.slice(1).some((series) => series.some((v) => v !== null && v !== 0));
  if (!plotted && emptyNote) {
    const note = document.createElement('p');
    note.className = 'empty';
    note.textContent = emptyNote;
    el.insertBefore(note, el.querySelector('.uplot'));
  }
}
const seconds = { scale: 'x', label: 'seconds into the run' };
// Time axes start at the run's start and span at least a second, even for a one-point run.
// (From the data itself: uPlot widens a single point's range to 0..100 before asking.)
const timeScale = { time: false, range: (u) => {
  const xs = u.data[0];
  return [Math.min(0, xs[0] ?? 0), Math.max(1, xs[xs.length - 1] ?? 1)];
} };

chart('throughput', {
  scales: { x: timeScale, mbps: {}, ops: {} },
  axes: [seconds, { scale: 'mbps', label: 'MB/s' }, { scale: 'ops', label: 'ops/s', side: 1, grid: { show: false } }],
  series: [{ label: 's' },
    { label: 'MB/s', scale: 'mbps', stroke: colors[0], width: 2 },
    { label: 'ops/s', scale: 'ops', stroke: colors[1], width: 2 }],
}, [ts.t, ts.mbps, ts.ops_per_s], 'No operation completed in the measured run.');

chart('latency', {
  scales: { x: timeScale, ms: {} },
  axes: [seconds, { scale: 'ms', label: 'latency (ms)' }],
  series: [{ label: 's' },
    { label: 'p50', scale: 'ms', stroke: colors[0], width: 2 },
    { label: 'p90', scale: 'ms', stroke: colors[2], width: 2 },
    { label: 'p99', scale: 'ms', stroke: colors[4], width: 2 },
    { label: 'max', scale: 'ms', stroke: colors[1], width: 2, dash: [6, 4] }],
}, [ts.t, ts.latency_ms.p50, ts.latency_ms.p90, ts.latency_ms.p99, ts.latency_ms.max], 'No operation completed: no latency to plot.');

// x = 1/(1-p): 1 is the median's left edge (0%), 10 is 90%, 100 is 99%...; 100% (the maximum)
// sits half a decade past the last finite point.
const dist = report.latency_distribution;
const finite = dist.filter((d) => d.percentile < 100).map((d) => 1 / (1 - d.percentile / 100));
const xs = dist.map((d, i) => d.percentile < 100 ? finite[i] : Math.max(10, (finite[finite.length - 1] || 1) * Math.sqrt(10)));
const percentLabel = (x) => { const p = 100 * (1 - 1 / x); return (Math.round(p * 10000) / 10000) + '%'; };
// Ticks at the decades only (0%, 90%, 99%, ...): the log scale's other splits stay unlabelled.
const decadeLabel = (x) => x > 0 && Math.abs(Math.log10(x) - Math.round(Math.log10(x))) < 1e-9 ? percentLabel(x) : '';
chart('distribution', {
  scales: { x: { time: false, distr: 3, log: 10 }, ms: {} },
  axes: [{ scale: 'x', label: 'percentile', values: (u, splits) => splits.map(decadeLabel) },
    { scale: 'ms', label: 'latency (ms)' }],
  series: [{ label: 'percentile', value: (u, x) => x == null ? '' : percentLabel(x) },
    { label: 'latency ms', scale: 'ms', stroke: colors[3], width: 2, points: { show: true, size: 4 } }],
}, [xs, dist.map((d) => d.latency_ms)], 'No operation completed: no latency to plot.');

const codes = Object.keys(ts.errors);
chart('errors', {
  scales: { x: timeScale, n: { range: (u, min, max) => [0, Math.max(1, max)] } },
  axes: [seconds, { scale: 'n', label: 'errors per second' }],
  series: [{ label: 's' }].concat(codes.length > 0
    ? codes.map((code, i) => ({ label: code, scale: 'n', stroke: colors[(i + 1) % colors.length], width: 2 }))
    : [{ label: 'errors (none)', scale: 'n', stroke: '#999999', width: 2 }]),
}, [ts.t].concat(codes.length > 0 ? codes.map((code) => ts.errors[code]) : [ts.t.map(() => 0)]));

chart('server', {
  scales: { x: timeScale, mb: {}, n: {} },
  axes: [seconds, { scale: 'mb', label: 'RSS (MB)' }, { scale: 'n', label: 'connections, streams', side: 1, grid: { show: false } }],
  series: [{ label: 's' },
    { label: 'RSS MB', scale: 'mb', stroke: colors[0], width: 2 },
    { label: 'connections', scale: 'n', stroke: colors[2], width: 2 },
    { label: 'streams', scale: 'n', stroke: colors[4], width: 2 }],
}, [ts.server.t, ts.server.rss_mb, ts.server.connections, ts.server.streams], 'The server gave no figures during the measured run.');

window.muxftpCharts = charts;
`;
