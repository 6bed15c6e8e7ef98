/**
 * The `retry k/N` lines of one command's transfers: the transfers one lost connection (or one
 * stall) sends back to retry share one line that says how many, as lftp and rsync say a lost
 * connection once, where a `get -r -j 50` of a stopped server printed one line per file in flight.
 *
 * What one event is: the transfers that fail on one connection within
 * DEFAULTS.retryNoticeGatherMs of the first, whatever each failed with (a stall past the
 * server's idle timeout fails some STREAM_TIMEOUT, and the rest with the connection it then
 * closes). Every call a lost connection cuts off rejects with the same error (the client's), so
 * a transfer that comes to its retry later still (a get keeps its partial file first) with an
 * error said already is in that line. A lone transfer's line is as it always was.
 */
import { DEFAULTS } from '../shared/defaults.js';
import { errorInfo } from './output.js';
import { AFTER_DRAIN, isConnectionLoss, isDraining, retryNotice } from './reconnect.js';

interface RetryGroup {
  /** The first transfer's: `get a.bin`. */
  readonly subject: string;
  readonly error: unknown;
  /**
   * The first loss's wait: every transfer the loss cut off waits for the one reconnect, which
   * waits the first caller's delay (ReconnectingClient.tryReplace).
   */
  lossDelayMs: number | undefined;
  readonly of: number;
  /**
   * The server refused one SHUTTING_DOWN as it drains: its retry waits for the connection's end
   * first, and the line, which names the refusal over a stall, says so.
   */
  draining: boolean;
  /** The shortest and longest wait before a retry on a connection still up (a stall): each waits its own. */
  shortestDelayMs: number;
  longestDelayMs: number;
  transfers: number;
  lowestAttempt: number;
  highestAttempt: number;
  readonly timer: NodeJS.Timeout;
  /**
   * Connection losses among its failures, the first first: said by its line (the first named,
   * when it speaks for several), for transfers that come later.
   */
  readonly losses: Set<object>;
}

export class RetryNotices {
  readonly #command: string;
  readonly #what: string;
  readonly #write: (line: string) => void;
  /** Events still gathering transfers, by connection. */
  readonly #gathering = new Map<object, RetryGroup>();
  /** Connection losses said already: a transfer that comes to its retry after the line is in it. */
  readonly #said = new WeakSet<object>();

  /**
   * `command`: `get` or `put`; `write` puts a line on stderr (through the bars while they show);
   * `what` the line counts: transfers, or a command's planning requests.
   */
  constructor(command: string, write: (line: string) => void, what: 'transfers' | 'requests' = 'transfers') {
    this.#command = command;
    this.#write = write;
    this.#what = what;
  }

  /**
   * Transfer `subject` (`get a.bin`), failed with `error` on `connection`, is tried again
   * (`attempt` of `of`, after `delayMs`).
   */
  retrying(
    subject: string,
    error: unknown,
    connection: object,
    attempt: number,
    of: number,
    delayMs: number,
  ): void {
    const loss = isConnectionLoss(error) && typeof error === 'object' && error !== null ? error : undefined;
    if (loss !== undefined && this.#said.has(loss)) return;
    const group = this.#gathering.get(connection);
    if (group !== undefined) {
      group.transfers++;
      group.lowestAttempt = Math.min(group.lowestAttempt, attempt);
      group.highestAttempt = Math.max(group.highestAttempt, attempt);
      group.shortestDelayMs = Math.min(group.shortestDelayMs, delayMs);
      group.longestDelayMs = Math.max(group.longestDelayMs, delayMs);
      group.draining ||= isDraining(connection, error);
      if (loss !== undefined) {
        group.lossDelayMs ??= delayMs;
        group.losses.add(loss);
      }
      return;
    }
    const timer = setTimeout(() => this.#say(connection), DEFAULTS.retryNoticeGatherMs);
    // The retry's own wait, longer, keeps the process up; an interrupted command says it in flush().
    timer.unref();
    this.#gathering.set(connection, {
      subject,
      error,
      draining: isDraining(connection, error),
      lossDelayMs: loss === undefined ? undefined : delayMs,
      of,
      shortestDelayMs: delayMs,
      longestDelayMs: delayMs,
      transfers: 1,
      lowestAttempt: attempt,
      highestAttempt: attempt,
      timer,
      losses: new Set(loss === undefined ? [] : [loss]),
    });
  }

  /** Says what is still gathering (the command is ending). */
  flush(): void {
    for (const connection of [...this.#gathering.keys()]) this.#say(connection);
  }

  #say(connection: object): void {
    const group = this.#gathering.get(connection);
    if (group === undefined) return;
    clearTimeout(group.timer);
    this.#gathering.delete(connection);
    for (const loss of group.losses) this.#said.add(loss);
    const { subject, error, of, shortestDelayMs, longestDelayMs, transfers, lowestAttempt, highestAttempt } =
      group;
    if (transfers === 1) {
      const when = group.draining ? AFTER_DRAIN : undefined;
      this.#write(retryNotice(subject, error, lowestAttempt, of, shortestDelayMs, when));
      return;
    }
    // The lost connection, when one is among the failures: the transfers said silently later
    // (a loss said already) failed with it.
    const [firstLoss] = group.losses;
    const said = firstLoss ?? error;
    const attempts =
      lowestAttempt === highestAttempt ? `${lowestAttempt}` : `${lowestAttempt}–${highestAttempt}`;
    const seconds = (ms: number) => (ms / 1000).toFixed(1);
    const wait =
      group.lossDelayMs !== undefined
        ? seconds(group.lossDelayMs)
        : seconds(shortestDelayMs) === seconds(longestDelayMs)
          ? seconds(shortestDelayMs)
          : `${seconds(shortestDelayMs)}–${seconds(longestDelayMs)}`;
    this.#write(
      `muxftp: ${this.#command}: ${errorInfo(said).message}; ${transfers} ${this.#what} retry ${attempts}/${of} ${group.draining ? AFTER_DRAIN : `in ${wait} s`}`,
    );
  }
}
