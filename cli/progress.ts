/**
 * Transfer progress on stderr: one bar per transfer in flight (name, bytes, rate) under a total
 * bar (bytes, rate, ETA), each bar removed when its transfer ends. Shown only on a terminal and
 * without --quiet/--json; otherwise every call is a no-op, so scripts and pipes see nothing.
 * No more bars than the terminal has rows for (cli-progress scrambles the screen past that): the
 * other transfers count in the total, which says how many, and take a bar as one frees up.
 */
import cliProgress from 'cli-progress';
import stringWidth from 'string-width';
import { formatBytes, formatDuration, formatEta, formatRate } from '../shared/humanUnits.js';
import { printable, printableLines } from '../shared/printable.js';
import { giveTerminalBackOnStop } from '../shared/terminalStop.js';
import { canRedraw } from './terminalDrawing.js';

export interface TransferMeter {
  /** Bytes done so far; the size when known (a download learns it from the server's reply). */
  update(bytesDone: number, bytesTotal: number | undefined): void;
  /**
   * The transfer continues (-c, a retry) from `fromBytes` already at the destination: they count
   * as done, not as moved now, so no rate counts them.
   */
  continuing(fromBytes: number): void;
  /** The transfer starts over (`--retries`): its bar says which attempt this is, from zero bytes. */
  retry(attempt: number, of: number): void;
  /** The server refused it SERVER_BUSY: it waits to try again on the same connection. */
  busy(): void;
  end(ok: boolean): void;
}

export interface TransferProgress {
  /** False when nothing is drawn. */
  readonly visible: boolean;
  /** Bytes the whole run is expected to move, as far as known before it starts. */
  expect(bytes: number): void;
  /**
   * Files that failed before a transfer began (a missing local file, say), and directories that
   * did (not listed, not read, not made): the summary counts them, the directories apart.
   */
  failedBeforeStart(count: number, directories?: number): void;
  /** Files never started because Ctrl-C came first: counted apart from those that failed. */
  notStarted(count: number): void;
  begin(name: string, size: number | undefined): TransferMeter;
  /** A file not transferred: its copy at the destination is identical (--skip-identical). */
  skipped(size: number | undefined): void;
  /** A stderr line printed above the bars instead of through them (a bug's stack: its lines). */
  log(line: string): void;
  /**
   * The process exits now, with no finish() (stdout cannot be written): the lines queued by log()
   * are written, the bars go and the cursor comes back; no summary. Safe twice, and before finish().
   */
  release(): void;
  /**
   * Removes the bars and prints a one-line summary: the files that succeeded and their bytes (and
   * the bytes moved for them, where that differs: a continued file moves only its rest), then how
   * many failed, were never started (Ctrl-C) and were skipped (`3 files (12 MiB), 1 failed in
   * 2.1 s (5.7 MiB/s)`), in the time since the run began (ProgressOptions.startedAt) and the bytes
   * moved over that time. Call exactly once.
   */
  finish(): void;
}

export interface ProgressOptions {
  json: boolean;
  quiet: boolean;
  stream: NodeJS.WriteStream;
  /**
   * When the run began (performance.now()): its connect, before the planning (stats, listings,
   * mkdirs) and the transfers, which the summary's time and rate are over. Default: now.
   */
  startedAt?: number;
}

export function createTransferProgress(options: ProgressOptions): TransferProgress {
  if (options.json || options.quiet) return new HiddenProgress();
  const tally = new RunTally(options.startedAt);
  if (options.stream.isTTY !== true) return new SummaryOnFailure(options.stream, tally);
  // A terminal all the same, read by a person: the summary a terminal ends with, without the bars.
  if (!canRedraw(options.stream)) return new SummaryOnly(options.stream, tally);
  return new BarProgress(options.stream, tally);
}

/**
 * One transfer's bytes: those done, as its bar shows them (what a continued transfer found at the
 * destination among them), and those moved in this run, which alone make a rate. Moved bytes
 * only grow: an attempt that starts over moves its bytes again.
 */
class TransferBytes {
  done = 0;
  moved = 0;

