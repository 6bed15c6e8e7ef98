/**
 * Runs a list of uploads or downloads over one connection, `parallel` at a time, with progress
 * bars, Ctrl-C handling and one outcome per file. Direction-blind: `perform` moves the bytes.
 */

import { setMaxListeners } from 'node:events';
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, failedCertificateCheck, type TransferOptions } from '../client/client.js';
import { LocalDigestMemo } from '../client/localDigests.js';
import type { KeptPartial } from '../client/sinks.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError, refusedForUploadBacklog } from '../shared/errors.js';
import { descriptorsInUse, softFileDescriptorLimit } from '../shared/fileDescriptorLimit.js';
import { formatBytes } from '../shared/humanUnits.js';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { printable } from '../shared/printable.js';
import { BusyRetries, busyNoticeLine } from './busyRetries.js';
import { abortOnInterrupt, exitCodeFor } from './interrupt.js';
import { type ErrorInfo, errorInfo, type Output } from './output.js';
import { shellWord } from './pathArguments.js';
import { createTransferProgress, type TransferProgress } from './progress.js';
import {
  backoffDelayMs,
  goneReason,
  isConnectionLoss,
  isRetryable,
  type ReconnectingClient,
  requestWithRetries,
  untilDrained,
} from './reconnect.js';
import { RetryNotices } from './retryNotices.js';

export type TransferCommand = 'put' | 'get';

export interface TransferJob {
  /** Local path, or '-' for stdin (put) / stdout (get). */
  local: string;
  remote: string;
  /** Bytes, when known before the transfer starts. */
  size: number | undefined;
  /** True for '-': the bytes come from stdin or go to stdout. */
  standardStream: boolean;
  /** get: the remote file's modification time as listed (ms since the epoch), for --skip-unchanged. */
  remoteMtime?: number;
  /** get: the remote file's permission bits as listed, for a skipped copy to take. */
  remoteMode?: number;
  /** get: found by walking a directory (-r), not named by the user. */
  inTree?: boolean;
}

/**
 * The jobs whose destination (`local` for get, `remote` for put) an earlier job of the same
 * command already has: in one run the later file would silently replace the earlier one
 * (`get a/x b/x --to out`). `fail` gets each of them; the rest are returned, in order. stdin
 * and stdout ('-') are no file to replace. A job of the same `source` as that earlier one is the
 * same file named twice (`get '*.log' 'app*'`, which both match app.log): left out, as cp and
 * rsync copy it once, not failed.
 */
export function withoutSharedDestinations(
  jobs: readonly TransferJob[],
  destination: (job: TransferJob) => string,
  fail: (job: TransferJob, first: TransferJob) => void,
  source: (job: TransferJob) => string,
): TransferJob[] {
  const claimed = new Map<string, TransferJob>();
  const kept: TransferJob[] = [];
  for (const job of jobs) {
    if (job.standardStream) {
      kept.push(job);
      continue;
    }
    const first = claimed.get(destination(job));
    if (first === undefined) {
      claimed.set(destination(job), job);
      kept.push(job);
    } else if (source(job) !== source(first)) {
      fail(job, first);
    }
  }
  return kept;
}

/** One line of `--json` output for put and get. */
export interface TransferOutcome {
  local: string;
  remote: string;
  ok: boolean;
  bytes: number;
  /** The integrity algorithm the transfer was verified with, beside its content digest (hex). */
  algorithm?: IntegrityAlgorithm;
  digest?: string;
  /**
   * Not transferred: the destination already held these bytes (--skip-identical), this size and
   * time (--skip-unchanged), or a file at all (--ignore-existing: `bytes` are that file's); or,
   * with `reason`, an entry of a tree that is no file to copy.
   */
  skipped?: true;
  /** Why an entry of a tree was skipped (`not a regular file`): nothing to copy, nothing failed. */
  reason?: string;
  /** --delete: not a transfer but a removal from the destination of what the source does not have. */
  deleted?: true;
  /** --dry-run: what would have been done; nothing was. */
  dryRun?: true;
  error?: ErrorInfo;
  /** A failed get: what it kept for `get -c` to continue (hidden, beside the target), and what to do. */
  partial?: KeptPartialInfo;
  /** Continued (-c, a retry): of `bytes`, those that were at the destination already. */
  continuedFrom?: number;
}

export interface KeptPartialInfo {
  path: string;
  /** Whole 4 MiB blocks. */
  bytes: number;
  hint: string;
}

