/**
 * Runs a list of uploads or downloads over one connection, `parallel` at a time, with progress
 * bars, Ctrl-C handling and one outcome per file. Direction-blind: `perform` moves the bytes.
 */

import type { TransferOptions } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';
import { ConcurrencyLimit } from './concurrency.js';
import { abortOnInterrupt, INTERRUPTED_EXIT_CODE } from './interrupt.js';
import { type ErrorInfo, errorInfo, type Output } from './output.js';
import { createTransferProgress, type TransferProgress } from './progress.js';

export type TransferCommand = 'put' | 'get';

export interface TransferJob {
  /** Local path, or '-' for stdin (put) / stdout (get). */
  local: string;
  remote: string;
  /** Bytes, when known before the transfer starts. */
  size: number | undefined;
  /** True for '-': the bytes come from stdin or go to stdout. */
  standardStream: boolean;
}

/** One line of `--json` output for put and get. */
export interface TransferOutcome {
  local: string;
  remote: string;
  ok: boolean;
  bytes: number;
  sha256?: string;
  error?: ErrorInfo;
}

export interface TransferDone {
  bytes: number;
  sha256: string;
}

export interface TransferRun {
  command: TransferCommand;
  jobs: readonly TransferJob[];
  parallel: number;
  output: Output;
  perform(job: TransferJob, options: TransferOptions): Promise<TransferDone>;
}

export function failedOutcome(local: string, remote: string, error: unknown, bytes = 0): TransferOutcome {
  return { local, remote, ok: false, bytes, error: errorInfo(error) };
}

/** What a transfer is called in messages and bars: where its bytes come from. */
export function transferSubject(
  command: TransferCommand,
  job: Pick<TransferJob, 'local' | 'remote'>,
): string {
  return command === 'put' ? job.local : job.remote;
}

export async function runTransfers(run: TransferRun): Promise<TransferOutcome[]> {
  if (run.jobs.length === 0) return [];
  const controller = new AbortController();
  const stopListening = abortOnInterrupt(controller);
  const progress = createTransferProgress({
    json: run.output.json,
    quiet: run.output.quiet,
    stream: process.stderr,
  });
  if (progress.visible) run.output.routeErrorsThrough((line) => progress.log(line));
  progress.expect(run.jobs.reduce((sum, job) => sum + (job.size ?? 0), 0));
  const limit = new ConcurrencyLimit(run.parallel);
  try {
    return await Promise.all(
      run.jobs.map((job) => limit.run(() => runOne(run, job, progress, controller.signal))),
    );
  } finally {
    progress.finish();
    run.output.routeErrorsThrough(undefined);
    stopListening();
    if (controller.signal.aborted) run.output.raiseExitCode(INTERRUPTED_EXIT_CODE);
  }
}

async function runOne(
  run: TransferRun,
  job: TransferJob,
  progress: TransferProgress,
  signal: AbortSignal,
): Promise<TransferOutcome> {
  const name = transferSubject(run.command, job);
  if (signal.aborted) {
    const error = new MuxftpError('CANCELLED', 'interrupted before it started');
    run.output.failure(`${run.command} ${name}`, error);
    return failedOutcome(job.local, job.remote, error);
  }
  const meter = progress.begin(name, job.size);
  let bytes = 0;
  try {
    const done = await run.perform(job, {
      signal,
      onProgress: (bytesDone, bytesTotal) => {
        bytes = bytesDone;
        meter.update(bytesDone, bytesTotal);
      },
    });
    meter.end(true);
    return { local: job.local, remote: job.remote, ok: true, bytes: done.bytes, sha256: done.sha256 };
  } catch (error) {
    meter.end(false);
    run.output.failure(`${run.command} ${name}`, error);
    return failedOutcome(job.local, job.remote, error, bytes);
  }
}