  /** The bytes done are now `bytesDone`; returns by how much they changed. */
  update(bytesDone: number): number {
    const change = bytesDone - this.done;
    this.done = bytesDone;
    this.moved += Math.max(0, change);
    return change;
  }

  /** The transfer continues from `fromBytes`: done, but not moved now. Returns the change in done. */
  continuing(fromBytes: number): number {
    const change = fromBytes - this.done;
    this.done = fromBytes;
    return change;
  }
}

/**
 * What a run did, for its one-line summary. Timed from the run's start (its connect, after any
 * password prompt), not from its transfers': from those alone, a `put -r` that spent 15 s making
 * its directories (retries against a draining server) ended `in 8.7 s` after 25 s.
 */
class RunTally {
  private readonly startedAt: number;

  constructor(startedAt = performance.now()) {
    this.startedAt = startedAt;
  }
  /** Bytes of the transfers that succeeded (a failed file's bytes are not moved). */
  succeededBytes = 0;
  /** Of those, the bytes moved in this run: a continued file's rest, a retried one's again. */
  movedBytes = 0;
  succeeded = 0;
  failed = 0;
  notStarted = 0;
  skipped = 0;
  /** Directories of a tree that failed (not listed, not read, not made): no file, counted apart. */
  failedDirectories = 0;

  succeededWith(bytes: TransferBytes): void {
    this.succeeded++;
    this.succeededBytes += bytes.done;
    this.movedBytes += bytes.moved;
  }

  /** `3 files (12 MiB), 1 failed in 2.1 s (5.7 MiB/s)`; `1 file (9.00 MiB, 1.00 MiB moved) …` after -c. */
  summary(): string {
    const elapsed = performance.now() - this.startedAt;
    const files = `${this.succeeded} file${this.succeeded === 1 ? '' : 's'}`;
    const failed = this.failed > 0 ? `, ${this.failed} failed` : '';
    const notStarted = this.notStarted > 0 ? `, ${this.notStarted} not started` : '';
    const skipped = this.skipped > 0 ? `, ${this.skipped} skipped (already there)` : '';
    const dirs = this.failedDirectories;
    const failedDirectories = dirs > 0 ? `, ${dirs} director${dirs === 1 ? 'y' : 'ies'} failed` : '';
    // The bytes moved now, not those a continued file had at the destination already, over the
    // time the line gives: the run's, its planning included.
    const rate = elapsed > 0 ? formatRate((this.movedBytes / elapsed) * 1_000) : '';
    const size = formatBytes(this.succeededBytes);
    const moved = formatBytes(this.movedBytes);
    const bytes = moved === size ? size : `${size}, ${moved} moved`;
    return `muxftp: ${files} (${bytes})${failed}${notStarted}${skipped}${failedDirectories} in ${formatDuration(elapsed)} (${rate})`;
  }
}

/**
 * Not on a terminal (cron, a log file): no bars, but a run of several files where some failed
 * ends with the summary, as rsync ends with its error line: the count a log is searched for,
 * which only the terminal got. A run where all went well stays silent.
 */
class SummaryOnFailure implements TransferProgress {
  readonly visible = false;
  protected readonly tally: RunTally;
  protected readonly stream: NodeJS.WritableStream;

  constructor(stream: NodeJS.WritableStream, tally = new RunTally()) {
    this.stream = stream;
    this.tally = tally;
  }

  expect(): void {}
  failedBeforeStart(count: number, directories = 0): void {
    this.tally.failed += count;
    this.tally.failedDirectories += directories;
  }
  notStarted(count: number): void {
    this.tally.notStarted += count;
  }
  begin(): TransferMeter {
    const bytes = new TransferBytes();
    let ended = false;
    return {
      update: (bytesDone) => {
        bytes.update(bytesDone);
      },
      continuing: (fromBytes) => {
        bytes.continuing(fromBytes);
      },
      retry: () => {
        // From zero: what the attempt before moved stays moved, and the new one moves its own.
        bytes.continuing(0);
      },
      busy() {},
      end: (ok) => {
        if (ended) return;
        ended = true;
        if (ok) this.tally.succeededWith(bytes);
        else this.tally.failed++;
      },
    };
  }
  skipped(): void {
    this.tally.skipped++;
  }
  log(): void {}
  release(): void {}
  finish(): void {
    const { succeeded, failed, notStarted, skipped, failedDirectories } = this.tally;
    const failures = failed + notStarted + failedDirectories;
    if (failures > 0 && succeeded + skipped + failures > 1) this.stream.write(`${this.tally.summary()}\n`);
  }
}

