import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, failedCertificateCheck } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import { type ErrorCode, MuxftpError } from '../shared/errors.js';
import {
  type ClientCommand,
  type ConnectTarget,
  interruptibleCommand,
  openClient,
  resolveTarget,
  usingConnection,
} from './connect.js';
import { CONNECTION_LOSS_CODES, EXIT_STATUS, exitStatusFor, lostConnection } from './exitStatus.js';
import { errorInfo, type Output } from './output.js';
import type { TransferCommandOptions } from './transferOptions.js';

/**
 * Failures after which the same transfer may succeed again: the connection lost
 * (CONNECTION_LOSS_CODES; not a busy server: requests wait on one themselves), a busy one, and
 * STREAM_TIMEOUT: the server gave up on a transfer that moved nothing for its idle timeout (this
 * process was stopped, a laptop slept), and closes the connection once none is left on it.
 */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  ...CONNECTION_LOSS_CODES,
  'SERVER_BUSY',
  'STREAM_TIMEOUT',
]);

/** The error, or what it wraps (openClient's CliError wraps the connect failure), has one of `codes`. */
function failedWith(error: unknown, codes: ReadonlySet<string>): boolean {
  if (error instanceof MuxftpError) return codes.has(error.code);
  return error instanceof Error && error.cause !== undefined && failedWith(error.cause, codes);
}

/**
 * Why what was not yet started failed, said after its count (`20 files not started, …`): the
 * server did not come back through the retries, or, with none, the connection went, or it came
 * back and refused the reconnect (`failure`: a login refused).
 */
export const goneReason = (retries: number, failure?: unknown): string =>
  failure !== undefined && isRefusal(failure)
    ? 'the reconnect refused'
    : retries === 0
      ? 'the connection lost'
      : 'the server still away';

/** What a planning request asks: a stat, a listing, a mkdir (before a command's transfers). */
export type PlanningRequest = 'stat' | 'list' | 'mkdir';

/**
 * A planning request given up because the server is away for good (requestWithRetries): with
 * its reason, the failure of the reconnect that spent a request's or transfer's retries.
 */
export class ServerAwayError extends MuxftpError {
  readonly request: PlanningRequest;

  constructor(request: PlanningRequest, away: unknown) {
    const { code, message } = errorInfo(away);
    super(code as MuxftpError['code'], message, { cause: away });
    this.name = 'ServerAwayError';
    this.request = request;
  }
}

/** A reconnect whose server certificate this client refused is not: the next meets the same one. */
export const isRetryable = (error: unknown): boolean =>
  failedWith(error, RETRYABLE_CODES) && !failedCertificateCheck(error);

/** The connection went: a CONNECTION_LOSS_CODES code, or a server that closed it busy (exitStatus.ts, lostConnection). */
export const isConnectionLoss = (error: unknown): boolean => lostConnection(error);

/**
 * A reconnect the server refused (a login, the address, the connection's terms), or whose
 * certificate this client refused: trying again only repeats it (a wrong password counts towards
 * the refusal of the address). Not a server busy through the connect's wait (SERVER_BUSY), which
 * a later try may get through.
 */
const isRefusal = (error: unknown): boolean => !isRetryable(error);

const DRAINING: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['SHUTTING_DOWN']);

/** `client`'s server refused a call with `error` as it drains, the connection still up (untilDrained waits for its end). */
export const isDraining = (client: object, error: unknown): boolean =>
  (client as Partial<Client>).isOpen === true && failedWith(error, DRAINING);

/**
 * Before `client` is replaced after `error`: when the server refused a call SHUTTING_DOWN on a
 * connection still up, it is draining (it lets the transfers in flight on it finish, then ends
 * it), and this waits for that end, up to DEFAULTS.drainWaitMs or Ctrl-C (`signal`). Replacing
 * it at once cut those transfers, which the server was about to finish.
 */
