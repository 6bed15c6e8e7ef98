/**
 * Server-wide running totals: the one seam between the server and whoever watches it (the `stats`
 * operation, the logs, the Prometheus exporter in server/metrics.ts). Server code only bumps plain
 * numbers here, once per connection, stream, transfer or error, never per frame; gauges such as
 * queue bytes are read from the connections when someone asks. Per-transfer observations go to
 * `transferObserver`, which is unset (and costs one check) unless metrics are on.
 */
import type { ErrorCode } from '../shared/errors.js';

/** Which way a transfer went, as the server sees it: `in` is an upload, `out` a download. */
export type TransferDirection = 'in' | 'out';

/** Why a connection was turned away before its handshake (`tls_handshake`: its TLS handshake failed). */
export type RefusalReason =
  | 'max_connections'
  | 'max_connections_per_ip'
  | 'login_failures'
  | 'tls_required'
  | 'tls_handshake'
  | 'shutting_down';

/**
 * Told of every finished transfer (its direction, bytes and duration). `bytes` moved by this
 * transfer; `size`, the file's (more when it continued an earlier one).
 */
export type TransferObserver = (
  direction: TransferDirection,
  bytes: number,
  seconds: number,
  size: number,
) => void;

/** Running totals of one server since it started. */
export class ServerCounters {
  readonly startedAt = Date.now();
  /** Connections open now. */
  connections = 0;
  /** Connections accepted since start. */
  connectionsTotal = 0;
  /** Connections refused since start, by reason. */
  readonly refused = new Map<RefusalReason, number>();
  /** Streams open now, all operations. */
  streams = 0;
  /** Streams open now, by operation. */
  readonly streamsByOp = new Map<string, number>();
  /** Streams opened since start, by operation. */
  readonly streamsTotalByOp = new Map<string, number>();
  /** Bytes of completed uploads and downloads. */
  bytesIn = 0;
  bytesOut = 0;
  filesIn = 0;
  filesOut = 0;
  /** Errors since start, by code: sent to a client on a stream or a connection, or a connection's end. */
  readonly errors = new Map<ErrorCode, number>();
  transferObserver: TransferObserver | undefined;
  /** The server's open-file slots (--max-open-files), whose count openFiles reads. */
  readonly #openFileSlots: { readonly open: number } | undefined;

  constructor(openFileSlots?: { readonly open: number }) {
    this.#openFileSlots = openFileSlots;
  }

  /** Files open now for transfers (gets, puts, and the reads of a stored file that count). */
  get openFiles(): number {
    return this.#openFileSlots?.open ?? 0;
  }

  connectionOpened(): void {
    this.connections++;
    this.connectionsTotal++;
  }

  connectionClosed(): void {
    this.connections--;
  }

  connectionRefused(reason: RefusalReason): void {
    increment(this.refused, reason);
  }

  streamOpened(op: string): void {
    this.streams++;
    increment(this.streamsByOp, op);
    increment(this.streamsTotalByOp, op);
  }

  streamClosed(op: string): void {
    this.streams--;
    increment(this.streamsByOp, op, -1);
  }

  transferFinished(direction: TransferDirection, bytes: number, seconds: number, size = bytes): void {
    if (direction === 'in') {
      this.filesIn++;
      this.bytesIn += bytes;
    } else {
      this.filesOut++;
      this.bytesOut += bytes;
    }
    this.transferObserver?.(direction, bytes, seconds, size);
  }

  error(code: ErrorCode): void {
    increment(this.errors, code);
  }
}

function increment<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}