/** A terminal that cannot redraw (TERM=dumb, canRedraw): no bars, the summary after every run. */
class SummaryOnly extends SummaryOnFailure {
  override finish(): void {
    this.stream.write(`${this.tally.summary()}\n`);
  }
}

/** Bytes per second over the last few seconds, so a stall shows as a falling rate. */
class RateMeter {
  private static readonly WINDOW_MS = 3_000;
  private static readonly SAMPLE_EVERY_MS = 100;
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  record(bytes: number): void {
    const at = performance.now();
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && at - last.at < RateMeter.SAMPLE_EVERY_MS && this.samples.length > 1) {
      last.bytes = bytes;
      return;
    }
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0]!.at > RateMeter.WINDOW_MS) this.samples.shift();
  }

  perSecond(): number {
    const at = performance.now();
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (first === undefined || last === undefined || at - first.at < 1) return 0;
    return ((last.bytes - first.bytes) / (at - first.at)) * 1_000;
  }
}

class HiddenProgress implements TransferProgress {
  readonly visible = false;
  expect(): void {}
  failedBeforeStart(): void {}
  notStarted(): void {}
  begin(): TransferMeter {
    return { update() {}, continuing() {}, retry() {}, busy() {}, end() {} };
  }
  skipped(): void {}
  log(): void {}
  release(): void {}
  finish(): void {}
}

/** The name column and the bar at their widest; narrower terminals get less of both. */
const NAME_WIDTH = 28;
const BAR_WIDTH = 20;
/** Narrower than this, the bar goes (the figures say as much); the name keeps at least MIN_NAME_WIDTH. */
const MIN_BAR_WIDTH = 6;
const MIN_NAME_WIDTH = 12;
/** Fewer columns than this of a name say nothing: the name goes instead. */
const MIN_SHOWN_NAME = 4;
/** `999.9 MiB / 999.9 MiB` and `999.9 MiB/s`: the figures at their usual widest. */
const BYTES_WIDTH = 21;
const RATE_WIDTH = 11;

/** The characters of a name as the terminal draws them: a letter with its accents, a ZWJ emoji, a flag. */
let graphemes: Intl.Segmenter | undefined;
/** fitName's answers: each bar's name is fitted on every frame, 10 a second, and rarely changes. */
const fitted = new Map<string, string>();
const FITTED_KEPT = 1_024;

/**
 * Fits a name in `width` columns of the terminal, keeping its end (the file name) when it is too
 * long. Columns, not characters: a CJK character or an emoji takes two, a combining accent none;
 * counted as characters, such a name pushed its line past the width, where it wraps and the bars'
 * redraw goes wrong. Cut between whole characters (graphemes), never between a letter and its
 * accent or within a ZWJ emoji or a flag, and in at most `units` UTF-16 code units, padding
 * included: cli-progress cuts each line at the terminal's width counted in those (see fitLine).
 */
function fitName(text: string, width: number, units = Number.POSITIVE_INFINITY): string {
  const key = `${width} ${units} ${text}`;
  let answer = fitted.get(key);
  if (answer === undefined) {
    if (fitted.size >= FITTED_KEPT) fitted.clear();
    answer = fitNameNow(text, width, units);
    fitted.set(key, answer);
  }
  return answer;
}

function fitNameNow(text: string, width: number, units: number): string {
  const name = printable(text);
  const columns = stringWidth(name);
  if (columns <= width && name.length + width - columns <= units) return name + ' '.repeat(width - columns);
  graphemes ??= new Intl.Segmenter();
  const parts = Array.from(graphemes.segment(name), (part) => part.segment);
  let kept = '';
  let used = 1; // the ellipsis, one column and one unit
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i]!;
    const partColumns = stringWidth(part);
    if (used + partColumns > width) break;
    if (1 + kept.length + part.length + width - used - partColumns > units) break;
    kept = part + kept;
    used += partColumns;
  }
  return `…${kept}${' '.repeat(width - used)}`;
}

