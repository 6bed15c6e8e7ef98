/**
 * What `muxftp serve` runs once its options are parsed (cli/commands/serve.ts): opens the
 * storage, starts the MuxServer (and the metrics exporter), and shuts down on SIGINT/SIGTERM.
 */
import { constants as fsConstants } from 'node:fs';
import { access, realpath } from 'node:fs/promises';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { isatty } from 'node:tty';
import type { Account } from '../../server/auth/accounts.js';
import { descriptorLimitShortfall, maxOpenFilesWithinLimit } from '../../server/fileDescriptors.js';
import type { LogEvent, LogFields } from '../../server/logEvents.js';
import type { MetricsExporter } from '../../server/metrics.js';
import { MuxServer } from '../../server/server.js';
import { flushStderrLines } from '../../server/stderrLines.js';
import { DEFAULTS } from '../../shared/defaults.js';
import { errnoReason } from '../../shared/errnoReasons.js';
import { processUmask, setProcessUmask } from '../../shared/fileModes.js';
import { printable } from '../../shared/printable.js';
import { openStorage, type Storage } from '../../storage/index.js';
import {
  type HeartbeatListeners,
  lockServedRoot,
  RootInUseError,
  SERVED_ROOT_LOCK_NAME,
  type ServedRootLock,
  servedAbove,
  servedByAnother,
} from '../../storage/servedRootLock.js';
import { CliError } from '../cliError.js';
import { formatAddress } from '../connect.js';
import { endBySignalAtExit } from '../interrupt.js';
import { type ServeLog, serveLog } from '../serveLog.js';
import {
  accessFileWarnings,
  boundedHomeWarnings,
  homeWarnings,
  isLoopback,
  loadAccess,
  loadAccounts,
  loadTls,
  servedRootFileWarnings,
  startWarnings,
} from '../serverAccess.js';
import type { StartupHangups } from '../startupHangups.js';
import type { ServeOptions } from './serve.js';