export interface TransferDone {
  bytes: number;
  algorithm: IntegrityAlgorithm;
  digest: string;
  /** Continued (-c, a retry): the bytes of it that were there already, not moved now. */
  continuedFrom?: number;
}

/** A file left alone: by content (with the digest both sides share), or by size and time (none). */
export type SkippedDone =
  | TransferDone
  | { bytes: number; algorithm?: undefined; digest?: undefined; continuedFrom?: undefined };

/**
 * A tree that `put -r`/`get -r` made as the destination it was given (`get -r /d dest`, dest
 * missing then). Run again, the same command puts the tree inside that destination, now there
 * (`dest/d`, cp -r's rule), where nothing the failed run kept is found: it is continued with the
 * source given as its contents (`/d/.`) instead. Each word as shown in a hint, `contents` ready
 * for the shell.
 */
export interface TreeMadeAsDestination {
  /** The source as given. */
  source: string;
  /** The source given as its contents (`SOURCE/.`), quoted for the shell if it needs it. */
  contents: string;
  /** The destination as given. */
  destination: string;
}

/**
 * How to run a failed transfer's command again with -c so that it continues what was kept
 * (`run the same get with -c`, followed by `when`), with what differs when its tree was made as
 * its destination: the source given as its contents.
 */
export function continueHint(
  command: TransferCommand,
  when: string,
  madeAs: TreeMadeAsDestination | undefined,
): string {
  if (madeAs === undefined) return `run the same ${command} with -c ${when}`;
  const { source, contents, destination } = madeAs;
  return `run the same ${command} with -c and ${contents} in place of ${shellWord(source)} ${when} (${destination} is there now: ${source} would go inside it)`;
}

export interface TransferRun {
  command: TransferCommand;
  jobs: readonly TransferJob[];
  parallel: number;
  output: Output;
  /** The connection, replaced when it drops. */
  connection: ReconnectingClient;
  /**
   * When the command began (performance.now(), ReconnectingClient.startedAt): the summary times
   * the run from then, its planning included. Default: when the transfers begin.
   */
  startedAt?: number;
  /** Times one transfer is tried again after its connection dropped (0: never). */
  retries: number;
  /** put -c: continue what the server kept of an earlier interrupted upload of the same file. */
  continueUploads?: boolean;
  /** Files of the command that failed before they got a job (already reported), for the summary. */
  failedBeforeStart: number;
  /** Directories of its trees that failed (not listed, not read, not made; already reported), apart. */
  failedDirectoriesBeforeStart?: number;
  /** What to do about a transfer's failure, added to its line ('add -p to create it'), if anything. */
  failureHint?(error: unknown, job: TransferJob): string | undefined;
  /** -r made the tree as the destination given: to continue, the source goes as its contents. */
  treeMadeAs?: TreeMadeAsDestination;
  perform(job: TransferJob, client: Client, options: TransferOptions): Promise<TransferDone>;
  /**
   * get: true when the job's destination is written in place (an existing FIFO or device): its
   * bytes cannot be taken back, so like stdout it is tried once, never again from its start.
   * Asked once per job; its downloads are told the answer (TransferOptions.writesInPlace).
   */
  writesInPlace?(job: TransferJob): Promise<boolean>;
  /**
   * --skip-identical, --skip-unchanged: what the destination already holds, when it has the same
   * bytes as the source, or the same size and time (then nothing is sent; no digest for the
   * latter, nothing was read), or has a file at all (--ignore-existing); undefined to transfer.
   * Not asked for stdout; for stdin only --ignore-existing's is given (the others need a local file).
   */
  identicalAtDestination?(
    job: TransferJob,
    client: Client,
    signal: AbortSignal,
  ): Promise<SkippedDone | undefined>;
  /**
   * --ignore-existing: a file the destination may have is never replaced. When the check cannot
   * tell (a stat refused to an account without `list`, say), that file fails and is not sent;
   * for the other skip flags, sending is the safe answer and the transfer reports what is wrong.
   */
  neverReplace?: boolean;
  /** Told when Ctrl-C (or SIGTERM, SIGHUP) stopped the run: what would follow it is not done. */
  onInterrupted?(): void;
}

function doneOutcome(job: Pick<TransferJob, 'local' | 'remote'>, done: SkippedDone): TransferOutcome {
  return {
    local: job.local,
    remote: job.remote,
    ok: true,
    bytes: done.bytes,
    ...(done.algorithm === undefined ? {} : { algorithm: done.algorithm, digest: done.digest }),
    ...(done.continuedFrom === undefined ? {} : { continuedFrom: done.continuedFrom }),
  };
}

