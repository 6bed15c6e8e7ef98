/**
 * The listening side (Twisted's factory): accepts connections, enforces the connection caps
 * (overall and per address) and the refusal of addresses that keep failing to log in, tells TLS
 * from plain connections on the one port, keeps the counters, and shuts down gracefully. Each
 * connection runs on this one event loop.
 */

import { createServer, type Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError, ProtocolError, ServerBusyError } from '../shared/errors.js';
import { descriptorsInUse, softFileDescriptorLimit } from '../shared/fileDescriptorLimit.js';
import { blockHashesPrepared, prepareBlockHashes } from '../shared/integrity/blockHash.js';
import { encodeError } from '../shared/protocol/encoder.js';
import { errorPayload, type ServerStats } from '../shared/protocol/messages.js';
import { MAX_TIMER_MS, timerDelay } from '../shared/timerDelay.js';
import { ControlFrameBudget } from '../shared/transport/controlFrameBudget.js';
import { DataFramePool } from '../shared/transport/dataFramePool.js';
import { OutboundBudget } from '../shared/transport/outboundBudget.js';
import { SharedBufferReads } from '../shared/transport/sharedReadBuffer.js';
import { AccountResourceTable } from './auth/accountResources.js';
import { Accounts } from './auth/accounts.js';
import { LoginGuard, refusalForFailedLogins } from './auth/loginGuard.js';
import { describePeer, peerAddressGroup, peerLogFields, ServerConnection } from './connection.js';
import { type RefusalReason, ServerCounters } from './counters.js';
import {
  connectionOverBudget,
  defaultMaxOpenFiles,
  filesWithinBudget,
  outOfDescriptorsRefusal,
} from './fileDescriptors.js';
import type { LogEvent } from './logEvents.js';
import { OpenFileSlots } from './openFileSlots.js';
import { type ResolvedServerOptions, resolveServerOptions, type ServerOptions } from './options.js';
import { RefusalLog } from './refusalLog.js';
import { readStats } from './requestStream.js';
import { ResumableUploads } from './resumableUploads.js';
import { rejectingCall } from './stream.js';
import { UploadBacklogBudget } from './uploadBacklogBudget.js';

/** A TLS connection starts with a handshake record (RFC 8446 §5.1, ContentType 22); no muxftp frame type is 22. */
const TLS_HANDSHAKE_RECORD = 0x16;
/** How long a refused socket gets to read its ERROR frame. */
const REFUSAL_LINGER_MS = 2_000;
/** Free DATA frames kept for reuse, all connections together: this share of the outbound budget. */
const FREE_FRAMES_FRACTION_OF_OUTBOUND_BUDGET = 1 / 4;
const ignore = (): void => {};

/** One connection's load, as {@link MuxServer.connectionFigures} reports it. */
export interface ConnectionFigures {
  /** The peer's address and port, as the logs name the connection. */
  label: string;
  /** Bytes queued for the peer and not yet taken by the socket. */
  bufferedAmount: number;
  /**
   * Control frames (not file data) held for the peer until the kernel takes them, and room
   * reserved for replies: what counts against serverControlHighWaterBytes.
   */
  heldControlBytes: number;
  /** Streams open on the connection. */
  openStreams: number;
  /** Memory holding upload bytes received and not yet written to storage (their receive blocks). */
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
  readonly counters: ServerCounters;
  private readonly listener: Server;
  private readonly connections = new Set<ServerConnection>();
  /** Sockets accepted whose first byte or TLS handshake has not arrived yet. */
  private readonly pending = new Set<Duplex>();
  /** Refused sockets left open for their ERROR to be read: at most DEFAULTS.maxLingeringRefusals. */
  private readonly lingering = new Set<Duplex>();
  /** Sockets (pending or connected) per remote address group (an IPv6 peer's /64). */
  private readonly perAddress = new Map<string, number>();
  /** Replaced by replaceTls() (serve re-reads its certificate on SIGHUP); set for good at construction. */
  private secureContext: SecureContext | undefined;
  private readonly loginGuard: LoginGuard;
  /** The log lines of refused connections: the first of each kind, then a count per interval. */
  private readonly refusalLog: RefusalLog;
  /**
   * Password checks, a few at a time server-wide in arrival order: scrypt runs on libuv's thread
   * pool, which the disk calls that may not run on the loop share (fdatasync, rename): unbounded,
   * 300 connections from one unauthenticated host held every thread for 14 s.
   */
  private readonly loginQueue: ConcurrencyLimit;
  private readonly accountResources: AccountResourceTable;
  /** Resumable uploads under way, all connections together (a retry takes over a stalled one). */
  private readonly resumableUploads = new ResumableUploads();
  private readonly uploadBacklogBudget: UploadBacklogBudget;
  private readonly openFileSlots: OpenFileSlots;
  private readonly outboundBudget: OutboundBudget;
  private readonly controlBudget: ControlFrameBudget;
  private readonly framePool: DataFramePool;
  /** Who may log in; replaceAccounts() swaps it (serve re-reads its users file on SIGHUP). */
  private accounts: Accounts;
  private closing: Promise<void> | undefined;
  /** Removes expired partial uploads (issue #8) while listening; cleared by close(). */
  private partialSweepTimer: NodeJS.Timeout | undefined;

