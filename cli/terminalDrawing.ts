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
