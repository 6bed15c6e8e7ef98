/**
 * What the bars say while the transfers go on. The total counts what is still to come: a transfer
 * that failed moves no more, and one whose size turned out other than listed (it changed on the
 * server since) moves that size; before, the total and its ETA went on counting the failed file's
 * rest, or the listed size, until the end. A file's bar says "server busy" only while it waits.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTransferProgress, type TransferProgress } from '../cli/progress.js';

const ESC = String.fromCharCode(27);
const MiB = 1024 * 1024;

/** The last total line drawn by `run` on a 120-column terminal, after its frames. */
function lastTotalLine(run: (progress: TransferProgress, advance: (ms: number) => void) => void): string {
  vi.useFakeTimers({
    toFake: ['performance', 'Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'],
  });
  let drawn = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      drawn += String(chunk);
      done();
    },
  });
  Object.assign(stream, { isTTY: true, columns: 120, rows: 24 });
  const progress = createTransferProgress({
    json: false,
    quiet: false,
    stream: stream as NodeJS.WriteStream,
  });
  run(progress, (ms) => vi.advanceTimersByTime(ms));
  const frames = drawn;
  progress.release();
  const lines = [...frames.matchAll(new RegExp(`${ESC}\\[1G([^${ESC}\\r\\n]*)${ESC}\\[0K`, 'g'))].map(
    (m) => m[1]!,
  );
  return lines.filter((line) => line.startsWith('total')).at(-1) ?? '';
}

function etaSeconds(line: string): number {
  return Number(/ETA (\d+) s$/.exec(line)?.[1] ?? Number.NaN);
}

/** B moves 1 MiB each 100 ms (10 MiB/s) for 3 s, to 30 MiB of its 100 MiB: 7 s left. */
function runB(progress: TransferProgress, advance: (ms: number) => void, size = 100 * MiB): void {
  const b = progress.begin('b.bin', size);
  b.update(0, size);
  for (let step = 1; step <= 30; step++) {
    advance(100);
    b.update(step * MiB, size);
  }
  advance(100);
}

describe('the total bar', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('leaves out the rest of a file that failed: its bytes will not come', () => {
    const line = lastTotalLine((progress, advance) => {
      progress.expect(200 * MiB);
      const a = progress.begin('a.bin', 100 * MiB);
      a.update(10 * MiB, 100 * MiB);
      a.end(false);
      runB(progress, advance);
    });
    // Before: `40.0 MiB / 200 MiB … ETA 13 s`.
    expect(line).toMatch(/40\.0 MiB \/ 110 MiB /);
    expect(etaSeconds(line)).toBeLessThan(8);
  });

  it('counts the size a transfer reports over the one listed before it began', () => {
    const line = lastTotalLine((progress, advance) => {
      progress.expect(300 * MiB);
      const a = progress.begin('a.bin', 200 * MiB);
      // Listed at 200 MiB, 10 MiB when the download began.
      a.update(0, 10 * MiB);
      a.update(10 * MiB, 10 * MiB);
      a.end(true);
      runB(progress, advance);
    });
    // Before: `40.0 MiB / 300 MiB … ETA 21 s`.
    expect(line).toMatch(/40\.0 MiB \/ 110 MiB /);
    expect(etaSeconds(line)).toBeLessThan(8);
  });
});

describe('a file bar after the server was busy', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('no longer says "server busy" once its bytes flow', () => {
    vi.useFakeTimers({
      toFake: ['performance', 'Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'],
    });
    let drawn = '';
    const stream = new Writable({
      write(chunk, _encoding, done) {
        drawn += String(chunk);
        done();
      },
    });
    Object.assign(stream, { isTTY: true, columns: 120, rows: 24 });
    const progress = createTransferProgress({
      json: false,
      quiet: false,
      stream: stream as NodeJS.WriteStream,
    });
    const a = progress.begin('a.bin', 10 * MiB);
    a.busy();
    vi.advanceTimersByTime(500);
    for (let step = 1; step <= 5; step++) {
      a.update(step * MiB, 10 * MiB);
      vi.advanceTimersByTime(100);
    }
    const frames = drawn;
    progress.release();
    const lines = [...frames.matchAll(new RegExp(`${ESC}\\[1G([^${ESC}\\r\\n]*)${ESC}\\[0K`, 'g'))].map(
      (m) => m[1]!,
    );
    expect(lines.some((line) => line.includes('a.bin (server busy)'))).toBe(true);
    // Before: still `a.bin (server busy)` at 5 MiB.
    expect(lines.filter((line) => line.includes('a.bin')).at(-1)).toMatch(/^a\.bin +=+-* +5\.00 MiB/);
  });
});