/**
 * One bar's line within the terminal's `columns`. `figures` come whole, each padded to its usual
 * width so that bars of one kind line up; the bar narrows, then the name, then the bar goes and
 * the padding with it, and only then the last figures (the total's ETA, then its rate). The last
 * column stays empty: a line that fills it wraps on some terminals. cli-progress then cuts the
 * line at `columns` UTF-16 code units, which a name of decomposed accents or ZWJ emoji has more
 * of than columns: the figures went, then half of an emoji. All but the name is ASCII, so the
 * name gets what of the `columns` units the rest leaves.
 */
function fitLine(columns: number, name: string, bar: (width: number) => string, figures: string[]): string {
  const room = Math.max(1, columns - 1);
  const tail = figures.join('  ');
  const left = room - tail.length - 2; // a space each side of the bar
  if (left >= NAME_WIDTH + MIN_BAR_WIDTH)
    return nameBarAndTail(columns, name, NAME_WIDTH, Math.min(BAR_WIDTH, left - NAME_WIDTH), bar, tail);
  if (left >= MIN_NAME_WIDTH + MIN_BAR_WIDTH)
    return nameBarAndTail(columns, name, left - MIN_BAR_WIDTH, MIN_BAR_WIDTH, bar, tail);
  const parts = figures.map((figure) => figure.trim());
  const nameColumns = stringWidth(printable(name));
  const shortest = Math.min(MIN_NAME_WIDTH, nameColumns);
  while (parts.length > 1 && room - parts.join('  ').length - 1 < shortest) parts.pop();
  const tight = parts.join('  ');
  // Too narrow for a name (a few columns of it) beside the first figure: that figure alone, cut
  // at the edge if it must be.
  if (tight.length + 1 + MIN_SHOWN_NAME > room) return tight.slice(0, room);
  const nameWidth = Math.min(NAME_WIDTH, nameColumns, room - tight.length - 1);
  return `${fitName(name, nameWidth, columns - tight.length - 1)} ${tight}`;
}

/**
 * The name in `width` columns, the bar and the figures, in `columns` UTF-16 code units (fitLine):
 * a name of more units than columns takes them from the bar (down to MIN_BAR_WIDTH) before it
 * is cut shorter.
 */
function nameBarAndTail(
  columns: number,
  name: string,
  width: number,
  barWidth: number,
  bar: (width: number) => string,
  tail: string,
): string {
  const spare = columns - fitName(name, width).length - tail.length - 2;
  const rest = ` ${bar(Math.max(MIN_BAR_WIDTH, Math.min(barWidth, spare)))} ${tail}`;
  return `${fitName(name, width, columns - rest.length)}${rest}`;
}

interface FilePayload {
  name: string;
  /** Of the bytes moved in this run (TransferBytes.moved). */
  rate: RateMeter;
  sizeKnown: boolean;
  /** Once the transfer is over, while its bar waits for the next (shown instead of a rate). */
  ended?: 'done' | 'failed';
}

interface TotalPayload {
  /** Of the bytes moved in this run, not of the bytes done. */
  rate: RateMeter;
  /** Transfers in flight whose size is not known yet (stdin): until then the total is not either. */
  unknownSizes: number;
  /** Transfers in flight without a bar of their own (more than the terminal has rows for). */
  notShown: number;
}

/** A transfer in flight, with its bar while it has one. */
interface FileSlot {
  readonly payload: FilePayload;
  bar: cliProgress.SingleBar | undefined;
  value: number;
  total: number;
}

/** The bar itself, `width` columns wide (at most the `barsize` it was made with). */
function renderBar(options: cliProgress.Options, params: cliProgress.Params): (width: number) => string {
  return (width) => cliProgress.Format.BarFormat(params.progress, { ...options, barsize: width });
}

