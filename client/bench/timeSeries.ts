/**
 * The bench's figures second by second. Each worker keeps a `SecondTally` (operations, bytes,
 * errors by code and an HDR latency histogram per second of the measured run, by completion
 * time); the coordinator merges them with the server samples into `TimeSeries`, which `--json`
 * prints and the HTML report plots.
 */
import { encodeHistogram, type Histogram, mergeHistograms, newHistogram } from './histogram.js';

/** One worker's per-second figures, as they cross the thread boundary. */
export interface WorkerSeconds {
  ops: number[];
  bytes: number[];
  errors: Record<string, number[]>;
  /** Encoded HDR histograms, one per second ('' for a second without a completed operation). */
  latency: string[];
}

/** What the server reported at one sampling instant during the run. */
export interface ServerSample {
  /** Seconds since the measured run began (negative during warm-up and start-up). */
  t: number;
  rssBytes: number;
  connections: number;
  streams: number;
}

/** The run second by second: the `timeseries` member of the JSON report. */
export interface TimeSeries {
  /** Width of one point in seconds. */
  interval_s: number;
  /** Start of each point, seconds since the measured run began. */
  t: number[];
  mbps: number[];
  ops_per_s: number[];
  /** Latency of the operations completed in each second; null where none completed. */
  latency_ms: {
    p50: (number | null)[];
    p90: (number | null)[];
    p99: (number | null)[];
    max: (number | null)[];
  };
  /** Errors per second, by code. */
  errors: Record<string, number[]>;
  /** The server's own figures as sampled (every 250 ms), the bench's control connection excluded. */
  server: { t: number[]; rss_mb: number[]; connections: number[]; streams: number[] };
}

/** One point of the HDR percentile distribution curve. */
export interface PercentilePoint {
  percentile: number;
  latency_ms: number;
}

/** A worker's per-second recorder; `second` is whole seconds since the measured run began. */
export class SecondTally {
  private readonly ops: number[] = [];
  private readonly bytes: number[] = [];
  private readonly errors: Record<string, number[]> = {};
  /** Encoded histograms of the seconds that are over ('' where nothing completed). */
  private readonly latency: string[] = [];
  /**
   * The one live histogram, of second `currentSecond`: a histogram takes ~90 KB, so each second's
   * is encoded (~200 bytes) as soon as the next begins, and an hour-long run stays small.
   */
  private readonly current = newHistogram();
  private currentSecond = 0;
  private measureFrom: number;

  /** `measureFrom`: epoch ms the measured run begins at; what is recorded before falls in its first second. */
  constructor(measureFrom: number) {
    this.measureFrom = measureFrom;
  }

  /** The measured run begins at `measureFrom` (a bench's, once its workers are ready to start). */
  startsAt(measureFrom: number): void {
    this.measureFrom = measureFrom;
  }

  private second(): number {
    return Math.max(0, Math.floor((Date.now() - this.measureFrom) / 1000));
  }

  completed(bytes: number, latencyMicros: number): void {
    const s = this.second();
    bump(this.ops, s, 1);
    bump(this.bytes, s, bytes);
    // Completions arrive in time order; a clock step back just lands in the current second.
    if (s > this.currentSecond) {
      this.flush();
      this.currentSecond = s;
    }
    this.current.recordValue(latencyMicros);
  }

  /** Bytes moved by a transfer that is not an operation of the run (one begun in the warm-up). */
  moved(bytes: number): void {
    bump(this.bytes, this.second(), bytes);
  }

  error(code: string): void {
    this.errors[code] ??= [];
    bump(this.errors[code], this.second(), 1);
  }

  private flush(): void {
    if (this.current.totalCount === 0) return;
    for (let i = this.latency.length; i < this.currentSecond; i++) this.latency[i] = '';
    this.latency[this.currentSecond] = encodeHistogram(this.current);
    this.current.reset();
  }

  result(): WorkerSeconds {
    this.flush();
    const length = Math.max(
      this.ops.length,
      this.bytes.length,
      this.latency.length,
      ...Object.values(this.errors).map((e) => e.length),
    );
    return {
      ops: dense(this.ops, length),
      bytes: dense(this.bytes, length),
      errors: Object.fromEntries(Object.entries(this.errors).map(([code, n]) => [code, dense(n, length)])),
      latency: Array.from({ length }, (_, s) => this.latency[s] ?? ''),
    };
  }
}

