/**
 * `muxftp serve`: runs a MuxServer on disk or memory storage until SIGINT/SIGTERM, then stops
 * accepting and gives transfers in flight DEFAULTS.shutdownGraceMs to finish. A second signal
 * exits at once. The one stdout line (`muxftp listening on HOST:PORT (storage: …)`) tells
 * scripts the real port when --port 0 picked one; logs go to stderr.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
// Its type only: client commands, which load this file too, never load the server's modules.
import type { LogFormat } from '../../server/logEvents.js';
import { DEFAULTS } from '../../shared/defaults.js';
import { formatBytes, parseSize } from '../../shared/humanUnits.js';
import { defaultBufferedBytes } from '../../shared/memoryLimit.js';
import { EXIT_STATUS } from '../exitStatus.js';
import {
  commanderParser,
  parseDurationAsMs,
  parseHomeDirectory,
  parseListenHost,
  parseNonNegativeInteger,
  parsePort,
  parsePositiveInteger,
  parseRate,
  parseRootDirectory,
  parseSecondsAsMs,
  parseUmask,
} from '../optionParsers.js';
import { applyServeConfig } from '../serveConfig.js';
import { type AccessFlags, accessFlagsMisuse } from '../serverAccess.js';
import { StartupHangups } from '../startupHangups.js';

export interface ServeOptions extends AccessFlags {
  /** The --config file its other options were read from, if any (read at start only). */
  config?: string;
  host: string;
  port: number;
  root: string;
  memory?: boolean;
  idleTimeout: number;
  partialRetention: number;
  maxConnections: number;
  maxOpenFiles: number | undefined;
  streamWindow: number;
  uploadInitialWindow: number;
  fsync: 'always' | 'never';
  /** The process's umask from the start: what uploads' and new directories' bits are less. */
  umask?: number;
  metrics?: { host: string; port: number };
  maxConnectionsPerIp: number;
  maxStreamsPerConnection: number;
  maxRate: number;
  maxUserRate: number;
  handshakeTimeout: number;
  maxBuffered: number;
  logFormat: LogFormat;
}

export function registerServeCommand(program: Command): Command {
  // Its help leaves out the global options: they are the client's, none applies to serve.
  const serve = program
    .command('serve')
    .summary('run a muxftp server')
    .description('Serve a directory (or an in-memory tree) to muxftp clients until SIGINT or SIGTERM.')
    .configureHelp({ showGlobalOptions: false })
    .addOption(
      new Option(
        '--config <file>',
        "read options from FILE, one a line: a flag without its dashes, then its value (port 7421, tls-only); flags given here override the file's",
      ).argParser((file: string, earlier: string | undefined) => {
        // sshd -f keeps the last; one file read and another left unread is too quiet for that.
        if (earlier !== undefined) throw new InvalidArgumentError('given twice: one config file');
        return file;
      }),
    );
  return addServeOptions(serve).action(async (_options: ServeOptions, command: Command) => {
    // Before anything slow: a SIGHUP while starting is applied once up, not fatal.
    const hangups = new StartupHangups();
    try {
      const config = command.getOptionValue('config') as string | undefined;
      if (config !== undefined) await applyServeConfig(command, config, serveOptionsChecker);
      await startServing(command, hangups);
    } finally {
      hangups.release();
    }
  });
}

/** Checks the options together, then serves until a signal. */
async function startServing(command: Command, hangups: StartupHangups): Promise<void> {
  const options = command.opts<ServeOptions>();
  const clientFlag = clientOptionGiven(command);
  if (clientFlag !== undefined) command.error(`error: serve: ${clientFlag}`, { exitCode: EXIT_STATUS.usage });
  const misuse = accessFlagsMisuse(options);
  if (misuse !== undefined) command.error(`error: serve: ${misuse}`, { exitCode: EXIT_STATUS.usage });
  // An initial window larger than the window is a mistake when asked for (here or in --config);
  // the default one simply shrinks with a smaller --stream-window.
  if (options.uploadInitialWindow > options.streamWindow) {
    if (command.getOptionValueSource('uploadInitialWindow') !== 'default') {
      command.error(
        `error: serve: --upload-initial-window (${formatBytes(options.uploadInitialWindow)}) is larger than --stream-window (${formatBytes(options.streamWindow)}): it is at most the stream window`,
        { exitCode: EXIT_STATUS.usage },
      );
    }
    options.uploadInitialWindow = options.streamWindow;
  }
  // Loaded only now: the server, its storage and metrics are most of the CLI's start-up
  // time, and no other command needs them.
  const { serve } = await import('./serveRun.js');
  await serve(options, hangups);
}

/**
 * The program's options are the client's, and commander takes them after `serve` too: refused
 * when given there, so `serve --tls` or `serve --server 0.0.0.0:7421` does not serve plain text on
 * loopback without a word. $MUXFTP_SERVER is no such flag: it is left in environments, and ignored.
 */
