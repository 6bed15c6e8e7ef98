/** Opening the one connection a client command uses, with a plain message when that fails. */

import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerAddress } from '../client/address.js';
import { Client } from '../client/client.js';
import { MuxftpError, ProtocolError, SettingError } from '../shared/errors.js';
import type { IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { ANONYMOUS_USER } from '../shared/protocol/messages.js';
import { packageVersion } from '../shared/version.js';
import { announcedBusyRetries } from './busyRetries.js';
import { CliError } from './cliError.js';
import { type AccessOptions, type ClientAccess, clientAccessOptions } from './clientAccess.js';
import { EXIT_STATUS } from './exitStatus.js';
import { exitOnInterrupt } from './interrupt.js';
import type { Output } from './output.js';

const REASON_BY_ERRNO: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (is `muxftp serve` running there?)',
  ECONNRESET: 'connection reset by the server',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
};

export function formatAddress({ host, port }: ServerAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The server answered, with a refusal: SERVER_BUSY, VERSION_MISMATCH, LOGIN_FAILED... */
function isServerRefusal(error: unknown): error is MuxftpError {
  return error instanceof MuxftpError && error.code !== 'CONNECT_FAILED' && error.code !== 'CONNECTION_LOST';
}

/**
 * In words, without the code (which the error carries for --json and the stderr line adds): the
 * server's refusal, else the innermost errno-carrying cause (ECONNREFUSED, ENOTFOUND, ...).
 */
function connectFailureReason(error: unknown): string {
  if (isServerRefusal(error)) return error.message;
  let innermost: unknown = error;
  let cause: unknown = error;
  while (cause instanceof Error) {
    // A WELCOME came, on terms this client cannot take (Client: usableWelcome): a muxftp server.
    if (cause instanceof ProtocolError && cause.code === 'VERSION_MISMATCH')
      return `the muxftp server there answers on terms this client cannot take (${cause.message})`;
    // The handshake's first frame did not decode: something else listens there (HTTP, SSH, ...).
    if (cause instanceof ProtocolError)
      return `no muxftp server there, by its first bytes (${cause.message}): is the port right?`;
    const errno = (cause as NodeJS.ErrnoException).code;
    const reason = typeof errno === 'string' ? REASON_BY_ERRNO[errno] : undefined;
    if (reason !== undefined) return reason;
    innermost = cause;
    cause = cause.cause;
  }
  return innermost instanceof Error ? innermost.message : String(innermost);
}

/** Where to connect and how: the global options with the password already obtained (asked once). */
export interface ConnectTarget {
  server: ServerAddress;
  /** Its `askPassword` is shown at most once: openClient puts the password it gives here. */
  access: ClientAccess;
  /** The one integrity algorithm to insist on (`--checksum sha256`); default: the server's pick of both. */
  checksum?: IntegrityAlgorithm;
  /**
   * How the command waits on a server that refuses it SERVER_BUSY, its connect and its requests:
   * each tried again for a while (announcedBusyRetries); undefined: not at all (`--retries 0`).
   */
  busy: { command: string; notice: (line: string) => void } | undefined;
  /** `--limit-rate`: bytes/s each way over the connection (ClientOptions.maxRate); undefined: none. */
  maxRate?: number;
  /** `--timeout` (ClientOptions.responseTimeoutMs); undefined: the client's default. */
  responseTimeoutMs?: number;
  /** The warning that the server takes no logins was given (warnOfUnusedUser): once a command. */
  toldUserUnused?: boolean;
}

/**
 * Reads the CA file and the password (from the credentials file, the environment or a prompt)
 * once. `retryBusy`: the command waits on a busy server (it says so through `output`).
 */
export async function resolveTarget(
  global: ClientCommand,
  output: Output,
  checksum?: IntegrityAlgorithm,
  retryBusy = true,
): Promise<ConnectTarget> {
  return {
    server: global.server,
    access: await clientAccessOptions(global.access, global.server.host),
    ...(checksum === undefined ? {} : { checksum }),
    ...(global.responseTimeoutMs === undefined ? {} : { responseTimeoutMs: global.responseTimeoutMs }),
    busy: retryBusy ? { command: global.command, notice: (line) => output.busyNotice(line) } : undefined,
  };
}

/**
 * Connects to the target's server, over TLS and logged in as it says; `signal` gives up
 * (CANCELLED). A connect refused SERVER_BUSY (the server's connection limits) is tried again as
 * the target says, and so are the connection's requests (ClientOptions.busyRetries).
 */
export async function openClient(target: ConnectTarget, signal?: AbortSignal): Promise<Client> {
  const address = target.server;
  const busy = target.busy;
  const subject =
    busy === undefined ? '' : `${busy.command}: cannot connect to ${formatAddress(address)} yet`;
  const connectRetries = busy === undefined ? undefined : announcedBusyRetries(subject, busy.notice);
  for (;;) {
    const { askPassword, ...access } = target.access;
    try {
      const client = await Client.connect({
        host: address.host,
        port: address.port,
        agent: `muxftp-cli/${packageVersion()}`,
        ...access,
        ...(target.checksum === undefined ? {} : { integrity: [target.checksum] }),
        ...(target.maxRate === undefined ? {} : { maxRate: target.maxRate }),
        ...(target.responseTimeoutMs === undefined ? {} : { responseTimeoutMs: target.responseTimeoutMs }),
        ...(signal === undefined ? {} : { signal }),
        ...(busy === undefined ? {} : { busyRetries: () => announcedBusyRetries(busy.command, busy.notice) }),
      });
      warnOfUnusedUser(target, client);
      return client;
    } catch (error) {
      // The server wants a password (WELCOME): asked now, not before (one that takes no logins
      // needs none), then connected to again with it; the reconnects of the command use it too.
      if (askPassword !== undefined && error instanceof SettingError && error.setting === 'password') {
        target.access = await askPassword();
        continue;
      }
      const refused = error instanceof MuxftpError && error.code === 'SERVER_BUSY';
      const delayMs = refused && signal?.aborted !== true ? connectRetries?.next(error) : undefined;
      if (delayMs === undefined) throw connectFailure(error, address, target.access.user);
      await sleep(delayMs, undefined, signal === undefined ? {} : { signal }).catch(() => {});
    }
  }
}

/**
 * `--user NAME` meeting a server that takes no logins: the library connects as it is, with
 * whatever that server gives anyone, which is not what NAME may do elsewhere. Said once a command.
 */
function warnOfUnusedUser(target: ConnectTarget, client: Client): void {
  const { user } = target.access;
  if (user === undefined || user === ANONYMOUS_USER || target.toldUserUnused === true) return;
  if (client.serverInfo.login?.required === true) return;
  target.toldUserUnused = true;
  process.stderr.write(
    `muxftp: warning: ${formatAddress(target.server)} takes no logins: --user ${user} is not used (connected as anyone is)\n`,
  );
}

/**
 * The flag to change, for a connect a setting of the command's would let through: the library's
 * message says what is wrong, and names no flag (its callers have none).
 */
function flagHint(error: unknown): string {
  if (!(error instanceof SettingError)) return '';
  switch (error.setting) {
    case 'user':
      return ' (--user)';
    case 'password':
      // Asked for on a terminal (openClient); else said before connecting (clientAccessOptions).
      return '';
    case 'tls':
      return ': connect with --tls';
    case 'ca':
      return ': pass its CA with --ca FILE';
    case 'otherCa':
      // The leaf's issuer was found nowhere: another CA, or a server that does not send the
      // intermediate certificate between its own and the CA (a renewal's cert.pem for fullchain.pem).
      return hasCode(error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
        ? ": is --ca the server's CA? If it is, the server sends no intermediate certificate between its own and that CA: its --tls-cert needs the full chain"
        : ": is --ca the server's CA?";
    case 'plain':
      return ' (drop --tls?)';
  }
}

/** True if `error` or one of its causes carries `code`. */
function hasCode(error: unknown, code: string): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause)
    if ((cause as NodeJS.ErrnoException).code === code) return true;
  return false;
}

