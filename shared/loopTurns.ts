/**
 * Calls that run on the event loop and resolve without it turning (a page-cache read, a memfs
 * lookup), held to a budget per turn: once they have held the loop for `turnBudgetMs`, the next
 * ones wait for the next turn (setImmediate, after the loop has polled the sockets and run its
 * timers). Without it a caller looking things up in a loop — a digest of a large file, hundreds of
 * listings at once — would hold the one thread until it is done, and every other connection with
 * it.
 */

import { DEFAULTS } from './defaults.js';

export interface LoopTurnsOptions {
  /** Calls hold the loop at most about this long in one turn before the next waits (ms). */
  turnBudgetMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

export class LoopTurns {
  readonly turnBudgetMs: number;
  readonly #now: () => number;
  /** When the first call in this turn started; undefined once the loop has turned. */
  #turnStartedAt: number | undefined;
  /** Counts the turns calls ran in: a caller keeping something per turn tells them apart by it. */
  #turn = 0;
  #turnResetScheduled = false;
  /**
   * Calls waiting for a later turn, oldest first, from #waitingHead on. In a queue drained by one
   * callback a turn: a call waiting is not looked at again until its turn comes (each one
   * re-arming its own setImmediate cost every turn the count of those waiting, so 50,000 lstats
   * at once held the loop for seconds), and the oldest go first.
   */
  #waiting: Array<() => void> = [];
  #waitingHead = 0;
  #drainScheduled = false;

  constructor(options: LoopTurnsOptions = {}) {
    const turnBudgetMs = options.turnBudgetMs ?? DEFAULTS.inlineFileCallTurnBudgetMs;
    if (!Number.isFinite(turnBudgetMs) || turnBudgetMs <= 0) {
      throw new RangeError(`LoopTurns: turnBudgetMs must be a positive number, got ${turnBudgetMs}`);
    }
    this.turnBudgetMs = turnBudgetMs;
    this.#now = options.now ?? performance.now.bind(performance);
  }

  /**
   * `call` now if this turn's budget has room and no call is waiting, else in a later turn. Its
   * result comes as a promise, and an error it throws as a rejection, either way.
   */
  run<T>(call: () => T | Promise<T>): Promise<T> {
    if (this.#waitingHead === this.#waiting.length && this.#fitsThisTurn()) return settle(call);
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push(() => settle(call).then(resolve, reject));
      if (!this.#drainScheduled) {
        this.#drainScheduled = true;
        setImmediate(this.#drain);
      }
    });
  }

  /** The turn a call running now runs in (changes only between calls). */
  get turn(): number {
    return this.#turn;
  }

  /** True while calls have held the loop less than the budget in this turn. */
  #fitsThisTurn(): boolean {
    const now = this.#now();
    if (this.#turnStartedAt === undefined) {
      this.#turnStartedAt = now;
      this.#turn++;
      this.#scheduleTurnReset();
      return true;
    }
    return now - this.#turnStartedAt < this.turnBudgetMs;
  }

  #scheduleTurnReset(): void {
    if (this.#turnResetScheduled) return;
    this.#turnResetScheduled = true;
    setImmediate(this.#turned);
  }

  readonly #turned = (): void => {
    this.#turnResetScheduled = false;
    this.#turnStartedAt = undefined;
  };

  /**
   * A new turn (the loop has polled the sockets since the calls were queued): the oldest waiting
   * calls run, at least one, until they have held the loop for the budget.
   */
  readonly #drain = (): void => {
    this.#drainScheduled = false;
    this.#turnStartedAt = this.#now();
    this.#turn++;
    this.#scheduleTurnReset();
    do {
      const next = this.#waiting[this.#waitingHead]!;
      this.#waiting[this.#waitingHead++] = undefined as unknown as () => void;
      next();
    } while (
      this.#waitingHead < this.#waiting.length &&
      this.#now() - this.#turnStartedAt < this.turnBudgetMs
    );
    if (this.#waitingHead === this.#waiting.length) {
      this.#waiting = [];
      this.#waitingHead = 0;
    } else {
      if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
        this.#waiting = this.#waiting.slice(this.#waitingHead);
        this.#waitingHead = 0;
      }
      this.#drainScheduled = true;
      setImmediate(this.#drain);
    }
  };
}

/**
 * `call()` as a promise, with an error it throws at once as a rejection: callers see one behaviour,
 * and in #drain it would be uncaught.
 */
export function settle<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error);
  }
}