/** Merges the workers' seconds, over `seconds` of measured run, with the server's samples. */
export function buildTimeSeries(
  workers: readonly WorkerSeconds[],
  seconds: number,
  serverSamples: readonly ServerSample[],
): TimeSeries {
  // A part-second at the end of less than half a second joins the point before it, which covers
  // it too: a timed run is measured until the transfers under way at its end have ended, and
  // those that ended just past its last whole second made a point of a few ms, its rate a spike.
  const length = Math.max(1, Math.round(seconds));
  // Operations in flight when a timed run stops finish after it: they count in the last point.
  const indexesOf = (s: number, all: number) =>
    s < length - 1 ? [s] : Array.from({ length: Math.max(1, all - s) }, (_, i) => s + i);
  const sumAt = (pick: (w: WorkerSeconds) => number[], s: number) =>
    workers.reduce((total, w) => {
      const series = pick(w);
      return total + indexesOf(s, series.length).reduce((n, i) => n + (series[i] ?? 0), 0);
    }, 0);
  const t = Array.from({ length }, (_, s) => s);
  // The last point may cover less or more than a second: rates are per second of the time it covers.
  const width = (s: number) => (s < length - 1 ? 1 : Math.max(0.001, seconds - s));
  const codes = [...new Set(workers.flatMap((w) => Object.keys(w.errors)))].sort();
  const latency: TimeSeries['latency_ms'] = { p50: [], p90: [], p99: [], max: [] };
  for (let s = 0; s < length; s++) {
    const encoded = workers
      .flatMap((w) => indexesOf(s, w.latency.length).map((i) => w.latency[i] ?? ''))
      .filter((e) => e !== '');
    if (encoded.length === 0) {
      latency.p50.push(null);
      latency.p90.push(null);
      latency.p99.push(null);
      latency.max.push(null);
      continue;
    }
    const merged = mergeHistograms(encoded);
    latency.p50.push(ms(merged.getValueAtPercentile(50)));
    latency.p90.push(ms(merged.getValueAtPercentile(90)));
    latency.p99.push(ms(merged.getValueAtPercentile(99)));
    latency.max.push(ms(merged.maxValue));
  }
  const inRun = serverSamples.filter((sample) => sample.t >= 0 && sample.t <= length);
  return {
    interval_s: 1,
    t,
    mbps: t.map((s) => round(sumAt((w) => w.bytes, s) / width(s) / 1e6, 2)),
    ops_per_s: t.map((s) => round(sumAt((w) => w.ops, s) / width(s), 2)),
    latency_ms: latency,
    errors: Object.fromEntries(
      codes.map((code) => [code, t.map((s) => sumAt((w) => w.errors[code] ?? [], s))]),
    ),
    server: {
      t: inRun.map((sample) => round(sample.t, 3)),
      rss_mb: inRun.map((sample) => round(sample.rssBytes / 1e6, 1)),
      connections: inRun.map((sample) => sample.connections),
      streams: inRun.map((sample) => sample.streams),
    },
  };
}

/**
 * The percentile distribution as HdrHistogram plots it: latency against percentile, with the
 * points evenly spaced in log10(1 / (1 - percentile)), up to the highest percentile the count
 * resolves (and 100% last, the maximum).
 */
export function percentileDistribution(histogram: Histogram): PercentilePoint[] {
  const count = histogram.totalCount;
  if (count === 0) return [];
  const points: PercentilePoint[] = [];
  const stepsPerDecade = 10;
  // Up to 99.9999%: beyond that the percentile no longer prints distinctly.
  const decades = Math.min(6, Math.max(1, Math.log10(count)));
  for (let k = 0; k <= decades * stepsPerDecade; k++) {
    const percentile = 100 * (1 - 10 ** (-k / stepsPerDecade));
    points.push({
      percentile: round(percentile, 6),
      latency_ms: ms(histogram.getValueAtPercentile(percentile)),
    });
  }
  points.push({ percentile: 100, latency_ms: ms(histogram.maxValue) });
  return points;
}

const ms = (micros: number) => Math.round(micros) / 1000;
const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

function bump(series: number[], index: number, by: number): void {
  for (let i = series.length; i < index; i++) series[i] = 0;
  series[index] = (series[index] ?? 0) + by;
}

function dense(series: number[], length: number): number[] {
  return Array.from({ length }, (_, i) => series[i] ?? 0);
}
