/** `muxftp bench`: load-tests a server with many parallel clients (client/bench/ does the work). */

import { constants } from 'node:fs';
import { access, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import {
  BENCH_OPS,
  type BenchOp,
  type BenchOptions,
  defaultWorkers,
  parsePayloadSize,
  parseSizeDistribution,
} from '../../client/bench/options.js';
import { Client } from '../../client/client.js';
import { errnoReason } from '../../shared/errnoReasons.js';
import { MuxftpError } from '../../shared/errors.js';
import { parseDecimal, parseDuration } from '../../shared/humanUnits.js';
import { CliError } from '../cliError.js';
import { type AccessOptions, clientAccessOptions } from '../clientAccess.js';
import { connectFailure } from '../connect.js';
import { EXIT_STATUS } from '../exitStatus.js';
import { globalOptionsOf } from '../globalOptions.js';
import { abortOnInterrupt, exitCodeFor } from '../interrupt.js';
import { commanderParser, parseNonNegativeInteger, parsePositiveInteger } from '../optionParsers.js';
import { describeError, errorInfo, type Output } from '../output.js';
import { canRedraw } from '../terminalDrawing.js';

interface BenchFlags {
  local?: boolean;
  op: BenchOp;
  clients: number;
  streams: number;
  size: number;
  sizeDist?: BenchOptions['sizes'];
  files?: number;
  duration?: number;
  warmup?: number;
  mix: number;
  workers: number;
  maxErrors: number;
  minMbps?: number;
  maxP99?: number;
  html?: string;
}

/** A threshold in decimal: Number() took `0x10` as 16 (`0b11`, `0o17` too). */
const parseThreshold = commanderParser(parseDecimal);

/** The workers claim operations from an Int32 counter: past 2^31 − 1 it wrapped, and the run never ended. */
const parseFileCount = commanderParser((text: string) => {
  const n = parsePositiveInteger(text);
  if (n > 2 ** 31 - 1) throw new TypeError(`expected at most ${2 ** 31 - 1}`);
  return n;
});

/** A run of 0 s started nothing and failed ("no operation completed"). */
const parseRunDuration = commanderParser((text: string) => {
  const ms = parseDuration(text);
  if (!(ms > 0)) throw new TypeError('expected a duration above 0, e.g. 30s');
  return ms;
});

const parsePercent = commanderParser((text: string) => {
  let n: number;
  try {
    n = parseDecimal(text);
  } catch {
    n = Number.NaN;
  }
  if (!(n >= 0 && n <= 100)) throw new TypeError('expected a percentage (0 to 100)');
  return n;
});

export function registerBenchCommand(program: Command, output: Output): void {
  program
    .command('bench')
    .summary('load-test a server with many parallel clients')
    .description(
      // One paragraph: commander wraps it to the terminal's width.
      'Run a workload against a server (--server, or a throwaway in-memory one with --local) and report ' +
        'throughput, latency percentiles, errors and the server’s own figures. Every transfer is verified.',
    )
    .option('--local', 'start a throwaway in-memory server in a child process')
    .addOption(new Option('--op <op>', 'workload').choices(BENCH_OPS as string[]).default('download'))
    .option(
      '--clients <n>',
      'connections (idle: idle connections beside one active client)',
      parsePositiveInteger,
      10,
    )
    .option('--streams <n>', 'concurrent transfers per connection (1 = like FTP)', parsePositiveInteger, 1)
    .addOption(
      new Option('--size <size>', 'file size, e.g. 64KiB, 10MiB')
        .argParser(commanderParser(parsePayloadSize))
        // Shown as it is typed, not as 1048576.
        .default(1024 * 1024, '1MiB'),
    )
    .option(
      '--size-dist <list>',
      'mixed sizes with weights, e.g. 64KiB:70,1MiB:25,10MiB:5',
      commanderParser(parseSizeDistribution),
    )
    .option('--files <n>', 'operations in all (default: one per client and stream)', parseFileCount)
    .option('--duration <time>', 'run for this long instead, e.g. 30s', parseRunDuration)
    .option(
      '--warmup <time>',
      'with --duration: run this long first without counting',
      commanderParser(parseDuration),
    )
    .option('--mix <percent>', 'mixed: percentage of downloads', parsePercent, 50)
    .option('--workers <n>', 'load-generator threads', parsePositiveInteger, defaultWorkers())
    .option('--max-errors <n>', 'fail (exit 1) above this many errors', parseNonNegativeInteger, 0)
    .option('--min-mbps <x>', 'fail (exit 1) below this throughput', parseThreshold)
    .option('--max-p99 <ms>', 'fail (exit 1) above this p99 latency', parseThreshold)
    .option('--html <file>', 'also write the report with its charts as one self-contained HTML file')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  muxftp bench --local --op download --clients 300 --size 10MiB\n' +
        '  muxftp bench --server 10.0.0.5:7421 --op mixed --mix 70 --clients 30 \\\n' +
        '               --streams 10 --duration 30s\n' +
        '  muxftp bench --local --op connect --clients 300\n' +
        '  muxftp bench --local --tls --op upload --clients 50 --streams 4 \\\n' +
        '               --files 200 --size 4MiB\n' +
        '  muxftp bench --local --op idle --clients 5000 --size 1GiB',
    )
    .action(async (flags: BenchFlags, command: Command) => {
      const local = flags.local === true;
      if (local && command.getOptionValueSourceWithGlobals('server') === 'cli') {
        command.error('error: bench: --local starts its own server: --server does not apply', {
          exitCode: EXIT_STATUS.usage,
        });
      }
      const login = command.optsWithGlobals<{ user?: string; credentials?: string }>();
      if (local && (login.user !== undefined || login.credentials !== undefined)) {
        command.error(
          'error: bench: --local starts a server without users: --user and --credentials do not apply',
          { exitCode: EXIT_STATUS.usage },
        );
      }
      // --local connects only to the server it starts: $MUXFTP_SERVER is not read.
      const global = globalOptionsOf(command, { server: !local });
      output.configure(global);
      if (flags.files !== undefined && flags.duration !== undefined) {
        command.error('error: bench: give --files or --duration, not both', { exitCode: EXIT_STATUS.usage });
      }
      if (flags.sizeDist !== undefined && command.getOptionValueSource('size') === 'cli') {
        command.error('error: bench: give --size or --size-dist, not both', { exitCode: EXIT_STATUS.usage });
      }
      if (
        (flags.op === 'connect' || flags.op === 'idle') &&
        command.getOptionValueSource('streams') === 'cli'
      ) {
        command.error('error: bench: --streams goes with --op upload, download or mixed', {
          exitCode: EXIT_STATUS.usage,
        });
      }
      if (flags.op !== 'mixed' && command.getOptionValueSource('mix') === 'cli') {
        command.error('error: bench: --mix goes with --op mixed', { exitCode: EXIT_STATUS.usage });
      }
      if (flags.warmup !== undefined && flags.duration === undefined) {
        command.error('error: bench: --warmup goes with --duration', { exitCode: EXIT_STATUS.usage });
      }
      // Checked before the run, which may take minutes, rather than after it.
      if (flags.html !== undefined) await checkWritableDirectory(flags.html);
      const access = await benchAccess(global.access, local, global.server.host);
      const options: BenchOptions = {
        server: global.server,
        ...access,
        local,
        op: flags.op,
        clients: flags.clients,
        streams: flags.streams,
        sizes: flags.sizeDist ?? [{ bytes: flags.size, weight: 1 }],
        files: flags.files,
        durationMs: flags.duration,
        warmupMs: flags.warmup ?? 0,
        downloadPercent: flags.mix,
        workers: flags.workers,
        json: global.json,
        quiet: global.quiet,
        thresholds: { maxErrors: flags.maxErrors, minMbps: flags.minMbps, maxP99Ms: flags.maxP99 },
      };
      const showProgress = !global.json && !global.quiet && canRedraw(process.stderr);
      // The load generator and its report are loaded only when bench runs (CLI start-up time).
      const [{ runBench }, { formatReport }, { renderHtmlReport }, { startLocalServer }] = await Promise.all([
        import('../../client/bench/runner.js'),
        import('../../client/bench/report.js'),
        import('../../client/bench/htmlReport.js'),
        import('../localServer.js'),
      ]);
      let report: Awaited<ReturnType<typeof runBench>>;
      // Ctrl-C stops the clients and the local server; a second one exits at once.
      const interrupt = new AbortController();
      let interruptedBy: NodeJS.Signals = 'SIGINT';
      const stopListening = abortOnInterrupt(interrupt, global.json || global.quiet, (signal) => {
        interruptedBy = signal;
      });
      try {
        report = await runBench(options, {
          signal: interrupt.signal,
          progressStream: showProgress ? process.stderr : undefined,
          startLocalServer,
          // The run's results stand; what it wrote is left on the server, said so (and where).
          leftBehind: (dir, error) =>
            output.warning(
              `bench: could not remove ${dir}/, its files on the server: ${describeError(error)}`,
            ),
          connect: (clientOptions) =>
            Client.connect(clientOptions).catch((error: unknown) => {
              throw connectFailure(
                error,
                {
                  host: clientOptions.host ?? global.server.host,
                  port: clientOptions.port ?? global.server.port,
                },
                options.login?.user,
              );
            }),
        });
      } catch (error) {
        if (interrupt.signal.aborted) {
          // One line, `muxftp: bench: interrupted after 3.2 s: … so far (CANCELLED)`, as other commands.
          const cancelled = error instanceof MuxftpError && error.code === 'CANCELLED';
          output.commandFailed(cancelled ? error : new MuxftpError('CANCELLED', 'interrupted'), 'bench');
          process.exit(exitCodeFor(interruptedBy));
        }
        // A connection that could not be made reads as for any command: `muxftp: cannot connect to …`.
        output.failure(error instanceof CliError ? undefined : 'bench', error);
        if (global.json) output.printJson({ ok: false, error: errorInfo(error) });
        return;
      } finally {
        stopListening();
      }
      // A --html file that cannot be written costs neither the run's results nor its line on stderr;
      // it is written first so that `ok` (first, as every command's --json has it) is what the
      // exit status says: thresholds met and the report written.
      let htmlFailure: CliError | undefined;
      if (flags.html !== undefined) {
        await writeFile(flags.html, renderHtmlReport(report, describeSizes(options))).catch((error) => {
          htmlFailure = htmlUnwritable(flags.html!, error);
        });
      }
      // Ctrl-C once the measured run had ended (while its directory was removed or the server's
      // last figures taken): the report stands and is printed, then said interrupted, and the
      // exit is an interrupted run's (130) as for any command stopped after its transfers.
      const cancelled = interrupt.signal.aborted
        ? new MuxftpError(
            'CANCELLED',
            'interrupted after the measured run, while cleaning up: its report stands',
          )
        : undefined;
      const ok = report.thresholds.passed && htmlFailure === undefined && cancelled === undefined;
      // The failure too, as every failure is in --json (ok alone said nothing of why).
      const failure = cancelled ?? htmlFailure;
      const failed = failure === undefined ? {} : { error: errorInfo(failure) };
      if (global.json) output.printJson({ ok, ...failed, ...report });
      else output.printLine(formatReport(report, describeSizes(options)));
      if (htmlFailure !== undefined) output.failure(undefined, htmlFailure);
      if (cancelled !== undefined) {
        output.commandFailed(cancelled, 'bench');
        process.exit(exitCodeFor(interruptedBy));
      }
      if (!ok) output.raiseExitCode(EXIT_STATUS.failed);
    });
}