export async function untilDrained(client: Client, error: unknown, signal?: AbortSignal): Promise<void> {
  if (!isDraining(client, error)) return;
  const waited = new AbortController();
  const stop = () => waited.abort();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await Promise.race([
      client.closed,
      sleep(DEFAULTS.drainWaitMs, undefined, { signal: waited.signal }).catch(() => {}),
    ]);
  } finally {
    waited.abort();
    signal?.removeEventListener('abort', stop);
  }
}

/** Equal jitter: uniformly random in [step / 2, step], step = min(cap, base · 2^attempt). */
export function backoffDelayMs(attempt: number, random: () => number = Math.random): number {
  const step = Math.min(DEFAULTS.retryMaxDelayMs, DEFAULTS.retryBaseDelayMs * 2 ** attempt);
  return Math.round(step / 2 + (random() * step) / 2);
}

/**
 * The line that says a request or transfer of `subject` is tried again: `muxftp: SUBJECT: why;
 * retry k/N in X s`, or `when` in place of `in X s` (after a draining server's refusal: AFTER_DRAIN).
 */
export function retryNotice(
  subject: string,
  error: unknown,
  attempt: number,
  of: number,
  delayMs: number,
  when = `in ${(delayMs / 1000).toFixed(1)} s`,
): string {
  return `muxftp: ${subject}: ${errorInfo(error).message}; retry ${attempt}/${of} ${when}`;
}

/** When a retry after a draining server's refusal comes (untilDrained), said in its line. */
export const AFTER_DRAIN = 'once the transfers still on its connection end';

export class ReconnectingClient {
  private readonly target: ConnectTarget;
  private current: Client;
  private replacing: Promise<Client> | undefined;
  private closed = false;
  /**
   * Why the server stayed away through a whole transfer's or request's retries (requestWithRetries),
   * until a reconnect succeeds: the transfers and requests of a large tree not yet started then
   * fail with it at once, instead of each waiting out retries of its own (100,000s of files, 8 at
   * a time: most of a day).
   */
  private awayFailure: unknown;
  /**
   * When the command began to connect (performance.now(), after any password prompt): a transfer
   * command's summary times its run from then, not from its transfers (planning can take long).
   */
  readonly startedAt: number;

  constructor(target: ConnectTarget, first: Client, startedAt = performance.now()) {
    this.target = target;
    this.current = first;
    this.startedAt = startedAt;
  }

  get client(): Client {
    return this.current;
  }

  /**
   * A connection to use instead of `failed`: the current one if someone already replaced it,
   * else a new one opened after `delayMs`. Rejects (retryably) when the server is still away, and
   * with CANCELLED at once when `signal` aborts (Ctrl-C), during the wait or the connect.
   */
  replace(failed: Client, delayMs: number, signal?: AbortSignal): Promise<Client> {
    if (this.closed) return Promise.reject(new MuxftpError('CANCELLED', 'the command is finishing'));
    if (this.current !== failed) return Promise.resolve(this.current);
    // A reconnect refused (a login): not tried again by a transfer that comes to its retry later
    // (one that waited on a busy server), which sent the wrong password once more, towards the
    // server's refusal of this address.
    if (this.awayFailure !== undefined && isRefusal(this.awayFailure))
      return Promise.reject(this.awayFailure);
    this.replacing ??= (async () => {
      try {
        await failed.destroy();
        await sleep(delayMs, undefined, signal === undefined ? {} : { signal }).catch((error: unknown) => {
          throw new MuxftpError('CANCELLED', 'cancelled while waiting to reconnect', { cause: error });
        });
        const fresh = await openClient(this.target, signal);
        if (this.closed) {
          await fresh.destroy();
          throw new MuxftpError('CANCELLED', 'the command is finishing');
        }
        this.current = fresh;
        this.awayFailure = undefined;
        return fresh;
      } finally {
        this.replacing = undefined;
      }
    })();
    return this.replacing;
  }

  /** Why the server is taken as gone (see awayFailure), or undefined while it is not. */
  get goneFailure(): unknown {
    return this.awayFailure;
  }