export function failedOutcome(
  local: string,
  remote: string,
  error: unknown,
  bytes = 0,
  partial?: KeptPartialInfo,
): TransferOutcome {
  return { local, remote, ok: false, bytes, error: errorInfo(error), ...(partial ? { partial } : {}) };
}

/** An entry of a tree with nothing to copy (a FIFO, say), as rsync skips a non-regular file. */
export function passedOverOutcome(local: string, remote: string, reason: string): TransferOutcome {
  return { local, remote, ok: true, bytes: 0, skipped: true, reason };
}

/**
 * What a failed get kept, as it is on disk now (an attempt that took it over and then failed
 * before keeping anything removed it); undefined when nothing is there.
 */
async function keptPartialInfo(
  kept: KeptPartial | undefined,
  madeAs: TreeMadeAsDestination | undefined,
): Promise<KeptPartialInfo | undefined> {
  if (kept === undefined) return undefined;
  const stats = await stat(kept.path).catch(() => undefined);
  if (stats === undefined || !stats.isFile()) return undefined;
  return { path: kept.path, bytes: stats.size, hint: continueHint('get', 'to continue it', madeAs) };
}

/** What a transfer is called in messages and bars: where its bytes come from. */
function transferSubject(command: TransferCommand, job: Pick<TransferJob, 'local' | 'remote'>): string {
  return command === 'put' ? job.local : job.remote;
}

/**
 * `-j`, but no more than the open-file limit allows: each transfer holds a local file open (two
 * for a moment, get -c's copy), so at most half of what the limit leaves after what the process
 * holds (the runtime's own, some 20) and DEFAULTS.clientDescriptorMargin. Past it files failed
 * EMFILE. (It took the server's reserve, which holds what a client has not: 26 at ulimit -n 128.)
 */
function transfersAtOnce(parallel: number): number {
  const limit = softFileDescriptorLimit();
  if (limit === undefined) return parallel;
  const free = limit - descriptorsInUse() - DEFAULTS.clientDescriptorMargin;
  return Math.max(1, Math.min(parallel, Math.floor(free / 2)));
}

export async function runTransfers(run: TransferRun): Promise<TransferOutcome[]> {
  // Nothing to send, nothing failed: no summary. One where all failed before a job ends with it.
  const failedBefore = run.failedBeforeStart + (run.failedDirectoriesBeforeStart ?? 0);
  if (run.jobs.length === 0 && failedBefore === 0) return [];
  const controller = new AbortController();
  // Every transfer at once listens on it (its request, a wait to retry): up to --parallel of
  // them, not a leak, which node warns of past 10.
  setMaxListeners(0, controller.signal);
  // SIGINT (130) unless another signal came: SIGTERM from `timeout` or a CI runner is 143.
  let interruptedBy: NodeJS.Signals = 'SIGINT';
  const stopListening = abortOnInterrupt(controller, run.output.quiet || run.output.json, (signal) => {
    interruptedBy = signal;
  });
  // `get f -` onto the terminal, or `put - f` typed at it: bars would draw into the file's
  // bytes, or over what is typed (curl shows no meter when its output is the terminal).
  const standardStream = run.command === 'get' ? process.stdout : process.stdin;
  const progress = createTransferProgress({
    json: run.output.json,
    quiet: run.output.quiet || (standardStream.isTTY === true && run.jobs.some((job) => job.standardStream)),
    stream: process.stderr,
    ...(run.startedAt === undefined ? {} : { startedAt: run.startedAt }),
  });
  if (progress.visible) run.output.routeErrorsThrough(progress);
  progress.expect(run.jobs.reduce((sum, job) => sum + (job.size ?? 0), 0));
  progress.failedBeforeStart(run.failedBeforeStart, run.failedDirectoriesBeforeStart);
  const limit = new ConcurrencyLimit(transfersAtOnce(run.parallel));
  // Through the bars while they show (routeErrorsThrough above), unless --quiet.
  const retryNotices = new RetryNotices(run.command, (line) => run.output.notice(line));
  // Ctrl-C: said now, before the lines of the transfers it cancels.
  controller.signal.addEventListener('abort', () => retryNotices.flush(), { once: true });
  // After Ctrl-C the transfers still waiting for their turn fail together, in one line, not one each.
  const notStarted = new MuxftpError('CANCELLED', 'interrupted before it started');
  let cancelledCount = 0;
  // So do those not started while the server was taken as gone, with why the first was not: a
  // later transfer's reconnect may reach the server again before the run ends, which takes it as
  // back (goneFailure cleared), and a Ctrl-C after them did not interrupt them.
  let awayCount = 0;
  let notStartedGone: unknown;
  try {
    const outcomes = await limit.map(run.jobs, async (job) => {
      const gone = run.connection.goneFailure;
      if (!controller.signal.aborted && gone === undefined)
        return runOne(run, job, progress, retryNotices, controller.signal);
      if (controller.signal.aborted) {
        cancelledCount++;
        return failedOutcome(job.local, job.remote, notStarted);
      }
      awayCount++;
      notStartedGone ??= gone;
      return failedOutcome(job.local, job.remote, gone);
    });
    const files = (count: number) => `${count} file${count === 1 ? '' : 's'}`;
    if (awayCount + cancelledCount > 0) progress.notStarted(awayCount + cancelledCount);
    if (awayCount > 0) {
      // The server stayed away through a transfer's every retry (or the connection went under
      // --retries 0): one line for the files left.
      run.output.failure(
        `${run.command}: ${files(awayCount)} not started, ${goneReason(run.retries, notStartedGone)}`,
        notStartedGone,
      );
    }
    if (cancelledCount > 0)
      run.output.failure(
        run.command,
        new MuxftpError('CANCELLED', `interrupted before ${files(cancelledCount)} started`),
      );
    return outcomes;
  } finally {
    retryNotices.flush();
    progress.finish();
    run.output.routeErrorsThrough(undefined);
    stopListening();
    if (controller.signal.aborted) {
      run.output.raiseExitCode(exitCodeFor(interruptedBy));
      run.onInterrupted?.();
    }
  }
}

