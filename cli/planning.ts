/**
 * A transfer command's planning (the stats, listings and mkdirs before its transfers): the
 * client it asks through (planningClient: each request reconnects under `--retries`), one retry
 * line for the requests one lost connection sends back, and one line for those given up because
 * the server is away for good. Once a request or transfer has spent its retries without reaching
 * the server again (or, under --retries 0, lost the connection), the rest fail at once with its
 * reason (ServerAwayError), as the transfers not yet started do: a `get -r` of a tree whose server
 * went while it was listed printed a retry line and a failure line for each directory, and each
 * round of 64 listings waited out retries of its own (minutes for a tree of thousands).
 */
import type { Client } from '../client/client.js';
import type { Output } from './output.js';
import {
  goneReason,
  type PlanningRequest,
  planningClient,
  type ReconnectingClient,
  ServerAwayError,
} from './reconnect.js';
import { RetryNotices } from './retryNotices.js';

const WORDS: Record<PlanningRequest, [one: string, many: string]> = {
  list: ['directory not listed', 'directories not listed'],
  stat: ['path not looked at', 'paths not looked at'],
  mkdir: ['directory not made', 'directories not made'],
};

export class CommandPlanning {
  /** What planning asks through. */
  readonly client: Client;
  readonly #command: 'get' | 'put';
  readonly #retries: number;
  readonly #output: Output;
  readonly #retryNotices: RetryNotices;
  readonly #away = new Map<PlanningRequest, { count: number; why: unknown }>();

  constructor(connection: ReconnectingClient, command: 'get' | 'put', retries: number, output: Output) {
    this.#command = command;
    this.#retries = retries;
    this.#output = output;
    this.#retryNotices = new RetryNotices(command, (line) => output.notice(line), 'requests');
    this.client = planningClient(connection, retries, (error, attempt, delayMs, client) =>
      this.#retryNotices.retrying(command, error, client, attempt, retries, delayMs),
    );
  }

  /** True when `error` is a request given up with the server away: counted, for end() to say. */
  tookAway(error: unknown): boolean {
    if (!(error instanceof ServerAwayError)) return false;
    const kind = this.#away.get(error.request);
    if (kind === undefined) this.#away.set(error.request, { count: 1, why: error.cause });
    else kind.count++;
    return true;
  }

  /**
   * Says the retry lines still gathering and, for each kind of request given up, one line:
   * `muxftp: get: 38 directories not listed, the server still away: cannot connect to …`.
   * Safe twice: what is said is not said again.
   */
  end(): void {
    this.#retryNotices.flush();
    for (const [request, { count, why }] of this.#away) {
      const [one, many] = WORDS[request];
      this.#output.failure(
        `${this.#command}: ${count} ${count === 1 ? one : many}, ${goneReason(this.#retries, why)}`,
        why,
      );
    }
    this.#away.clear();
  }
}