function clientOptionGiven(command: Command): string | undefined {
  const program = command.parent;
  if (program === null) return undefined;
  const instead: Record<string, string> = {
    server: 'listen with --host and --port',
    tls: 'serve TLS with --tls-cert and --tls-key (--tls-only)',
    ca: 'serve TLS with --tls-cert and --tls-key (--tls-only)',
    insecure: 'serve TLS with --tls-cert and --tls-key (--tls-only)',
    user: 'give accounts with --users FILE',
    credentials: 'give accounts with --users FILE',
    json: 'log JSON with --log-format json',
    timeout: "the server's are --idle-timeout and --handshake-timeout",
  };
  for (const option of program.options) {
    const name = option.attributeName();
    if (program.getOptionValueSource(name) !== 'cli') continue;
    const hint = instead[name] ?? 'leave it out';
    return `${option.long} is a client option, which serve does not read: ${hint}`;
  }
  return undefined;
}

/** A serve command that only parses: each line of a --config file goes through one (serveConfig.ts). */
function serveOptionsChecker(): Command {
  return (
    addServeOptions(new Command('serve'))
      // `help` in the file is an unknown option, not a request to print help.
      .helpOption(false)
      .exitOverride()
      .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} })
      .action(() => {})
  );
}

/** serve's options, each with its parser and default: on the command itself, and on each check of a config file's line. */
function addServeOptions(command: Command): Command {
  return (
    command
      .option(
        '--host <host>',
        'address to bind; anything but loopback is reachable from other machines',
        parseListenHost,
        DEFAULTS.host,
      )
      .option('--port <port>', 'TCP port; 0 picks a free one', parsePort, DEFAULTS.port)
      .option('--root <dir>', 'directory to serve, created if missing', parseRootDirectory, DEFAULTS.root)
      .option(
        '--umask <bits>',
        "octal bits taken from what uploaded files and new directories get, and from what chmod gives, as vsftpd's local_umask (default: the process's, often 022; the server always keeps its own read and write)",
        parseUmask,
      )
      // Given both, the root was silently not served: refused, as a usage error.
      .addOption(
        new Option('--memory', 'serve an empty in-memory tree instead (lost on exit)').conflicts('root'),
      )
      .addOption(
        new Option(
          '--partial-retention <duration>',
          "keep an interrupted upload's whole blocks this long for put -c (e.g. 30m, 24h; 0 keeps none)",
        )
          .argParser(parseDurationAsMs)
          .default(DEFAULTS.partialRetentionMs, `${DEFAULTS.partialRetentionMs / 3_600_000}h`),
      )
      .addOption(
        new Option('--idle-timeout <seconds>', 'close connections idle this long')
          .argParser(parseSecondsAsMs)
          .default(DEFAULTS.idleTimeoutMs, `${DEFAULTS.idleTimeoutMs / 1000}`),
      )
      .option(
        '--max-connections <n>',
        'connections at once; more get SERVER_BUSY',
        parsePositiveInteger,
        DEFAULTS.maxConnections,
      )
      .option(
        '--max-open-files <n>',
        `files open at once for transfers and digest reads; more get SERVER_BUSY (default ${DEFAULTS.maxOpenFiles}, at most half the descriptor limit left after what the process holds and ${DEFAULTS.fdReserve} reserved)`,
        parsePositiveInteger,
      )
      .addOption(
        new Option(
          '--stream-window <size>',
          'upload credit per stream (e.g. 1MiB): bounds server memory per upload; larger is faster',
        )
          .argParser(commanderParser(parseStreamWindow))
          .default(DEFAULTS.streamWindowBytes, `${DEFAULTS.streamWindowBytes / 1024 / 1024}MiB`),
      )
      .addOption(
        new Option(
          '--upload-initial-window <size>',
          'credit each upload starts with, so a small file goes with its request, no round trip (clients that ask; at most --stream-window, the default shrinks to it; 0: none)',
        )
          .argParser(commanderParser(parseInitialWindow))
          .default(DEFAULTS.uploadInitialWindowBytes, `${DEFAULTS.uploadInitialWindowBytes / 1024}KiB`),
      )
      .addOption(
        new Option(
          '--fsync <mode>',
          'always: each upload is on stable storage before it is confirmed; never: faster, a power cut may lose recent uploads',
        )
          .choices(['always', 'never'])
          .default('always'),
      )
      .option(
        '--metrics <host:port>',
        `serve Prometheus metrics at http://HOST:PORT/metrics (off by default; host defaults to 127.0.0.1, port to ${DEFAULTS.metricsPort})`,
        commanderParser(parseMetricsAddress),
      )
      .option('--users <file>', 'users file (JSON, written by `muxftp user add`): logins, homes, permissions')
      .option(
        '--anonymous',
        'with --users: also let clients in as "anonymous", read-only, without a password',
      )
      // Given both, anonymous silently got every permission: `--anonymous` on the command line
      // did not take back a --config file's anonymous-write, as an override would.
      .addOption(
        new Option('--anonymous-write', 'like --anonymous, with every permission').conflicts('anonymous'),
      )
      .option(
        '--anonymous-home <dir>',
        "anonymous's root, under the served root",
        parseHomeDirectory,
        DEFAULTS.anonymousHome,
      )
      .option('--tls-cert <file>', 'PEM certificate chain: the port then takes TLS connections too')
      .option('--tls-key <file>', 'PEM private key of --tls-cert')
      .option('--tls-only', 'refuse plain connections (TLS_REQUIRED)')
      .option(
        '--max-connections-per-ip <n>',
        'connections at once from one address; more get SERVER_BUSY (0: no limit)',
        parseNonNegativeInteger,
        DEFAULTS.maxConnectionsPerIp,
      )
      .option(
        '--max-streams-per-connection <n>',
        'streams open at once on one connection; more get TOO_MANY_STREAMS',
        parsePositiveInteger,
        DEFAULTS.maxStreamsPerConnection,
      )
      .addOption(
        new Option('--max-rate <rate>', 'bytes/s per connection, each direction, e.g. 10MiB (0: none)')
          .argParser(parseRate)
          .default(DEFAULTS.maxRateBytesPerSecond),
      )
      .addOption(
        new Option(
          '--max-user-rate <rate>',
          'bytes/s per user, all their connections, each direction, unless the users file sets one (0: none)',
        )
          .argParser(parseRate)
          .default(DEFAULTS.maxUserRateBytesPerSecond),
      )
      .addOption(
        new Option(
          '--handshake-timeout <seconds>',
          'close connections not through TLS, HELLO and login by then',
        )
          .argParser(parseSecondsAsMs)
          .default(DEFAULTS.handshakeTimeoutMs, `${DEFAULTS.handshakeTimeoutMs / 1000}`),
      )
      .addOption(
        new Option(
          '--max-buffered <size>',
          "file data held in memory for transfers, all connections together: half for downloads waiting on slow clients, half for uploads waiting on the disk; by default at most a quarter of the memory the process may use (its cgroup limit, else the machine's)",
        )
          .argParser(commanderParser(parseMaxBuffered))
          .default(DEFAULT_MAX_BUFFERED_BYTES, `${DEFAULT_MAX_BUFFERED_BYTES / 1024 ** 2}MiB`),
      )
      .addOption(
        new Option(
          '--log-format <format>',
          'text: a line per event behind a timestamp; json: one JSON object per line (time, level, event, msg, and fields such as conn, user, path, bytes, code)',
        )
          .choices(['text', 'json'] satisfies LogFormat[])
          .default(DEFAULTS.logFormat),
      )
  );
}

