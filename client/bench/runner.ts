/**
 * The bench coordinator: starts a throwaway server if asked, seeds the files downloads read,
 * spreads the clients over worker threads (all cores by default, so the load generator is not
 * the bottleneck), starts their transfers together once all have connected, shows progress,
 * merges what the workers measured, and asks the server for its own figures. Interrupted (`BenchIo.signal`), it stops its clients, removes what it seeded (for
 * a moment at most), stops its local server and rejects with CANCELLED, saying what it measured.
 */
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import { DEFAULTS } from '../../shared/defaults.js';
import { MuxftpError } from '../../shared/errors.js';
import type { ServerStats } from '../../shared/protocol/messages.js';
import { giveTerminalBackOnStop } from '../../shared/terminalStop.js';
import { Client, type ClientOptions } from '../client.js';
import {
  COUNTER_SLOTS,
  type RunClock,
  runClock,
  type WorkerPlan,
  type WorkerProgress,
  type WorkerResult,
} from './load.js';
import { type BenchOp, type BenchOptions, type BenchTls, benchClientOptions } from './options.js';
import { knownDigests, makePayloads, type Payload, payloadBuffer, seedName } from './payloads.js';
import { type BenchReport, buildReport, counted } from './report.js';
import type { ServerSample } from './timeSeries.js';

/** How long an interrupted run may spend removing its remote directory before it gives up. */
const INTERRUPTED_CLEANUP_MS = 2_000;
/** Once every worker is ready, time for the start to reach them all before transfers start together. */
const START_MARGIN_MS = 50;

/** A throwaway server for `--local`, started by the caller (the CLI knows how to run one). */
export interface LocalServer {
  port: number;
  /** How clients reach it over TLS, when it serves TLS. */
  tls?: BenchTls;
  stop(): Promise<void>;
}

export interface BenchIo {
  /** Where the progress bar goes (a TTY), or undefined for none. */
  progressStream: NodeJS.WriteStream | undefined;
  /** Starts the server `options.local` asks for; required when it is set. */
  startLocalServer?: (options: { tls: boolean }) => Promise<LocalServer>;
  /**
   * Opens the run's control connection (seeding, server figures, clean-up); default Client.connect.
   * The CLI passes one that words a failure as its other commands do.
   */
  connect?: (options: ClientOptions) => Promise<Client>;
  /**
   * Aborted (Ctrl-C): the run stops its clients and rejects with CANCELLED, its message saying
   * when, and what was measured so far once transfers had started.
   */
  signal?: AbortSignal;
  /**
   * The run's remote directory `dir` could not be removed (an account without `delete` or `list`
   * permission, a server gone, or after an interruption not within its moment): `error` says why.
   */
  leftBehind?: (dir: string, error: unknown) => void;
}

export async function runBench(options: BenchOptions, io: BenchIo): Promise<BenchReport> {
  if (options.local && io.startLocalServer === undefined) {
    throw new TypeError('runBench: options.local needs io.startLocalServer');
  }
  const local = options.local ? await io.startLocalServer!({ tls: options.tls !== undefined }) : undefined;
  try {
    const address = local ? { host: '127.0.0.1', port: local.port } : options.server;
    return await runAgainst(address, local ? { ...options, tls: local.tls } : options, io);
  } finally {
    await local?.stop();
  }
}

/** What the plan phase decided: one plan per worker thread; and the run's clock, once it started. */
interface RunPlan {
  plans: WorkerPlan[];
  /** Shared by every worker: operations claimed, and the `idle` run's active client done. */
  counter: SharedArrayBuffer;
  /** Operations in all, or undefined for a timed run. */
  files: number | undefined;
  /** Set when every worker is ready (its clients connected): the transfers start together then. */
  clock: RunClock | undefined;
}

/** What the run phase saw: each worker's figures, the server's, and this process's CPU. */
interface RunOutcome {
  results: WorkerResult[];
  /** When the run's transfers started together. */
  clock: RunClock;
  server: ServerPeaks;
  cpu: NodeJS.CpuUsage;
  startedAt: number;
  finishedAt: number;
}

