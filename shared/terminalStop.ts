/**
 * Ctrl-Z while progress bars are drawn (the CLI's put/get bars, bench's bar). The bars hide the
 * terminal's cursor, and bench's turns its line wrapping off: the shell the process stops into
 * gets both back, and `fg` takes them away again.
 */

export const SHOW_CURSOR = '\x1b[?25h';
export const HIDE_CURSOR = '\x1b[?25l';
export const WRAP_LINES = '\x1b[?7h';
export const NO_WRAP = '\x1b[?7l';

/**
 * A SIGTSTP handled within this long after the process went on is not acted on: a backstop, in
 * case the stop raised again ever reached the handler instead of stopping the process (a loop).
 */
const JUST_WENT_ON_MS = 100;

/**
 * kill() took at least this long: the process was stopped in it (no one types fg faster), not
 * the stop discarded (no job-control shell), which returns at once.
 */
const WAS_STOPPED_MS = 50;

/**
 * Until the returned function is called, Ctrl-Z (SIGTSTP) gives `stream`'s terminal its cursor
 * (and line wrapping, with `wrapOff`) before the process stops, and hides it again once it goes
 * on. `wentOn` runs then, before anything else, when the process was really stopped (the bars
 * forget the lines of their last frame: the shell printed below it meanwhile).
 */
export function giveTerminalBackOnStop(
  stream: NodeJS.WriteStream,
  { wentOn, wrapOff = false }: { wentOn?: () => void; wrapOff?: boolean } = {},
): () => void {
  let wentOnAt = Number.NEGATIVE_INFINITY;
  const onStop = (): void => {
    if (performance.now() - wentOnAt < JUST_WENT_ON_MS) return;
    stream.write(wrapOff ? `${SHOW_CURSOR}${WRAP_LINES}` : SHOW_CURSOR);
    // The signal's default action, for this one: the process stops inside kill() and goes on
    // from there at fg. Where no job-control shell started it (ssh -t host muxftp …, tmux new,
    // xterm -e), the kernel discards the stop, as it did before this handler: a SIGSTOP there
    // stopped it with nothing to let it go on.
    const stoppingAt = performance.now();
    process.off('SIGTSTP', onStop);
    process.kill(process.pid, 'SIGTSTP');
    process.on('SIGTSTP', onStop);
    wentOnAt = performance.now();
    if (wentOnAt - stoppingAt >= WAS_STOPPED_MS) wentOn?.();
    stream.write(wrapOff ? `${HIDE_CURSOR}${NO_WRAP}` : HIDE_CURSOR);
  };
  process.on('SIGTSTP', onStop);
  return () => {
    process.off('SIGTSTP', onStop);
  };
}
