/**
 * The exit statuses of every command, in one place (README "Exit status"). A script tells "asked,
 * and it failed" (1: not found, permission denied, a failed verification) from "could not ask"
 * (3: the server down, a login refused, the connection lost for good), as curl's 7 and rsync's 10
 * tell a network failure from a missing file; signals end a command with 128 + their number
 * (interrupt.ts).
 */
import { type ErrorCode, MuxftpError } from '../shared/errors.js';
import { CliError } from './cliError.js';

export const EXIT_STATUS = {
  /** Everything asked for succeeded. */
  ok: 0,
  /** Something asked for failed, the server answering. */
  failed: 1,
  /** The command line itself is wrong: nothing was done. */
  usage: 2,
  /** The connection failed: no connect, no login, or lost (retries spent) or broken off by the server. */
  connectionFailed: 3,
  /** As for a process killed by SIGPIPE (128 + 13), what `cat big | head` leaves in `$PIPESTATUS`. */
  brokenPipe: 141,
} as const;

/**
 * Failures that say the connection went (a stopped server's SHUTTING_DOWN too): reconnect.ts
 * reconnects after them, and they fail a run whose retries are spent with 3.
 */
export const CONNECTION_LOSS_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CONNECTION_LOST',
  'CONNECT_FAILED',
  'SHUTTING_DOWN',
  'IDLE_TIMEOUT',
]);

/**
 * A SERVER_BUSY the server closed a connection with (details.limit `storage`: it held the
 * connection's reading for its own storage work, a hung disk, for its idle timeout): the
 * connection went, as with SHUTTING_DOWN, and a new one may get through (PROTOCOL.md); not one
 * request or connect refused, which a busy server does on a connection that stays up.
 */
function closedBusy(error: MuxftpError): boolean {
  return error.code === 'SERVER_BUSY' && error.details?.limit === 'storage' && error.fatal;
}

/**
 * The connection went: the first muxftp error in `error`'s chain of causes (openClient's CliError
 * wraps one) has a CONNECTION_LOSS_CODES code, or is a SERVER_BUSY the server closed the connection
 * with (it, or what it wraps: closedBusy). What reconnect.ts reconnects after.
 */
export function lostConnection(error: unknown): boolean {
  let first: MuxftpError | undefined;
  for (let cause = error, seen = 0; cause instanceof Error && seen < 16; cause = cause.cause, seen++) {
    if (!(cause instanceof MuxftpError)) continue;
    if (first === undefined) {
      first = cause;
      if (CONNECTION_LOSS_CODES.has(cause.code)) return true;
      if (cause.code !== 'SERVER_BUSY') return false;
    }
    if (closedBusy(cause)) return true;
  }
  return false;
}

/**
 * Those, and the refusals of a login (by address too) or of the connection's terms. Not a
 * protocol error: a server that answers what it should not failed what was asked (1), as one
 * whose connect fails that way failed the connect (connectFailure's own status, 3).
 */
const CONNECTION_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ...CONNECTION_LOSS_CODES,
  'LOGIN_FAILED',
  'TEMPORARILY_REFUSED',
  'TLS_REQUIRED',
  'VERSION_MISMATCH',
]);

/**
 * The exit status a command that reports `error` earns: a CLI error's own, in it or among its
 * causes (a signal's; a failed connect's, whatever refused it, SERVER_BUSY included), else 3 when
 * its code (the first among its causes) says the connection failed (a SERVER_BUSY the server
 * closed the connection with too: closedBusy), else 1.
 */
export function exitStatusFor(error: unknown): number {
  let code: ErrorCode | undefined;
  let busyClosed = false;
  for (let cause = error, seen = 0; cause instanceof Error && seen < 16; cause = cause.cause, seen++) {
    if (cause instanceof CliError && cause.exitCode !== undefined) return cause.exitCode;
    if (code === undefined && (cause instanceof MuxftpError || cause instanceof CliError)) code = cause.code;
    if (cause instanceof MuxftpError && closedBusy(cause)) busyClosed = true;
  }
  // A SERVER_BUSY that closed the connection (a hung disk): broken off by the server, not answered.
  return code !== undefined && (CONNECTION_FAILURES.has(code) || (code === 'SERVER_BUSY' && busyClosed))
    ? EXIT_STATUS.connectionFailed
    : EXIT_STATUS.failed;
}

/**
 * Of several failures that one line reports (rm -r's files, chmod -R's entries), the one whose
 * exit status is highest, the first of those: a connection lost among refusals makes the run 3.
 */
export function gravest(failures: readonly unknown[]): unknown {
  let chosen: unknown;
  let status = -1;
  for (const failure of failures) {
    const its = exitStatusFor(failure);
    if (its > status) [chosen, status] = [failure, its];
  }
  return chosen;
}
