/**
 * When to try again a transfer the server refused SERVER_BUSY on a connection that stays up.
 *
 * Such a refusal is no dropped connection: it is tried again on the same connection (replacing it
 * would fail every other transfer on it), and not counted against `--retries`. An open-file
 * contention (server/openFileSlots.ts) refuses a connection for up to 10 s, so a few retries with
 * a growing backoff could give up on a file the server would have served a few seconds later.
 * Instead the transfer is tried again for as long as DEFAULTS.serverBusyRetryMs from its first
 * such refusal: after the wait the server asked for (ERROR `details.retryAfterMs`) plus up to
 * half of it again, so that clients refused together do not all come back at once; a server that
 * gives no hint (one from before it could) gets the reconnect backoff, as before.
 */
import type { BusyRetryPolicy } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import type { MuxftpError } from '../shared/errors.js';
import { backoffDelayMs } from './reconnect.js';

export interface BusyRetriesOptions {
  /** How long after the first refusal a try may still start (ms). */
  limitMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** In [0, 1) (tests). */
  random?: () => number;
}

export class BusyRetries {
  readonly limitMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  #firstRefusedAt: number | undefined;
  #tries = 0;

  constructor(options: BusyRetriesOptions = {}) {
    this.limitMs = options.limitMs ?? DEFAULTS.serverBusyRetryMs;
    if (!(this.limitMs >= 0)) throw new RangeError(`limitMs must be at least 0, got ${this.limitMs}`);
    this.#now = options.now ?? performance.now.bind(performance);
    this.#random = options.random ?? Math.random;
  }

  /** Tries again so far, after refusals. */
  get tries(): number {
    return this.#tries;
  }

  /** The wait (ms) before trying again after `refusal`, or undefined when the time for it is up. */
  next(refusal: MuxftpError): number | undefined {
    const now = this.#now();
    this.#firstRefusedAt ??= now;
    const hint = refusal.details?.retryAfterMs;
    let delayMs =
      hint === undefined
        ? backoffDelayMs(this.#tries, this.#random)
        : Math.round(hint + (this.#random() * hint) / 2);
    // A hint of 0 ("at once": a put declining the initial window is admitted) twice in a row
    // would otherwise ask in a tight loop.
    if (this.#tries > 0) delayMs = Math.max(delayMs, DEFAULTS.serverBusyRetryMinDelayMs);
    if (now + delayMs - this.#firstRefusedAt > this.limitMs) return undefined;
    this.#tries++;
    return delayMs;
  }
}

/**
 * The line a command says when it first waits on a refusal: `muxftp: <subject>: <refusal>;
 * trying again in 0.6 s (for up to 60 s while the server is busy<more>)`.
 */
export function busyNoticeLine(
  subject: string,
  refusal: MuxftpError,
  delayMs: number,
  limitMs: number,
  more = '',
): string {
  const when = delayMs < 50 ? 'at once' : `in ${(delayMs / 1000).toFixed(1)} s`;
  return `muxftp: ${subject}: ${refusal.message}; trying again ${when} (for up to ${Math.round(limitMs / 1000)} s while the server is busy${more})`;
}

/**
 * The CLI's policy for one operation refused SERVER_BUSY (a connect, a request): BusyRetries'
 * waits, and at its first retry a busyNoticeLine to `notice` (Output.busyNotice, which says at
 * most one per DEFAULTS.busyNoticeIntervalMs for the whole command).
 */
export function announcedBusyRetries(subject: string, notice: (line: string) => void): BusyRetryPolicy {
  const retries = new BusyRetries();
  return {
    next(refusal: MuxftpError): number | undefined {
      const delayMs = retries.next(refusal);
      if (delayMs !== undefined && retries.tries === 1)
        notice(busyNoticeLine(subject, refusal, delayMs, retries.limitMs));
      return delayMs;
    },
  };
}
