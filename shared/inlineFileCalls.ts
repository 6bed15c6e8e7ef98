/**
 * Reads and writes of regular files, run on the event loop itself while they are fast and through
 * libuv's threadpool once one is slow.
 *
 * Why: on the 2-core VMs we measure on, handing one fs call to the threadpool costs the loop
 * 40–100 µs (a futex wake across cores) and the copy then happens on another core's cache; a
 * 1 MiB read served from the page cache costs ~130 µs done in place against ~230 µs (CPU, all
 * threads) handed off (bench/README.md). nginx and pyftpdlib read files on their loop for the same
 * reason. What the threadpool is for is a disk that makes a call wait: such a call (slower than
 * `slowCallMs`) sends every call after it to the threadpool for a back-off that doubles while calls
 * stay slow, so a slow disk stalls the loop once per back-off at most, not on every call. From a
 * clean record it takes `slowCallsToOffload` slow calls, each among the `slowCallWindow` calls
 * after the one before, or one slower than `verySlowCallMs`: a slow disk makes call after call
 * slow, while on our VMs a lone call now and then takes 6–8 ms however fast the disk (the vCPU
 * descheduled, a host page fault: one or two per second among 5,000 small uploads), and a second
 * of handing every call off cost those uploads twice the CPU of the calls themselves. On a machine
 * other processes keep busy, descheduled calls come many a second; so a slow call's time spent
 * waiting for a CPU (threadRunQueue.ts: read once a turn and after a slow call, so it is the wait
 * since the turn's first call, at most one turn's budget more than the call's own) is not counted
 * as the disk's: a server whose machine other processes kept at load 7–9 spent 3.6/3.9 CPU-s (min
 * and median of six runs) on 2,000 small uploads where it had spent 4.2/5.2, the calls handed off
 * for back-offs such calls started.
 *
 * A call on the loop resolves without the loop turning, so a caller reading in a loop (a digest of
 * a large file) would otherwise hold the loop until it is done: calls on the loop hold it at most
 * `turnBudgetMs` a turn (loopTurns.ts), as each call through the threadpool let it turn.
 */

import { DEFAULTS } from './defaults.js';
import { LoopTurns, settle } from './loopTurns.js';
import { threadRunQueueWaitMs } from './threadRunQueue.js';

export interface InlineFileCallsOptions {
  /** A call on the loop that takes longer than this sends the next ones to the threadpool (ms). */
  slowCallMs?: number;
  /** How long calls go to the threadpool after the first slow one; doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Calls on the loop hold it at most about this long before the next waits for the next turn. */
  turnBudgetMs?: number;
  /** Slow calls, each among the `slowCallWindow` calls after the one before, that start the first back-off. */
  slowCallsToOffload?: number;
  slowCallWindow?: number;
  /** A call slower than this (ms) starts the first back-off alone. */
  verySlowCallMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /**
   * The thread's time spent waiting for a CPU so far, in ms, or undefined where unknown (tests;
   * by default Linux's schedstat, or none when `now` is a test's clock, which it cannot match).
   */
  runQueueWaitMs?: () => number | undefined;
}

export class InlineFileCalls {
  readonly slowCallMs: number;
  readonly turnBudgetMs: number;
  readonly #firstBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #slowCallsToOffload: number;
  readonly #slowCallWindow: number;
  readonly #verySlowCallMs: number;
  readonly #now: () => number;
  /** Slow calls so far, each close to the one before, while no back-off is held. */
  #slowCalls = 0;
  /** Calls on the loop since the last slow one. */
  #callsSinceSlow = 0;
  /** Calls go to the threadpool until then. */
  #offloadUntil = 0;
  /** The back-off the last slow call got (0: none yet, or all forgiven); the next one doubles it. */
  #backoffMs = 0;
  /** Calls fast until then halve the back-off. */
  #forgiveAt = 0;
  /** Calls on the loop, held to a budget per turn. */
  readonly #turns: LoopTurns;
  readonly #runQueueWaitMs: () => number | undefined;
  /** The turn #turnRunQueueWaitMs was read in, and the reading (at its first call on the loop). */
  #readingTurn = -1;
  #turnRunQueueWaitMs: number | undefined;

