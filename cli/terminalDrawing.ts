/**
 * Whether what the CLI draws on a terminal (progress bars, a hidden cursor given back) can go to
 * `stream`: a terminal that moves its cursor. TERM=dumb is one that does not (Emacs' shell, an
 * editor's output pane, some CI logs run on a pseudo-terminal): each redraw's escape sequences
 * showed there as text, frame after frame (cargo and jest check the same; git also takes an
 * unset TERM as dumb, which would leave Windows consoles, terminals without TERM, with no bars).
 */
export function canRedraw(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export const SHOW_CURSOR = '\x1b[?25h';
const HIDE_CURSOR = '\x1b[?25l';

/**
 * Ctrl-Z (SIGTSTP) while bars on `stream` hide the cursor: it is given back before the process
 * stops, or the shell it stopped into had none, and hidden again on `fg` (SIGCONT). `stopping`
 * runs first (the bars forget the lines of their last frame). Returns the function that stops
 * listening.
 */
export function showCursorWhileStopped(stream: NodeJS.WriteStream, stopping: () => void): () => void {
  let stopped = false;
  const onStop = (): void => {
    stopped = true;
    stopping();
    stream.write(SHOW_CURSOR);
    // Handled, SIGTSTP no longer stops the process; SIGSTOP, which cannot be, does (at once).
    process.kill(process.pid, 'SIGSTOP');
  };
  const onContinue = (): void => {
    if (!stopped) return;
    stopped = false;
    stream.write(HIDE_CURSOR);
  };
  process.on('SIGTSTP', onStop);
  process.on('SIGCONT', onContinue);
  return () => {
    process.off('SIGTSTP', onStop);
    process.off('SIGCONT', onContinue);
  };
}
