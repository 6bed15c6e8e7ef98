/**
 * Transfer progress on stderr: one bar per transfer in flight (name, bytes, rate) under a total
 * bar (bytes, rate, ETA), each bar removed when its transfer ends. Shown only on a terminal and
 * without --quiet/--json; otherwise every call is a no-op, so scripts and pipes see nothing.
 * No more bars than the terminal has rows for (cli-progress scrambles the screen past that): the
 * other transfers count in the total, which says how many, and take a bar as one frees up.
 */
import cliProgress from 'cli-progress';
import { formatBytes, formatDuration, formatEta, formatRate } from '../shared/humanUnits.js';
import { printable } from '../shared/printable.js';

export interface TransferMeter {
  /** Bytes done so far; the size when known (a download learns it from the server's reply). */
  update(bytesDone: number, bytesTotal: number | undefined): void;
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
  /** Files that failed before a transfer began (a missing local file, say): the summary counts them. */
  failedBeforeStart(count: number): void;
  begin(name: string, size: number | undefined): TransferMeter;
  /** A file not transferred: its copy at the destination is identical (--skip-identical). */
  skipped(size: number | undefined): void;
  /** A stderr line printed above the bars instead of through them. */
  log(line: string): void;
  /**
   * Removes the bars and prints a one-line summary: the files that succeeded and their bytes, then
   * how many failed and were skipped (`3 files (12 MiB), 1 failed in 2.1 s`). Call exactly once.
   */
  finish(): void;
}

export interface ProgressOptions {
  json: boolean;
  quiet: boolean;
  stream: NodeJS.WriteStream;
}

export function createTransferProgress(options: ProgressOptions): TransferProgress {
  if (options.json || options.quiet || options.stream.isTTY !== true) return new HiddenProgress();
  return new BarProgress(options.stream);
}

/** Bytes per second over the last few seconds, so a stall shows as a falling rate. */
class RateMeter {
  private static readonly WINDOW_MS = 3_000;
  private static readonly SAMPLE_EVERY_MS = 100;
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  record(bytes: number, at = performance.now()): void {
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && at - last.at < RateMeter.SAMPLE_EVERY_MS && this.samples.length > 1) {
      last.bytes = bytes;
      return;
    }
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0]!.at > RateMeter.WINDOW_MS) this.samples.shift();
  }

  perSecond(at = performance.now()): number {
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
  begin(): TransferMeter {
    return { update() {}, retry() {}, busy() {}, end() {} };
  }
  skipped(): void {}
  log(): void {}
  finish(): void {}
}

const NAME_WIDTH = 28;

/** Fits a name in the name column, keeping its end (the file name) when it is too long. */
function fitName(text: string): string {
  const name = printable(text);
  return name.length <= NAME_WIDTH ? name.padEnd(NAME_WIDTH) : `…${name.slice(-(NAME_WIDTH - 1))}`;
}

interface FilePayload {
  name: string;
  rate: RateMeter;
  sizeKnown: boolean;
  /** Once the transfer is over, while its bar waits for the next (shown instead of a rate). */
  ended?: 'done' | 'failed';
}

interface TotalPayload {
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

function renderBar(options: cliProgress.Options, params: cliProgress.Params): string {
  return cliProgress.Format.BarFormat(params.progress, options);
}

const formatFileBar: cliProgress.GenericFormatter = (options, params, payload: FilePayload) => {
  const size = payload.sizeKnown ? formatBytes(params.total) : '?';
  const bytes = `${formatBytes(params.value)} / ${size}`.padStart(21);
  // A bar whose transfer ended waits for the next one (hideBar): it says how it ended, no rate.
  const rate = payload.ended ?? formatRate(payload.rate.perSecond());
  return `${fitName(payload.name)} ${renderBar(options, params)} ${bytes}  ${rate}`;
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
  const bytes = `${formatBytes(params.value)} / ${known ? formatBytes(params.total) : '?'}`.padStart(21);
  const name = payload.notShown > 0 ? `total (+${payload.notShown} not shown)` : 'total';
  return `${fitName(name)} ${renderBar(options, params)} ${bytes}  ${formatRate(rate)}  ETA ${eta}`;
};

class BarProgress implements TransferProgress {
  readonly visible = true;
  private readonly stream: NodeJS.WriteStream;
  private readonly bars: cliProgress.MultiBar;
  private readonly totalBar: cliProgress.SingleBar;
  private readonly totalRate = new RateMeter();
  private readonly totalPayload: TotalPayload = { rate: this.totalRate, unknownSizes: 0, notShown: 0 };
  /** File bars at most: the terminal's rows less the total bar's and the cursor's. */
  private readonly maxFileBars: number;
  /** Transfers in flight without a bar, oldest first. */
  private readonly waitingForBar: FileSlot[] = [];
  private fileBars = 0;
  /** Bars whose transfer ended, kept for the next to begin (see hideBar). */
  private readonly idleBars: cliProgress.SingleBar[] = [];
  private readonly startedAt = performance.now();
  private expectedBytes = 0;
  private doneBytes = 0;
  /** Bytes of the transfers that succeeded: the summary's count (a failed file's bytes are not moved). */
  private succeededBytes = 0;
  private succeeded = 0;
  private failed = 0;
  private skippedFiles = 0;

