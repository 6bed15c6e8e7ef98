/**
 * The server's log lines to stderr, written together once per turn of the loop. Every `received`
 * line of 5,000 small uploads was a write(2) of its own to the pipe a service manager reads, and
 * a wake-up of its reader: ~5% of the server's CPU for them (bench/README.md, thirty-sixth pass).
 * Lines keep their order and are written before the process exits (process.exit included, where
 * stderr as a pipe, terminal or file is written synchronously on Linux).
 */

let corked = false;
let flushOnExit = false;

/** `line` (with its newline) to stderr, after this turn's other lines. */
export function writeStderrLine(line: string): void {
  if (!corked) {
    corked = true;
    process.stderr.cork();
    setImmediate(uncork);
    if (!flushOnExit) {
      flushOnExit = true;
      process.on('exit', uncork);
    }
  }
  process.stderr.write(line);
}

function uncork(): void {
  if (!corked) return;
  corked = false;
  process.stderr.uncork();
}