  /** The process's soft limit on open files, read once; undefined when unknown. */
  private readonly fileDescriptorLimit = softFileDescriptorLimit();
  /**
   * The descriptors the process held, none of them this server's connections or files: counted
   * again once listening (its listener among them); at construction for sockets handed in.
   */
  private heldDescriptors = this.fileDescriptorLimit === undefined ? 0 : descriptorsInUse();
  /** No maxOpenFiles was given: the cap is the default, from the descriptors counted. */
  private readonly maxOpenFilesByDefault: boolean;

  /**
   * Checks the options (a TypeError names a bad one; a TLS key that does not match its certificate,
   * or unreadable PEM, throws here) and sets the server up; nothing listens until listen().
   */
  constructor(options: ServerOptions) {
    this.options = resolveServerOptions(options);
    this.maxOpenFilesByDefault = options.maxOpenFiles === undefined;
    this.loginGuard = new LoginGuard({
      failureDelayMs: this.options.loginFailureDelayMs,
      maxFailureDelayMs: this.options.maxLoginFailureDelayMs,
      failuresPerAddress: this.options.loginFailuresPerAddress,
      failureWindowMs: this.options.loginFailureWindowMs,
      blockMs: this.options.loginBlockMs,
    });
    this.loginQueue = new ConcurrencyLimit(this.options.maxConcurrentLoginChecks);
    this.refusalLog = new RefusalLog(this.options.logEvent, this.options.refusalLogIntervalMs);
    this.accountResources = new AccountResourceTable({
      defaultRateBytesPerSecond: this.options.maxUserRateBytesPerSecond,
      quotaRecountIntervalMs: this.options.quotaRecountIntervalMs,
    });
    this.uploadBacklogBudget = new UploadBacklogBudget(this.options.serverUploadBacklogHighWaterBytes);
    this.openFileSlots = new OpenFileSlots(
      this.options.maxOpenFiles,
      DEFAULTS.openFileContentionMs,
      DEFAULTS.openFileRetryAfterMs,
      (holder) =>
        holder instanceof ServerConnection && holder.yieldIdleFile(this.options.openFileReclaimIdleMs),
      () =>
        this.fileDescriptorLimit === undefined
          ? Number.POSITIVE_INFINITY
          : filesWithinBudget(this.connections.size + this.pending.size, {
              limit: this.fileDescriptorLimit,
              reserve: DEFAULTS.fdReserve,
              held: this.heldDescriptors,
            }),
    );
    this.counters = new ServerCounters(this.openFileSlots);
    this.outboundBudget = new OutboundBudget(
      this.options.serverOutboundHighWaterBytes,
      this.options.serverOutboundTrickleBytes,
    );
    this.controlBudget = new ControlFrameBudget(this.options.serverControlHighWaterBytes);
    // One pool for all connections: a pool each kept up to 3 MiB of free frames per connection
    // that had downloaded anything, for as long as it stayed connected (28 GiB at 10,000).
    this.framePool = new DataFramePool(
      this.options.chunkBytes,
      this.options.serverOutboundHighWaterBytes * FREE_FRAMES_FRACTION_OF_OUTBOUND_BUDGET,
    );
    this.accounts = this.options.accounts;
    if (this.options.tls !== undefined) {
      // Throws here, at construction, for a key that does not match or unreadable PEM.
      this.secureContext = createSecureContext({ cert: this.options.tls.cert, key: this.options.tls.key });
    }
    // Socket buffers the size of the outbound high-water mark let several chunks ride in one writev.
    this.listener = createServer({ highWaterMark: this.options.outboundHighWaterBytes }, (socket) =>
      this.accept(socket),
    );
    // A failure to listen is listen()'s rejection, reported once by whoever called it; only what
    // goes wrong once listening is logged here.
    this.listener.on('error', (err) => {
      if (this.listener.listening)
        this.options.logEvent({
          event: 'listener_error',
          level: 'error',
          text: `listener error: ${err.message}`,
          fields: { reason: err.message },
        });
    });
  }