/**
 * --dry-run: what runTransfers would do with the jobs, with nothing sent, written or changed:
 * each job's destination is checked as a skip flag asks (a stat, or the digests: reads only),
 * and each transfer that would run is said on stdout (`would put LOCAL → REMOTE (SIZE)`; not
 * with --json, whose outcomes say `dryRun`). Skipped files are left unsaid, as rsync leaves them.
 */
export async function previewTransfers(
  run: Pick<
    TransferRun,
    'command' | 'jobs' | 'parallel' | 'output' | 'connection' | 'identicalAtDestination' | 'neverReplace'
  > &
    Partial<Pick<TransferRun, 'retries'>>,
): Promise<TransferOutcome[]> {
  const limit = new ConcurrencyLimit(transfersAtOnce(run.parallel));
  const signal = new AbortController().signal;
  // --ignore-existing's looks reconnect under the run's --retries, as a real run's do: without
  // it a lost one would be taken as `--retries 0`'s loss, the server as gone for the rest of the
  // run (put --delete's listings after it failed at once, not reconnecting).
  const retryNotices = new RetryNotices(run.command, (line) => run.output.notice(line));
  const outcomes = await limit.map(run.jobs, async (job): Promise<TransferOutcome> => {
    let skipped: TransferOutcome | undefined;
    try {
      skipped = await skipIfIdentical(run, job, signal, retryNotices);
    } catch (error) {
      run.output.failure(`${run.command} ${transferSubject(run.command, job)}`, error);
      return { ...failedOutcome(job.local, job.remote, error), dryRun: true };
    }
    if (skipped !== undefined) return { ...skipped, dryRun: true };
    return { local: job.local, remote: job.remote, ok: true, bytes: job.size ?? 0, dryRun: true };
  });
  if (!run.output.json) {
    for (const [index, outcome] of outcomes.entries()) {
      if (outcome.skipped === true || !outcome.ok) continue;
      const job = run.jobs[index]!;
      const [from, to] = run.command === 'put' ? [job.local, job.remote] : [job.remote, job.local];
      const size = job.size === undefined ? '' : ` (${formatBytes(job.size)})`;
      run.output.printLine(printable(`would ${run.command} ${from} → ${to}${size}`));
    }
  }
  return outcomes;
}

/**
 * The job's outcome as skipped when its destination is identical; undefined to transfer it. A
 * check that fails (the destination unreadable, the connection gone) transfers it, which reports
 * whatever is really wrong; with `neverReplace` it throws instead (after `--retries` new
 * connections, if the one it had went), and the file fails unsent.
 */
