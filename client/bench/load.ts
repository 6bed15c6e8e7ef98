/**
 * One worker thread's share of the load: its clients, each running `streams` transfer loops at
 * once over its one connection. Operations are claimed from a counter shared by all workers, so
 * `--files N` means N in all however the clients are spread. Every transfer is verified: an
 * upload by the server's END check and the digest it returns, a download by the client's hash
 * compared with the payload's known digest. A mismatch counts as an error, never as throughput.
 */
import { Writable } from 'node:stream';
import { MuxftpError } from '../../shared/errors.js';
import { Client } from '../client.js';
import { encodeHistogram, newHistogram } from './histogram.js';
import type { BenchOp, BenchTls } from './options.js';
import { knownDigests, type Payload, payloadBuffer, seedName } from './payloads.js';
import { SecondTally, type WorkerSeconds } from './timeSeries.js';

export interface WorkerPlan {
  host: string;
  port: number;
  /** Connect over TLS, trusting this (PEM text: plans cross to worker threads). */
  tls: BenchTls | undefined;
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
  /** Epoch ms: connections are open by now; transfers start together here. */
  startAt: number;
  /** Epoch ms: operations started before this (the warm-up) are not recorded. */
  measureFrom: number;
  /** Epoch ms: no operation starts after this (timed runs). */
  stopAt: number | undefined;
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
}

export interface WorkerProgress {
  ops: number;
  bytes: number;
}

class Tally {
  ops = 0;
  bytes = 0;
  verified = 0;
  errors: Record<string, number> = {};
  connectionsOpened = 0;
  connectionsFailed = 0;
  readonly latency = newHistogram();
  readonly ttfb = newHistogram();
  readonly seconds: SecondTally;

  constructor(measureFrom: number) {
    this.seconds = new SecondTally(measureFrom);
  }

  error(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    this.seconds.error(code);
  }

  completed(bytes: number, latencyMicros: number): void {
    this.latency.recordValue(latencyMicros);
    this.seconds.completed(bytes, latencyMicros);
    this.ops++;
    this.verified++;
    this.bytes += bytes;
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
    };
  }
}

/** Slots of the shared counter: operations claimed, and the `idle` run's active client finished. */
export const CLAIMED = 0;
export const ACTIVE_DONE = 1;
export const COUNTER_SLOTS = 2;

const micros = (fromMs: number) => Math.max(1, Math.round((performance.now() - fromMs) * 1000));

/** Drops downloaded bytes once the client has hashed them. */
const discard = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
    writev(_chunks, callback) {
      callback();
    },
  });

