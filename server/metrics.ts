/**
 * Prometheus metrics for a running MuxServer, on their own HTTP listener (never the protocol
 * port). Everything is read from the server when scraped — its ServerCounters and its connections'
 * figures — except the transfer histograms, which hook the counters' one per-transfer observer. So
 * a server without an exporter pays nothing, and one with an exporter pays one histogram
 * observation per finished transfer.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { DEFAULTS } from '../shared/defaults.js';
import type { ServerCounters, TransferDirection } from './counters.js';
import type { MuxServer } from './server.js';

/** Where the metrics listener binds; loopback unless the caller chooses otherwise. */
export interface MetricsExporterOptions {
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 9464 (Prometheus's customary exporter port). */
  port?: number;
  /**
   * Milliseconds a connection may send nothing, or take to send a whole request, before it is
   * closed. Default DEFAULTS.metricsIdleTimeoutMs (10 s).
   */
  idleTimeoutMs?: number;
}

/** Default port of `muxftp serve --metrics`. */
export const DEFAULT_METRICS_PORT: number = DEFAULTS.metricsPort;

const DURATION_BUCKETS_S = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800];
/** 1 KiB to 16 GiB, ×4 a step. */
const SIZE_BUCKETS_BYTES = Array.from({ length: 13 }, (_, k) => 1024 * 4 ** k);

/**
 * Serves `GET /metrics` in the Prometheus text format for one {@link MuxServer}: connections,
 * streams by operation, bytes and files each way, errors by code, upload backlog, outbound queue
 * bytes, transfer duration and size histograms, and the process's event-loop lag and utilisation,
 * RSS and open file descriptors (prom-client's default metrics).
 */
export class MetricsExporter {
  /** The registry the metrics live in, for callers that add their own. */
  readonly registry = new Registry();
  private readonly server: MuxServer;
  private readonly counters: ServerCounters;
  private readonly http: Server;
  private readonly host: string;
  private readonly port: number;

  /** Registers `server`'s metrics; nothing listens until listen(). A bad host or port: a TypeError. */
  constructor(server: MuxServer, options: MetricsExporterOptions = {}) {
    if (typeof options !== 'object' || options === null)
      throw new TypeError('metrics: options must be an object');
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? DEFAULT_METRICS_PORT;
    if (typeof this.host !== 'string' || this.host === '')
      throw new TypeError('metrics: host must be a non-empty string');
    if (!Number.isInteger(this.port) || this.port < 0 || this.port > 65535)
      throw new TypeError(`metrics: port must be an integer from 0 to 65535, got ${String(this.port)}`);
    const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULTS.metricsIdleTimeoutMs;
    if (!Number.isSafeInteger(idleTimeoutMs) || idleTimeoutMs < 1)
      throw new TypeError(`metrics: idleTimeoutMs must be a positive integer, got ${String(idleTimeoutMs)}`);
    this.server = server;
    this.counters = server.counters;
    this.register();
    // A request is a few hundred bytes: it comes whole within idleTimeoutMs or is answered 408
    // and closed. Node's own deadlines (60 s for the headers, checked every 30 s) let a peer
    // sending a header line every few seconds keep a place for 90 s: 8 such held every place, and
    // the scrapes were closed unanswered.
    this.http = createServer(
      {
        headersTimeout: idleTimeoutMs,
        requestTimeout: idleTimeoutMs,
        // Often enough for the deadline, never a busy timer for a tiny one.
        connectionsCheckingInterval: Math.max(100, Math.min(idleTimeoutMs, 1_000)),
      },
      this.httpOnRequest,
    );
    // Its sockets are descriptors the protocol server's reserve does not count (fdReserve): a few
    // at once, and none kept by a peer that sends nothing (with no 'timeout' listener, an idle
    // socket is destroyed). 234 such sockets took every descriptor under `ulimit -n 256` before.
    this.http.maxConnections = DEFAULTS.metricsMaxConnections;
    this.http.setTimeout(idleTimeoutMs);
  }

