/** The options every client command shares: where the server is and how to print results. */
import { type Command, Option } from 'commander';
import { parseServerAddress, type ServerAddress } from '../client/address.js';
import { DEFAULTS } from '../shared/defaults.js';
import type { AccessOptions } from './clientAccess.js';
import { EXIT_STATUS } from './exitStatus.js';
import { parseDurationAsMs, parseSecondsAsMs, parseServerOption, parseUserName } from './optionParsers.js';

export interface GlobalOptions {
  /** The command's name, as its messages begin (`muxftp: ls: …`). */
  command: string;
  server: ServerAddress;
  /** Machine-readable results on stdout, no progress. */
  json: boolean;
  /** No progress bars or summaries; failures are still reported. */
  quiet: boolean;
  /** TLS and login. */
  access: AccessOptions;
  /** --timeout: give up on a server silent this long while a call waits on it (0: never). */
  responseTimeoutMs: number;
}

export const SERVER_ENV = 'MUXFTP_SERVER';

export function addGlobalOptions(program: Command): void {
  program
    .addOption(
      new Option(
        '--server <host:port>',
        `server address, [v6]:port for IPv6 (default ${DEFAULTS.host}:${DEFAULTS.port})`,
      ).env(SERVER_ENV),
      // Parsed by globalOptionsOf, for the commands that connect: a bad $MUXFTP_SERVER left in
      // the environment must not stop `serve` or `user`, which never read it.
    )
    .option('--json', 'print machine-readable JSON results on stdout')
    .option('-q, --quiet', 'no progress bars or summaries')
    .option(
      '--user <name>',
      'log in as NAME (password from $MUXFTP_PASSWORD, --credentials, or a prompt)',
      parseUserName,
    )
    .option('--credentials <file>', 'JSON {"user","password"} file, mode 600 only')
    .option('--tls', 'connect over TLS, checking the certificate against the system CAs')
    .option('--ca <file>', 'with TLS: trust the CA certificate(s) in this PEM file (implies --tls)')
    .option('--insecure', 'with TLS: accept any server certificate (implies --tls; warned about every time)')
    .addOption(
      new Option(
        '--timeout <seconds>',
        'give up on a server that sends nothing, not even an answer to a ping, for this long while a command waits on it (90s, 2m too; 0: never)',
      )
        .argParser(parseTimeoutSeconds)
        .default(DEFAULTS.responseTimeoutMs, String(DEFAULTS.responseTimeoutMs / 1000)),
    );
}

/**
 * `--timeout`: seconds, fractions allowed, as milliseconds; 0 waits forever. A unit may follow, as
 * timeout(1) and `serve --partial-retention` take one (`90s`, `2m`, `1h`).
 */
function parseTimeoutSeconds(value: string): number {
  // Any zero: `0.0` and `00` (a script's printf) are 0 too, not "not a positive number".
  if (/^\s*0+(?:\.0*)?\s*$/.test(value)) return 0;
  if (!/^\s*\d+(?:\.\d+)?[smh]\s*$/.test(value)) return parseSecondsAsMs(value);
  // `0s` is 0 (never), as `0` is; a positive one rounds up to at least 1 ms, as plain seconds do.
  return Number.parseFloat(value) === 0 ? 0 : Math.max(1, parseDurationAsMs(value));
}

/** --json and --quiet alone, for the commands that do not connect (user): no server address is read. */
export function outputOptionsOf(command: Command): Pick<GlobalOptions, 'json' | 'quiet'> {
  const options = command.optsWithGlobals<{ json?: boolean; quiet?: boolean }>();
  return { json: options.json === true, quiet: options.quiet === true };
}

/**
 * The global options as seen from a subcommand's action. `server: false` for a command that
 * connects to no server of the user's (`bench --local`): --server and $MUXFTP_SERVER are not read,
 * so a bad one in the environment does not stop it.
 */
export function globalOptionsOf(command: Command, read: { server?: boolean } = {}): GlobalOptions {
  const options = command.optsWithGlobals<{
    server?: string;
    json?: boolean;
    quiet?: boolean;
    user?: string;
    credentials?: string;
    tls?: boolean;
    ca?: string;
    insecure?: boolean;
    timeout?: number;
  }>();
  return {
    command: command.name(),
    server: read.server === false ? parseServerAddress(undefined) : serverAddressOf(command, options.server),
    json: options.json === true,
    quiet: options.quiet === true,
    access: {
      ...(options.user !== undefined ? { user: options.user } : {}),
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      tls: options.tls === true,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      insecure: options.insecure === true,
    },
    responseTimeoutMs: options.timeout ?? DEFAULTS.responseTimeoutMs,
  };
}

/** --server or $MUXFTP_SERVER, or the default; a bad one is a usage error naming where it came from. */
function serverAddressOf(command: Command, text: string | undefined): ServerAddress {
  if (text === undefined) return parseServerAddress(undefined);
  try {
    return parseServerOption(text);
  } catch (error) {
    // Worded as commander words an option's parse failure.
    const given =
      command.getOptionValueSourceWithGlobals('server') === 'env'
        ? `value '${text}' from env '${SERVER_ENV}'`
        : `argument '${text}'`;
    return command.error(
      `error: option '--server <host:port>' ${given} is invalid. ${(error as Error).message}`,
      {
        exitCode: EXIT_STATUS.usage,
        code: 'commander.invalidArgument',
      },
    );
  }
}
