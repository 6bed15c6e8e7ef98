/**
 * What the progress counts as moved, which alone makes a rate: bytes a continued transfer found
 * at the destination are not, and an attempt that starts over moves all its bytes again, the
 * first chunk included (a put reports no 0 before it). Read from the summary line, on a terminal
 * (bars) and off one (the summary of a run where a file failed).
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTransferProgress } from '../cli/progress.js';

const MiB = 1024 * 1024;

function summaryOf(
  terminal: boolean,
  run: (progress: ReturnType<typeof createTransferProgress>) => void,
): string {
  let written = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      written += String(chunk);
      done();
    },
  });
  if (terminal) Object.assign(stream, { isTTY: true, columns: 100, rows: 24 });
  const progress = createTransferProgress({
    json: false,
    quiet: false,
    stream: stream as NodeJS.WriteStream,
  });
  run(progress);
  progress.finish();
  return /muxftp: [^\n]*/.exec(written)?.[0] ?? '';
}

/** One file of 3.5 MiB whose first attempt got to 3 MiB; the second sends all in 256 KiB steps. */
function retriedFromZero(progress: ReturnType<typeof createTransferProgress>): void {
  const size = 3.5 * MiB;
  const meter = progress.begin('a.bin', size);
  for (let done = 256 * 1024; done <= 3 * MiB; done += 256 * 1024) meter.update(done, size);
  meter.retry(1, 5);
  for (let done = 256 * 1024; done <= size; done += 256 * 1024) meter.update(done, size);
  meter.end(true);
  // Off a terminal the summary is printed for runs where something failed.
  progress.failedBeforeStart(1);
}

describe('bytes moved', () => {
  it.each([true, false])('count an attempt that starts over in full (terminal: %s)', (terminal) => {
    // Before: 6.25 MiB on the terminal, the retry's first 256 KiB left out.
    expect(summaryOf(terminal, retriedFromZero)).toMatch(
      /^muxftp: 1 file \(3\.50 MiB, 6\.50 MiB moved\), 1 failed in /,
    );
  });

  it.each([true, false])('leave out what a retry continued from (terminal: %s)', (terminal) => {
    const summary = summaryOf(terminal, (progress) => {
      const size = 9 * MiB;
      const meter = progress.begin('b.bin', size);
      meter.update(5 * MiB, size);
      meter.retry(1, 5);
      meter.continuing(4 * MiB);
      meter.update(9 * MiB, size);
      meter.end(true);
      progress.failedBeforeStart(1);
    });
    expect(summary).toMatch(/^muxftp: 1 file \(9\.00 MiB, 10\.0 MiB moved\), 1 failed in /);
  });
});

describe('a file bar after a retry', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shows the new attempt's rate, not one carried over from the attempt before", () => {
    vi.useFakeTimers({
      toFake: ['performance', 'Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'],
    });
    let written = '';
    const stream = new Writable({
      write(chunk, _encoding, done) {
        written += String(chunk);
        done();
      },
    });
    Object.assign(stream, { isTTY: true, columns: 100, rows: 24 });
    const progress = createTransferProgress({
      json: false,
      quiet: false,
      stream: stream as NodeJS.WriteStream,
    });
    const size = 8 * MiB;
    const meter = progress.begin('a.bin', size);
    // 100 KiB each 100 ms for 3 s: ~1,000 KiB/s.
    for (let step = 1; step <= 30; step++) {
      vi.advanceTimersByTime(100);
      meter.update(step * 100 * 1024, size);
    }
    meter.retry(1, 5);
    // The new attempt: 0.5 s to reconnect, then 64 KiB in the next 0.5 s: 64 KiB/s.
    vi.advanceTimersByTime(500);
    meter.update(0, size);
    for (let step = 1; step <= 5; step++) {
      vi.advanceTimersByTime(100);
      meter.update(step * 12.8 * 1024, size);
    }
    const frames = written.split('\n').filter((line) => line.includes('a.bin (retry 1/5)'));
    progress.release();
    const rate = /(\d+(?:\.\d+)?) (KiB|MiB)\/s/.exec(frames.at(-1) ?? '');
    expect(rate).not.toBeNull();
    // Before: ~740 KiB/s, most of it the first attempt's bytes still in the meter's window.
    expect(rate![2]).toBe('KiB');
    expect(Number(rate![1])).toBeLessThan(200);
  });
});
