/**
 * The longest delay a Node timer takes (2^31 - 1 ms, ~24.8 days). Past it node waits 1 ms, with a
 * TimeoutOverflowWarning: `serve --idle-timeout 3000000` closed every connection the moment it
 * went idle, and a huge login failure delay was none.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` as a timer takes it: at most MAX_TIMER_MS (a wait that long is as good as for ever). */
export function timerDelay(ms: number): number {
  return Math.min(ms, MAX_TIMER_MS);
}