async function skipIfIdentical(
  run: Pick<TransferRun, 'command' | 'identicalAtDestination' | 'connection' | 'output' | 'neverReplace'> &
    Partial<Pick<TransferRun, 'retries'>>,
  job: TransferJob,
  signal: AbortSignal,
  retryNotices: RetryNotices,
): Promise<TransferOutcome | undefined> {
  const check = run.identicalAtDestination;
  if (check === undefined || (job.standardStream && run.command === 'get')) return undefined;
  let same: SkippedDone | undefined;
  if (run.neverReplace !== true) {
    same = await check(job, run.connection.client, signal).catch(() => undefined);
  } else {
    const subject = `${run.command} ${transferSubject(run.command, job)}`;
    const retries = run.retries ?? 0;
    same = await requestWithRetries(
      run.connection,
      retries,
      (client) => check(job, client, signal),
      (error, attempt, delayMs, client) =>
        retryNotices.retrying(subject, error, client, attempt, retries, delayMs),
      { signal },
    ).catch((error: unknown) => {
      throw notCheckedError(run.command === 'put' ? job.remote : job.local, error);
    });
  }
  return same === undefined ? undefined : { ...doneOutcome(job, same), skipped: true };
}

/** Why --ignore-existing sent no file whose destination it could not look at: `error`, said so. */
function notCheckedError(destination: string, error: unknown): unknown {
  if (!(error instanceof MuxftpError) || error.code === 'CANCELLED') return error;
  return new MuxftpError(
    error.code,
    `cannot tell whether ${destination} exists (${error.message}), so it is not sent: --ignore-existing replaces no file`,
  );
}

/** The backoff before a retry on the same connection; Ctrl-C ends it at once (the retry then stops). */
async function waitToRetry(delayMs: number, signal: AbortSignal): Promise<void> {
  await sleep(delayMs, undefined, { signal }).catch(() => {});
}

