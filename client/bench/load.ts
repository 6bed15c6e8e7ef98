/**
 * One worker thread's share of the load: its clients, each running `streams` transfer loops at
 * once over its one connection. Operations are claimed from a counter shared by all workers, so
 * `--files N` means N in all however the clients are spread. Every transfer is verified: an
 * upload by the server's END check and the digest it returns, a download by the client's hash
 * compared with the payload's known digest. A mismatch counts as an error, never as throughput.
 */
import { MuxftpError } from '../../shared/errors.js';
import { Client } from '../client.js';
import type { GetResult, KnownDigest, PutResult } from '../streams.js';
import { encodeHistogram, newHistogram } from './histogram.js';
import { type BenchLogin, type BenchOp, type BenchTls, benchClientOptions } from './options.js';
import { knownDigests, type Payload, payloadBuffer, seedName } from './payloads.js';
import { SecondTally, type WorkerSeconds } from './timeSeries.js';

export interface WorkerPlan {
  host: string;
  port: number;
  /** Connect over TLS, trusting this (PEM text: plans cross to worker threads). */
  tls: BenchTls | undefined;
  /** Log in as this user. */
  login: BenchLogin | undefined;
  op: BenchOp;
  workerIndex: number;
  /** Connections this worker opens (for `idle`: idle ones). */
  clients: number;
  streams: number;
  payloads: Payload[];
  /** Cumulative weights, same order as payloads. */
  cumulativeWeights: number[];
  remoteDir: string;
  /** Total operations across all workers, or undefined for a timed run. */
  files: number | undefined;
  /** Operations started this long after the start (the warm-up) are not recorded. */
  warmupMs: number;
  /** A timed run: no operation starts this long after the warm-up. */
  durationMs: number | undefined;
  downloadPercent: number;
  /** `idle`: this worker also runs the one active client. */
  activeClient: boolean;
}

export interface WorkerResult {
  ops: number;
  bytes: number;
  verified: number;
  errors: Record<string, number>;
  connectionsOpened: number;
  connectionsFailed: number;
  latency: string;
  ttfb: string;
  /** The same, second by second, for the report's time series. */
  seconds: WorkerSeconds;
  /** Epoch ms when its last operation ended (completed or failed), 0 for none: a --files run's clock stops there. */
  lastEndedAt: number;
}

export interface WorkerProgress {
  ops: number;
  bytes: number;
  /**
   * Set on the report sent once the worker is ready: its clients have connected (or failed to),
   * and it waits for the start the coordinator gives when every worker is ready.
   */
  ready?: true;
}

/**
 * When the transfers of every worker start together (epoch ms), given once every worker is ready:
 * a planned start that clients connecting or logging in (scrypt, TLS) overran counted their
 * connecting in the run's seconds.
 */
export interface RunClock {
  startAt: number;
  /** Operations started before this (the warm-up) are not recorded. */
  measureFrom: number;
  /** A timed run: no operation starts after this. */
  stopAt: number | undefined;
}

/** The clock of a run starting at `startAt` under `plan`. */
export function runClock(plan: Pick<WorkerPlan, 'warmupMs' | 'durationMs'>, startAt: number): RunClock {
  const measureFrom = startAt + plan.warmupMs;
  const stopAt = plan.durationMs !== undefined ? measureFrom + plan.durationMs : undefined;
  return { startAt, measureFrom, stopAt };
}

class Tally {
  ops = 0;
  bytes = 0;
  verified = 0;
  errors: Record<string, number> = {};
  connectionsOpened = 0;
  connectionsFailed = 0;
  lastEndedAt = 0;
  readonly latency = newHistogram();
  readonly ttfb = newHistogram();
  /** Measured from the start, once it is known (what comes before falls in its first second). */
  readonly seconds = new SecondTally(Number.POSITIVE_INFINITY);

  error(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    this.seconds.error(code);
    this.lastEndedAt = Date.now();
  }

  /** Bytes moved in the measured run by a transfer that is not one of its operations (begun in the warm-up). */
  moved(bytes: number): void {
    this.seconds.moved(bytes);
    this.bytes += bytes;
    this.lastEndedAt = Date.now();
  }

