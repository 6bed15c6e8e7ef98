/**
 * The listening side (Twisted's factory): accepts connections, enforces the connection cap,
 * keeps the counters, and shuts down gracefully. Each connection runs on this one event loop.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { MuxftpError } from '../shared/errors.js';
import { encodeError } from '../shared/protocol/encoder.js';
import { errorPayload, type ServerStats } from '../shared/protocol/messages.js';
import { ServerConnection } from './connection.js';
import { ServerCounters } from './counters.js';
import { type ResolvedServerOptions, resolveServerOptions, type ServerOptions } from './options.js';
import { readStats } from './requestStream.js';

/** One connection's load, as {@link MuxServer.connectionFigures} reports it. */
export interface ConnectionFigures {
  /** The peer's address and port, as the logs name the connection. */
  label: string;
  /** Bytes queued for the peer and not yet taken by the socket. */
  bufferedAmount: number;
  /** Streams open on the connection. */
  openStreams: number;
  /** Upload bytes received and not yet written to storage. */
  uploadBacklogBytes: number;
}

/**
 * A muxftp server: listens on one TCP port and serves a storage backend to any number of
 * connections, each carrying many streams. `close()` drains, so it suits embedding in tests and
 * in other programs as well as `muxftp serve`.
 */
export class MuxServer {
  /** The options in force: the caller's, with defaults filled in. */
  readonly options: ResolvedServerOptions;
  /** @internal Running totals, read by `stats()`. */
  readonly counters = new ServerCounters();
  private readonly listener: Server;
  private readonly connections = new Set<ServerConnection>();
  private closing: Promise<void> | undefined;

  constructor(options: ServerOptions) {
    this.options = resolveServerOptions(options);
    // Socket buffers the size of the outbound high-water mark let several chunks ride in one writev.
    this.listener = createServer(
      { highWaterMark: this.options.outboundHighWaterBytes },
      this.listenerOnConnection,
    );
    this.listener.on('error', (err) => this.options.log(`listener error: ${err.message}`));
  }

  /** Starts listening; resolves to the bound address (port 0 picks a free port). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.listener.once('error', onError);
      this.listener.listen(this.options.port, this.options.host, () => {
        this.listener.off('error', onError);
        resolve(this.address());
      });
    });
  }

  /** The bound address; throws if the server is not listening. */
  address(): { host: string; port: number } {
    const address = this.listener.address();
    if (address === null || typeof address === 'string') throw new Error('server is not listening');
    return { host: address.address, port: address.port };
  }

  /** The running totals the `stats` operation reports. */
  stats(): ServerStats {
    return readStats(this.counters);
  }

  /** Each connection's open streams, the bytes held for it, and its uploads' bytes not yet stored. */
  connectionFigures(): ConnectionFigures[] {
    return [...this.connections].map((c) => ({
      label: c.label,
      bufferedAmount: c.bufferedAmount,
      openStreams: c.openStreams,
      uploadBacklogBytes: c.uploadBacklogBytes,
    }));
  }

  /**
   * Stops accepting, lets open streams finish for up to `graceMs`, then destroys what is left.
   * Safe to call more than once: later calls return the same promise.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.listener.close();
      if (this.connections.size === 0) {
        resolve();
        return;
      }
      const deadline = setTimeout(() => {
        for (const connection of this.connections) connection.destroy();
      }, graceMs);
      this.allClosed = () => {
        clearTimeout(deadline);
        resolve();
      };
      for (const connection of this.connections) connection.drain();
    });
    return this.closing;
  }

  private allClosed: (() => void) | undefined;

  private readonly listenerOnConnection = (socket: Socket): void => {
    if (this.closing !== undefined) {
      this.counters.connectionRefused('shutting_down');
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.options.maxConnections) {
      const busy = new MuxftpError(
        'SERVER_BUSY',
        `server busy: at most ${this.options.maxConnections} connections`,
      );
      this.counters.connectionRefused('max_connections');
      socket.on('error', () => {});
      socket.end(encodeError(0, errorPayload(busy)));
      setTimeout(() => socket.destroy(), 2_000).unref();
      this.options.log(`refused ${socket.remoteAddress}:${socket.remotePort}: ${busy.message}`);
      return;
    }
    const connection = new ServerConnection(socket, this.options, this.counters, this.connectionOnClosed);
    this.connections.add(connection);
    this.counters.connectionOpened();
  };

  private readonly connectionOnClosed = (connection: ServerConnection): void => {
    this.connections.delete(connection);
    this.counters.connectionClosed();
    if (this.connections.size === 0) this.allClosed?.();
  };
}