  constructor(stream: NodeJS.WriteStream) {
    this.stream = stream;
    this.maxFileBars = Math.max(1, (stream.rows || 24) - 2);
    this.bars = new cliProgress.MultiBar({
      stream,
      format: formatFileBar,
      barsize: 20,
      fps: 10,
      hideCursor: true,
      clearOnComplete: true,
      // Signals are ours (see interrupt.ts); the library's handler would swallow Ctrl-C.
      gracefulExit: false,
    });
    this.totalRate.record(0);
    this.totalBar = this.bars.create(0, 0, this.totalPayload, {
      format: formatTotalBar,
    });
  }

  expect(bytes: number): void {
    this.expectedBytes += bytes;
    this.refreshTotal();
  }

  failedBeforeStart(count: number): void {
    this.failed += count;
  }

  begin(name: string, size: number | undefined): TransferMeter {
    const payload: FilePayload = { name, rate: new RateMeter(), sizeKnown: size !== undefined };
    payload.rate.record(0);
    const slot: FileSlot = { payload, bar: undefined, value: 0, total: size ?? 0 };
    if (this.idleBars.length > 0 || this.fileBars < this.maxFileBars) this.showBar(slot);
    else this.waitingForBar.push(slot);
    this.totalPayload.notShown = this.waitingForBar.length;
    let reported = 0;
    let ended = false;
    if (size === undefined) this.totalPayload.unknownSizes++;
    const sizeLearned = (learned: number): void => {
      this.totalPayload.unknownSizes--;
      this.expectedBytes += learned;
    };
    return {
      update: (bytesDone, bytesTotal) => {
        if (ended) return;
        this.doneBytes += bytesDone - reported;
        reported = bytesDone;
        payload.rate.record(bytesDone);
        this.totalRate.record(this.doneBytes);
        const total = bytesTotal ?? size;
        if (total !== undefined) {
          if (size === undefined && !payload.sizeKnown) sizeLearned(total);
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
      retry: (attempt, of) => {
        payload.name = `${name} (retry ${attempt}/${of})`;
      },
      busy: () => {
        payload.name = `${name} (server busy)`;
      },
      end: (ok) => {
        if (ended) return;
        ended = true;
        if (!payload.sizeKnown) sizeLearned(reported);
        if (ok) {
          this.succeeded++;
          this.succeededBytes += reported;
        } else {
          this.failed++;
        }
        payload.ended = ok ? 'done' : 'failed';
        this.hideBar(slot);
      },
    };
  }

  skipped(size: number | undefined): void {
    this.skippedFiles++;
    this.expectedBytes -= size ?? 0;
    this.refreshTotal();
  }

  log(line: string): void {
    this.bars.log(`${printable(line)}\n`);
  }

  finish(): void {
    // update() flushes lines queued by log(); stop() alone would drop them.
    this.bars.update();
    this.bars.stop();
    const elapsed = performance.now() - this.startedAt;
    const files = `${this.succeeded} file${this.succeeded === 1 ? '' : 's'}`;
    const failed = this.failed > 0 ? `, ${this.failed} failed` : '';
    const skipped = this.skippedFiles > 0 ? `, ${this.skippedFiles} skipped (already there)` : '';
    const rate = elapsed > 0 ? formatRate((this.succeededBytes / elapsed) * 1_000) : '';
    this.stream.write(
      `muxftp: ${files} (${formatBytes(this.succeededBytes)})${failed}${skipped} in ${formatDuration(elapsed)} (${rate})\n`,
    );
  }

  private showBar(slot: FileSlot): void {
    const idle = this.idleBars.pop();
    if (idle !== undefined) {
      this.lendBar(idle, slot);
      return;
    }
    slot.bar = this.bars.create(slot.total, slot.value, slot.payload);
    this.fileBars++;
  }

  private lendBar(bar: cliProgress.SingleBar, slot: FileSlot): void {
    bar.start(slot.total, slot.value, slot.payload);
    slot.bar = bar;
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
    }
    this.totalPayload.notShown = this.waitingForBar.length;
  }

  private refreshTotal(): void {
    this.totalBar.setTotal(Math.max(this.expectedBytes, this.doneBytes));
    this.totalBar.update(this.doneBytes);
  }
}