/**
 * A failed Client.connect as every command words it: `cannot connect to HOST:PORT: <reason> (CODE)`,
 * or `cannot log in to HOST:PORT as USER: … (LOGIN_FAILED)` when the server refused the login.
 */
export function connectFailure(error: unknown, address: ServerAddress, user: string | undefined): CliError {
  // Connected, but refused the login (wrong password, no user given): not a network problem.
  const what =
    error instanceof MuxftpError && error.code === 'LOGIN_FAILED'
      ? `log in to ${formatAddress(address)}${user === undefined ? '' : ` as ${user}`}`
      : `connect to ${formatAddress(address)}`;
  // The code --json reports ends the line, as on every failure line: a log can be searched for it.
  return new CliError(`cannot ${what}: ${connectFailureReason(error)}${flagHint(error)}`, {
    cause: error,
    showsCode: true,
    // Whatever ended it (a refusal, TLS, a peer that is no muxftp server): the connection failed.
    exitCode: EXIT_STATUS.connectionFailed,
  });
}

/** What a client command connects with: where, how, and its name for messages. */
export interface ClientCommand {
  command: string;
  server: ServerAddress;
  access: AccessOptions;
  /** --timeout (ClientOptions.responseTimeoutMs). */
  responseTimeoutMs?: number;
}

