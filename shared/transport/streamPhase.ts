/**
 * A stream's life as one explicit state, as yamux's `streamState`: each side keeps one phase per
 * stream instead of a set of booleans, and the phase only moves forward.
 */

export const StreamPhase = {
  /** Opened; not accepted yet (the server is still opening the file). */
  Opening: 'opening',
  /** Accepted: REPLY, DATA and WINDOW flow. */
  Open: 'open',
  /** END has passed (sent or received): the transfer completes from here, whatever the caller does. */
  Ended: 'ended',
  /** Finished — done, failed or cancelled: nothing more happens on it. */
  Closed: 'closed',
} as const;

export type StreamPhase = (typeof StreamPhase)[keyof typeof StreamPhase];

const ORDER: readonly StreamPhase[] = [
  StreamPhase.Opening,
  StreamPhase.Open,
  StreamPhase.Ended,
  StreamPhase.Closed,
];

/** The later of two phases: a phase never moves back (a late event cannot reopen a stream). */
export function laterPhase(current: StreamPhase, next: StreamPhase): StreamPhase {
  return ORDER.indexOf(next) > ORDER.indexOf(current) ? next : current;
}

/**
 * CANCEL counts only before END. After END the transfer completes (the server commits the upload,
 * the client renames the download into place), so a cancel then would report CANCELLED for a file
 * that exists anyway: it is too late, and ignored (docs/PROTOCOL.md).
 */
export function acceptsCancel(phase: StreamPhase): boolean {
  return phase === StreamPhase.Opening || phase === StreamPhase.Open;
}