/** Seed, plan, run, measure; the remote directory goes whatever happens. */
async function runAgainst(
  address: { host: string; port: number },
  options: BenchOptions,
  io: BenchIo,
): Promise<BenchReport> {
  const { signal } = io;
  const payloads = await makePayloads(
    options.sizes.map((s) => s.bytes),
    signal,
  ).catch((error: unknown) => {
    if (signal?.aborted) throw interrupted('while preparing the run');
    throw error;
  });
  const connect = io.connect ?? ((clientOptions: ClientOptions) => Client.connect(clientOptions));
  const control = await connect({
    ...benchClientOptions({ ...address, tls: options.tls, login: options.login }),
    ...(signal !== undefined ? { signal } : {}),
  }).catch((error: unknown) => {
    if (signal?.aborted) throw interrupted(`while connecting to ${address.host}:${address.port}`);
    throw error;
  });
  // `connect` writes nothing: it makes no directory, and an account that may not write runs it.
  const remoteDir = options.op === 'connect' ? undefined : `bench-${process.pid}-${Date.now().toString(36)}`;
  try {
    if (remoteDir !== undefined) {
      await untilAborted(
        seed(control, remoteDir, payloads, options.op),
        signal,
        () => 'while preparing the run',
      );
    }
    const run = planWorkers(address, options, remoteDir ?? '', payloads);
    const outcome = await runWorkers(run, control, io, options.durationMs);
    return measure(options, run, outcome);
  } finally {
    // Leave nothing behind, if that is quick once interrupted: the seeding may still be under way
    // then, or the server have stopped answering (a Ctrl-C during the removal waited for it, up
    // to the 60 s response timeout of each of its requests).
    const left =
      remoteDir === undefined
        ? undefined
        : await untilMomentAfterAbort(
            removeRemoteDir(control, remoteDir),
            signal,
            new MuxftpError(
              'CANCELLED',
              `not removed within ${INTERRUPTED_CLEANUP_MS / 1000} s of the interruption`,
            ),
          );
    if (left !== undefined) io.leftBehind?.(remoteDir!, left);
    // Interrupted: no gentle close (nor one waited for past an interruption).
    if (!signal?.aborted) await settledOrAborted(control.close(), signal);
    if (signal?.aborted) await control.destroy();
  }
}

/**
 * What `work` resolves to, or `late` once INTERRUPTED_CLEANUP_MS have passed since `signal` was
 * aborted (at once aborted: from now). Begun after an interruption, a rejection counts as undefined.
 */
