/**
 * `muxftp serve`: runs a MuxServer on disk or memory storage until SIGINT/SIGTERM, then stops
 * accepting and gives transfers in flight DEFAULTS.shutdownGraceMs to finish. A second signal
 * exits at once. The one stdout line (`muxftp listening on HOST:PORT (storage: …)`) tells
 * scripts the real port when --port 0 picked one; logs go to stderr.
 */
import { constants } from 'node:os';
import { type Command, Option } from 'commander';
import { DEFAULT_METRICS_PORT, MetricsExporter } from '../../server/metrics.js';
import { logToStderr } from '../../server/options.js';
import { MuxServer } from '../../server/server.js';
import { DEFAULTS } from '../../shared/defaults.js';
import { parseSize } from '../../shared/humanUnits.js';
import { openStorage } from '../../storage/index.js';
import { CliError } from '../cliError.js';
import { formatAddress } from '../connect.js';
import { commanderParser, parsePort, parsePositiveInteger, parseSecondsAsMs } from '../optionParsers.js';

interface ServeOptions {
  host: string;
  port: number;
  root: string;
  memory?: boolean;
  idleTimeout: number;
  maxConnections: number;
  streamWindow: number;
  fsync: 'always' | 'never';
  metrics?: { host: string; port: number };
}

export function registerServeCommand(program: Command): Command {
  return program
    .command('serve')
    .summary('run a muxftp server')
    .description('Serve a directory (or an in-memory tree) to muxftp clients until SIGINT or SIGTERM.')
    .option(
      '--host <host>',
      'address to bind; anything but loopback is reachable from other machines',
      DEFAULTS.host,
    )
    .option('--port <port>', 'TCP port; 0 picks a free one', parsePort, DEFAULTS.port)
    .option('--root <dir>', 'directory to serve, created if missing', DEFAULTS.root)
    .option('--memory', 'serve an empty in-memory tree instead (lost on exit)')
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
        '--fsync <mode>',
        'always: each upload is on stable storage before it is confirmed; never: faster, a power cut may lose recent uploads',
      )
        .choices(['always', 'never'])
        .default('always'),
    )
    .option(
      '--metrics <host:port>',
      `serve Prometheus metrics at http://HOST:PORT/metrics (off by default; host defaults to 127.0.0.1, port to ${DEFAULT_METRICS_PORT})`,
      commanderParser(parseMetricsAddress),
    )
    .action(async (options: ServeOptions) => {
      await serve(options);
    });
}

/** A window from 16 KiB (one small frame) to 1 GiB, below the protocol's 2^31-1 credit cap. */
function parseStreamWindow(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 16 * 1024 || bytes > 1024 ** 3) throw new TypeError('expected a size from 16KiB to 1GiB');
  return bytes;
}

/** `host:port`, `:port`, `host` or `[v6]:port`; the host defaults to loopback. */
function parseMetricsAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text.trim());
  if (match === null) throw new TypeError('expected host:port');
  const host = match[1] ?? match[2] ?? '';
  const port = match[3] === undefined ? DEFAULT_METRICS_PORT : Number(match[3]);
  if (port > 65535) throw new TypeError('expected a port from 0 to 65535');
  return { host: host === '' ? DEFAULTS.host : host, port };
}

/** True for addresses only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\./.test(host);
}

async function serve(options: ServeOptions): Promise<void> {
  const storage = await openStorage({
    root: options.root,
    memory: options.memory === true,
    durable: options.fsync === 'always',
  }).catch((error: Error) => {
    throw new CliError(`serve: ${error.message}`, { cause: error });
  });
  const swept = await storage.sweepTemporaryFiles();
  const server = new MuxServer({
    storage,
    host: options.host,
    port: options.port,
    idleTimeoutMs: options.idleTimeout,
    maxConnections: options.maxConnections,
    streamWindowBytes: options.streamWindow,
    log: logToStderr,
  });
  let address: { host: string; port: number };
  try {
    address = await server.listen();
  } catch (error) {
    await storage.close();
    const reason =
      (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? 'address already in use'
        : (error as Error).message;
    throw new CliError(`serve: cannot listen on ${formatAddress(options)}: ${reason}`, { cause: error });
  }

  process.stdout.write(`muxftp listening on ${formatAddress(address)} (storage: ${storage.description})\n`);
  if (!isLoopback(address.host)) {
    process.stderr.write(
      `muxftp: warning: listening on ${address.host}, reachable from other machines; muxftp has no authentication or encryption\n`,
    );
  }
  if (options.fsync === 'never' && options.memory !== true) {
    logToStderr('fsync never: uploads are not flushed to disk; a power cut may lose or empty recent ones');
  }
  const metrics = await startMetrics(server, options, address).catch(async (error: Error) => {
    await server.close();
    await storage.close();
    throw new CliError(`serve: ${error.message}`, { cause: error });
  });
  if (swept > 0) logToStderr(`removed ${swept} temporary file(s) left by an earlier run`);

  const signal = await firstShutdownSignal();
  logToStderr(
    `${signal}: shutting down; transfers in flight get ${DEFAULTS.shutdownGraceMs / 1000} s (signal again to exit now)`,
  );
  await server.close(DEFAULTS.shutdownGraceMs);
  await metrics?.close();
  await storage.close();
  logToStderr('stopped');
}

/** With --metrics: the exporter, listening on its own port (never the protocol port). */
async function startMetrics(
  server: MuxServer,
  options: ServeOptions,
  protocol: { host: string; port: number },
): Promise<MetricsExporter | undefined> {
  if (options.metrics === undefined) return undefined;
  if (options.metrics.port === protocol.port) {
    throw new Error(
      `--metrics: port ${protocol.port} is the protocol port; metrics need a port of their own`,
    );
  }
  const exporter = new MetricsExporter(server, options.metrics);
  const address = await exporter.listen().catch((error: NodeJS.ErrnoException) => {
    const reason = error.code === 'EADDRINUSE' ? 'address already in use' : error.message;
    throw new Error(`cannot serve metrics on ${formatAddress(options.metrics!)}: ${reason}`, {
      cause: error,
    });
  });
  logToStderr(`metrics at http://${formatAddress(address)}/metrics`);
  if (!isLoopback(address.host)) {
    process.stderr.write(
      `muxftp: warning: metrics listening on ${address.host}, reachable from other machines (file names are not in them, but load and error counts are)\n`,
    );
  }
  return exporter;
}

/** Resolves on the first SIGINT/SIGTERM; from then on, another one exits at once. */
function firstShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const exitNow = (again: NodeJS.Signals): never => process.exit(128 + (constants.signals[again] ?? 2));
      process.once('SIGINT', exitNow);
      process.once('SIGTERM', exitNow);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