/** `hangups`: the SIGHUPs held since the command started (./serve.ts), applied once up. */
export async function serve(options: ServeOptions, hangups: StartupHangups): Promise<void> {
  const shortfall = descriptorLimitShortfall(DEFAULTS.fdReserve);
  if (shortfall !== undefined) throw new CliError(`serve: ${shortfall}`);
  const log = serveLog(options.logFormat);
  // A log that cannot be written (its disk full under `2>>file`, its reader gone) loses lines, not
  // the server: unheard, the write's ENOSPC or EPIPE ended the process at its first log line.
  process.stderr.on('error', () => {});
  const openFiles =
    options.maxOpenFiles === undefined
      ? undefined
      : maxOpenFilesWithinLimit(options.maxOpenFiles, DEFAULTS.fdReserve);
  // Before any file is made: the kernel applies it to every upload's temporary file. One the
  // process started with is set too, so that it keeps the owner's bits as --umask does.
  const umask = options.umask ?? processUmask();
  if (umask !== undefined) setProcessUmask(umask);
  const access = await loadAccess(options).catch((error: Error) => {
    throw new CliError(`serve: ${error.message}`, { cause: error });
  });
  const storage = await openStorage({
    root: options.root,
    memory: options.memory === true,
    durable: options.fsync === 'always',
  }).catch((error: Error) => {
    // The library's class name is no word of the command line's: `serve: cannot use … as the root`.
    throw new CliError(`serve: ${error.message.replace(/^DiskStorage: /, '')}`, { cause: error });
  });
  // From the lock's taking until the shutdown's handlers are up (a start-up sweep of a large root
  // takes seconds): a SIGINT/SIGTERM ended the process there and then, the lock left in the root.
  const stopStartingSignals = endBySignalWhileStarting();
  const root = options.memory === true ? undefined : await holdServedRoot(options.root, storage, log);
  // Young partial uploads survive a restart (issue #8): a client's put -c continues them. Inside
  // another live server's root, an upload's file may be that server's in flight: none is swept;
  // without the lock that would have told of another server on this root, only old ones.
  const sweep = (how: { lockless: boolean; servedFromAbove: boolean; whileRunning?: boolean }) =>
    storage.sweepTemporaryFiles({
      // Once it runs, kept partials expire by the server's own timer (which tells quotas).
      partialRetentionMs: how.whileRunning === true ? Number.POSITIVE_INFINITY : options.partialRetention,
      partialsOnly: how.servedFromAbove,
      ...(how.lockless ? { temporariesUntouchedForMs: DEFAULTS.locklessSweepAgeMs } : {}),
      servedByAnother,
    });
  const swept = await sweep({
    lockless: root !== undefined && root.lock === undefined,
    servedFromAbove: root?.servedAbove !== undefined,
  });
  const server = new MuxServer({
    storage,
    host: options.host,
    port: options.port,
    idleTimeoutMs: options.idleTimeout,
    partialRetentionMs: options.partialRetention,
    servedByAnother,
    maxConnections: options.maxConnections,
    ...(openFiles !== undefined ? { maxOpenFiles: openFiles.maxOpenFiles } : {}),
    streamWindowBytes: options.streamWindow,
    uploadInitialWindowBytes: options.uploadInitialWindow,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    maxStreamsPerConnection: options.maxStreamsPerConnection,
    maxRateBytesPerSecond: options.maxRate,
    maxUserRateBytesPerSecond: options.maxUserRate,
    handshakeTimeoutMs: options.handshakeTimeout,
    serverOutboundHighWaterBytes: Math.floor(options.maxBuffered / 2),
    serverUploadBacklogHighWaterBytes: Math.ceil(options.maxBuffered / 2),
    ...access,
    ...log.serverOptions,
  });
  let address: { host: string; port: number };
  try {
    address = await server.listen();
  } catch (error) {
    await storage.close();
    await root?.lock?.release();
    throw new CliError(
      `serve: cannot listen on ${formatAddress(options)}: ${listenFailureReason(error)}${portInUseAdvice(error, '--port')}`,
      { cause: error },
    );
  }

  const warnings = [
    ...(openFiles?.warning !== undefined ? [openFiles.warning] : []),
    ...startWarnings(address.host, {
      tls: access.tls !== undefined,
      tlsOnly: access.tlsOnly === true,
      users: options.users !== undefined,
      root: options.memory ? 'memory' : options.root,
      ...(options.anonymousWrite === true && access.accounts?.anonymous !== undefined
        ? { anonymousWriteHome: access.accounts.anonymous.home }
        : {}),
    }),
    ...(await accessFileWarnings(options, access.tls)),
    ...(options.memory ? [] : await servedRootFileWarnings(options, options.root)),
    ...(options.memory || access.accounts === undefined
      ? []
      : await homeWarnings(access.accounts, options.root)),
  ];
  for (const warning of warnings) log.warning(warning);
  if (options.users !== undefined) {
    const anonymous = access.accounts?.anonymous;
    const count = access.accounts?.userCount ?? 0;
    log.log({
      event: 'users_loaded',
      // Which anonymous: read-only and every permission read alike ("on").
      text: `${usersCount(count)} from ${options.users}; anonymous ${anonymous === undefined ? 'off' : `on, ${anonymous.permissions.has('write') ? 'with every permission' : 'read-only'} (home ${anonymous.home || '/'})`}`,
      fields: { count, file: options.users, ...anonymousFields(anonymous) },
    });
  }
  if (options.fsync === 'never' && options.memory !== true) {
    log.log({
      event: 'fsync_never',
      level: 'warn',
      text: 'fsync never: uploads are not flushed to disk; a power cut may lose or empty recent ones',
    });
  }
  const metrics = await startMetrics(server, options, address, log).catch(async (error: Error) => {
    await server.close();
    await storage.close();
    await root?.lock?.release();
    throw new CliError(`serve: ${error.message}`, { cause: error });
  });
  // Whoever waits for the line below may signal at once (a service manager, a test): without
  // its handlers installed first, such a SIGTERM killed the process instead of stopping it.
  const shutdownSignal = firstShutdownSignal();
  stopStartingSignals();
  // Only once everything asked for is up: whoever waits for this line may rely on all of it.
  // After the warnings logged above, where stdout and stderr are one terminal or journal.
  flushStderrLines();
  // stdout holds this line alone: one that cannot be written (`> /dev/full`, its reader gone) is
  // said in the log, and the server goes on, as with a log it cannot write. The CLI's listener
  // (main.ts: `ls | head` stops there) ended a server already listening, on EPIPE without a word.
  process.stdout.removeAllListeners('error');
  process.stdout.on('error', (error) =>
    log.warning(`cannot write the listening line to stdout: ${errnoReason(error)}`),
  );
  process.stdout.write(`muxftp listening on ${formatAddress(address)} (storage: ${storage.description})\n`);
  log.listening({
    event: 'listening',
    text: `listening on ${formatAddress(address)} (storage: ${storage.description})`,
    fields: { address: formatAddress(address), storage: storage.description },
  });
  if (swept > 0) log.log(sweptEvent(swept, 'left by an earlier run'));
  // Still without the lock: old upload files only, and never under another server's root (one
  // may have started above meanwhile). A disk a crash's leftovers filled is freed within the hour.
  const retaking =
    root?.retry === true
      ? retakeServedRoot(root, log, async () => {
          const servedFromAbove = (await servedAbove(root.path)) !== undefined;
          const aged = await sweep({ lockless: true, servedFromAbove, whileRunning: true });
          if (aged > 0) log.log(sweptEvent(aged, 'an hour old, left by an earlier run'));
        })
      : undefined;

  // With nothing to read again: off a terminal (systemd, a container), SIGHUP is `systemctl
  // reload` and ignored (its default action ended the service, and systemd counts death by SIGHUP
  // as a clean exit: Restart=on-failure left it down); on one, it is the terminal gone, and ends
  // the server as before.
  const reloading =
    options.users !== undefined || options.tlsCert !== undefined
      ? reloadOnHangup(server, options, log)
      : onTerminal()
        ? endOnHangup(log)
        : ignoreHangups(log);
  // Those that came while starting: the files may have changed since they were read.
  if (hangups.release()) reloading.reload();
  const signal = await shutdownSignal;
  log.log({
    event: 'stopping',
    text: `${signal}: shutting down; transfers in flight get ${DEFAULTS.shutdownGraceMs / 1000} s (signal again to exit now)`,
    fields: { signal, ms: DEFAULTS.shutdownGraceMs },
  });
  await server.close(DEFAULTS.shutdownGraceMs);
  // The storage's own work (a sweep walking a large root, a kept partial's removal after a commit,
  // a download's file closing) is stopped or waited for before `stopped`: what is still running
  // after it is only what never returns (endPastHungCalls). Before, a healthy but large root's
  // sweep ran on, and 2 s later was taken for a hung mount. Bounded, for a call that is hung.
  const retaken = retaking?.stop();
  const storageClosed = storage.close();
  await retaken;
  await metrics?.close();
  await settledWithin(storageClosed, DEFAULTS.stopStorageWaitMs);
  await root?.lock?.release();
  // Only now: a SIGHUP during the drain (`systemctl reload`, a certificate's deploy hook) with no
  // handler had its default action, and ended the server with its transfers in flight. A reload
  // under way is waited for: its line came after `stopped`.
  await reloading.stop();
  log.log({ event: 'stopped', text: 'stopped' });
  endPastHungCalls(signal, log, root?.path);
}

