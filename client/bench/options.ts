/**
 * `muxftp bench` options: one typed object, parsed and checked before anything runs. Sizes take
 * binary units (64KiB, 10MiB), durations s/ms/m, size distributions weighted lists.
 */
import { availableParallelism } from 'node:os';
import type { ServerAddress } from '../address.js';

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

export interface BenchOptions {
  server: ServerAddress;
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

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** `64KiB`, `10MiB`, `1.5GiB`, `1000` (bytes); KB/MB/GB are decimal. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase() || 'b'];
  if (match === null || unit === undefined)
    throw new TypeError(`invalid size "${text}": use e.g. 64KiB, 10MiB`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new TypeError(`invalid size "${text}"`);
  return bytes;
}

/** `30s`, `500ms`, `2m`, `1.5` (seconds). */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (match === null) throw new TypeError(`invalid duration "${text}": use e.g. 30s, 500ms, 2m`);
  const factor = match[2] === 'ms' ? 1 : match[2] === 'm' ? 60_000 : 1_000;
  return Math.round(Number(match[1]) * factor);
}

/** `64KiB:70,1MiB:25,10MiB:5`: sizes with relative weights (a bare size weighs 1). */
export function parseSizeDistribution(text: string): SizeWeight[] {
  const sizes = text.split(',').map((part) => {
    const [size, weight = '1'] = part.split(':');
    const w = Number(weight);
    if (!(w > 0)) throw new TypeError(`invalid weight in "${part}": expected a positive number`);
    return { bytes: parseSize(size ?? ''), weight: w };
  });
  if (sizes.length === 0) throw new TypeError('empty size distribution');
  return sizes;
}

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism());
}