  /** A transfer or request spent its retries without reaching the server again: `failure` said why. */
  markGone(failure: unknown): void {
    this.awayFailure ??= failure;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.current.close();
  }

  /**
   * replace(), its failure given back instead of thrown: `client` stays `failed` then, and the
   * caller's next try fails with `failure` (the server refused, or is not there), not with the
   * dead connection's "closed" again.
   */
  async tryReplace(
    failed: Client,
    delayMs: number,
    signal?: AbortSignal,
  ): Promise<{ client: Client; failure?: unknown }> {
    try {
      return { client: await this.replace(failed, delayMs, signal) };
    } catch (failure) {
      return { client: failed, failure };
    }
  }

  async destroy(): Promise<void> {
    this.closed = true;
    await this.current.destroy();
  }
}

/**
 * Runs `request` on the connection and, each time it fails because the connection went, again on
 * a new one after the backoff (`onRetry` told first), up to `retries` times: `--retries` for what
 * a transfer command asks besides its transfers (its planning, `put --delete`'s listings and
 * removals). With the server taken as gone (markGone: retries spent on failed reconnects, or the
 * connection lost under --retries 0) it is not asked: it fails at once with why, a
 * ServerAwayError when `planning` names what it asks; so does one whose retries ran out on the
 * reconnect that another's ran out on first, which is the one to say it (planning.ts). Ctrl-C
 * (`signal`) ends its waits at once, and a request cancelled so says nothing of the server.
 */
export async function requestWithRetries<T>(
  connection: ReconnectingClient,
  retries: number,
  request: (client: Client) => Promise<T>,
  onRetry: (error: unknown, attempt: number, delayMs: number, client: Client) => void,
  { planning, signal }: { planning?: PlanningRequest; signal?: AbortSignal } = {},
): Promise<T> {
  const away = (failure: unknown) =>
    planning === undefined ? failure : new ServerAwayError(planning, failure);
  if (connection.goneFailure !== undefined) throw away(connection.goneFailure);
  let client = connection.client;
  // Why the last reconnect failed: that try's failure, said as it is (not "connection closed").
  let reconnectFailure: unknown;
  for (let attempt = 0; ; attempt++) {
    try {
      // Ctrl-C during a backoff or a reconnect: the request is cancelled, the server not taken as gone.
      if (signal?.aborted === true) throw new MuxftpError('CANCELLED', 'cancelled', { cause: signal.reason });
      if (reconnectFailure !== undefined) throw reconnectFailure;
      return await request(client);
    } catch (error) {
      // Whatever it failed with as Ctrl-C came (its connection closed on the way out), it was cancelled.
      if (signal?.aborted === true)
        throw error instanceof MuxftpError && error.code === 'CANCELLED'
          ? error
          : new MuxftpError('CANCELLED', 'cancelled', { cause: error });
      // Lost for good: its retries spent without reaching the server again, or none to spend
      // (--retries 0: nothing reconnects), or the reconnect refused (a login: each further wrong
      // password counts towards the server's refusal of this address). What is not yet asked
      // fails at once.
      const forGood = error === reconnectFailure || (retries === 0 && isConnectionLoss(error));
      if (forGood && (attempt >= retries || isRefusal(error))) {
        const gone = connection.goneFailure;
        if (gone !== undefined && (gone === error || retries === 0)) throw away(error);
        connection.markGone(error);
      }
      if (attempt >= retries || !isConnectionLoss(error) || isRefusal(error)) throw error;
      const delayMs = backoffDelayMs(attempt);
      onRetry(error, attempt + 1, delayMs, client);
      await untilDrained(client, error, signal);
      // Still away: the next try fails at once, with the reconnect's failure, and counts.
      ({ client, failure: reconnectFailure } = await connection.tryReplace(client, delayMs, signal));
    }
  }
}