async function runOne(
  run: TransferRun,
  job: TransferJob,
  progress: TransferProgress,
  retryNotices: RetryNotices,
  signal: AbortSignal,
): Promise<TransferOutcome> {
  const name = transferSubject(run.command, job);
  let skipped: TransferOutcome | undefined;
  try {
    skipped = await skipIfIdentical(run, job, signal, retryNotices);
  } catch (error) {
    progress.begin(name, job.size).end(false);
    run.output.failure(`${run.command} ${name}`, error);
    return failedOutcome(job.local, job.remote, error);
  }
  if (skipped !== undefined) {
    progress.skipped(job.size);
    return skipped;
  }
  const meter = progress.begin(name, job.size);
  let bytes = 0;
  let client = run.connection.client;
  // stdin cannot be read twice, and bytes on stdout (or in a FIFO) cannot be taken back: those
  // are tried once.
  // Looked at once: every attempt's download is told, so the client does not stat the target again.
  const inPlace = job.standardStream ? undefined : await run.writesInPlace?.(job);
  const once = job.standardStream || inPlace === true;
  const retries = once ? 0 : run.retries;
  // A download that fails keeps its whole blocks for get -c (hidden, beside its target); a retry
  // continues from what the attempt before it kept.
  const keepsPartial = run.command === 'get' && !job.standardStream;
  let kept: KeptPartial | undefined;
  // An upload that may be retried or continued declares its size and source identity (a stat, no
  // read), so the server keeps its whole blocks when the connection drops; a retry continues from
  // them (issue #8).
  const resumableUpload = run.command === 'put' && (retries > 0 || run.continueUploads === true);
  const say = (notice: string): void => run.output.notice(notice);
  const sayRestart = (reason: string): void => {
    // Started over (what was kept differs from the file now): its bytes are all new, real progress.
    mostBytes = 0;
    say(`muxftp: ${run.command} ${name}: ${reason}`);
  };
  // Said once, and only on a terminal, as the bars are: a script reads --json's continuedFrom.
  let saidContinuing = false;
  // What the last try continued from (0: it started over): an upload the server's full disk
  // failed keeps that much there for the next put -c.
  let triedFrom = 0;
  const onContinue = (fromBytes: number): void => {
    triedFrom = fromBytes;
    mostBytes = Math.max(mostBytes, fromBytes);
    meter.continuing(fromBytes);
    if (!progress.visible || saidContinuing) return;
    saidContinuing = true;
    progress.log(printable(`muxftp: ${run.command} ${name}: continuing from ${formatBytes(fromBytes)}`));
  };
  // Refusals SERVER_BUSY on a connection still up: tried again on it, for a while (busyRetries.ts).
  // A refusal of a try that ran for a while (the server takes back a slot idle for
  // openFileReclaimIdleMs, for a retry to continue), or after a retry for another failure, starts
  // a wait of its own: counted from the file's first refusal, one refused as it started failed
  // at once when its slot was taken back minutes later.
  let busyRetries = new BusyRetries();
  let triedAt = 0;
  // The try moved bytes: a refusal after that is not the next of the same refusals. One that sat
  // idle until its slot was taken back, again and again (a local disk stalled), still gives up.
  let movedInTry = false;
  let mostBytes = 0;
  // What a try hashed of a partial file (get -c, put -c) is not hashed again by the next.
  const localDigests = new LocalDigestMemo();
  // Set when the last try was refused for the server's upload backlog: the next put declines the
  // initial window (a server past its upload ceiling admits it). Not for other limits (open
  // files): declining would cost it a round trip for nothing.
  let declineWindow = false;
  // Tries after a dropped connection (`--retries`); busy refusals do not count.
  let attempt = 0;
  // Why the last reconnect failed (the server still away): that try's failure, said as it is.
  let reconnectFailure: unknown;
  // The last try failed because the server could not be reached again.
  let failedReconnecting = false;
  for (;;) {
    try {
      // Ctrl-C while this transfer waited to reconnect: it ends here, cancelled.
      if (signal.aborted) throw new MuxftpError('CANCELLED', 'cancelled');
      failedReconnecting = false;
      triedFrom = 0;
      triedAt = performance.now();
      movedInTry = false;
      if (reconnectFailure !== undefined) {
        const failure = reconnectFailure;
        reconnectFailure = undefined;
        failedReconnecting = true;
        throw failure;
      }
      const done = await run.perform(job, client, {
        signal,
        localDigests,
        onContinue,
        onProgress: (bytesDone, bytesTotal) => {
          if (bytesDone > mostBytes) {
            movedInTry = true;
            mostBytes = bytesDone;
          }
          bytes = bytesDone;
          meter.update(bytesDone, bytesTotal);
        },
        ...(keepsPartial
          ? {
              keepPartial: true,
              onPartialKept: (partial: KeptPartial) => {
                kept = partial;
              },
              // Only what this run kept: a plain get does not continue an older run's partial.
              ...(kept === undefined ? {} : { resumeKept: true }),
              onRestart: sayRestart,
              onLeftAlone: (path: string) =>
                say(
                  `muxftp: ${run.command} ${name}: left alone: ${path}, what a get of an older muxftp was writing (its process may run in another container of this hostname); remove it once no older muxftp get runs`,
                ),
            }
          : {}),
        ...(inPlace === undefined ? {} : { writesInPlace: inPlace }),
        ...(declineWindow ? { initialWindow: false } : {}),
        ...(resumableUpload
          ? {
              resumable: true,
              continue: attempt > 0 || run.continueUploads === true,
              onRestart: sayRestart,
              // Said for put -c only: a retry of a file under one block never has anything kept.
              ...(attempt === 0 && run.continueUploads === true
                ? {
                    onNothingKept: (inUse: boolean) =>
                      sayRestart(
                        inUse
                          ? 'what the server keeps of it is in use by another upload of it now (another put -c?): sending all of it'
                          : 'nothing of it is kept on the server (with this checksum) to continue: sending all of it',
                      ),
                  }
                : {}),
            }
          : {}),
      });
      meter.end(true);
      return doneOutcome(job, done);
    } catch (error) {
      if (error instanceof MuxftpError && error.code === 'SERVER_BUSY' && client.isOpen) {
        // A stream refused (open files at the server's cap, uploads waiting for its disk) leaves
        // the connection up: replacing it would fail every other transfer on it. Again on this
        // one, after the server's hint, while the time for it lasts; then this file fails.
        // A download to stdout refused before its first byte wrote nothing there: it waits as
        // a file's does (only --retries 0 turns waiting off), where it failed at once.
        const waits =
          retries > 0 || (run.retries > 0 && job.standardStream && run.command === 'get' && bytes === 0);
        if (movedInTry && performance.now() - triedAt >= DEFAULTS.openFileReclaimIdleMs)
          busyRetries = new BusyRetries();
        const delayMs = waits && !signal.aborted ? busyRetries.next(error) : undefined;
        if (delayMs !== undefined) {
          meter.busy();
          if (busyRetries.tries === 1) {
            const more = '; other files it refuses meanwhile wait the same way without a line each';
            run.output.busyNotice(
              busyNoticeLine(`${run.command} ${name}`, error, delayMs, busyRetries.limitMs, more),
            );
          }
          declineWindow = run.command === 'put' && refusedForUploadBacklog(error);
          await waitToRetry(delayMs, signal);
          continue;
        }
      } else if (attempt < retries && isRetryable(error) && !signal.aborted) {
        // The connection went (a dropped link, a restarted server), or the server timed this
        // transfer out: do it again. An upload continues from the whole blocks the server kept, a
        // download from the ones it kept itself, once the digests of them match on both sides.
        const delayMs = backoffDelayMs(attempt);
        meter.retry(attempt + 1, retries);
        // One line for all the transfers the same loss (or stall) sends back, with how many.
        retryNotices.retrying(`${run.command} ${name}`, error, client, attempt + 1, retries, delayMs);
        attempt++;
        declineWindow = false;
        busyRetries = new BusyRetries();
        if (client.isOpen && !isConnectionLoss(error)) {
          // The server failed this stream alone (STREAM_TIMEOUT): replacing the connection would
          // cut the other transfers on it. Closed meanwhile (the server's idle timeout, with
          // nothing else open on it), it is replaced now rather than spend the try on it.
          await waitToRetry(delayMs, signal);
          if (!client.isOpen && !signal.aborted)
            ({ client, failure: reconnectFailure } = await run.connection.tryReplace(client, 0, signal));
          continue;
        }
        // A draining server's connection ends first, the transfers on it finished (untilDrained).
        await untilDrained(client, error, signal);
        // Not reconnected: the next try fails with why (tryReplace).
        ({ client, failure: reconnectFailure } = await run.connection.tryReplace(client, delayMs, signal));
        continue;
      }
      // Lost for good (reconnects failed, or none under --retries 0): the rest are not started.
      const lostForGood = failedReconnecting || (run.retries === 0 && isConnectionLoss(error));
      if (lostForGood && !signal.aborted) run.connection.markGone(error);
      meter.end(false);
      const partial = await keptPartialInfo(kept, run.treeMadeAs);
      // An upload cut short (Ctrl-C, a connection that stayed down) past a whole block: the server
      // keeps its whole blocks (--partial-retention), as get keeps its own, unless told to keep none.
      const uploadMayBeKept =
        resumableUpload &&
        !job.standardStream &&
        bytes >= INTEGRITY_BLOCK_BYTES &&
        ((error instanceof MuxftpError && error.code === 'CANCELLED') ||
          isRetryable(error) ||
          // Cut by the connection's loss; its reconnect then met a certificate refused.
          failedCertificateCheck(error));
      // --retries was given (5 by default) but this one was not retried: say why, or a bare
      // "connection closed" reads as the retries not working.
      const notRetried =
        once &&
        run.retries > 0 &&
        isRetryable(error) &&
        !(error instanceof MuxftpError && error.code === 'SERVER_BUSY')
          ? job.standardStream
            ? run.command === 'put'
              ? 'stdin is read once, as it comes: not retried'
              : 'what went to stdout cannot be taken back: not retried'
            : `what went into ${job.local} (a FIFO or device) cannot be taken back: not retried`
          : undefined;
      const hints = [
        run.failureHint?.(error, job),
        notRetried,
        partial && `${formatBytes(partial.bytes)} received kept in ${partial.path}: ${partial.hint}`,
        uploadMayBeKept
          ? `the server keeps the whole ${INTEGRITY_BLOCK_BYTES / 2 ** 20} MiB blocks it received for a while: ${continueHint('put', 'to continue it', run.treeMadeAs)}`
          : run.command === 'put' &&
              triedFrom > 0 &&
              error instanceof MuxftpError &&
              error.code === 'NO_SPACE'
            ? `the server keeps the ${formatBytes(triedFrom)} this continued from: ${continueHint('put', 'once there is room', run.treeMadeAs)}`
            : undefined,
      ].filter((hint) => hint !== undefined);
      run.output.failure(`${run.command} ${name}`, error, hints.length > 0 ? hints.join('; ') : undefined);
      return failedOutcome(job.local, job.remote, error, bytes, partial);
    }
  }
}