export async function runLoad(
  plan: WorkerPlan,
  counter: Int32Array,
  report: (progress: WorkerProgress) => void,
): Promise<WorkerResult> {
  const tally = new Tally(plan.measureFrom);
  const buffers = plan.payloads.map(payloadBuffer);
  const known = plan.payloads.map(knownDigests);
  let seed = (plan.workerIndex + 1) * 0x9e3779b1;
  // A small deterministic PRNG (xorshift32): the mix of sizes and operations repeats run to run.
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const pickPayload = (): number => {
    const total = plan.cumulativeWeights.at(-1)!;
    const r = random() * total;
    return Math.max(
      0,
      plan.cumulativeWeights.findIndex((w) => r < w),
    );
  };
  /** Claims the next operation, or says the run is over. */
  const claim = (): boolean => {
    if (plan.stopAt !== undefined) return Date.now() < plan.stopAt;
    return Atomics.add(counter, CLAIMED, 1) < plan.files!;
  };
  const timer = setInterval(() => report({ ops: tally.ops, bytes: tally.bytes }), 200);

  const connect = async (): Promise<Client | undefined> => {
    try {
      const client = await Client.connect({
        host: plan.host,
        port: plan.port,
        agent: 'muxftp-bench',
        ...(plan.tls !== undefined ? { tls: plan.tls } : {}),
      });
      tally.connectionsOpened++;
      return client;
    } catch (error) {
      tally.connectionsFailed++;
      tally.error(error instanceof MuxftpError ? error.code : 'CONNECT_FAILED');
      return undefined;
    }
  };

  const transfer = async (client: Client, kind: 'upload' | 'download', slot: string): Promise<void> => {
    const index = pickPayload();
    const payload = plan.payloads[index]!;
    const started = performance.now();
    const measured = Date.now() >= plan.measureFrom;
    let firstByte: number | undefined;
    const onProgress = (done: number) => {
      if (firstByte === undefined && done > 0) firstByte = micros(started);
    };
    try {
      const result =
        kind === 'upload'
          ? await client.put(`${plan.remoteDir}/${slot}.bin`, buffers[index]!, {
              knownDigests: known[index]!,
              onProgress,
            })
          : await client.get(seedName(plan.remoteDir, payload.bytes), discard(), { onProgress });
      if (!measured) return;
      if (result.digest !== payload.digests[result.algorithm]) {
        tally.error('INTEGRITY_ERROR');
        return;
      }
      if (firstByte !== undefined) tally.ttfb.recordValue(firstByte);
      tally.completed(payload.bytes, micros(started));
    } catch (error) {
      if (measured) tally.error(error instanceof MuxftpError ? error.code : 'INTERNAL_ERROR');
      throw error;
    }
  };

  /** One stream slot: transfers back to back until the run is over or the connection is gone. */
  const streamLoop = async (client: Client, slot: string, kinds: () => 'upload' | 'download') => {
    while (claim()) {
      try {
        await transfer(client, kinds(), slot);
      } catch (error) {
        const code = error instanceof MuxftpError ? error.code : '';
        if (code === 'CONNECTION_LOST' || code === 'CONNECT_FAILED' || (error as MuxftpError).fatal) return;
      }
    }
  };

  const kindsFor = (op: BenchOp) => (): 'upload' | 'download' =>
    op === 'upload'
      ? 'upload'
      : op === 'download'
        ? 'download'
        : random() * 100 < plan.downloadPercent
          ? 'download'
          : 'upload';

  const clientLoop = async (c: number): Promise<void> => {
    if (plan.op === 'connect') {
      // Each loop is a connect + handshake + close; its latency is the connect and handshake.
      await sleepUntil(plan.startAt);
      while (claim()) {
        const started = performance.now();
        const measured = Date.now() >= plan.measureFrom;
        const client = await connect();
        if (client === undefined) continue;
        if (measured) tally.completed(0, micros(started));
        await client.close();
      }
      return;
    }
    const client = await connect();
    if (client === undefined) return;
    await sleepUntil(plan.startAt);
    const slots = Array.from({ length: plan.streams }, (_, s) =>
      streamLoop(client, `w${plan.workerIndex}-c${c}-s${s}`, kindsFor(plan.op)),
    );
    await Promise.all(slots);
    await client.close();
  };

  try {
    if (plan.op === 'idle') {
      // Idle connections first, then the one active client measures single-stream speed.
      const idle = (await Promise.all(Array.from({ length: plan.clients }, connect))).filter(
        (c): c is Client => c !== undefined,
      );
      if (plan.activeClient) {
        try {
          const active = await connect();
          await sleepUntil(plan.startAt);
          let turn = 0;
          if (active !== undefined) {
            await streamLoop(active, `w${plan.workerIndex}-active`, () =>
              turn++ % 2 === 0 ? 'upload' : 'download',
            );
            await active.close();
          }
        } finally {
          Atomics.store(counter, ACTIVE_DONE, 1);
        }
      } else {
        await waitForActiveClient(counter);
      }
      await Promise.all(idle.map((c) => c.close()));
    } else {
      await Promise.all(Array.from({ length: plan.clients }, (_, c) => clientLoop(c)));
    }
  } finally {
    clearInterval(timer);
  }
  report({ ops: tally.ops, bytes: tally.bytes });
  return tally.result();
}

const sleepUntil = (epochMs: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, epochMs - Date.now())));

/** Idle-only workers hold their connections until the active client's run is over. */
async function waitForActiveClient(counter: Int32Array): Promise<void> {
  while (Atomics.load(counter, ACTIVE_DONE) === 0) await new Promise((resolve) => setTimeout(resolve, 50));
}
