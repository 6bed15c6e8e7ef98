/**
 * Progress bars on a terminal of a given width: every line fits it in columns as the terminal
 * counts them (a CJK character or an emoji takes two), keeping the file name's end and whole
 * figures. The terminal's own line wrapping stays on (so a failure printed above the bars wraps
 * whole), which makes a line wider than the window wrap and throw the redraw a row off.
 */
import { Writable } from 'node:stream';
import stringWidth from 'string-width';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTransferProgress } from '../cli/progress.js';

const ESC = String.fromCharCode(27);
const MB = 1e6;

/** The bar lines a run of two transfers draws on a terminal `columns` wide (a stand-in stream). */
async function barLines(columns: number, names: string[]): Promise<string[]> {
  const drawn = await framesDrawn(columns, names);
  return [...drawn.matchAll(new RegExp(`${ESC}\\[1G([^${ESC}\\r\\n]*)${ESC}\\[0K`, 'g'))].map((m) => m[1]!);
}

/** All that such a run writes to the terminal before its summary: its frames. */
async function framesDrawn(columns: number, names: string[]): Promise<string> {
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
  const frames = drawn;
  progress.finish();
  return frames;
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

  // Names of more UTF-16 code units than columns: decomposed accents (as macOS writes names),
  // emoji joined by ZWJ, flags, a mathematical letter (one column, two units).
  const nfd = 'e\u0301te\u0301-cafe\u0301-re\u0301sume\u0301-nai\u0308ve-de\u0301ja\u0300-vu.txt';
  const zwj = `family${'👨\u200d👩\u200d👧\u200d👦'.repeat(4)}.bin`;
  const flags = 'flags🇯🇵🇫🇷🇩🇪🇺🇸🇬🇧🇮🇹🇪🇸🇨🇦.bin';
  const math = `${'𝐀𝐁𝐂'.repeat(8)}.dat`;
  const graphemes = new Intl.Segmenter();
  /** Where a name may be cut: the starts of its characters as the terminal draws them. */
  const cutsOf = (name: string) => new Set([...graphemes.segment(name)].map((part) => part.index));

  it.each([20, 30, 40, 80, 120])(
    'on %i columns a name of many code units keeps the figures beside it and whole characters',
    async (columns) => {
      const names = [nfd, zwj, flags, math];
      const lines = await barLines(columns, names);
      const files = lines.filter((line) => !line.startsWith('total'));
      expect(files.length).toBeGreaterThan(0);
      for (const line of files) {
        // Before: cli-progress cut each line at `columns` UTF-16 code units, the figures first
        // (on 80 columns the ZWJ name's line ended after its bar), then halves of a surrogate pair.
        expect(line).toMatch(/(B\/s|B)$/);
        expect(stringWidth(line)).toBeLessThanOrEqual(columns - 1);
        expect(line).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
        if (!line.startsWith('…')) continue;
        // A name cut where a character starts: not between a letter and its accent, in a ZWJ
        // sequence or between a flag's two letters (which showed other flags).
        const kept = line.slice(1).split(' ')[0]!;
        const name = names.find((candidate) => candidate.endsWith(kept));
        expect(name).toBeDefined();
        expect(cutsOf(name!).has(name!.length - kept.length)).toBe(true);
      }
    },
  );

  it.each([40, 80])(
    'on %i columns a frame leaves the cursor at the start of its last line, where an echoed ^C does not wrap',
    async (columns) => {
      const frames = await framesDrawn(columns, [wide, ascii]);
      expect(frames).toContain(`${ESC}[0K`);
      // Each line drawn is followed by the next line or a return to its start. Before: the cursor
      // stayed after the last line, one column short of the edge, where the ^C the terminal echoes
      // for Ctrl-C wrapped to a row the next redraw did not count: a copy of the bars stayed above.
      expect(frames).not.toMatch(new RegExp(`${ESC}\\[0K(?![\\r\\n])`));
    },
  );

  it('narrower than a name and a figure, the figure alone', async () => {
    const lines = await barLines(20, [ascii]);
    expect(lines.some((line) => /^\d+(\.\d+)? MiB \/ 143 MiB$/.test(line))).toBe(true);
  });
});

describe('a terminal that cannot redraw (TERM=dumb)', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('gets no bars and no escape sequences, but the summary a terminal ends with', async () => {
    vi.stubEnv('TERM', 'dumb');
    const frames = await framesDrawn(80, ['a.bin', 'b.bin']);
    // Before: the bars' redraws, ten a second, shown as text by Emacs' shell or an editor's pane.
    expect(frames).toBe('');
    let written = '';
    const stream = new Writable({
      write(chunk, _encoding, done) {
        written += String(chunk);
        done();
      },
    });
    Object.assign(stream, { isTTY: true, columns: 80, rows: 24 });
    const progress = createTransferProgress({
      json: false,
      quiet: false,
      stream: stream as NodeJS.WriteStream,
    });
    const meter = progress.begin('a.bin', 4);
    meter.update(4, 4);
    meter.end(true);
    progress.finish();
    expect(written).toMatch(/^muxftp: 1 file \(4 B\) in [^\n]*\n$/);
    expect(written).not.toContain(ESC);
  });
});
