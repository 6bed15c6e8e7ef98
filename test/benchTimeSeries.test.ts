/** The bench's per-second figures: bucketing by completion time, merging workers, the HDR curve. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { newHistogram } from '../client/bench/histogram.js';
import { buildTimeSeries, percentileDistribution, SecondTally } from '../client/bench/timeSeries.js';

const T0 = Date.UTC(2026, 0, 1);

afterEach(() => {
  vi.useRealTimers();
});

/** A tally fed with [msAfterStart, bytes, latencyMs] completions and [msAfterStart, code] errors. */
function tally(completions: Array<[number, number, number]>, errors: Array<[number, string]> = []) {
  vi.useFakeTimers({ toFake: ['Date'] });
  const t = new SecondTally(T0);
  const events = [
    ...completions.map(([at, bytes, ms]) => ({ at, run: () => t.completed(bytes, ms * 1000) })),
    ...errors.map(([at, code]) => ({ at, run: () => t.error(code) })),
  ].sort((a, b) => a.at - b.at);
  for (const event of events) {
    vi.setSystemTime(T0 + event.at);
    event.run();
  }
  return t.result();
}

describe('bench time series', () => {
  it('buckets by completion second, merges workers, and leaves gaps where nothing completed', () => {
    const a = tally(
      [
        [100, 1e6, 10],
        [900, 1e6, 20],
        [2500, 2e6, 30],
      ],
      [[1200, 'NOT_FOUND']],
    );
    const b = tally(
      [[400, 3e6, 40]],
      [
        [1900, 'NOT_FOUND'],
        [2100, 'IO_ERROR'],
      ],
    );
    const ts = buildTimeSeries([a, b], 3, [
      { t: -0.5, rssBytes: 1e8, connections: 1, streams: 0 },
      { t: 1.25, rssBytes: 2e8, connections: 4, streams: 3 },
    ]);
    expect(ts.t).toEqual([0, 1, 2]);
    expect(ts.ops_per_s).toEqual([3, 0, 1]);
    expect(ts.mbps).toEqual([5, 0, 2]);
    expect(ts.latency_ms.p50[1]).toBeNull();
    expect(ts.latency_ms.max[0]).toBeCloseTo(40, 1);
    expect(ts.latency_ms.p50[2]).toBeCloseTo(30, 1);
    expect(ts.errors).toEqual({ IO_ERROR: [0, 0, 1], NOT_FOUND: [0, 2, 0] });
    // Warm-up samples are left out; the rest keep their time.
    expect(ts.server).toEqual({ t: [1.25], rss_mb: [200], connections: [4], streams: [3] });
  });

  it('counts what finishes after a timed run stops in its last point, and rates a short last point by its width', () => {
    const w = tally([
      [200, 1e6, 5],
      [1300, 1e6, 5],
      [1400, 1e6, 5],
      [2700, 1e6, 50],
    ]);
    const ts = buildTimeSeries([w], 1.5, []);
    expect(ts.t).toEqual([0, 1]);
    // Three operations in the last 0.5 s point (two within it, one that finished after the stop).
    expect(ts.ops_per_s).toEqual([1, 6]);
    expect(ts.latency_ms.max[1]).toBeCloseTo(50, 0);
  });

  it('joins a last part-second shorter than half a second to the point before, rated over both', () => {
    // A 2 s timed run measured until its last operation ended, 50 ms past its end.
    const w = tally([
      [500, 1e6, 5],
      [1500, 1e6, 5],
      [2040, 1e6, 5],
    ]);
    const ts = buildTimeSeries([w], 2.05, []);
    // Not a third point of 50 ms rated at 20 ops/s.
    expect(ts.t).toEqual([0, 1]);
    expect(ts.ops_per_s).toEqual([1, Math.round((2 / 1.05) * 100) / 100]);
  });

  it('spaces the percentile curve evenly in log10(1/(1-p)) and ends at the maximum', () => {
    const h = newHistogram();
    for (let i = 1; i <= 1000; i++) h.recordValue(i * 1000);
    const points = percentileDistribution(h);
    expect(points[0]).toEqual({ percentile: 0, latency_ms: 1 });
    expect(points[10]?.percentile).toBeCloseTo(90, 6);
    expect(points[20]?.percentile).toBeCloseTo(99, 6);
    expect(points[30]?.percentile).toBeCloseTo(99.9, 6);
    expect(points.at(-1)).toEqual({ percentile: 100, latency_ms: 1000 });
    expect(points.map((p) => p.latency_ms)).toEqual(
      [...points.map((p) => p.latency_ms)].sort((x, y) => x - y),
    );
    expect(percentileDistribution(newHistogram())).toEqual([]);
  });
});
