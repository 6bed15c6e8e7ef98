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
 * Codes that say the connection, not one request, failed: connecting or logging in (a refusal by
 * address too), or a connection lost, timed out or closed idle. Not a protocol error: a server
 * that answers what it should not is a failure of what was asked (1), as one whose connect fails
 * that way is a failed connect (connectFailure's own status).
 */
const CONNECTION_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CONNECT_FAILED',
  'CONNECTION_LOST',
  'LOGIN_FAILED',
  'TEMPORARILY_REFUSED',
  'TLS_REQUIRED',
  'VERSION_MISMATCH',
  'IDLE_TIMEOUT',
]);

/**
 * The exit status a command that reports `error` earns: a CLI error's own (a signal's, a failed
 * connect's), else 3 for a failed connection, else 1.
 */
export function exitStatusFor(error: unknown): number {
  if (error instanceof CliError && error.exitCode !== undefined) return error.exitCode;
  const code = error instanceof MuxftpError || error instanceof CliError ? error.code : undefined;
  return code !== undefined && CONNECTION_FAILURES.has(code)
    ? EXIT_STATUS.connectionFailed
    : EXIT_STATUS.failed;
}
