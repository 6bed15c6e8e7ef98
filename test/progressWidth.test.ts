/**
 * Progress bars on a terminal of a given width: every line fits it in columns as the terminal
 * counts them (a CJK character or an emoji takes two), keeping the file name's end and whole
 * figures. The terminal's own line wrapping stays on (so a failure printed above the bars wraps
 * whole), which makes a line wider than the window wrap and throw the redraw a row off.
 */
import { Writable } from 'node:stream';
import stringWidth from 'string-width';
import { describe, expect, it } from 'vitest';
import { createTransferProgress } from '../cli/progress.js';

const ESC = String.fromCharCode(27);
const MB = 1e6;

/** The bar lines a run of two transfers draws on a terminal `columns` wide (a stand-in stream). */
async function barLines(columns: number, names: string[]): Promise<string[]> {
  let drawn = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      drawn += String(chunk);
      done();
    },
  });
  Object.assign(stream, { isTTY: true, columns, rows: 24 });
  const progress = createTransferProgress({
    json: false,
    quiet: false,
    stream: stream as NodeJS.WriteStream,
  });
  progress.expect(names.length * 150 * MB);
  for (const [index, name] of names.entries())
    progress.begin(name, 150 * MB).update((20 + 40 * index) * MB, 150 * MB);
  // The bars draw ten times a second: a few frames.
  await new Promise((resolve) => setTimeout(resolve, 250));
  progress.finish();
  return [...drawn.matchAll(new RegExp(`${ESC}\\[1G([^${ESC}\\r\\n]*)${ESC}\\[0K`, 'g'))].map((m) => m[1]!);
}

describe('progress bars fitted to the terminal', () => {
  const wide = '数据/文件文件文件文件文件文件文件文件文件文件😀.bin';
  const ascii = 'dir/some/long/path/ascii-name-that-is-long.bin';

  it.each([20, 30, 40, 80, 120])('on %i columns no line reaches the last column', async (columns) => {
    const lines = await barLines(columns, [wide, ascii]);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(stringWidth(line)).toBeLessThanOrEqual(columns - 1);
    // Whole characters only: no half of an emoji's surrogate pair.
    for (const line of lines)
      expect(line).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });

  it('on 80 columns the total has its rate and ETA, and a name keeps its end', async () => {
    const lines = await barLines(80, [wide, ascii]);
    expect(lines.some((line) => /^total .*MiB\/s {2}ETA /.test(line))).toBe(true);
    // Before: 101 columns for this one (counted as characters), wrapping to a second row.
    expect(lines.some((line) => line.startsWith('…') && line.includes('文件😀.bin '))).toBe(true);
    expect(lines.some((line) => line.startsWith('…ascii-name-that-is-long.bin '))).toBe(true);
  });

  it('narrower than a name and a figure, the figure alone', async () => {
    const lines = await barLines(20, [ascii]);
    expect(lines.some((line) => /^\d+(\.\d+)? MiB \/ 143 MiB$/.test(line))).toBe(true);
  });
});
