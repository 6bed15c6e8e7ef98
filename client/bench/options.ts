/**
 * `muxftp bench` options: one typed object, parsed and checked before anything runs. Sizes take
 * binary units (64KiB, 10MiB), durations s/ms/m, size distributions weighted lists.
 */
import { constants } from 'node:buffer';
import { availableParallelism } from 'node:os';
import { formatBytes, parseDecimal, parseSize } from '../../shared/humanUnits.js';
import type { ServerAddress } from '../address.js';
import type { ClientOptions } from '../client.js';

export type BenchOp = 'upload' | 'download' | 'mixed' | 'connect' | 'idle';
export const BENCH_OPS: readonly BenchOp[] = ['upload', 'download', 'mixed', 'connect', 'idle'];

export interface SizeWeight {
  bytes: number;
  weight: number;
}

export interface Thresholds {
  /** Most errors allowed before the exit code says failure. Default 0. */
  maxErrors: number;
  minMbps?: number;
  maxP99Ms?: number;
}

/** TLS for the bench's connections: the CA as PEM text, so it can cross to worker threads. */
export interface BenchTls {
  ca?: string;
  rejectUnauthorized: boolean;
}

/** Who the bench's connections log in as (a server with a users file); plain strings cross to workers. */
export interface BenchLogin {
  user: string;
  password: string;
}

/** How every bench connection (the control one and the workers') reaches the server. */
export function benchClientOptions(target: {
  host: string;
  port: number;
  tls?: BenchTls | undefined;
  login?: BenchLogin | undefined;
}): ClientOptions {
  return {
    host: target.host,
    port: target.port,
    agent: 'muxftp-bench',
    ...(target.tls !== undefined ? { tls: target.tls } : {}),
    ...target.login,
  };
}

export interface BenchOptions {
  server: ServerAddress;
  /** Connect over TLS (with `local`: the local server serves TLS only, with a throwaway certificate). */
  tls?: BenchTls;
  /** Log every connection in as this user. */
  login?: BenchLogin;
  /** Start a throwaway in-memory server in a child process instead of using `server`. */
  local: boolean;
  op: BenchOp;
  /** Connections (for `idle`: the idle ones, beside one active client). */
  clients: number;
  /** Concurrent transfers per connection. */
  streams: number;
  sizes: SizeWeight[];
  /** Operations in all; undefined when the run is bounded by `durationMs`. */
  files: number | undefined;
  durationMs: number | undefined;
  /** Operations run before measuring starts, not counted. */
  warmupMs: number;
  /** `mixed`: percentage of operations that are downloads. */
  downloadPercent: number;
  /** Worker threads the clients are spread over. */
  workers: number;
  json: boolean;
  quiet: boolean;
  thresholds: Thresholds;
}

/**
 * The largest `--size`: each payload is one buffer in memory, shared with the workers (4 GiB on
 * Node 20; past it the run died on an internal RangeError).
 */
export const MAX_PAYLOAD_BYTES = constants.MAX_LENGTH;

/** A `--size` (or a size of `--size-dist`): `parseSize`'s, at most {@link MAX_PAYLOAD_BYTES}. */
export function parsePayloadSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes > MAX_PAYLOAD_BYTES)
    throw new TypeError(
      `size "${text}" too large: a payload is held in memory, at most ${formatBytes(MAX_PAYLOAD_BYTES)}`,
    );
  return bytes;
}

/** `64KiB:70,1MiB:25,10MiB:5`: sizes with relative weights (a bare size weighs 1). */
export function parseSizeDistribution(text: string): SizeWeight[] {
  const sizes = text.split(',').map((part) => {
    const [size, weight = '1', ...extra] = part.split(':');
    let w: number;
    try {
      w = parseDecimal(weight);
    } catch {
      w = Number.NaN;
    }
    // Infinity drew the first size every time (and is null in --json); `1KiB:1:2` dropped its 2;
    // `0x10` weighed 16.
    if (!(w > 0) || extra.length > 0)
      throw new TypeError(`invalid weight in "${part}": expected a positive number`);
    return { bytes: parsePayloadSize(size ?? ''), weight: w };
  });
  if (sizes.length === 0) throw new TypeError('empty size distribution');
  return sizes;
}

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism());
}
