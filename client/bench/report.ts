/** The bench report: merged figures, the human table, the JSON shape, and threshold checks. */

import { formatBytes } from '../../shared/humanUnits.js';
import type { ServerStats } from '../../shared/protocol/messages.js';
import { mergeHistograms, type Percentiles, percentilesMs } from './histogram.js';
import type { WorkerResult } from './load.js';
import type { BenchOptions } from './options.js';
import {
  buildTimeSeries,
  type PercentilePoint,
  percentileDistribution,
  type ServerSample,
  type TimeSeries,
} from './timeSeries.js';

export interface BenchReport {
  op: string;
  /** Over TLS (`--tls`), else plain TCP. */
  tls: boolean;
  clients: number;
  streams: number;
  workers: number;
  ops: number;
  bytes: number;
  seconds: number;
  mbps: number;
  files_per_s: number;
  verified: number;
  errors: Record<string, number>;
  error_count: number;
  connections_opened: number;
  connections_failed: number;
  latency_ms: Percentiles;
  ttfb_ms: Percentiles;
  /** Sampled during the run: peak RSS, peak connections and streams (the bench's own excluded). */
  server: { rss_mb: number; max_rss_mb: number; connections: number; streams: number } | null;
  loadgen: { cpu_s: number; cpu_percent_of_machine: number; cores: number };
  thresholds: { passed: boolean; failures: string[] };
  /** The run's parameters (sizes in bytes, times in ms). */
  parameters: {
    sizes: Array<{ bytes: number; weight: number }>;
    /** Operations the run was to make (`--files`, or its default); null for a timed run. */
    files: number | null;
    duration_ms: number | null;
    warmup_ms: number;
    download_percent: number;
    started_at: string;
  };
  /** Latency against percentile, for the HDR percentile distribution plot. */
  latency_distribution: PercentilePoint[];
  timeseries: TimeSeries;
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

export function buildReport(
  options: BenchOptions,
  results: readonly WorkerResult[],
  seconds: number,
  server: ServerStats | undefined,
  serverSamples: readonly ServerSample[],
  /** The load generator's CPU time (all its threads) over `wallSeconds`, workers' start-up included. */
  loadgen: { cpuSeconds: number; wallSeconds: number; cores: number },
): BenchReport {
  const sum = (pick: (r: WorkerResult) => number) => results.reduce((total, r) => total + pick(r), 0);
  const errors: Record<string, number> = {};
  for (const r of results)
    for (const [code, n] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + n;
  const ops = sum((r) => r.ops);
  const bytes = sum((r) => r.bytes);
  const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
  const latencyHistogram = mergeHistograms(results.map((r) => r.latency));
  const latency = percentilesMs(latencyHistogram);
  // Rates over 1 ms at least: a run that ran nothing past its start measured 0 s (rates 0).
  const rated = Math.max(0.001, seconds);
  const report: BenchReport = {
    op: options.op,
    tls: options.tls !== undefined,
    clients: options.clients,
    streams: options.streams,
    workers: options.workers,
    ops,
    bytes,
    seconds: round(seconds, 3),
    mbps: round(bytes / rated / 1e6),
    files_per_s: round(ops / rated),
    verified: sum((r) => r.verified),
    errors,
    error_count: errorCount,
    connections_opened: sum((r) => r.connectionsOpened),
    connections_failed: sum((r) => r.connectionsFailed),
    latency_ms: latency,
    ttfb_ms: percentilesMs(mergeHistograms(results.map((r) => r.ttfb))),
    server: server
      ? {
          rss_mb: round(server.rssBytes / 1e6),
          max_rss_mb: round(server.maxRssBytes / 1e6),
          connections: server.connections,
          streams: server.streams,
        }
      : null,
    loadgen: {
      cpu_s: round(loadgen.cpuSeconds, 2),
      cpu_percent_of_machine: round((100 * loadgen.cpuSeconds) / loadgen.wallSeconds / loadgen.cores),
      cores: loadgen.cores,
    },
    thresholds: { passed: true, failures: [] },
    parameters: {
      sizes: options.sizes.map((s) => ({ bytes: s.bytes, weight: s.weight })),
      files: options.files ?? null,
      duration_ms: options.durationMs ?? null,
      warmup_ms: options.warmupMs,
      download_percent: options.downloadPercent,
      started_at: new Date(Date.now() - loadgen.wallSeconds * 1000).toISOString(),
    },
    latency_distribution: percentileDistribution(latencyHistogram),
    timeseries: buildTimeSeries(
      results.map((r) => r.seconds),
      seconds,
      serverSamples,
    ),
  };
  const { maxErrors, minMbps, maxP99Ms } = options.thresholds;
  const failures = report.thresholds.failures;
  if (errorCount > maxErrors) failures.push(`${errorCount} errors, more than --max-errors ${maxErrors}`);
  if (minMbps !== undefined && report.mbps < minMbps)
    failures.push(`${report.mbps} MB/s, below --min-mbps ${minMbps}`);
  if (maxP99Ms !== undefined && latency.p99 > maxP99Ms)
    failures.push(`p99 ${latency.p99} ms, above --max-p99 ${maxP99Ms}`);
  if (ops === 0) failures.push('no operation completed');
  report.thresholds.passed = failures.length === 0;
  return report;
}

/** `1 client`, `20 clients`. */
export function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The summary's figures in words, as the text and HTML reports give them. */
export interface SummaryFigures {
  operations: string;
  moved: string;
  throughput: string;
  latency: string;
  ttfb: string;
}

/**
 * The summary's figures in words, `percentiles` wording a latency's. A run in which no operation
 * completed (a --duration shorter than one transfer, every one failing) says so: its zeros
 * ("moved 0 B in 0.001 s", the floor of the seconds rates were taken over; latencies of 0 ms)
 * were no measurement.
 */
export function summaryFigures(report: BenchReport, percentiles: (x: Percentiles) => string): SummaryFigures {
  const errors = Object.entries(report.errors)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const failed = `${counted(report.error_count, 'error')}${errors ? `: ${errors}` : ''}`;
  if (report.ops > 0)
    return {
      operations: `${report.ops} (${report.verified} verified, ${failed})`,
      moved: `${formatBytes(report.bytes)} in ${report.seconds} s`,
      throughput: `${report.mbps} MB/s, ${report.files_per_s} ops/s`,
      latency: percentiles(report.latency_ms),
      ttfb: percentiles(report.ttfb_ms),
    };
  const none = 'none (no operation completed)';
  const duration = report.parameters.duration_ms;
  const within = duration === null ? '' : ` within the ${duration / 1000} s of --duration`;
  return {
    operations: `none completed${within} (${report.error_count > 0 ? failed : 'none failed'})`,
    // Bytes of transfers that did not complete within the run (a warm-up's, one cut off).
    moved:
      report.bytes > 0
        ? `${formatBytes(report.bytes)} in ${report.seconds} s, by no completed operation`
        : 'nothing',
    throughput: report.bytes > 0 ? `${report.mbps} MB/s, no operation completed` : none,
    latency: none,
    ttfb: none,
  };
}

export function formatReport(report: BenchReport, sizes: string): string {
  const p = (x: Percentiles) => `p50 ${x.p50}  p90 ${x.p90}  p99 ${x.p99}  p99.9 ${x.p999}  max ${x.max}`;
  const figures = summaryFigures(report, p);
  const lines = [
    `muxftp bench: ${report.op}${report.tls ? ' over TLS' : ''}, ${counted(report.clients, 'client')} × ${counted(report.streams, 'stream')}, ${sizes}, ${counted(report.workers, 'worker')}`,
    `  operations   ${figures.operations}`,
    `  moved        ${figures.moved}`,
    `  throughput   ${figures.throughput}`,
    `  latency ms   ${figures.latency}`,
    `  ttfb ms      ${figures.ttfb}`,
    `  connections  ${report.connections_opened} opened, ${report.connections_failed} failed`,
  ];
  if (report.server) {
    const s = report.server;
    // Two lines: one ran past 80 columns.
    lines.push(
      `  server rss   ${s.rss_mb} MB at peak (the process's max ${s.max_rss_mb} MB)`,
      `  server load  ${counted(s.connections, 'connection')}, ${counted(s.streams, 'stream')} at peak`,
    );
  }
  lines.push(
    `  load gen     cpu ${report.loadgen.cpu_s} s (${report.loadgen.cpu_percent_of_machine}% of ${report.loadgen.cores} cores)`,
  );
  for (const failure of report.thresholds.failures) lines.push(`  FAILED       ${failure}`);
  return lines.join('\n');
}