  completed(bytes: number, latencyMicros: number): void {
    this.latency.recordValue(latencyMicros);
    this.seconds.completed(bytes, latencyMicros);
    this.ops++;
    this.verified++;
    this.bytes += bytes;
    this.lastEndedAt = Date.now();
  }

  result(): WorkerResult {
    return {
      ops: this.ops,
      bytes: this.bytes,
      verified: this.verified,
      errors: this.errors,
      connectionsOpened: this.connectionsOpened,
      connectionsFailed: this.connectionsFailed,
      latency: encodeHistogram(this.latency),
      ttfb: encodeHistogram(this.ttfb),
      seconds: this.seconds.result(),
      lastEndedAt: this.lastEndedAt,
    };
  }
}

/** Slots of the shared counter: operations claimed, and the `idle` run's active client finished. */
const CLAIMED = 0;
const ACTIVE_DONE = 1;
export const COUNTER_SLOTS = 2;

const micros = (fromMs: number) => Math.max(1, Math.round((performance.now() - fromMs) * 1000));

/** What a worker's workloads share: its plan, the counter shared by all workers, what it measured, its payloads. */
interface LoadContext {
  readonly plan: WorkerPlan;
  /** The run's clock, once every worker is ready. */
  readonly started: Promise<RunClock>;
  readonly counter: Int32Array;
  readonly tally: Tally;
  readonly buffers: Buffer[];
  readonly knownDigests: KnownDigest[][];
  /** Picks sizes and (for `mixed`) operations. */
  readonly random: () => number;
  /** Reports at once that this worker is ready: its clients have connected (or failed to). */
  readonly ready: () => void;
}

type TransferKind = 'upload' | 'download';

/** One workload per `--op`. */
const WORKLOADS: Record<BenchOp, (context: LoadContext) => Promise<void>> = {
  upload: (context) => runTransferClients(context, () => 'upload'),
  download: (context) => runTransferClients(context, () => 'download'),
  mixed: (context) => runTransferClients(context, () => mixedKind(context)),
  connect: runConnectLoops,
  idle: runIdle,
};

/**
 * Runs the plan, reporting progress every 200 ms, and once ready (`WorkerProgress.ready`): its
 * transfers start at `started`'s clock. `onReportRequest` is handed a function that reports at
 * once (an interrupted run asks for its figures before the thread is stopped).
 */
export async function runLoad(
  plan: WorkerPlan,
  counter: Int32Array,
  started: Promise<RunClock>,
  report: (progress: WorkerProgress) => void,
  onReportRequest?: (reportNow: () => void) => void,
): Promise<WorkerResult> {
  const context = newLoadContext(plan, counter, started, () =>
    report({ ops: context.tally.ops, bytes: context.tally.bytes, ready: true }),
  );
  void started.then((clock) => context.tally.seconds.startsAt(clock.measureFrom));
  const reportProgress = () => report({ ops: context.tally.ops, bytes: context.tally.bytes });
  onReportRequest?.(reportProgress);
  const timer = setInterval(reportProgress, 200);
  try {
    await WORKLOADS[plan.op](context);
  } finally {
    clearInterval(timer);
  }
  reportProgress();
  return context.tally.result();
}

function newLoadContext(
  plan: WorkerPlan,
  counter: Int32Array,
  started: Promise<RunClock>,
  ready: () => void,
): LoadContext {
  return {
    ready,
    plan,
    started,
    counter,
    tally: new Tally(),
    buffers: plan.payloads.map(payloadBuffer),
    knownDigests: plan.payloads.map(knownDigests),
    random: xorshift32((plan.workerIndex + 1) * 0x9e3779b1),
  };
}

