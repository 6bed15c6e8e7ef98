/**
 * The server's log lines to stderr, written together once per turn of the loop. Every `received`
 * line of 5,000 small uploads was a write(2) of its own to the pipe a service manager reads, and
 * a wake-up of its reader: ~5% of the server's CPU for them (bench/README.md, thirty-sixth pass).
 * Lines keep their order, are handed to stderr before the process exits (process.exit included),
 * and before anything the process writes to stdout through {@link flushStderrLines}, which shares
 * a terminal or journald with them. What a crash that runs no 'exit' listener (an abort, running
 * out of heap, a signal with no handler) ends is this turn's lines at most.
 */
import { DEFAULTS } from '../shared/defaults.js';

let corked = false;
let flushOnExit = false;
/** What earlier turns left waiting for the reader when this turn's first line came. */
let backlog = 0;
/** Lines dropped since the last one written. */
let dropped = 0;

/**
 * `line` (with its newline) to stderr, after this turn's other lines. Past
 * DEFAULTS.maxStderrBacklogBytes waiting for a reader that stopped reading (a pipe: a paused
 * pager, a stalled log shipper), dropped and counted: held, they grew the server's memory without
 * bound. The next line written is preceded by `droppedLine(count)`. A file or terminal is written
 * as it goes (node writes them synchronously): nothing waits, nothing is dropped.
 */
export function writeStderrLine(line: string, droppedLine: (count: number) => string): void {
  if (!corked) {
    corked = true;
    backlog = process.stderr.writableLength;
    process.stderr.cork();
    setImmediate(flushStderrLines);
    if (!flushOnExit) {
      flushOnExit = true;
      process.on('exit', flushStderrLines);
    }
  }
  if (backlog >= DEFAULTS.maxStderrBacklogBytes) {
    dropped++;
    return;
  }
  if (dropped > 0) {
    process.stderr.write(droppedLine(dropped));
    dropped = 0;
  }
  process.stderr.write(line);
}

/** What the line that says `count` lines were dropped says. */
export function droppedLinesText(count: number): string {
  return `${count} log lines not written: stderr was not read (more than ${DEFAULTS.maxStderrBacklogBytes / 1024 / 1024} MiB waited for its reader)`;
}

/**
 * Writes the lines held this turn now (at the turn's end, at exit, and before a line to stdout,
 * which must come after them).
 */
export function flushStderrLines(): void {
  if (!corked) return;
  corked = false;
  process.stderr.uncork();
}
