/**
 * The server's log lines to stderr, written together once per turn of the loop. Every `received`
 * line of 5,000 small uploads was a write(2) of its own to the pipe a service manager reads, and
 * a wake-up of its reader: ~5% of the server's CPU for them (bench/README.md, thirty-sixth pass).
 * Lines keep their order, are handed to stderr before the process exits (process.exit included),
 * and before anything the process writes to stdout through {@link flushStderrLines}, which shares
 * a terminal or journald with them. What a crash that runs no 'exit' listener (an abort, running
 * out of heap, a signal with no handler) ends is this turn's lines at most.
 */

let corked = false;
let flushOnExit = false;

/** `line` (with its newline) to stderr, after this turn's other lines. */
export function writeStderrLine(line: string): void {
  if (!corked) {
    corked = true;
    process.stderr.cork();
    setImmediate(flushStderrLines);
    if (!flushOnExit) {
      flushOnExit = true;
      process.on('exit', flushStderrLines);
    }
  }
  process.stderr.write(line);
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
