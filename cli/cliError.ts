/**
 * A failure the CLI expected and can explain in one line (cannot connect, cannot listen, ...):
 * printed as `muxftp: <message>` without a stack trace, exit code 1.
 */
export class CliError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
  }
}
