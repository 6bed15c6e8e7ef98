/**
 * Counts turns of the event loop: a check-phase callback (setImmediate) that re-arms itself until
 * stopped. Counted in turns, not timed, so load cannot make a test pass or fail.
 */
export class LoopTurns {
  #turns = 0;
  #counting = true;

  constructor() {
    setImmediate(this.#count);
  }

  /** Turns counted so far. */
  get turns(): number {
    return this.#turns;
  }

  /** Stops counting; returns the turns counted. */
  stop(): number {
    this.#counting = false;
    return this.#turns;
  }

  readonly #count = (): void => {
    this.#turns++;
    if (this.#counting) setImmediate(this.#count);
  };
}