/**
 * The terminal's width now: it is read on every frame, so a resized window is followed. A
 * terminal that does not say (0, as script(1) may give) is taken as 80 columns.
 */
const columnsOf = (options: cliProgress.Options): number =>
  (options as { stream?: NodeJS.WriteStream }).stream?.columns || 80;

const formatFileBar: cliProgress.GenericFormatter = (options, params, payload: FilePayload) => {
  const size = payload.sizeKnown ? formatBytes(params.total) : '?';
  const bytes = `${formatBytes(params.value)} / ${size}`.padStart(BYTES_WIDTH);
  // A bar whose transfer ended waits for the next one (hideBar): it says how it ended, no rate.
  const rate = (payload.ended ?? formatRate(payload.rate.perSecond())).padStart(RATE_WIDTH);
  return fitLine(columnsOf(options), payload.name, renderBar(options, params), [bytes, rate]);
};

const formatTotalBar: cliProgress.GenericFormatter = (options, params, payload: TotalPayload) => {
  const rate = payload.rate.perSecond();
  const remaining = params.total - params.value;
  const known = payload.unknownSizes === 0;
  const eta = !known
    ? '--'
    : remaining <= 0
      ? '0 s'
      : rate > 0
        ? formatEta((remaining / rate) * 1_000)
        : '--';
  const bytes = `${formatBytes(params.value)} / ${known ? formatBytes(params.total) : '?'}`.padStart(
    BYTES_WIDTH,
  );
  const name = payload.notShown > 0 ? `total (+${payload.notShown} not shown)` : 'total';
  const figures = [bytes, formatRate(rate).padStart(RATE_WIDTH), `ETA ${eta}`];
  return fitLine(columnsOf(options), name, renderBar(options, params), figures);
};

/** File bars a terminal has rows for: its rows less the total bar's and the cursor's. */
function fileBarsFor(stream: NodeJS.WriteStream): number {
  return Math.max(1, (stream.rows || 24) - 2);
}

/** ESC [ J: erase from the cursor to the end of the screen. */
const CLEAR_BELOW = '\x1b[J';

class BarProgress implements TransferProgress {
  readonly visible = true;
  private readonly stream: NodeJS.WriteStream;
  private readonly bars: cliProgress.MultiBar;
  private readonly totalBar: cliProgress.SingleBar;
  private readonly totalRate = new RateMeter();
  private readonly totalPayload: TotalPayload = { rate: this.totalRate, unknownSizes: 0, notShown: 0 };
  /** File bars at most: the terminal's rows less the total bar's and the cursor's (followed on resize). */
  private maxFileBars: number;
  /** Transfers in flight that have a bar, oldest first. */
  private readonly withBar = new Set<FileSlot>();
  /** Transfers in flight without a bar, oldest first. */
  private readonly waitingForBar: FileSlot[] = [];
  /** Bars whose transfer ended, kept for the next to begin (see hideBar). */
  private readonly idleBars: cliProgress.SingleBar[] = [];

  /** File bars drawn: each is a transfer's or idle. */
  private get fileBars(): number {
    return this.withBar.size + this.idleBars.length;
  }
  private expectedBytes = 0;
  private doneBytes = 0;
  private movedBytes = 0;
  private readonly tally: RunTally;
  private released = false;
  private readonly stopListeningForCtrlZ: () => void;

