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
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';

export class ListingTurns {
  readonly #turns: ConcurrencyLimit;
  readonly #queue: OutboundQueue;
  #waitingForMemory = 0;
  /** Ends the waiting listings' count as an answer waiting (OutboundQueue.waitAsReply), while held. */
  #endAnswerWait: (() => void) | undefined;

  constructor(max: number, queue: OutboundQueue) {
    this.#turns = new ConcurrencyLimit(max);
    this.#queue = queue;
  }

  /**
   * Runs `listing` in its turn, after those that came before it; once `signal` is aborted while
   * it waits, it leaves the line and never runs.
   */
  async run(listing: () => Promise<void>, signal: AbortSignal): Promise<void> {
    const turn = this.#turns.run(() => {
      this.#update();
      return listing();
    }, signal);
    this.#update(); // it runs, or waits in line
    try {
      await turn;
    } catch (error) {
      if (!signal.aborted) throw error; // left the line: nothing to say
    } finally {
      this.#update();
    }
  }

  /** A listing in its turn begins (true) or ends (false) a wait for memory other listings hold. */
  waitingForMemory(waiting: boolean): void {
    this.#waitingForMemory += waiting ? 1 : -1;
    this.#update();
  }

  /** Every listing in its turn waits for memory: those behind them wait on the server, not the client. */
  get aheadWaitForMemory(): boolean {
    const running = this.#turns.runningCount;
    return running > 0 && this.#waitingForMemory >= running;
  }

  #update(): void {
    const answersWait = this.#turns.waitingCount > 0 && !this.aheadWaitForMemory;
    if (answersWait && this.#endAnswerWait === undefined) this.#endAnswerWait = this.#queue.waitAsReply();
    else if (!answersWait && this.#endAnswerWait !== undefined) {
      this.#endAnswerWait();
      this.#endAnswerWait = undefined;
    }
  }
}
