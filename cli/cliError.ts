/**
 * A failure the CLI expected and can explain in one line (cannot connect, cannot listen, ...):
 * printed as `muxftp: <message>` without a stack trace, exit code 1 (3 for a failed connection:
 * exitStatus.ts). Its `code` is what --json reports: the one given, else that of the first
 * MuxftpError among its causes (cannot connect: CONNECT_FAILED, or the server's refusal such as
 * LOGIN_FAILED), else LOCAL_IO_ERROR (a file of the user's, such as --ca or --credentials, that
 * cannot be used).
 */
import { type ErrorCode, MuxftpError } from '../shared/errors.js';

export class CliError extends Error {
  readonly code: ErrorCode;
  /**
   * The stderr line ends in `(CODE)`, as a server's refusal does (`… login failed (LOGIN_FAILED)`);
   * the message itself stays a plain sentence, which --json carries beside the code.
   */
  readonly showsCode: boolean;
  /** The exit status when it ends the command otherwise than by its code (exitStatus.ts): a signal's, a failed connect's. */
  readonly exitCode: number | undefined;

  constructor(
    message: string,
    options?: { cause?: unknown; code?: ErrorCode; showsCode?: boolean; exitCode?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.code = options?.code ?? codeAmongCauses(options?.cause) ?? 'LOCAL_IO_ERROR';
    this.showsCode = options?.showsCode === true;
    this.exitCode = options?.exitCode;
  }
}

function codeAmongCauses(cause: unknown): ErrorCode | undefined {
  for (let seen = 0; cause instanceof Error && seen < 16; seen++, cause = cause.cause) {
    if (cause instanceof MuxftpError) return cause.code;
  }
  return undefined;
}
