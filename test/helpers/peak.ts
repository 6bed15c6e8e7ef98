/**
 * The highest value a figure (bytes held, say) reaches while a test's load runs: polled until it
 * has passed `above` (the load under test has arrived) and then not grown for `stableMs`, at most
 * `timeoutMs` in all; then whatever was seen is returned, for the test's expectations to judge.
 *
 * Neither a fixed sampling time nor "stable for a while" alone will do on a loaded machine: the
 * first can end before the figure grew, and a process descheduled past `stableMs` wakes to its
 * timers before the bytes that arrived meanwhile are read, so the figure looks stable early.
 * Each sample also waits for a turn of I/O (setImmediate runs after the loop's poll) for that.
 */
export interface PeakOptions {
  /** Sampling goes on until the figure has been above this. Default: 0. */
  above?: number;
  /** Then until it has not grown for this long. Default: 300 ms. */
  stableMs?: number;
  /** Between samples. Default: 10 ms. */
  everyMs?: number;
  /** In all, at most. Default: 10 s. */
  timeoutMs?: number;
}

export async function peakOf(
  sample: () => number | Promise<number>,
  { above = 0, stableMs = 300, everyMs = 10, timeoutMs = 10_000 }: PeakOptions = {},
): Promise<number> {
  let peak = Number.NEGATIVE_INFINITY;
  let grewAt = Date.now();
  for (const started = Date.now(); Date.now() - started < timeoutMs; ) {
    const value = await sample();
    if (value > peak) {
      peak = value;
      grewAt = Date.now();
    }
    if (peak > above && Date.now() - grewAt >= stableMs) break;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return peak;
}