  constructor(options: InlineFileCallsOptions = {}) {
    this.slowCallMs = positive(options.slowCallMs ?? DEFAULTS.inlineFileCallSlowMs, 'slowCallMs');
    this.#firstBackoffMs = positive(options.backoffMs ?? DEFAULTS.inlineFileCallBackoffMs, 'backoffMs');
    this.#maxBackoffMs = positive(
      options.maxBackoffMs ?? DEFAULTS.inlineFileCallMaxBackoffMs,
      'maxBackoffMs',
    );
    this.#slowCallsToOffload = positive(
      options.slowCallsToOffload ?? DEFAULTS.inlineFileCallSlowCallsToOffload,
      'slowCallsToOffload',
    );
    this.#slowCallWindow = positive(
      options.slowCallWindow ?? DEFAULTS.inlineFileCallSlowCallWindow,
      'slowCallWindow',
    );
    this.#verySlowCallMs = positive(
      options.verySlowCallMs ?? DEFAULTS.inlineFileCallVerySlowMs,
      'verySlowCallMs',
    );
    this.#now = options.now ?? performance.now.bind(performance);
    this.#runQueueWaitMs =
      options.runQueueWaitMs ?? (options.now === undefined ? threadRunQueueWaitMs : () => undefined);
    this.#turns = new LoopTurns({
      turnBudgetMs: positive(options.turnBudgetMs ?? DEFAULTS.inlineFileCallTurnBudgetMs, 'turnBudgetMs'),
      now: this.#now,
    });
    this.turnBudgetMs = this.#turns.turnBudgetMs;
  }

  /** True while calls go to the threadpool. */
  get offloading(): boolean {
    return this.#now() < this.#offloadUntil;
  }

  /**
   * `inline` (a synchronous fs call) on the loop, or `offloaded` (the same call through the
   * threadpool) while a recent call was slow. Either way the result comes as a promise, and an
   * error thrown inline as a rejection, so callers see one behaviour.
   */
  run<T>(inline: () => T, offloaded: () => Promise<T>): Promise<T> {
    if (this.offloading) return settle(offloaded);
    return this.#turns.run(() => {
      // Waited for a turn meanwhile: a call slow since then sends this one to the threadpool too.
      if (this.#readingTurn !== this.#turns.turn) {
        this.#readingTurn = this.#turns.turn;
        this.#turnRunQueueWaitMs = this.#runQueueWaitMs();
      }
      const started = this.#now();
      if (started < this.#offloadUntil) return offloaded();
      try {
        return inline();
      } finally {
        this.#timed(started);
      }
    });
  }

  #timed(started: number): void {
    const finished = this.#now();
    this.#callsSinceSlow++;
    let tookMs = finished - started;
    if (tookMs > this.slowCallMs) tookMs -= this.#descheduledMs();
    if (tookMs > this.slowCallMs) {
      // A back-off held (not yet forgiven) means the disk was slow lately: one slow call is enough,
      // as is one very slow call.
      const close = this.#slowCalls > 0 && this.#callsSinceSlow <= this.#slowCallWindow;
      this.#slowCalls = close ? this.#slowCalls + 1 : 1;
      this.#callsSinceSlow = 0;
      const enough =
        this.#backoffMs > 0 || tookMs > this.#verySlowCallMs || this.#slowCalls >= this.#slowCallsToOffload;
      if (!enough) return;
      this.#slowCalls = 0;
      this.#backoffMs = Math.min(this.#maxBackoffMs, Math.max(this.#firstBackoffMs, this.#backoffMs * 2));
      this.#offloadUntil = finished + this.#backoffMs;
      this.#forgiveAt = this.#offloadUntil + this.#backoffMs;
    } else if (this.#backoffMs > 0 && finished >= this.#forgiveAt) {
      // No slow call for a whole back-off after the last one ended: forgive one doubling.
      this.#backoffMs = this.#backoffMs <= this.#firstBackoffMs ? 0 : this.#backoffMs / 2;
      this.#forgiveAt = finished + this.#backoffMs;
    }
  }

  /** Time this thread waited for a CPU since this turn's first call on the loop (0 if unknown). */
  #descheduledMs(): number {
    const before = this.#turnRunQueueWaitMs;
    const now = before === undefined ? undefined : this.#runQueueWaitMs();
    return before === undefined || now === undefined ? 0 : Math.max(0, now - before);
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`InlineFileCalls: ${name} must be a positive number, got ${value}`);
  return value;
}
