/**
 * The listings one connection has under way (DEFAULTS.listingsAtOncePerConnection): each holds
 * its directory's names until they are sent, so a few run at once and the rest wait their turn,
 * holding nothing. While those ahead wait for the client to read them, the waiting ones count as
 * answers waiting, and the connection reads no new requests (a client asking 800 listings and
 * reading none was otherwise read to its end). While every listing ahead waits for memory that
 * other connections' listings hold (storage's listing budget), the wait is the server's: the
 * connection goes on reading its client's PINGs, credit and other requests. A listing cancelled
 * while it waits leaves the line at once: its stream is gone, and no more streams than the cap
 * stand in it (else a client sending OPEN and CANCEL pairs meanwhile filled it without end).
 */
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';

export class ListingTurns {
  readonly #max: number;
  readonly #queue: OutboundQueue;
  /** Listings waiting their turn, in order: each started by its entry. */
  readonly #waiting: Array<() => void> = [];
  #running = 0;
  #waitingForMemory = 0;
  /** Ends the waiting listings' count as an answer waiting (OutboundQueue.waitAsReply), while held. */
  #endAnswerWait: (() => void) | undefined;

  constructor(max: number, queue: OutboundQueue) {
    if (!Number.isSafeInteger(max) || max < 1)
      throw new TypeError(`listing turns must be a positive integer, got ${max}`);
    this.#max = max;
    this.#queue = queue;
  }

  /**
   * Runs `listing` in its turn, after those that came before it; once `signal` is aborted while
   * it waits, it leaves the line and never runs.
   */
  async run(listing: () => Promise<void>, signal: AbortSignal): Promise<void> {
    if (this.#running >= this.#max) {
      const started = await this.#waitTurn(signal);
      if (!started) return;
    } else this.#running++;
    this.#update();
    try {
      await listing();
    } finally {
      // The one that finished hands its turn straight over.
      const next = this.#waiting.shift();
      if (next !== undefined) next();
      else this.#running--;
      this.#update();
    }
  }

  /** True once its turn came (the one before handed it over), false if it left the line. */
  #waitTurn(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const start = (): void => {
        signal.removeEventListener('abort', leave);
        resolve(true);
      };
      const leave = (): void => {
        const at = this.#waiting.indexOf(start);
        if (at >= 0) this.#waiting.splice(at, 1);
        this.#update();
        resolve(false);
      };
      signal.addEventListener('abort', leave, { once: true });
      this.#waiting.push(start);
      this.#update();
    });
  }

  /** A listing in its turn begins (true) or ends (false) a wait for memory other listings hold. */
  waitingForMemory(waiting: boolean): void {
    this.#waitingForMemory += waiting ? 1 : -1;
    this.#update();
  }

  /** Every listing in its turn waits for memory: those behind them wait on the server, not the client. */
  get aheadWaitForMemory(): boolean {
    return this.#running > 0 && this.#waitingForMemory >= this.#running;
  }

  #update(): void {
    const answersWait = this.#waiting.length > 0 && !this.aheadWaitForMemory;
    if (answersWait && this.#endAnswerWait === undefined) this.#endAnswerWait = this.#queue.waitAsReply();
    else if (!answersWait && this.#endAnswerWait !== undefined) {
      this.#endAnswerWait();
      this.#endAnswerWait = undefined;
    }
  }
}