/**
 * withClient (connect.ts) for transfer commands: `use` gets a connection that can be replaced.
 * Every connection, the replacements too, insists on `--checksum`'s algorithm and moves at most
 * `--limit-rate` bytes/s each way; with `--retries 0` none waits on a busy server (connects, requests).
 */
export async function withReconnectingClient<T>(
  global: ClientCommand,
  output: Output,
  options: Pick<TransferCommandOptions, 'checksum' | 'retries' | 'limitRate'>,
  use: (connection: ReconnectingClient) => Promise<T>,
): Promise<T> {
  const { checksum, limitRate: maxRate } = options;
  return interruptibleCommand(global, output, async (connected) => {
    const resolved = await resolveTarget(global, output, checksum, options.retries > 0);
    const target = maxRate === undefined ? resolved : { ...resolved, maxRate };
    // Before the connect, but after the password was asked (the user's typing is no part of the
    // run): openClient asks it once the first connect's WELCOME says one is wanted, then connects again.
    let startedAt = performance.now();
    const { askPassword } = target.access;
    if (askPassword !== undefined) {
      target.access = {
        ...target.access,
        askPassword: async () => {
          const access = await askPassword();
          startedAt = performance.now();
          return access;
        },
      };
    }
    const first = await openClient(target);
    connected();
    return usingConnection(new ReconnectingClient(target, first, startedAt), use);
  });
}

/** Requests a command's planning asks (looks and mkdir -p), each answered whole: asked again whole. */
const PLANNING_REQUESTS: ReadonlySet<PropertyKey> = new Set(['stat', 'list', 'mkdir']);

/**
 * The connection as a transfer command's planning uses it (the stats, listings and mkdirs before
 * its transfers): each of those requests that fails because the connection went is asked again
 * on a new one, up to `retries` times, as the transfers are (a server restarted while a tree was
 * listed ended the command). Everything else reads the connection of the moment.
 */
export function planningClient(
  connection: ReconnectingClient,
  retries: number,
  onRetry: (error: unknown, attempt: number, delayMs: number, client: Client) => void,
): Client {
  return new Proxy(connection.client, {
    get(_first, property) {
      const client = connection.client;
      const value: unknown = Reflect.get(client, property, client);
      if (typeof value !== 'function') return value;
      if (!PLANNING_REQUESTS.has(property)) return value.bind(client);
      return async (...args: unknown[]) => {
        let retried = false;
        try {
          return await requestWithRetries(
            connection,
            retries,
            (current) =>
              (Reflect.get(current, property, current) as (...a: unknown[]) => Promise<unknown>).apply(
                current,
                args,
              ),
            (error, attempt, delayMs, current) => {
              retried = true;
              onRetry(error, attempt, delayMs, current);
            },
            { planning: property as PlanningRequest },
          );
        } catch (error) {
          // A mkdir made before its answer was lost: the directory is there, as asked. And a
          // mkdir -p refused to an account without the mkdir permission (the server checks it
          // before it looks) of a directory that is there: nothing to make, no failure (put -r
          // into a tree that exists, put -p).
          const code = error instanceof MuxftpError ? error.code : undefined;
          const parents = (args[1] as { parents?: boolean } | undefined)?.parents === true;
          if (
            property === 'mkdir' &&
            ((retried && code === 'ALREADY_EXISTS') || (parents && code === 'PERMISSION_DENIED'))
          ) {
            // Asked as the mkdir was: a connection lost here is no reason to fail what is there,
            // and one lost for good (retries spent) is the failure to say, not the refusal (exit 3).
            const entry = await requestWithRetries(
              connection,
              retries,
              (current) => current.stat(args[0] as string),
              onRetry,
              // Given up with the server away, it is the mkdir that was not made (planning.ts's line).
              { planning: 'mkdir' },
            ).catch((lookFailed: unknown) => {
              if (exitStatusFor(lookFailed) === EXIT_STATUS.connectionFailed) throw lookFailed;
              return undefined;
            });
            if (entry?.type === 'dir') return undefined;
          }
          throw error;
        }
      };
    },
  });
}