  /**
   * Starts listening; resolves to the bound address (port 0 picks a free port). A server once
   * closed stays closed: listen() then rejects (SHUTTING_DOWN), as does a listen() that close()
   * came during, and a new MuxServer serves again.
   */
  async listen(): Promise<{ host: string; port: number }> {
    // Every upload and download hashes: the hashes are ready before the first connection.
    await prepareBlockHashes();
    // Closed, before or while the hashes loaded: it would bind a port whose connections it
    // refuses, and no close() would release it.
    if (this.closing !== undefined)
      throw new MuxftpError('SHUTTING_DOWN', 'this server was closed: make a new MuxServer to listen again');
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.listener.off('close', onClose);
        reject(err);
      };
      // Closed after the bind began, before it was done: node calls back no more, and closes.
      const onClose = () => {
        this.listener.off('error', onError);
        reject(new MuxftpError('SHUTTING_DOWN', 'this server was closed before it was listening'));
      };
      this.listener.once('error', onError);
      this.listener.once('close', onClose);
      this.listener.listen(this.options.port, this.options.host, () => {
        this.listener.off('error', onError);
        this.listener.off('close', onClose);
        if (this.fileDescriptorLimit !== undefined) {
          this.heldDescriptors = descriptorsInUse();
          // The default cap from the same count: taken at construction, before the listener (and
          // libuv's spare descriptor for EMFILE) was open, it was one file more than the
          // connection check kept room for.
          if (this.maxOpenFilesByDefault)
            this.openFileSlots.max = defaultMaxOpenFiles(
              DEFAULTS.maxOpenFiles,
              DEFAULTS.fdReserve,
              this.fileDescriptorLimit,
              this.heldDescriptors,
            );
        }
        this.startPartialSweeps();
        resolve(this.address());
      });
    });
  }

  private startPartialSweeps(): void {
    const retention = this.options.partialRetentionMs;
    if (retention === 0 || this.partialSweepTimer !== undefined) return;
    const every = Math.min(retention, DEFAULTS.partialSweepIntervalMs);
    this.partialSweepTimer = setInterval(() => {
      const storage = this.options.storage;
      rejectingCall(() =>
        storage.sweepTemporaryFiles({
          partialRetentionMs: retention,
          // Crash leftovers went at start; a temporary file unknown now may be another process's.
          partialsOnly: true,
          // A root inside this one served by another server: its kept uploads are its own.
          ...(this.options.servedByAnother !== undefined
            ? { servedByAnother: this.options.servedByAnother }
            : {}),
          // Paths below the served root: every quota whose home holds the directory frees them.
          onPartialRemoved: (dir, bytes) =>
            this.accountResources.recordChange('', { op: 'partial', dir, bytes: -bytes }, undefined),
        }),
      ).catch(() => {});
    }, every);
    this.partialSweepTimer.unref();
  }

  /** The bound address; throws if the server is not listening. */
  address(): { host: string; port: number } {
    const address = this.listener.address();
    if (address === null || typeof address === 'string') throw new Error('server is not listening');
    return { host: address.address, port: address.port };
  }

  /**
   * Who may log in from now on (a users file read again). Connections already logged in keep
   * their account as it was; a user's bandwidth and quota follow the new entry from its next login.
   */
  replaceAccounts(accounts: Accounts): void {
    if (!(accounts instanceof Accounts)) throw new TypeError('server: accounts must be an Accounts');
    this.accounts = accounts;
  }

  /**
   * The certificate chain and key new TLS connections are served with from now on (a renewed
   * certificate); connections already up keep theirs. Only for a server constructed with `tls`:
   * TLS cannot be turned on or off here. Throws, changing nothing, for a pair that does not load.
   */
  replaceTls(tls: { cert: string | Buffer; key: string | Buffer }): void {
    if (this.secureContext === undefined)
      throw new TypeError('server: replaceTls needs a server started with tls');
    this.secureContext = createSecureContext({ cert: tls.cert, key: tls.key });
  }

  /** The running totals the `stats` operation reports. */
  stats(): ServerStats {
    return readStats(this.counters);
  }

  /** File data held for clients, all connections together (what serverOutboundHighWaterBytes bounds). */
  get outboundHeldBytes(): number {
    return this.outboundBudget.heldBytes;
  }

  /**
   * Control frames held for clients and room reserved for replies, all connections together (what
   * serverControlHighWaterBytes bounds).
   */
  get controlHeldBytes(): number {
    return this.controlBudget.heldBytes;
  }

  /**
   * Sockets accepted and not yet connections: with TLS on, those whose first byte or TLS
   * handshake has yet to come. --max-connections counts them with the connections.
   */
  get handshakingConnections(): number {
    return this.pending.size;
  }

  /** Password checks waiting for their turn (maxConcurrentLoginChecks run at once). */
  get loginChecksWaiting(): number {
    return this.loginQueue.waitingCount;
  }

  /** Each connection's open streams, the bytes held for it, and its uploads' bytes not yet stored. */
  connectionFigures(): ConnectionFigures[] {
    return [...this.connections].map((c) => ({
      label: c.label,
      bufferedAmount: c.bufferedAmount,
      heldControlBytes: c.heldControlBytes,
      openStreams: c.openStreams,
      uploadBacklogBytes: c.uploadBacklogBytes,
    }));
  }

  /**
   * Stops accepting, lets open streams finish for up to `graceMs` (default 0: cut at once), then
   * destroys what is left. Safe to call more than once: later calls settle with the first. A
   * `graceMs` that is no duration rejects with a TypeError. Resolves once the connections are
   * gone, when the uploads cut off may still be removing their temporary files: the storage's
   * close() waits for those.
   */
  async close(graceMs = 0): Promise<void> {
    if (!(graceMs >= 0))
      throw new TypeError(`close(graceMs): milliseconds, 0 or more (Infinity: no limit), not ${graceMs}`);
    clearInterval(this.partialSweepTimer);
    this.partialSweepTimer = undefined;
    this.refusalLog.flush();
    this.closing ??= new Promise<void>((resolve) => {
      this.listener.close();
      for (const socket of this.pending) socket.destroy();
      // Refused sockets left for their ERROR to be read outlived close() by up to their linger
      // (twice it with TLS, waiting for a first byte): the process with them.
      for (const socket of this.lingering) socket.destroy();
      if (this.connections.size === 0) {
        resolve();
        return;
      }
      // Infinity: no deadline; past what a timer takes (~24.8 days), as long as it takes.
      const deadline =
        graceMs > MAX_TIMER_MS
          ? undefined
          : setTimeout(() => {
              const cut = new MuxftpError(
                'SHUTTING_DOWN',
                `the server shut down before its transfers ended (${graceMs / 1000} s of grace)`,
              );
              for (const connection of this.connections) connection.destroy(cut);
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

  /**
   * Serves one connection over `socket`, with the same caps, TLS detection and handshake as
   * every other. The TCP listener calls this; a caller may hand it any other duplex byte stream
   * (tests use an in-memory pair), whose connections all count as one address, 'in-process'.
   */
  accept(socket: Duplex): void {
    // A caller that hands sockets in without listen() has had no hashes loaded for it: the
    // connection starts once they are (its bytes wait in the socket meanwhile).
    if (!blockHashesPrepared()) {
      socket.on('error', ignore);
      prepareBlockHashes().then(
        () => this.accept(socket),
        () => socket.destroy(),
      );
      return;
    }
    if (this.closing !== undefined) {
      this.counters.connectionRefused('shutting_down');
      socket.destroy();
      return;
    }
    socket.on('error', ignore);
    const address = peerAddressGroup(socket);
    const refusal = this.refusalFor(address);
    if (refusal !== undefined) {
      this.counters.connectionRefused(refusal.reason);
      if (this.secureContext === undefined) this.refuse(socket, refusal.error);
      else this.refuseInKind(socket, refusal.error);
      return;
    }
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    socket.once('close', () => {
      const count = (this.perAddress.get(address) ?? 1) - 1;
      if (count > 0) this.perAddress.set(address, count);
      else this.perAddress.delete(address);
    });
    if (this.secureContext === undefined) {
      // A TCP socket (not a test's in-memory pair) reads into the shared buffer from its first read.
      const sharedReads = socket instanceof Socket ? SharedBufferReads.adopt(socket) : undefined;
      this.startConnection(socket, false, performance.now(), sharedReads);
      return;
    }
    this.sniffFirstByte(socket);
  }

  /** Why a new socket from `address` (an address group) is refused, or undefined. */
  private refusalFor(address: string): { error: MuxftpError; reason: RefusalReason } | undefined {
    const { maxConnections, maxConnectionsPerIp } = this.options;
    if (this.connections.size + this.pending.size >= maxConnections) {
      const error = new ServerBusyError(
        'connections',
        `server busy: at most ${maxConnections} ${maxConnections === 1 ? 'connection' : 'connections'}`,
      );
      return { error, reason: 'max_connections' };
    }
    // Descriptors: connections and the room kept for files stay DEFAULTS.fdReserve below what the
    // limit leaves past the process's own, so that this refusal can always still be made (issue #7).
    const fdLimit = this.fileDescriptorLimit;
    if (
      fdLimit !== undefined &&
      connectionOverBudget(this.connections.size + this.pending.size, this.counters.openFiles, {
        limit: fdLimit,
        reserve: DEFAULTS.fdReserve,
        held: this.heldDescriptors,
        maxOpenFiles: this.openFileSlots.max,
      })
    ) {
      return { error: outOfDescriptorsRefusal(), reason: 'max_connections' };
    }
    if (maxConnectionsPerIp > 0 && (this.perAddress.get(address) ?? 0) >= maxConnectionsPerIp) {
      const error = new ServerBusyError(
        'connectionsPerAddress',
        `server busy: at most ${maxConnectionsPerIp} ${maxConnectionsPerIp === 1 ? 'connection' : 'connections'} from one address`,
      );
      return { error, reason: 'max_connections_per_ip' };
    }
    const error = refusalForFailedLogins(this.loginGuard, address);
    if (error !== undefined) return { error, reason: 'login_failures' };
    return undefined;
  }

  /** Sends one plain ERROR frame before reading anything, then closes. */
  private refuse(socket: Duplex, error: MuxftpError): void {
    socket.end(encodeError(0, errorPayload(error)));
    // Reads (and drops) what the peer still sends, so its FIN closes the socket: left paused
    // (sniffFirstByte), a peer refused TLS_REQUIRED that had read its ERROR and gone kept its
    // --max-connections-per-ip slot for the whole linger. One that stays holds it as before.
    socket.resume();
    if (this.lingering.size >= DEFAULTS.maxLingeringRefusals) {
      // Without a bound, a host that opened sockets and never closed them, refused by
      // --max-connections-per-ip, held all 1024 descriptors of a server under `ulimit -n 1024`.
      socket.destroy();
    } else {
      this.lingering.add(socket);
      socket.once('close', () => this.lingering.delete(socket));
      setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
    }
    // Kinds by limit: a flood refused by one limit does not hide the first refusal by another.
    const kind = typeof error.details?.limit === 'string' ? error.details.limit : error.code;
    this.refusalLog.refused(
      kind,
      {
        event: 'connection_refused',
        level: 'warn',
        text: `refused ${describePeer(socket)}: ${error.message}`,
        fields: { ...peerLogFields(socket), code: error.code, reason: error.message },
      },
      error.message,
    );
  }

  /**
   * A refusal on a server that also speaks TLS: a TLS client reads a plain ERROR as a failed
   * handshake (and was told "the server does not seem to speak TLS (drop --tls?)" when it was busy
   * or its address locked out), so one that starts TLS is refused over TLS. Such refusals wait
   * within the lingering ones' bound and time; past it, or with no first byte in time, plain.
   */
  private refuseInKind(socket: Duplex, error: MuxftpError): void {
    if (this.lingering.size >= DEFAULTS.maxLingeringRefusals) {
      this.refuse(socket, error);
      return;
    }
    this.lingering.add(socket);
    const timer = setTimeout(() => {
      // Refused plain: a byte that comes after is read and dropped, not taken for a first one.
      socket.off('data', onFirst);
      this.refuse(socket, error);
    }, REFUSAL_LINGER_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      this.lingering.delete(socket);
    });
    const onFirst = (first: Buffer): void => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(first);
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        this.refuse(socket, error);
        return;
      }
      const tlsSocket = new TLSSocket(socket, { isServer: true, secureContext: this.secureContext! });
      tlsSocket.on('error', () => tlsSocket.destroy());
      setTimeout(() => tlsSocket.destroy(), REFUSAL_LINGER_MS).unref();
      tlsSocket.once('secure', () => this.refuse(tlsSocket, error));
    };
    socket.once('data', onFirst);
  }

  /**
   * Both kinds of client speak first, so the first byte tells them apart: a TLS record starts a
   * TLS handshake, a muxftp frame stays plain (or is refused with --tls-only). The handshake
   * timeout covers the wait for that byte and the TLS handshake.
   */
  private sniffFirstByte(socket: Duplex): void {
    const acceptedAt = performance.now();
    this.pending.add(socket);
    // Set once the first byte starts a TLS handshake: what the timeout then does.
    let handshakeTimedOut: (() => void) | undefined;
    const timer = setTimeout(() => {
      if (handshakeTimedOut !== undefined) handshakeTimedOut();
      else {
        // Refused: a first byte that comes after is read and dropped by the refusal, not taken
        // for the start of a connection (or of a TLS handshake) on a socket already ending.
        socket.off('data', onFirst);
        // Counted as a plain server's connection that sends no HELLO is (errors_total): with TLS
        // on, a socket that sent nothing was in the log alone, in no metric.
        this.counters.error('IDLE_TIMEOUT');
        this.refuse(socket, new ProtocolError('IDLE_TIMEOUT', 'no handshake in time'));
      }
    }, timerDelay(this.options.handshakeTimeoutMs));
    const settle = (): void => {
      clearTimeout(timer);
      this.pending.delete(socket);
    };
    socket.once('close', settle);
    const onFirst = (first: Buffer): void => {
      socket.pause();
      socket.unshift(first);
      if (this.closing !== undefined) {
        socket.destroy();
      } else if (first[0] === TLS_HANDSHAKE_RECORD) {
        handshakeTimedOut = this.startTls(socket, acceptedAt, settle);
      } else if (this.options.tlsOnly) {
        settle();
        this.counters.connectionRefused('tls_required');
        this.refuse(
          socket,
          new ProtocolError('TLS_REQUIRED', 'this server accepts TLS connections only (use --tls)'),
        );
      } else {
        settle();
        this.startConnection(socket, false, acceptedAt);
      }
    };
    socket.once('data', onFirst);
  }

  /** Returns what ends the handshake when the handshake timeout comes first. */
  private startTls(socket: Duplex, acceptedAt: number, settle: () => void): () => void {
    // TLSSocket reads what the sniffing unshifted before it reads the socket again.
    // The same buffering as the plain listener's sockets (Node honours highWaterMark here; its
    // types omit it): with the 16 KiB default only one chunk at a time fits into the TLS socket.
    const buffering = { highWaterMark: this.options.outboundHighWaterBytes } as object;
    const tlsSocket = new TLSSocket(socket, {
      ...buffering,
      isServer: true,
      secureContext: this.secureContext!,
    });
    const onError = (err: Error): void => {
      // A scanner or a plain-text client on the port fails here, a connection each: logged as
      // refusals are, the first, then a count per interval.
      tlsSocket.off('close', onClose);
      this.counters.connectionRefused('tls_handshake');
      this.refusalLog.refused(
        'tls_handshake',
        tlsHandshakeFailed(socket, err.message),
        'TLS handshake failed',
      );
      tlsSocket.destroy();
    };
    tlsSocket.on('error', onError);
    // A client that does not trust our certificate closes the handshake without a word to us:
    // the most common "cannot connect", said in the log as failures are.
    const onClose = (): void => {
      if (this.closing !== undefined) return;
      this.counters.connectionRefused('tls_handshake');
      const why =
        "closed before it completed (a client that does not trust this server's certificate closes so)";
      this.refusalLog.refused('tls_handshake', tlsHandshakeFailed(socket, why), 'TLS handshake failed');
    };
    tlsSocket.once('close', onClose);
    tlsSocket.once('secure', () => {
      tlsSocket.off('close', onClose);
      tlsSocket.off('error', onError);
      settle();
      if (this.closing !== undefined) tlsSocket.destroy();
      else
        this.startConnection(
          tlsSocket,
          true,
          acceptedAt,
          SharedBufferReads.adopt(tlsSocket),
          socket instanceof Socket ? socket : undefined,
        );
    });
    // Ended by us, not closed by the client: a stalled link or a peer holding sockets open.
    return () => {
      // Failed already (onError, onClose told of it): only its close is still to come.
      if (tlsSocket.destroyed) {
        socket.destroy();
        return;
      }
      tlsSocket.off('close', onClose);
      tlsSocket.off('error', onError);
      tlsSocket.on('error', ignore);
      this.counters.connectionRefused('tls_handshake');
      const why = `not completed within the handshake timeout (${this.options.handshakeTimeoutMs / 1000} s)`;
      this.refusalLog.refused('tls_handshake', tlsHandshakeFailed(socket, why), 'TLS handshake failed');
      tlsSocket.destroy();
      socket.destroy();
    };
  }

  private startConnection(
    socket: Duplex,
    secure: boolean,
    acceptedAt: number,
    sharedReads?: SharedBufferReads,
    tcpBelowTls?: Socket,
  ): void {
    const connection = new ServerConnection(socket, this.options, this.counters, this.connectionOnClosed, {
      secure,
      acceptedAt,
      sharedReads,
      tcpBelowTls,
      loginGuard: this.loginGuard,
      loginQueue: this.loginQueue,
      accountResources: this.accountResources,
      uploadBacklogBudget: this.uploadBacklogBudget,
      openFileSlots: this.openFileSlots,
      outboundBudget: this.outboundBudget,
      controlBudget: this.controlBudget,
      framePool: this.framePool,
      // Read at each use: a login after replaceAccounts() (SIGHUP) sees the new users, even on a
      // connection accepted before (a removed user, or a password replaced after a leak, is out).
      accounts: () => this.accounts,
      refusalLog: this.refusalLog,
      resumableUploads: this.resumableUploads,
    });
    this.connections.add(connection);
    this.counters.connectionOpened();
  }

  private readonly connectionOnClosed = (connection: ServerConnection): void => {
    this.connections.delete(connection);
    this.counters.connectionClosed();
    if (this.connections.size === 0) this.allClosed?.();
  };
}

function tlsHandshakeFailed(socket: Duplex, why: string): LogEvent {
  return {
    event: 'tls_handshake_failed',
    level: 'warn',
    text: `${describePeer(socket)} TLS handshake failed: ${why}`,
    fields: { ...peerLogFields(socket), reason: why },
  };
}