/**
 * Stopped: the process exits once nothing holds its loop. A filesystem call that never returns (a
 * SIGHUP's check of a home under a hung mount, THREAT-MODEL.md) holds it for ever from a
 * threadpool thread: `stopped` was followed by nothing, the process alive until SIGKILL (a service
 * manager's stop timeout), and process.exit would wait for that thread too (libuv joins its
 * threads at exit). With such calls still there after DEFAULTS.stoppedExitWaitMs, said, and ended
 * by the stop's own signal, as a second one is (the kernel waits for no thread).
 */
function endPastHungCalls(signal: NodeJS.Signals, log: ServeLog, root: string | undefined): void {
  const ms = DEFAULTS.stoppedExitWaitMs;
  // Unref'd: a process with nothing left exits at once, as it did.
  setTimeout(() => {
    const calls = process.getActiveResourcesInfo().filter((name) => name.startsWith('FSReq')).length;
    if (calls === 0) return;
    const where = root === undefined ? '' : ` under ${root}`;
    log.log({
      event: 'stop_calls_hung',
      level: 'error',
      text: `stopped, but ${calls} filesystem call${calls === 1 ? ' has' : 's have'} not returned in ${ms / 1000} s (a hung mount${where}?): ending by ${signal} without ${calls === 1 ? 'it' : 'them'}`,
      fields: { count: calls, ms, signal },
    });
    endBySignal(signal);
  }, ms).unref();
}

/**
 * Ends the process by `signal`'s default action once its exit listeners have run (the root's lock
 * released): 130 or 143 in a shell, a clean stop to a service manager. A plain process.exit waited
 * for a threadpool thread stuck in a call that never returns (a hung mount): it never ended.
 */