/** A small deterministic PRNG: the mix of sizes and operations repeats run to run. */
function xorshift32(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** Claims the next operation of the run started at `clock`, or says the run is over. */
function claim({ plan, counter }: LoadContext, clock: RunClock): boolean {
  if (clock.stopAt !== undefined) return Date.now() < clock.stopAt;
  return Atomics.add(counter, CLAIMED, 1) < plan.files!;
}

/** Index of a payload, drawn by the size distribution's weights. */
function pickPayload({ plan, random }: LoadContext): number {
  const total = plan.cumulativeWeights.at(-1)!;
  const r = random() * total;
  return Math.max(
    0,
    plan.cumulativeWeights.findIndex((w) => r < w),
  );
}

const mixedKind = ({ plan, random }: LoadContext): TransferKind =>
  random() * 100 < plan.downloadPercent ? 'download' : 'upload';

/** A connection to the server, counted unless `measured` is false (`connect`'s warm-up). */
async function connect({ plan, tally }: LoadContext, measured = true): Promise<Client | undefined> {
  try {
    const client = await Client.connect(benchClientOptions(plan));
    if (measured) tally.connectionsOpened++;
    return client;
  } catch (error) {
    if (measured) {
      tally.connectionsFailed++;
      tally.error(error instanceof MuxftpError ? error.code : 'CONNECT_FAILED');
    }
    return undefined;
  }
}

/** `upload`, `download`, `mixed`: every client runs `streams` transfer loops over its connection. */
async function runTransferClients(context: LoadContext, nextKind: () => TransferKind): Promise<void> {
  // The coordinator samples the server on this report: a run too short for its periodic samples
  // still shows its connections (a worker started late included).
  let connecting = context.plan.clients;
  const onConnected = () => {
    if (--connecting === 0) context.ready();
  };
  await Promise.all(
    Array.from({ length: context.plan.clients }, (_, c) =>
      runTransferClient(context, c, nextKind, onConnected),
    ),
  );
}

async function runTransferClient(
  context: LoadContext,
  clientIndex: number,
  nextKind: () => TransferKind,
  onConnected: () => void,
): Promise<void> {
  const { plan } = context;
  const client = await connect(context);
  onConnected();
  if (client === undefined) return;
  const clock = await context.started;
  await sleepUntil(clock.startAt);
  const slots = Array.from({ length: plan.streams }, (_, s) =>
    streamLoop(context, clock, client, `w${plan.workerIndex}-c${clientIndex}-s${s}`, nextKind),
  );
  await Promise.all(slots);
  await client.close();
}

/** One stream slot: transfers back to back until the run is over or the connection is gone. */
async function streamLoop(
  context: LoadContext,
  clock: RunClock,
  client: Client,
  slot: string,
  nextKind: () => TransferKind,
): Promise<void> {
  while (claim(context, clock)) {
    try {
      await transfer(context, clock, client, nextKind(), slot);
    } catch (error) {
      if (error instanceof MuxftpError && error.fatal) return;
    }
  }
}

/**
 * One verified transfer, recorded only when it started after the warm-up. One the warm-up started
 * that ends after it is no operation of the run, but the bytes it moved after the warm-up count in
 * the run's bytes: its stream was busy with them for the measured seconds (a run whose one stream
 * spent 2 of its 4.8 measured seconds ending a warm-up transfer said 0.7 MB/s of a 1.1 MB/s link).
 */
async function transfer(
  context: LoadContext,
  clock: RunClock,
  client: Client,
  kind: TransferKind,
  slot: string,
): Promise<void> {
  const index = pickPayload(context);
  const started = performance.now();
  const measured = Date.now() >= clock.measureFrom;
  let firstByte: number | undefined;
  /** A warm-up transfer's bytes done as last told before the warm-up ended. */
  let doneInWarmup = 0;
  const onProgress = measured
    ? (done: number) => {
        if (firstByte === undefined && done > 0) firstByte = micros(started);
      }
    : (done: number) => {
        if (Date.now() < clock.measureFrom) doneInWarmup = done;
      };
  try {
    const result = await moveBytes(context, client, kind, slot, index, onProgress);
    if (measured) recordTransfer(context, index, result, started, firstByte);
    else if (Date.now() >= clock.measureFrom) recordWarmupTail(context, index, result, doneInWarmup);
  } catch (error) {
    if (measured) context.tally.error(error instanceof MuxftpError ? error.code : 'INTERNAL_ERROR');
    throw error;
  }
}

/** An upload of the payload to the slot's own file, or a download of the payload's seeded file. */
function moveBytes(
  { plan, buffers, knownDigests }: LoadContext,
  client: Client,
  kind: TransferKind,
  slot: string,
  index: number,
  onProgress: (done: number) => void,
): Promise<PutResult | GetResult> {
  if (kind === 'upload') {
    return client.put(`${plan.remoteDir}/${slot}.bin`, buffers[index]!, {
      knownDigests: knownDigests[index]!,
      onProgress,
    });
  }
  // Checked and dropped: the client hashes every byte and keeps none (no local write measured).
  return client.verify(seedName(plan.remoteDir, plan.payloads[index]!.bytes), { onProgress });
}

/** A digest that is not the payload's counts as an error, never as throughput. */
function recordTransfer(
  { plan, tally }: LoadContext,
  index: number,
  result: PutResult | GetResult,
  started: number,
  firstByte: number | undefined,
): void {
  const payload = plan.payloads[index]!;
  if (result.digest !== payload.digests[result.algorithm]) {
    tally.error('INTEGRITY_ERROR');
    return;
  }
  if (firstByte !== undefined) tally.ttfb.recordValue(firstByte);
  tally.completed(payload.bytes, micros(started));
}

/** A warm-up transfer that ended after the warm-up, verified: the bytes it moved since count. */
function recordWarmupTail(
  { plan, tally }: LoadContext,
  index: number,
  result: PutResult | GetResult,
  doneInWarmup: number,
): void {
  const payload = plan.payloads[index]!;
  // As for a warm-up transfer that fails: neither an error of the run nor bytes.
  if (result.digest !== payload.digests[result.algorithm]) return;
  tally.moved(Math.max(0, payload.bytes - doneInWarmup));
}

/** `connect`: each loop is a connect + handshake + close; its latency is the connect and handshake. */
async function runConnectLoops(context: LoadContext): Promise<void> {
  // Nothing to open first: ready as soon as the thread runs.
  context.ready();
  const clock = await context.started;
  await Promise.all(Array.from({ length: context.plan.clients }, () => connectLoop(context, clock)));
}

async function connectLoop(context: LoadContext, clock: RunClock): Promise<void> {
  await sleepUntil(clock.startAt);
  while (claim(context, clock)) {
    const started = performance.now();
    const measured = Date.now() >= clock.measureFrom;
    // A refusal during the warm-up is not counted either (the errors were, the connects not).
    const client = await connect(context, measured);
    if (client === undefined) continue;
    if (measured) context.tally.completed(0, micros(started));
    await client.close();
  }
}

/** `idle`: idle connections first, then the one active client measures single-stream speed. */
async function runIdle(context: LoadContext): Promise<void> {
  const idle = (
    await Promise.all(Array.from({ length: context.plan.clients }, () => connect(context)))
  ).filter((c): c is Client => c !== undefined);
  // An idle connection the server ended before the run was over (its --idle-timeout, a restart)
  // is an error, by its code: the report said so many connections were held, with no error, while
  // the active client ran beside none.
  let over = false;
  for (const client of idle) {
    void client.closed.then((reason) => {
      if (!over && reason !== undefined) context.tally.error(reason.code);
    });
  }
  if (context.plan.activeClient) await runActiveClient(context);
  else {
    context.ready();
    await waitForActiveClient(context.counter);
  }
  over = true;
  await Promise.all(idle.map((c) => c.close()));
}

/** Alternates uploads and downloads on one stream, then tells the idle-only workers it is done. */
async function runActiveClient(context: LoadContext): Promise<void> {
  try {
    const active = await connect(context);
    context.ready();
    const clock = await context.started;
    await sleepUntil(clock.startAt);
    let turn = 0;
    if (active !== undefined) {
      await streamLoop(context, clock, active, `w${context.plan.workerIndex}-active`, () =>
        turn++ % 2 === 0 ? 'upload' : 'download',
      );
      await active.close();
    }
  } finally {
    Atomics.store(context.counter, ACTIVE_DONE, 1);
  }
}

/**
 * Resolves once Date.now() has reached `epochMs`. A timer may fire a millisecond early by the
 * wall clock (its clock is another), and a transfer started then, before `measureFrom`, went
 * unmeasured: a run of 8 reported 7 ops and no errors (bench.test, cli.access under load).
 */
export async function sleepUntil(epochMs: number): Promise<void> {
  while (Date.now() < epochMs) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, epochMs - Date.now())));
  }
}

/** Idle-only workers hold their connections until the active client's run is over. */
async function waitForActiveClient(counter: Int32Array): Promise<void> {
  while (Atomics.load(counter, ACTIVE_DONE) === 0) await new Promise((resolve) => setTimeout(resolve, 50));
}