/**
 * TLS and login for the bench's connections. With `--local` the throwaway server serves TLS only
 * (`--tls`) with a certificate made for the run, and has no users; against `--server`, the global
 * TLS and login options apply as for any command (`--user`, $MUXFTP_PASSWORD, `--credentials`).
 */
async function benchAccess(
  access: AccessOptions,
  local: boolean,
  host: string,
): Promise<Pick<BenchOptions, 'tls' | 'login'>> {
  const tlsWanted = access.tls || access.ca !== undefined || access.insecure;
  if (local) {
    // (--user and --credentials with --local are refused as usage errors before this.)
    // The local server's own CA is filled in when it starts.
    return tlsWanted ? { tls: { rejectUnauthorized: true } } : {};
  }
  // Asked now: the bench's connections log in as they open, with no way to ask midway.
  const { tls, user, password } = await clientAccessOptions(access, host, process.env, { promptNow: true });
  const options = tls === true || tls === undefined || tls === false ? undefined : tls;
  return {
    ...(options !== undefined
      ? {
          tls: {
            rejectUnauthorized: options.rejectUnauthorized ?? true,
            ...(options.ca !== undefined ? { ca: options.ca.toString() } : {}),
          },
        }
      : {}),
    ...(user !== undefined ? { login: { user, password: password ?? '' } } : {}),
  };
}

function htmlUnwritable(file: string, error: unknown): CliError {
  return new CliError(`bench: cannot write --html ${file}: ${errnoReason(error)}`, {
    cause: error,
    showsCode: true,
  });
}

/** The directory `file` goes in exists and may be written to, and `file` is not a directory. */
async function checkWritableDirectory(file: string): Promise<void> {
  await access(dirname(resolve(file)), constants.W_OK).catch((error: unknown) => {
    throw htmlUnwritable(file, error);
  });
  // A directory passed the check above, and the write failed only after the run.
  if ((await stat(file).catch(() => undefined))?.isDirectory()) {
    throw htmlUnwritable(file, Object.assign(new Error(`EISDIR: ${file}`), { code: 'EISDIR' }));
  }
}

function describeSizes(options: BenchOptions): string {
  const mib = (bytes: number) =>
    bytes >= 1024 * 1024 ? `${+(bytes / 1024 / 1024).toFixed(2)} MiB` : `${+(bytes / 1024).toFixed(2)} KiB`;
  return options.sizes
    .map((s) => (options.sizes.length > 1 ? `${mib(s.bytes)}:${s.weight}` : mib(s.bytes)))
    .join(',');
}
