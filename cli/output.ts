/**
 * Everything a client command prints, and the exit status it earns. Results go to stdout (JSON
 * with --json); each failure is one stderr line `muxftp: <what>: <reason> (<CODE>)`, and any
 * failure makes the exit code 1, or 3 when the connection failed (exitStatus.ts). Only bugs print
 * a stack trace.
 */
import type { Writable } from 'node:stream';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError, RemoteError } from '../shared/errors.js';
import { printable, printableJson, printableLines } from '../shared/printable.js';
import { CliError } from './cliError.js';
import { exitStatusFor } from './exitStatus.js';
import type { GlobalOptions } from './globalOptions.js';
import { NO_REMOTE_MATCH } from './remoteGlob.js';

/** How a failure appears in JSON results. */
export interface ErrorInfo {
  code: string;
  message: string;
}

export function errorInfo(error: unknown): ErrorInfo {
  if (error instanceof MuxftpError || error instanceof CliError)
    return { code: error.code, message: error.message };
  return { code: 'INTERNAL_ERROR', message: error instanceof Error ? error.message : String(error) };
}

/** An error the CLI does not expect: describeError gives its stack. */
function isBug(error: unknown): boolean {
  return (
    !(error instanceof MuxftpError || error instanceof CliError) &&
    (error as NodeJS.ErrnoException)?.code !== 'ERR_MODULE_NOT_FOUND' &&
    error instanceof Error
  );
}

/** One line, no stack, for errors the CLI expects; the full stack for anything else (a bug). */
export function describeError(error: unknown): string {
  if (error instanceof MuxftpError) return `${error.message} (${error.code})`;
  if (error instanceof CliError) return error.showsCode ? `${error.message} (${error.code})` : error.message;
  // A command's modules load when it runs: a broken install shows here, not at start.
  if ((error as NodeJS.ErrnoException)?.code === 'ERR_MODULE_NOT_FOUND')
    return `not installed completely (${(error as Error).message}); run npm ci`;
  if (error instanceof Error) return `internal error: ${error.stack ?? error.message}`;
  return `internal error: ${String(error)}`;
}

/** What a path missing at the destination hints at, where -p would make its parents. */
export const ADD_PARENTS_HINT = 'add -p to create it';

/**
 * `~` is the shell's, not the server's: `get '~/notes.txt'` (quoted, or the shell left it) asks
 * for a directory named `~` at the root. A missing path that starts with one, as the server names
 * it (`no such file or directory: ~/x`, `no remote path matches ~/*.log`), gets this hint.
 */
const TILDE_HINT =
  '~ is not expanded on the server: remote paths start at its root (your home once logged in)';

function isTildeNotFound(error: unknown): boolean {
  return (
    // The server's, or a remote pattern's: not a local path (`get x --to '~/dl/'`), which the
    // shell leaves as it is when quoted too, and is said so.
    ((error instanceof RemoteError && error.code === 'NOT_FOUND') ||
      (error instanceof MuxftpError && error.message.startsWith(NO_REMOTE_MATCH))) &&
    /(?:: | matches )~[\w.-]*(?:\/|$)/.test(error.message)
  );
}

/** In place of `add -p to create it`, which would make a directory named ~ there; other hints stay. */
function withTildeHint(hint: string | undefined): string {
  if (hint === undefined) return TILDE_HINT;
  return hint.includes(ADD_PARENTS_HINT)
    ? hint.replace(ADD_PARENTS_HINT, TILDE_HINT)
    : `${TILDE_HINT}; ${hint}`;
}

/** What owns the terminal while a command runs (progress bars): stderr lines go through it. */
export interface ErrorRoute {
  log(line: string): void;
  /** The process exits now: its lines written, the terminal as it found it. */
  release(): void;
}

export class Output {
  json = false;
  quiet = false;
  private readonly stdout: Writable;
  private readonly stderr: Writable;
  private code = 0;
  private errorRoute: ErrorRoute | undefined;
  private jsonPrinted = false;
  private lastBusyNotice = Number.NEGATIVE_INFINITY;
  private jsonFailureShape: (error: unknown) => unknown = (error) => ({ ok: false, error: errorInfo(error) });