function endBySignal(signal: NodeJS.Signals): never {
  endBySignalAtExit(signal);
  process.exit(128 + (constants.signals[signal] ?? 2));
}

/** Resolves once `work` settles, or `ms` have passed (a call on a hung mount never returns). */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

function sweptEvent(count: number, which: string): LogEvent {
  return { event: 'swept', text: `removed ${count} temporary file(s) ${which}`, fields: { count } };
}

/**
 * Takes the served root for this process (storage/servedRootLock.ts): a second server on it is
 * refused here, before its start-up sweep could remove the first's uploads in flight. A root
 * that takes no lock file (read-only) is served as before, with a line saying so.
 */
async function holdServedRoot(rootOption: string, storage: Storage, log: ServeLog): Promise<HeldRoot> {
  const root = await realpath(resolve(rootOption));
  // Not even to be entered (a service account outside the owner and group of a 750 root): it
  // served with a warning of failed uploads only, and every request was PERMISSION_DENIED.
  if (!(await mayAccess(root, fsConstants.X_OK))) {
    await storage.close();
    const uid = process.getuid?.();
    throw new CliError(
      `serve: cannot use ${root} as the root: permission denied (this server${uid === undefined ? '' : `, uid ${uid},`} may not enter it: nothing in it could be listed, read or written)`,
    );
  }
  let held: Awaited<ReturnType<typeof lockServedRoot>>;
  try {
    held = await lockServedRoot(root, {
      ...heartbeatListeners(root, log),
      onWait: (holder, ms) =>
        log.log({
          event: 'root_lock_wait',
          text: `the root's lock (pid ${holder.pid} on host ${printable(holder.host)}, since ${printable(holder.since)}) was written where its pid cannot be checked from here (another host, container or boot): waiting ${ms / 1000} s to see whether it is alive`,
          fields: { path: root, ms },
        }),
      // Said, not done silently: a server misjudged as gone (an older muxftp's lock, without a
      // heartbeat, from another container of this host) now shares the root with this one.
      onTakeOver: (holder) =>
        log.log({
          event: 'root_lock_taken_over',
          text:
            holder === undefined
              ? `took over ${SERVED_ROOT_LOCK_NAME} in ${root}, which could not be read as a lock`
              : `took over ${SERVED_ROOT_LOCK_NAME} in ${root} from pid ${holder.pid} on host ${printable(holder.host)} (since ${printable(holder.since)}), taken for a server no longer running (if it still runs, stop one of the two)`,
          fields: { path: root },
        }),
    });
  } catch (error) {
    await storage.close();
    throw error instanceof RootInUseError ? new CliError(`serve: ${error.message}`, { cause: error }) : error;
  }
  // A full disk frees up; a read-only root or one without hard links does not.
  const retry = held.lock === undefined && ROOM_REASONS.has(held.reason);
  if (held.lock === undefined) {
    log.log({
      event: 'root_unlocked',
      level: 'warn',
      text: `cannot write ${SERVED_ROOT_LOCK_NAME} in ${root} (${held.reason}): another server on this root would not be noticed${retry ? ` until it is written (tried again every ${DEFAULTS.servedRootLockRetryMs / 1000} s)` : ''}; upload files a crash left are removed only once an hour old`,
      fields: { path: root, code: held.reason },
    });
  }
  // The root is not this account's to write (a service user over a directory root owns): every
  // upload, mkdir, rename and delete fails, each said to its client only as PERMISSION_DENIED.
  // Asked of the root itself: the lock's EPERM may be a filesystem without hard links.
  if (held.lock === undefined && !(await mayAccess(root, fsConstants.W_OK | fsConstants.X_OK))) {
    const uid = process.getuid?.();
    log.log({
      event: 'warning',
      level: 'warn',
      text: `warning: ${root} is not writable by this server${uid === undefined ? '' : ` (uid ${uid})`}: uploads, mkdir, rename and delete there will fail with PERMISSION_DENIED until it is (a root its account does not own, or a read-only one)`,
      fields: { path: root },
    });
  }
  const above = await servedAbove(root);
  if (above !== undefined) {
    log.log({
      event: 'root_served_above',
      text: `${root} is inside ${above.directory}, served by muxftp pid ${above.holder.pid}: its uploads in flight here are left alone (no start-up sweep of temporary files)`,
      fields: { path: root, to: above.directory },
    });
  }
  return { path: root, lock: held.lock, retry, servedAbove: above?.directory };
}

