/** Durations and sizes as the summary line and the bars print them. */
import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration } from '../shared/humanUnits.js';

describe('formatDuration', () => {
  it.each([
    [119_600, '2 min 0 s'],
    [3_599_700, '60 min 0 s'],
    [90_400, '1 min 30 s'],
    [59_960, '1 min 0 s'],
    [59_940, '59.9 s'],
    [999.6, '1.0 s'],
    [999.4, '999 ms'],
  ])('%d ms reads %s, never a unit full to the next', (ms, shown) => {
    // Before: 1 min 60 s, 59 min 60 s, 60.0 s, 1000 ms.
    expect(formatDuration(ms)).toBe(shown);
  });
});

describe('formatBytes', () => {
  it.each([
    [1024 * 1024 - 1, '1.00 MiB'],
    [1023.6, '1.00 KiB'],
    [1024 ** 3 - 100, '1.00 GiB'],
    [1023, '1023 B'],
    [1023 * 1024, '1023 KiB'],
  ])('%d bytes read %s, never 1024 of a unit', (bytes, shown) => {
    // Before: 1024 KiB, 1024 B, 1024 MiB: a bar read `1024 KiB / 1.00 MiB`.
    expect(formatBytes(bytes)).toBe(shown);
  });
});

describe('formatBytes, three digits', () => {
  it.each([
    [10_235, '10.0 KiB'],
    [102_349, '100 KiB'],
    [9.9951 * 1024 * 1024, '10.0 MiB'],
    [10_234, '9.99 KiB'],
    [102_348, '99.9 KiB'],
  ])('%d bytes read %s: a rounding up to 10 or 100 drops a decimal', (bytes, shown) => {
    // Before: 10.00 KiB, 100.0 KiB, 10.00 MiB (four digits beside the others' three).
    expect(formatBytes(bytes)).toBe(shown);
  });
});