  /**
   * Starts listening; resolves to the bound address. Refuses the server's own protocol port. Once
   * closed (before or while it binds), it stays closed: listen() rejects.
   */
  listen(): Promise<{ host: string; port: number }> {
    if (this.closing !== undefined) return Promise.reject(new Error('metrics: this exporter was closed'));
    const protocolPort = this.server.address().port;
    if (this.port === protocolPort) {
      return Promise.reject(
        new Error(`metrics: port ${this.port} is the protocol port; metrics need a port of their own`),
      );
    }
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.http.off('close', onClose);
        reject(err);
      };
      // Closed while it bound: node calls back no more.
      const onClose = () => {
        this.http.off('error', onError);
        reject(new Error('metrics: closed before it was listening'));
      };
      this.http.once('error', onError);
      this.http.once('close', onClose);
      this.http.listen(this.port, this.host, () => {
        this.http.off('error', onError);
        this.http.off('close', onClose);
        resolve(this.address());
      });
    });
  }

  /** The bound address; throws if not listening. */
  address(): { host: string; port: number } {
    const address = this.http.address();
    if (address === null || typeof address === 'string') throw new Error('metrics: not listening');
    return { host: address.address, port: address.port };
  }

  /**
   * Stops listening (a listen() under way too: it rejects) and unhooks from the server's counters.
   * Safe to call twice; later calls settle with the first.
   */
  close(): Promise<void> {
    this.counters.transferObserver = undefined;
    // Not listening yet may be binding still (listen() looks its host up first, an IP too): it
    // is closed all the same, else it bound after this resolved and kept its port and the process.
    this.closing ??= new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    return this.closing;
  }

  private closing: Promise<void> | undefined;

  private readonly httpOnRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('muxftp: metrics are at GET /metrics\n');
      return;
    }
    // HEAD is GET without the body (Node leaves it out): an uptime check's `curl -I` found a 404.
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response
        .writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' })
        .end('muxftp: metrics are at GET /metrics\n');
      return;
    }
    this.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
      (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
    );
  };

  private register(): void {
    const registers = [this.registry];
    const counters = this.counters;
    const server = this.server;
    collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'muxftp_connections',
      help: 'Client connections open now.',
      registers,
      collect() {
        this.set(counters.connections);
      },
    });
    // Refused at --max-connections with muxftp_connections at 0: what the cap counts besides.
    new Gauge({
      name: 'muxftp_connections_handshaking',
      help: 'Sockets accepted whose TLS handshake (or first byte, with TLS on) has yet to come; --max-connections counts them with muxftp_connections.',
      registers,
      collect() {
        this.set(server.handshakingConnections);
      },
    });
    new Counter({
      name: 'muxftp_connections_total',
      help: 'Client connections accepted since start.',
      registers,
      collect() {
        this.reset();
        this.inc(counters.connectionsTotal);
      },
    });
    new Counter({
      name: 'muxftp_connections_refused_total',
      help: 'Connections turned away before their handshake, by reason (tls_handshake: their TLS handshake failed).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of counters.refused) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: 'muxftp_streams',
      help: 'Streams open now, by operation.',
      labelNames: ['op'],
      registers,
      collect() {
        this.reset();
        for (const [op, n] of counters.streamsByOp) this.set({ op }, n);
      },
    });
    new Counter({
      name: 'muxftp_streams_total',
      help: 'Streams opened since start, by operation.',
      labelNames: ['op'],
      registers,
      collect() {
        this.reset();
        for (const [op, n] of counters.streamsTotalByOp) this.inc({ op }, n);
      },
    });
    new Counter({
      name: 'muxftp_transfer_bytes_total',
      help: 'Bytes of completed transfers: in = uploads stored, out = downloads sent.',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        this.inc({ direction: 'in' }, counters.bytesIn);
        this.inc({ direction: 'out' }, counters.bytesOut);
      },
    });
    new Counter({
      name: 'muxftp_transfer_files_total',
      help: 'Completed transfers: in = uploads stored, out = downloads sent.',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        this.inc({ direction: 'in' }, counters.filesIn);
        this.inc({ direction: 'out' }, counters.filesOut);
      },
    });
    new Counter({
      name: 'muxftp_errors_total',
      help: 'Errors by code: those sent to clients, and the reasons connections ended abnormally.',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const [code, n] of counters.errors) this.inc({ code }, n);
      },
    });
    new Gauge({
      name: 'muxftp_upload_backlog_bytes',
      help: 'Memory holding upload bytes received and not yet written to storage, all connections.',
      registers,
      collect() {
        this.set(sum(server.connectionFigures(), (c) => c.uploadBacklogBytes));
      },
    });
    new Gauge({
      name: 'muxftp_outbound_queue_bytes',
      help: 'Bytes held for clients and not yet taken by their sockets, all connections.',
      registers,
      collect() {
        this.set(sum(server.connectionFigures(), (c) => c.bufferedAmount));
      },
    });
    new Gauge({
      name: 'muxftp_control_frame_bytes',
      help: 'Control frames (replies, errors, credit, listings) held for clients until the kernel takes them, and room reserved for replies, all connections.',
      registers,
      collect() {
        this.set(server.controlHeldBytes);
      },
    });
    new Gauge({
      name: 'muxftp_login_checks_waiting',
      help: 'Password checks waiting for their turn (a few run at once, server-wide).',
      registers,
      collect() {
        this.set(server.loginChecksWaiting);
      },
    });
    let lastUtilization = performance.eventLoopUtilization();
    new Gauge({
      name: 'muxftp_event_loop_utilization',
      help: 'Share of time the event loop was busy (0-1) since the previous scrape.',
      registers,
      collect() {
        const now = performance.eventLoopUtilization();
        this.set(performance.eventLoopUtilization(now, lastUtilization).utilization);
        lastUtilization = now;
      },
    });
    // One histogram per direction rather than a `direction` label: simpler queries, and common
    // parsers (parse-prometheus-text-format among them) mishandle labelled histograms.
    const histograms = {
      in: transferHistograms('upload', registers),
      out: transferHistograms('download', registers),
    };
    counters.transferObserver = (
      direction: TransferDirection,
      _bytes: number,
      seconds: number,
      size: number,
    ) => {
      histograms[direction].duration.observe(seconds);
      // The file's size, a resumed transfer's included: the bytes moved are in the bytes counters.
      histograms[direction].size.observe(size);
    };
  }
}

function transferHistograms(
  kind: 'upload' | 'download',
  registers: Registry[],
): { duration: Histogram; size: Histogram } {
  return {
    duration: new Histogram({
      name: `muxftp_${kind}_duration_seconds`,
      help: `Time from ${kind === 'upload' ? 'an' : 'a'} ${kind} stream opening to its end, completed ${kind}s.`,
      buckets: DURATION_BUCKETS_S,
      registers,
    }),
    size: new Histogram({
      name: `muxftp_${kind}_size_bytes`,
      help: `Size of completed ${kind}s.`,
      buckets: SIZE_BUCKETS_BYTES,
      registers,
    }),
  };
}

function sum<T>(items: readonly T[], value: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += value(item);
  return total;
}