  constructor(stream: NodeJS.WriteStream, tally = new RunTally()) {
    this.stream = stream;
    this.tally = tally;
    this.maxFileBars = fileBarsFor(stream);
    this.bars = new cliProgress.MultiBar({
      stream,
      format: formatFileBar,
      barsize: BAR_WIDTH,
      fps: 10,
      hideCursor: true,
      clearOnComplete: true,
      // The terminal's own wrapping stays on, so a line printed above the bars (a failure and its
      // reason) wraps: with it off, everything past the last column was lost. The bars are fitted
      // to the width (fitLine) and cut there by the library.
      linewrap: true,
      // Signals are ours (see interrupt.ts); the library's handler would swallow Ctrl-C.
      gracefulExit: false,
    });
    // A frame leaves the cursor after its last line, on a narrow terminal one column short of the
    // edge (fitLine): the ^C a terminal echoes for Ctrl-C wrapped there, to a row the next redraw,
    // moving up by the lines it drew, does not count, and a copy of the bars stayed above the
    // summary. At the line's start the echo is drawn over by the next frame or the summary.
    this.bars.on('redraw-post', () => stream.write('\r'));
    this.totalRate.record(0);
    this.totalBar = this.bars.create(0, 0, this.totalPayload, {
      format: formatTotalBar,
    });
    stream.on('resize', this.onResize);
    // After fg, a redraw moving up by the last frame's lines went over the lines the shell printed
    // meanwhile ("[1]+ Stopped", the fg): the frame before the stop stays, and the next starts
    // where the cursor is then (the library keeps that count of lines and has no call to reset
    // it). Not after a Ctrl-Z that did not stop it: the next frame is drawn over the last.
    this.stopListeningForCtrlZ = giveTerminalBackOnStop(stream, {
      wentOn: () => {
        const terminal = (this.bars as unknown as { terminal?: { dy?: number } }).terminal;
        if (typeof terminal?.dy === 'number') terminal.dy = 0;
      },
    });
  }

  /**
   * The window's height changed. Fewer rows than bars and each redraw, moving up past the top,
   * scrolled: the scrollback filled with copies of the bars, stale ones stayed above the summary.
   * The bars past the new height go (idle ones first, then the newest transfers', which wait for
   * one again); more rows let waiting transfers have one.
   */
  private readonly onResize = (): void => {
    this.maxFileBars = fileBarsFor(this.stream);
    while (this.fileBars > this.maxFileBars) {
      let bar = this.idleBars.pop();
      if (bar === undefined) {
        const newest = [...this.withBar].at(-1);
        if (newest === undefined) break;
        bar = newest.bar;
        newest.bar = undefined;
        this.withBar.delete(newest);
        this.waitingForBar.unshift(newest);
      }
      if (bar !== undefined) this.bars.remove(bar);
    }
    while (this.fileBars < this.maxFileBars && this.waitingForBar.length > 0)
      this.showBar(this.waitingForBar.shift()!);
    this.totalPayload.notShown = this.waitingForBar.length;
  };

  expect(bytes: number): void {
    this.expectedBytes += bytes;
    this.refreshTotal();
  }

  failedBeforeStart(count: number, directories = 0): void {
    this.tally.failed += count;
    this.tally.failedDirectories += directories;
  }

  notStarted(count: number): void {
    this.tally.notStarted += count;
  }

