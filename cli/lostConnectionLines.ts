/**
 * The failure lines of a command that works through many paths on one connection (rm, chmod,
 * ls, stat, …) once that connection is lost: the first loss is said; the paths after it, which
 * fail at once with it, are counted and said in one line at the end (`muxftp: rm: 998 more
 * paths not removed, the connection lost: connection to … closed (CONNECTION_LOST)`), as put and
 * get say the files they did not start. `rm 'logs/*'` of 100,000 files printed a line for each.
 * --json still has each path's result.
 */
import type { Output } from './output.js';
import { isConnectionLoss } from './reconnect.js';

export class LostConnectionLines {
  readonly #output: Output;
  readonly #command: string;
  /** What the count's line says was not done: `not removed`. */
  readonly #notDone: string;
  /** The loss said, once one was. */
  #lost: unknown;
  #after = 0;

  constructor(output: Output, command: string, notDone: string) {
    this.#output = output;
    this.#command = command;
    this.#notDone = notDone;
  }

  /** output.failure(), unless `error` is a lost connection after one was said: then counted. */
  failure(subject: string, error: unknown, hint?: string): void {
    if (isConnectionLoss(error)) {
      if (this.#lost !== undefined) {
        this.#after++;
        return;
      }
      this.#lost = error;
    }
    this.#output.failure(subject, error, hint);
  }

  /** Says the count, if any; safe twice. */
  end(): void {
    if (this.#after === 0) return;
    const paths = `${this.#after} more path${this.#after === 1 ? '' : 's'}`;
    this.#output.failure(`${this.#command}: ${paths} ${this.#notDone}, the connection lost`, this.#lost);
    this.#after = 0;
  }
}