const DEFAULT_MAX_BUFFERED_BYTES = defaultBufferedBytes();

/** At least 2 MiB: each half holds at least one 1 MiB chunk. */
function parseMaxBuffered(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 2 * 1024 * 1024) throw new TypeError('expected a size of at least 2MiB');
  return bytes;
}

/** A window from 16 KiB (one small frame) to 1 GiB, below the protocol's 2^31-1 credit cap. */
function parseStreamWindow(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 16 * 1024 || bytes > 1024 ** 3) throw new TypeError('expected a size from 16KiB to 1GiB');
  return bytes;
}

/** 0 (none) up to 1 GiB, as --stream-window; the server caps it at the stream window. */
function parseInitialWindow(text: string): number {
  const bytes = parseSize(text);
  if (bytes > 1024 ** 3) throw new TypeError('expected a size from 0 to 1GiB');
  return bytes;
}

/** `host:port`, `:port`, `host` or `[v6]:port`; the host defaults to loopback. */
function parseMetricsAddress(text: string): { host: string; port: number } {
  // `--metrics "$METRICS"` with it unset served them at 127.0.0.1:9464, as an empty --host is refused.
  if (text.trim() === '') throw new TypeError('empty (an unset variable?); give :PORT or HOST:PORT');
  // Taken for a host (inet_aton reads `9100` as 0.0.35.140), it failed only once the server was up.
  if (/^\d+$/.test(text.trim()))
    throw new TypeError(`expected host:port (a port alone is written ':${text.trim()}')`);
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text.trim());
  if (match === null) throw new TypeError('expected host:port');
  const host = match[1] ?? match[2] ?? '';
  const port = match[3] === undefined ? DEFAULTS.metricsPort : Number(match[3]);
  if (port > 65535) throw new TypeError('expected a port from 0 to 65535');
  return { host: host === '' ? DEFAULTS.host : host, port };
}