/**
 * Runs `run` with Ctrl-C handled wherever transfers do not handle it (abortOnInterrupt): a signal
 * prints one line, `muxftp: ls: interrupted while connecting to HOST:PORT (CANCELLED)` (and with
 * --json the command's failure shape) and exits 130 at once. `run` calls `connected()` once it
 * has its connection, after which the line says only `interrupted`.
 */
export async function interruptibleCommand<T>(
  global: ClientCommand,
  output: Output,
  run: (connected: () => void) => Promise<T>,
): Promise<T> {
  let connecting = true;
  const report = (): void => {
    const phase = connecting ? ` while connecting to ${formatAddress(global.server)}` : '';
    output.commandFailed(new MuxftpError('CANCELLED', `interrupted${phase}`), global.command);
  };
  const stopListening = exitOnInterrupt(report);
  try {
    return await run(() => {
      connecting = false;
    });
  } catch (error) {
    // Ctrl-C at the password prompt, where the terminal sends no SIGINT: the same line and exit
    // (a signal's, 128 + its number). Ctrl-D there has none: it fails CANCELLED, exit 1.
    if (error instanceof CliError && error.code === 'CANCELLED' && (error.exitCode ?? 0) > 128) {
      report();
      process.exit(error.exitCode);
    }
    throw error;
  } finally {
    stopListening();
  }
}

/** Runs `use` on a fresh connection; closes it gently after success, at once after a failure. */
export async function withClient<T>(
  global: ClientCommand,
  output: Output,
  use: (client: Client) => Promise<T>,
  checksum?: IntegrityAlgorithm,
): Promise<T> {
  return interruptibleCommand(global, output, async (connected) => {
    const client = await openClient(await resolveTarget(global, output, checksum));
    connected();
    return usingConnection(client, use);
  });
}

/** Runs `use` on `connection`, then closes it: gently after success, at once after a failure. */
export async function usingConnection<C extends { close(): Promise<void>; destroy(): Promise<void> }, T>(
  connection: C,
  use: (connection: C) => Promise<T>,
): Promise<T> {
  try {
    const result = await use(connection);
    await connection.close();
    return result;
  } catch (error) {
    await connection.destroy();
    throw error;
  }
}