async function untilMomentAfterAbort<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  late: T,
): Promise<T | undefined> {
  if (signal === undefined) return work;
  if (signal.aborted) return untilTimeout(work, INTERRUPTED_CLEANUP_MS, late);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: () => void = () => {};
  const gaveUp = new Promise<T>((resolve) => {
    onAbort = () => {
      timer = setTimeout(() => resolve(late), INTERRUPTED_CLEANUP_MS);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, gaveUp]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

/** Resolves once `work` has settled (however) or `signal` is aborted, whichever comes first. */
async function settledOrAborted(work: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  work.catch(() => {});
  if (signal === undefined) {
    await work.catch(() => {});
    return;
  }
  let onAbort: () => void = () => {};
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([work.then(noop, noop), aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function noop(): void {}

function interrupted(when: string): MuxftpError {
  return new MuxftpError('CANCELLED', `interrupted ${when}`);
}

/** `work`, or CANCELLED (`when()` saying at what point) as soon as `signal` is aborted. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined, when: () => string): Promise<T> {
  if (signal === undefined) return work;
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(interrupted(when()));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // What the work does once given up on is no one's concern (its connection goes).
  work.catch(() => {});
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

/** What `work` resolves to if it settles within `ms`, else `late`; a rejection counts as undefined. */
async function untilTimeout<T>(work: Promise<T>, ms: number, late: T): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    work.catch(() => undefined),
    new Promise<T>((resolve) => {
      timer = setTimeout(() => resolve(late), ms);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

/** Makes the run's remote directory and, unless the run only uploads, the files downloads read. */
async function seed(control: Client, remoteDir: string, payloads: Payload[], op: BenchOp): Promise<void> {
  await control.mkdir(remoteDir);
  if (op === 'upload') return;
  await Promise.all(
    payloads.map((p) =>
      putWaitingWhileBusy(() =>
        control.put(seedName(remoteDir, p.bytes), payloadBuffer(p), { knownDigests: knownDigests(p) }),
      ),
    ),
  );
}

/**
 * A seeding put refused SERVER_BUSY (the server's open files taken by other clients) is tried
 * again after the wait the server asks for, for up to DEFAULTS.serverBusyRetryMs, as the CLI's
 * transfers are: it ended the run with no report (a helper's pass).
 */
async function putWaitingWhileBusy(put: () => Promise<unknown>): Promise<void> {
  const giveUpAt = performance.now() + DEFAULTS.serverBusyRetryMs;
  for (;;) {
    try {
      await put();
      return;
    } catch (error) {
      if (!(error instanceof MuxftpError && error.code === 'SERVER_BUSY') || performance.now() >= giveUpAt)
        throw error;
      await sleep(error.details?.retryAfterMs ?? DEFAULTS.openFileRetryAfterMs);
    }
  }
}

/** Spreads the clients over the workers. */
function planWorkers(
  address: { host: string; port: number },
  options: BenchOptions,
  remoteDir: string,
  payloads: Payload[],
): RunPlan {
  const files = options.durationMs !== undefined ? undefined : (options.files ?? defaultFiles(options));
  const workers = Math.max(1, Math.min(options.workers, options.clients));
  const shared = {
    host: address.host,
    port: address.port,
    tls: options.tls,
    login: options.login,
    op: options.op,
    streams: options.streams,
    // Weights follow options.sizes; payloads were deduplicated, so map each size to its payload.
    payloads: options.sizes.map((s) => payloads.find((p) => p.bytes === s.bytes)!),
    cumulativeWeights: cumulative(options.sizes.map((s) => s.weight)),
    remoteDir,
    files,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    downloadPercent: options.downloadPercent,
  };
  const plans: WorkerPlan[] = Array.from({ length: workers }, (_, i) => ({
    ...shared,
    workerIndex: i,
    clients: Math.floor(options.clients / workers) + (i < options.clients % workers ? 1 : 0),
    activeClient: i === 0,
  }));
  return { plans, counter: new SharedArrayBuffer(4 * COUNTER_SLOTS), files, clock: undefined };
}

/** Without --files or --duration: one operation per stream (`idle`: two, `connect`: one per client). */
function defaultFiles(options: BenchOptions): number {
  if (options.op === 'idle') return 2;
  if (options.op === 'connect') return options.clients;
  return options.clients * options.streams;
}

function cumulative(weights: number[]): number[] {
  let total = 0;
  return weights.map((weight) => {
    total += weight;
    return total;
  });
}

/**
 * Runs every worker to the end, with the progress bar and the server sampled meanwhile. The
 * transfers start together once every worker is ready: its threads loaded, its clients connected
 * and logged in, however long that takes (it is no part of the measured run).
 */
async function runWorkers(
  run: RunPlan,
  control: Client,
  io: BenchIo,
  durationMs: number | undefined,
): Promise<RunOutcome> {
  const cpuBefore = process.cpuUsage();
  const startedAt = Date.now();
  const progress = new ProgressView(io.progressStream, run, durationMs);
  const server = new ServerPeaks(control);
  let ready = 0;
  const workers = run.plans.map((plan, i) =>
    startWorker(plan, run.counter, (p) => {
      progress.update(i, p);
      if (!p.ready) return;
      server.sampleNow();
      if (++ready < run.plans.length) return;
      run.clock = runClock(plan, Date.now() + START_MARGIN_MS);
      for (const worker of workers) worker.start(run.clock);
    }),
  );
  let results: WorkerResult[];
  let failed = false;
  try {
    results = await untilAborted(Promise.all(workers.map((w) => w.result)), io.signal, () => '');
  } catch (error) {
    failed = true;
    if (!io.signal?.aborted) throw error;
    // Interrupted: say what the workers had measured (after the warm-up), with their figures as of now.
    await Promise.all(workers.map((w) => w.reportNow()));
    throw interrupted(progress.soFar());
  } finally {
    // Interrupted, or a worker failed (the others may wait for a start that will not come): the
    // workers' connections go with their threads.
    if (failed) await Promise.all(workers.map((w) => w.terminate()));
    progress.stop();
    // Its last sample is not waited for once interrupted: a server that stopped answering then
    // held the run for the 60 s response timeout (the figures so far stand).
    await settledOrAborted(server.stop(), io.signal);
  }
  const finishedAt = Date.now();
  // Every worker was ready before it could finish: the clock was set.
  const clock = run.clock!;
  return { results, clock, server, cpu: process.cpuUsage(cpuBefore), startedAt, finishedAt };
}

/** The report: throughput over the measured seconds (warm-up out; until the last operation ended). */
function measure(options: BenchOptions, run: RunPlan, outcome: RunOutcome): BenchReport {
  const { results, clock, server, cpu, startedAt, finishedAt } = outcome;
  // A run is measured until its last operation ended: the clients' closes and the last server
  // sample after it are round trips, which against a distant server made a short run look
  // slower. A timed run's operations under way at its end are counted whole, so is their time
  // (its duration alone made 64 MiB fetched in 0.17 s look moved in the 0.05 s asked for).
  const lastEndedAt = Math.max(0, ...results.map((r) => r.lastEndedAt));
  const endedAt = Math.max(lastEndedAt, clock.stopAt ?? 0);
  const measuredUntil = Math.min(finishedAt, endedAt > 0 ? endedAt : finishedAt);
  // 0 where nothing ran past the start (every client refused): rates are taken over 1 ms at least.
  const seconds = Math.max(0, (measuredUntil - clock.measureFrom) / 1000);
  // The threads that ran: never more than the clients (--workers 8 --clients 1 runs one); and the
  // operations it was to run, the default one per client and stream included (or none: timed).
  const ran = { ...options, workers: run.plans.length, files: run.files };
  return buildReport(ran, results, seconds, server.peak, server.samplesFrom(clock.measureFrom), {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds: (finishedAt - startedAt) / 1000,
    cores: availableParallelism(),
  });
}

/** A load-generator thread running `plan`: its result, and a way to stop it (and its clients) at once. */
function startWorker(
  plan: WorkerPlan,
  counter: SharedArrayBuffer,
  onProgress: (progress: WorkerProgress) => void,
): {
  result: Promise<WorkerResult>;
  /** Its transfers start at `clock`. */
  start(clock: RunClock): void;
  reportNow(): Promise<void>;
  terminate(): Promise<number>;
} {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { plan, counter } });
  let reported: () => void = () => {};
  const result = new Promise<WorkerResult>((resolve, reject) => {
    worker.on(
      'message',
      (message: { type: string; progress?: WorkerProgress; result?: WorkerResult; message?: string }) => {
        if (message.type === 'progress') {
          onProgress(message.progress!);
          reported();
        } else if (message.type === 'result') resolve(message.result!);
        else reject(new Error(`bench worker ${plan.workerIndex} failed: ${message.message}`));
      },
    );
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (code !== 0) reject(new Error(`bench worker ${plan.workerIndex} exited with code ${code}`));
    });
  });
  return {
    result,
    start: (clock) => worker.postMessage({ type: 'start', clock }),
    /** Asks for the worker's figures as of now; resolves once they came (or after a moment without). */
    reportNow: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        reported = () => {
          clearTimeout(timer);
          resolve();
        };
        worker.postMessage({ type: 'report' });
      }),
    terminate: () => worker.terminate(),
  };
}

/**
 * Samples the server's own figures during the run, keeping every sample (for the time series)
 * and the peaks: connections and streams are gone by the time the workers report, and RSS is
 * what it was at its highest.
 */
class ServerPeaks {
  peak: ServerStats | undefined;
  /** Every sample, `t` in epoch ms until samplesFrom() makes it the run's seconds. */
  private readonly samples: ServerSample[] = [];
  private readonly control: Client;
  private readonly timer: NodeJS.Timeout;
  private sampling: Promise<void> = Promise.resolve();
  private inFlight = false;
  /** A sample was asked for while one was in flight: one more follows it. */
  private again = false;
  private stopped = false;

  constructor(control: Client) {
    this.control = control;
    this.timer = setInterval(() => this.sampleNow(), 250);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    await this.sampling;
    await this.sample();
  }

  /** The samples, `t` in seconds since `measureFrom` (the measured run's start, known once it started). */
  samplesFrom(measureFrom: number): ServerSample[] {
    return this.samples.map((sample) => ({ ...sample, t: (sample.t - measureFrom) / 1000 }));
  }

  /**
   * Samples as soon as the one in flight (if any) is done: also when a worker's clients have all
   * connected, so that a run shorter than the 250 ms period, which would otherwise be sampled
   * only after its connections closed (peak 0 connections), shows them.
   */
  sampleNow(): void {
    if (this.stopped) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    this.sampling = this.sample().finally(() => {
      this.inFlight = false;
      if (this.again) {
        this.again = false;
        this.sampleNow();
      }
    });
  }

  private async sample(): Promise<void> {
    const stats = await this.control.stats().catch(() => undefined);
    if (stats === undefined) return;
    // The control connection and its stats stream are the bench's own: not part of the load.
    const load = { ...stats, connections: stats.connections - 1, streams: stats.streams - 1 };
    this.samples.push({
      t: Date.now(),
      rssBytes: load.rssBytes,
      connections: load.connections,
      streams: load.streams,
    });
    const peak = this.peak;
    this.peak =
      peak === undefined
        ? load
        : {
            ...load,
            connections: Math.max(peak.connections, load.connections),
            streams: Math.max(peak.streams, load.streams),
            rssBytes: Math.max(peak.rssBytes, load.rssBytes),
          };
  }
}

/**
 * A bench leaves nothing behind on the server it measured: removes `dir` and what is in it, or
 * returns the server's refusal of that (a bug still throws).
 */
async function removeRemoteDir(control: Client, dir: string): Promise<MuxftpError | undefined> {
  try {
    const entries = await control.list(dir).catch((error: unknown) => {
      // Never made (the account may not make directories): nothing to remove.
      if (error instanceof MuxftpError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    });
    if (entries === undefined) return undefined;
    const deletes = await Promise.allSettled(entries.map((e) => control.delete(`${dir}/${e.name}`)));
    const refused = deletes.find((d) => d.status === 'rejected');
    if (refused !== undefined) throw refused.reason;
    await control.rmdir(dir);
    return undefined;
  } catch (error) {
    if (!(error instanceof MuxftpError)) throw error;
    return error;
  }
}

/**
 * One bar for the whole run: operations (or seconds, for timed runs), with throughput. Its clock
 * is the measured run's: the workers report only what they measured, after the warm-up.
 */
class ProgressView {
  private readonly bar: cliProgress.SingleBar | undefined;
  private readonly perWorker: WorkerProgress[];
  private readonly timer: NodeJS.Timeout | undefined;
  /** The run, whose clock is set when its transfers start. */
  private readonly run: RunPlan;
  /** While the bar shows: Ctrl-Z gives the shell its cursor and line wrapping (the bar takes both). */
  private readonly stopListeningForCtrlZ: () => void = () => {};

  constructor(stream: NodeJS.WriteStream | undefined, run: RunPlan, durationMs: number | undefined) {
    const { files, plans } = run;
    this.run = run;
    this.perWorker = Array.from({ length: plans.length }, () => ({ ops: 0, bytes: 0 }));
    if (stream === undefined) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream,
        format:
          files !== undefined
            ? '{bar} {value}/{total} ops  {mbps} MB/s'
            : '{bar} {value}/{total} s  {ops} ops  {mbps} MB/s',
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    const total = files ?? Math.ceil((durationMs ?? 0) / 1000);
    this.bar.start(total, 0, { mbps: 0, ops: 0 });
    // One line, drawn where the cursor is: after fg, below what the shell printed.
    this.stopListeningForCtrlZ = giveTerminalBackOnStop(stream, { wrapOff: true });
    if (files === undefined) this.timer = setInterval(() => this.render(files), 500);
  }

  /** What the workers measured so far, in words: `after 3.2 s: 120 operations, 125.8 MB (39.3 MB/s) so far`. */
  soFar(): string {
    const { clock } = this.run;
    if (clock === undefined || Date.now() < clock.startAt) return 'before the transfers started';
    const seconds = this.measuredSeconds();
    if (seconds <= 0) return 'during the warm-up';
    const ops = this.perWorker.reduce((n, p) => n + p.ops, 0);
    const bytes = this.perWorker.reduce((n, p) => n + p.bytes, 0);
    const mb = (n: number) => (n / 1e6).toFixed(1);
    return `after ${seconds.toFixed(1)} s: ${counted(ops, 'operation')}, ${mb(bytes)} MB (${mb(bytes / seconds)} MB/s) so far`;
  }

  update(worker: number, progress: WorkerProgress): void {
    this.perWorker[worker] = progress;
    this.render(undefined);
  }

  private render(files: number | undefined): void {
    if (this.bar === undefined) return;
    const ops = this.perWorker.reduce((n, p) => n + p.ops, 0);
    const bytes = this.perWorker.reduce((n, p) => n + p.bytes, 0);
    const seconds = this.measuredSeconds();
    const mbps = (seconds > 0 ? bytes / seconds / 1e6 : 0).toFixed(1);
    if (this.timer !== undefined || files === undefined) {
      const value = this.timer !== undefined ? Math.max(0, Math.floor(seconds)) : ops;
      this.bar.update(value, { mbps, ops });
    }
  }

  /** Seconds since measuring began (negative before: during the start-up and the warm-up). */
  private measuredSeconds(): number {
    const { clock } = this.run;
    return clock === undefined ? -1 : (Date.now() - clock.measureFrom) / 1000;
  }

  stop(): void {
    clearInterval(this.timer);
    this.stopListeningForCtrlZ();
    this.bar?.stop();
  }
}