/** What serve says of its lock's heartbeat: a failed refresh is tried again; neither stops it. */
function heartbeatListeners(root: string, log: ServeLog): HeartbeatListeners {
  // A filesystem that never lets times be set fails every beat: said once a minute, or when the cause changes.
  let said = '';
  let saidAt = Number.NEGATIVE_INFINITY;
  return {
    onRefreshFailed: (error) => {
      const reason = (error as NodeJS.ErrnoException).code ?? error.message;
      if (reason === said && performance.now() - saidAt < 60_000) return;
      said = reason;
      saidAt = performance.now();
      log.log({
        event: 'root_lock_refresh_failed',
        level: 'warn',
        text: `cannot refresh ${SERVED_ROOT_LOCK_NAME} in ${root} (${reason}): a server elsewhere may take it for stale if this goes on; tried again every ${DEFAULTS.servedRootLockHeartbeatMs / 1000} s`,
        fields: { path: root, reason },
      });
    },
    onLost: () =>
      log.log({
        event: 'root_lock_lost',
        level: 'error',
        text: `${SERVED_ROOT_LOCK_NAME} in ${root} was taken by another server (no longer refreshed): another server may be serving this root`,
        fields: { path: root },
      }),
    onRecreated: () =>
      log.log({
        event: 'root_lock_recreated',
        level: 'warn',
        text: `${SERVED_ROOT_LOCK_NAME} in ${root} was removed while this server runs: made again (it keeps a second server off this root)`,
        fields: { path: root },
      }),
  };
}

/** Whether this process may access `dir` as `mode` asks (access(2), as the kernel checks). */
async function mayAccess(dir: string, mode: number): Promise<boolean> {
  return access(dir, mode).then(
    () => true,
    () => false,
  );
}

/** Why a lock could not be written that room made later cures. */
const ROOM_REASONS: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/** The served root as held: its real path, its lock if one could be written, a server's root above it. */
interface HeldRoot {
  path: string;
  lock: ServedRootLock | undefined;
  /** Without its lock for want of room: tried again. */
  retry: boolean;
  servedAbove: string | undefined;
}

/**
 * A root served without its lock (a disk full at start) takes it as soon as it can be written:
 * from then on a second server on the root is refused, not let in to sweep this one's uploads
 * in flight. Tries until it holds the lock: another server that took it meanwhile is warned
 * about, and outwaited. Until then `sweepAged` runs every DEFAULTS.locklessSweepEveryMs. Never
 * a full sweep: other servers may have started on the root while no lock was there to see.
 */
function retakeServedRoot(
  root: HeldRoot,
  log: ServeLog,
  sweepAged: () => Promise<void>,
): { stop(): Promise<void> } {
  let stopped = false;
  let lastSaid = '';
  let sweptAt = performance.now();
  let attempt: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => {
      attempt = tryOnce();
    }, DEFAULTS.servedRootLockRetryMs);
    timer.unref();
  };
  const tryOnce = async (): Promise<void> => {
    try {
      const held = await lockServedRoot(root.path, heartbeatListeners(root.path, log));
      if (held.lock !== undefined) {
        // Stopping meanwhile: the lock must not outlive the server.
        if (stopped) await held.lock.release();
        else {
          root.lock = held.lock;
          log.log({
            event: 'root_locked',
            text: `wrote ${SERVED_ROOT_LOCK_NAME} in ${root.path}: another server on this root is refused from now on`,
            fields: { path: root.path },
          });
        }
        return;
      }
      // Stopping meanwhile: the storage is closing, a sweep would be refused.
      if (!stopped && performance.now() - sweptAt >= DEFAULTS.locklessSweepEveryMs) {
        sweptAt = performance.now();
        await sweepAged().catch((error: Error) => {
          // Stopped during the sweep: refused by the storage closing, no failure to report.
          if (stopped) return;
          log.log({
            event: 'sweep_failed',
            level: 'error',
            text: `sweeping upload files an hour old in ${root.path} failed: ${error.message}`,
            fields: { path: root.path, reason: error.message },
          });
        });
      }
    } catch (error) {
      const said =
        error instanceof RootInUseError
          ? `warning: another server took this root while its lock could not be written: ${error.message}`
          : `cannot write ${SERVED_ROOT_LOCK_NAME} in ${root.path}: ${(error as Error).message}`;
      // Once per holder or cause, not every round.
      if (said !== lastSaid)
        log.log({ event: 'root_unlocked', level: 'warn', text: said, fields: { path: root.path } });
      lastSaid = said;
    }
    if (!stopped) schedule();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await attempt;
    },
  };
}