  constructor(stdout: Writable, stderr: Writable) {
    this.stdout = stdout;
    this.stderr = stderr;
  }

  configure(options: Pick<GlobalOptions, 'json' | 'quiet'>): void {
    this.json = options.json;
    this.quiet = options.quiet;
  }

  get exitCode(): number {
    return this.code;
  }

  /** Raises the exit code (never lowers it: one failure anywhere fails the run). */
  raiseExitCode(code: number): void {
    this.code = Math.max(this.code, code);
  }

  printJson(value: unknown): void {
    this.jsonPrinted = true;
    // Names in it hold what the server lists: nothing that drives the terminal it is often read on.
    this.stdout.write(`${printableJson(JSON.stringify(value, null, 2))}\n`);
  }

  printLine(line: string): void {
    this.stdout.write(`${line}\n`);
  }

  /** Reports one failure: `muxftp: <subject>: <reason>`; `hint` adds what to do about it. */
  failure(subject: string | undefined, error: unknown, hint?: string): void {
    const reason = describeError(error);
    const prefix = subject === undefined ? 'muxftp' : `muxftp: ${subject}`;
    const next = isTildeNotFound(error) ? withTildeHint(hint) : hint;
    const tail = next === undefined ? '' : `; ${next}`;
    // A bug's stack keeps its lines; the subject (a name from a listing) and the hint stay on one.
    if (isBug(error))
      this.writeLine(`${printable(`${prefix}: `)}${printableLines(reason)}${printable(tail)}`);
    else this.writeError(`${prefix}: ${reason}${tail}`);
    this.raiseExitCode(exitStatusFor(error));
  }

  /**
   * What the command prints with --json when it fails before it has results of its own (it cannot
   * connect, a credentials file is refused): the shape of its results, every one failed with that
   * error, so a script reads one shape whatever happened. Default: `{ok: false, error}`, as mv's.
   */
  setJsonFailureShape(shape: (error: unknown) => unknown): void {
    this.jsonFailureShape = shape;
  }

  /** A failure that ended the command: its stderr line and, with --json, its JSON unless results were printed. */
  commandFailed(error: unknown, subject?: string): void {
    this.failure(subject, error);
    if (this.json && !this.jsonPrinted) this.printJson(this.jsonFailureShape(error));
  }

  /** A line on what the command did (not its result), on stderr; none with --quiet. */
  notice(line: string): void {
    if (!this.quiet) this.writeError(line);
  }

  warning(message: string): void {
    this.writeError(`muxftp: warning: ${message}`);
  }

  /**
   * A 'server busy, trying again' line: at most one per DEFAULTS.busyNoticeIntervalMs for the
   * whole command, whatever it waits on (its connect, requests, transfers), none with --quiet.
   */
  busyNotice(line: string): void {
    const now = performance.now();
    if (this.quiet || now - this.lastBusyNotice < DEFAULTS.busyNoticeIntervalMs) return;
    this.lastBusyNotice = now;
    this.writeError(line);
  }

  /** While progress bars own the terminal, stderr lines go through them so they are not overdrawn. */
  routeErrorsThrough(route: ErrorRoute | undefined): void {
    this.errorRoute = route;
  }

  /**
   * The process is about to exit from under the command (stdout cannot be written): what owns the
   * terminal lets it go, its queued lines written and the cursor back, and lines go to stderr.
   */
  releaseTerminal(): void {
    const route = this.errorRoute;
    this.errorRoute = undefined;
    route?.release();
  }

  private writeError(text: string): void {
    // A name in it may hold control characters: a line stays one line and drives no terminal.
    this.writeLine(printable(text));
  }

  /** A line made printable already (a bug's: its stack's lines, each printable). */
  private writeLine(line: string): void {
    if (this.errorRoute) this.errorRoute.log(line);
    else this.stderr.write(`${line}\n`);
  }
}