  begin(name: string, size: number | undefined): TransferMeter {
    const payload: FilePayload = { name, rate: new RateMeter(), sizeKnown: size !== undefined };
    payload.rate.record(0);
    const slot: FileSlot = { payload, bar: undefined, value: 0, total: size ?? 0 };
    if (this.idleBars.length > 0 || this.fileBars < this.maxFileBars) this.showBar(slot);
    else this.waitingForBar.push(slot);
    this.totalPayload.notShown = this.waitingForBar.length;
    const bytes = new TransferBytes();
    let ended = false;
    if (size === undefined) this.totalPayload.unknownSizes++;
    // What of expectedBytes is this transfer's: the size listed (counted by expect()) until it
    // says another (the file changed since), and what it did once it failed (no more will come).
    let expected = size ?? 0;
    const expectNow = (bytesTotal: number): void => {
      this.expectedBytes += bytesTotal - expected;
      expected = bytesTotal;
    };
    const sizeLearned = (learned: number): void => {
      this.totalPayload.unknownSizes--;
      expectNow(learned);
    };
    // The name the bar shows while bytes flow: with the attempt, after a retry.
    let label = name;
    return {
      update: (bytesDone, bytesTotal) => {
        if (ended) return;
        // Bytes come: the server took it (a busy refusal comes before any).
        payload.name = label;
        const moved = bytes.moved;
        this.doneBytes += bytes.update(bytesDone);
        this.movedBytes += bytes.moved - moved;
        payload.rate.record(bytes.moved);
        this.totalRate.record(this.movedBytes);
        const total = bytesTotal ?? size;
        if (total !== undefined) {
          if (size === undefined && !payload.sizeKnown) sizeLearned(total);
          else expectNow(total);
          payload.sizeKnown = true;
          slot.total = total;
        } else {
          slot.total = bytesDone;
        }
        slot.value = bytesDone;
        slot.bar?.setTotal(slot.total);
        slot.bar?.update(bytesDone);
        this.refreshTotal();
      },
      continuing: (fromBytes) => {
        if (ended) return;
        // The bar shows them with the next update, which comes with the size when it was unknown.
        this.doneBytes += bytes.continuing(fromBytes);
        slot.value = fromBytes;
        this.refreshTotal();
      },
      retry: (attempt, of) => {
        if (ended) return;
        label = `${name} (retry ${attempt}/${of})`;
        payload.name = label;
        // The rate is the new attempt's: the one before's bytes still in the window showed the
        // old rate through the reconnect and after.
        payload.rate = new RateMeter();
        payload.rate.record(bytes.moved);
        // From zero (a put reports no 0 before its first chunk): the new attempt's bytes all count
        // as moved; a retry that continues says from where next (continuing).
        this.doneBytes += bytes.continuing(0);
        slot.value = 0;
        slot.bar?.update(0);
        this.refreshTotal();
      },
      busy: () => {
        payload.name = `${label} (server busy)`;
      },
      end: (ok) => {
        if (ended) return;
        ended = true;
        if (!payload.sizeKnown) sizeLearned(bytes.done);
        else if (!ok) expectNow(bytes.done);
        if (ok) this.tally.succeededWith(bytes);
        else this.tally.failed++;
        payload.ended = ok ? 'done' : 'failed';
        this.hideBar(slot);
      },
    };
  }

  skipped(size: number | undefined): void {
    this.tally.skipped++;
    this.expectedBytes -= size ?? 0;
    this.refreshTotal();
  }

  log(line: string): void {
    // Written where the bars were, several in a frame: each clears what is below it first (the
    // bars are drawn again after the lines), or it would keep the tail of the bar it overwrote.
    // Lines of its own (a bug's stack) stay lines; nothing else in it drives the terminal.
    this.bars.log(`${CLEAR_BELOW}${printableLines(line)}\n`);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.stream.off('resize', this.onResize);
    this.stopListeningForCtrlZ();
    // update() flushes lines queued by log(); stop() alone would drop them.
    this.bars.update();
    this.bars.stop();
  }

  finish(): void {
    if (this.released) return;
    this.release();
    this.stream.write(`${this.tally.summary()}\n`);
  }

  private showBar(slot: FileSlot): void {
    this.withBar.add(slot);
    const idle = this.idleBars.pop();
    if (idle !== undefined) {
      this.lendBar(idle, slot);
      return;
    }
    slot.bar = this.bars.create(slot.total, slot.value, slot.payload);
  }

  private lendBar(bar: cliProgress.SingleBar, slot: FileSlot): void {
    bar.start(slot.total, slot.value, slot.payload);
    slot.bar = bar;
    this.withBar.add(slot);
  }

  /** The transfer ended: its bar goes, and the oldest transfer without one takes its place. */
  private hideBar(slot: FileSlot): void {
    if (slot.bar === undefined) {
      this.waitingForBar.splice(this.waitingForBar.indexOf(slot), 1);
    } else {
      // The bar goes on to the oldest transfer without one, or waits, showing the file it
      // finished, for the next to begin; all go at the end. Removed, a bar redraws every bar at
      // once: one redraw per file, 10,000 redraws (13 MB of terminal output) for 10,000 small
      // files, where the timer draws ten a second.
      const next = this.waitingForBar.shift();
      if (next !== undefined) this.lendBar(slot.bar, next);
      else this.idleBars.push(slot.bar);
      slot.bar = undefined;
      this.withBar.delete(slot);
    }
    this.totalPayload.notShown = this.waitingForBar.length;
  }

  private refreshTotal(): void {
    this.totalBar.setTotal(Math.max(this.expectedBytes, this.doneBytes));
    this.totalBar.update(this.doneBytes);
  }
}