const LISTEN_REASON_BY_ERRNO: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'not an address of this machine',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'host name lookup failed',
};

/** Why listen() failed, in words rather than Node's `getaddrinfo ENOTFOUND <host>`. */
function listenFailureReason(error: unknown): string {
  const errno = (error as NodeJS.ErrnoException).code;
  return (typeof errno === 'string' ? LISTEN_REASON_BY_ERRNO[errno] : undefined) ?? (error as Error).message;
}

/**
 * The first thing to try next when the port is taken (a second `serve` typed in a new terminal),
 * after the reason; '' for any other failure.
 */
function portInUseAdvice(error: unknown, flag: '--port' | '--metrics'): string {
  if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') return '';
  const free = flag === '--port' ? '--port 0' : '--metrics :0';
  return ` (another server has that port: stop it, or choose another ${flag}; ${free} picks a free one)`;
}

/** With --metrics: the exporter, listening on its own port (never the protocol port). */
async function startMetrics(
  server: MuxServer,
  options: ServeOptions,
  protocol: { host: string; port: number },
  log: ServeLog,
): Promise<MetricsExporter | undefined> {
  if (options.metrics === undefined) return undefined;
  if (options.metrics.port === protocol.port) {
    throw new Error(
      `--metrics: port ${protocol.port} is the protocol port; metrics need a port of their own`,
    );
  }
  // prom-client is loaded only for --metrics: it costs a serve process start-up time and memory.
  const { MetricsExporter } = await import('../../server/metrics.js');
  const exporter = new MetricsExporter(server, options.metrics);
  const address = await exporter.listen().catch((error: NodeJS.ErrnoException) => {
    throw new Error(
      `cannot serve metrics on ${formatAddress(options.metrics!)}: ${listenFailureReason(error)}${portInUseAdvice(error, '--metrics')}`,
      { cause: error },
    );
  });
  // The warning comes first: whoever waits for the "metrics at" line has then seen it too.
  if (!isLoopback(address.host)) {
    log.warning(
      `metrics listening on ${address.host}, reachable from other machines (file names are not in them, but load and error counts are)`,
    );
  }
  log.log({
    event: 'metrics_listening',
    text: `metrics at http://${formatAddress(address)}/metrics`,
    fields: { address: formatAddress(address) },
  });
  return exporter;
}

/**
 * SIGHUP reads the users file again (as vsftpd re-reads its configuration): new logins see added,
 * removed and changed users; sessions already logged in keep theirs. It reads the TLS certificate
 * and key again too (a renewed certificate, as nginx takes one on SIGHUP): new connections get
 * it, those up keep theirs. Either file that does not read or load changes nothing (the log says
 * why; one that is no regular file by then, a FIFO, is refused unread), and does not stop the
 * other. Returns the reload, for a SIGHUP held while starting, and the function that stops
 * listening once a reload under way has ended.
 */
function reloadOnHangup(server: MuxServer, options: ServeOptions, log: ServeLog): HangupHandling {
  let reloading = Promise.resolve();
  const checkHomes = boundedHomeWarnings();
  const onHangup = (): void => {
    reloading = reloading.then(async () => {
      if (options.users !== undefined) {
        try {
          const accounts = await loadAccounts(options, { regularOnly: true });
          server.replaceAccounts(accounts);
          log.log({
            event: 'users_loaded',
            text: `SIGHUP: ${usersCount(accounts.userCount)} from ${options.users}`,
            fields: {
              count: accounts.userCount,
              file: options.users,
              ...anonymousFields(accounts.anonymous),
            },
          });
          const homes = options.memory ? [] : await checkHomes(accounts, options.root);
          for (const warning of homes)
            log.log({ event: 'warning', level: 'warn', text: `warning: ${warning}` });
        } catch (error) {
          log.log({
            event: 'reload_failed',
            level: 'error',
            text: `SIGHUP: kept the users as they were: ${(error as Error).message}`,
            fields: { file: options.users, reason: (error as Error).message },
          });
        }
      }
      if (options.tlsCert !== undefined && options.tlsKey !== undefined) {
        try {
          const tls = await loadTls(options.tlsCert, options.tlsKey, { regularOnly: true });
          server.replaceTls(tls);
          const warnings = await accessFileWarnings({ ...options, users: undefined }, tls);
          log.log({
            event: 'certificate_loaded',
            text: `SIGHUP: TLS certificate from ${options.tlsCert}`,
            fields: { file: options.tlsCert },
          });
          // A runtime line, timestamped as the others are (only start-up's go without).
          for (const warning of warnings)
            log.log({ event: 'warning', level: 'warn', text: `warning: ${warning}` });
        } catch (error) {
          log.log({
            event: 'reload_failed',
            level: 'error',
            text: `SIGHUP: kept the TLS certificate as it was: ${(error as Error).message}`,
            fields: { file: options.tlsCert, reason: (error as Error).message },
          });
        }
      }
    });
  };
  process.on('SIGHUP', onHangup);
  return {
    reload: onHangup,
    stop: async () => {
      await reloading;
      process.off('SIGHUP', onHangup);
    },
  };
}

/** What serve does on SIGHUP once up: `reload` for those held while starting; `stop` ends it. */
interface HangupHandling {
  reload(): void;
  stop(): Promise<void>;
}

/**
 * Whether serve runs on a terminal, whose closing a SIGHUP says: any of stdin, stdout and stderr.
 * Not stdout alone (`serve </dev/null 2>log` at a terminal) went on past the terminal's end, and
 * its exit aborted (node 20 sets a gone terminal's modes back: nodejs/node#51519).
 */
const onTerminal = (): boolean => [0, 1, 2].some((fd) => isatty(fd));

function hangupIgnored(what: string): LogEvent {
  return {
    event: 'sighup_ignored',
    text: `${what}: ignored (nothing to read again without --users or --tls-cert)`,
  };
}

/**
 * SIGHUP with nothing to read again, on a terminal: the terminal gone, which ends the server by
 * the signal itself, as with no handler. A handler all the same: one that came as the start-up's
 * holder was removed (cli/startupHangups.ts) reaches it; with none left, it was lost with that
 * holder, and the server went on past its terminal's end.
 */
function endOnHangup(log: ServeLog): HangupHandling {
  const onHangup = (): void => {
    // The last listener gone, libuv gives SIGHUP its default action back.
    process.removeAllListeners('SIGHUP');
    process.kill(process.pid, 'SIGHUP');
  };
  process.on('SIGHUP', onHangup);
  return {
    reload: () => log.log(hangupIgnored('SIGHUP while starting')),
    stop: async () => {
      process.off('SIGHUP', onHangup);
    },
  };
}

/** SIGHUP with nothing to read again, off a terminal: said, and the server goes on. */
function ignoreHangups(log: ServeLog): HangupHandling {
  const onHangup = (): void => log.log(hangupIgnored('SIGHUP'));
  process.on('SIGHUP', onHangup);
  return {
    reload: () => log.log(hangupIgnored('SIGHUP while starting')),
    stop: async () => {
      process.off('SIGHUP', onHangup);
    },
  };
}

/**
 * A SIGINT/SIGTERM while serve starts: the process exits, its exit listeners releasing what it
 * holds (the root's lock: ServedRootLock), and ends by the signal as before (a service manager's
 * clean stop; 130 or 143 in a shell). Returns the function that stops handling them.
 */
function endBySignalWhileStarting(): () => void {
  const onSignal = (signal: NodeJS.Signals): void => endBySignal(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** Resolves on the first SIGINT/SIGTERM; from then on, another one exits at once. */
function firstShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const exitNow = (again: NodeJS.Signals): never => endBySignal(again);
      process.once('SIGINT', exitNow);
      process.once('SIGTERM', exitNow);
      // Ctrl-C at a terminal: its echoed ^C is left on a line of its own, not before the log line.
      if (signal === 'SIGINT' && process.stderr.isTTY === true) process.stderr.write('\n');
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** Anonymous access as `users_loaded` gives it in fields (in JSON it was only in `msg`): its mode, and its home. */
function anonymousFields(anonymous: Account | undefined): Pick<LogFields, 'anonymous' | 'path'> {
  if (anonymous === undefined) return { anonymous: 'off' };
  return { anonymous: anonymous.permissions.has('write') ? 'write' : 'read', path: `/${anonymous.home}` };
}

function usersCount(count: number): string {
  return `${count} user${count === 1 ? '' : 's'}`;
}
