/** Server options: one typed object, defaults from shared/defaults.ts, checked at construction. */
import { DEFAULTS } from '../shared/defaults.js';
import { defaultBufferedBytes } from '../shared/memoryLimit.js';
import { HEADER_BYTES, MIN_FRAME_PAYLOAD_BYTES } from '../shared/protocol/constants.js';
import type { Storage } from '../storage/types.js';
import { Accounts } from './auth/accounts.js';
import { defaultMaxOpenFiles } from './fileDescriptors.js';
import { type LogEventFunction, textLine } from './logEvents.js';
import { droppedLinesText, writeStderrLine } from './stderrLines.js';

/** Where the server writes its log lines (one line per call, no trailing newline). */
export type LogFunction = (line: string) => void;

/** A server's storage, address and limits; every field but `storage` is optional (defaults in shared/defaults.ts). */
export interface ServerOptions {
  /** Where files live. Required. */
  storage: Storage;
  /** Address to bind. Default 127.0.0.1: binding anything else is an explicit choice. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 7421. */
  port?: number;
  /** Connections accepted at once; the next gets SERVER_BUSY. Default 10000. */
  maxConnections?: number;
  /** Streams open at once on one connection; the next gets TOO_MANY_STREAMS. Default 256. */
  maxStreamsPerConnection?: number;
  /** Close a connection with no open stream and no incoming frame for this long (ms). Default 5 min. */
  idleTimeoutMs?: number;
  /**
   * How long an interrupted resumable upload's whole blocks are kept for a resume (ms); 0 keeps
   * nothing. Default 24 h. The server removes expired ones on a timer.
   */
  partialRetentionMs?: number;
  /**
   * Asked of each directory below the root that holds a served-root lock, by the timer that
   * removes expired kept uploads: true when another live server serves it, whose tree is then
   * left alone (its kept uploads expire by its own retention, and its quotas are told). `serve`
   * gives storage/servedRootLock.ts's; default none asked.
   */
  servedByAnother?: (hostDirectory: string) => Promise<boolean>;
  /**
   * A resumable upload that has moved no data for this long (ms; or the idle timeout, if shorter)
   * gives way to a newer upload of the same data, which continues what it wrote: a client's retry
   * after its connection stalled. Default 10 s.
   */
  stalledUploadTakeoverMs?: number;
  /**
   * While a connection holding less than its share of the open-file cap is refused, a connection
   * holding more gives back the file of a transfer idle at least this long (ms): see
   * DEFAULTS.openFileReclaimIdleMs. Default 10 s.
   */
  openFileReclaimIdleMs?: number;
  /**
   * Close a connection that has not finished its handshake (TLS, HELLO, login) this long after it
   * connected (ms); a failed login's answer starts it again. Default 10 s.
   */
  handshakeTimeoutMs?: number;
  /** Upload credit granted per stream at first (bytes), announced in WELCOME. Default 4 MiB. */
  streamWindowBytes?: number;
  /**
   * Upload credit every new `put` starts with, before any WINDOW, for clients that opt in to it
   * in HELLO (bytes; at most `streamWindowBytes`, to which the default shrinks); 0 for none: each upload then waits for its
   * first WINDOW. Default 256 KiB.
   */
  uploadInitialWindowBytes?: number;
  /**
   * Largest an upload's window grows to while the client is starved for credit and the disk keeps
   * up (bytes). Default 32 MiB.
   */
  streamWindowMaxBytes?: number;
  /**
   * What all upload windows of one connection together may grow beyond their initial size (bytes).
   * Default 64 MiB.
   */
  connectionWindowGrowthBytes?: number;
  /** Largest DATA payload the server sends (bytes); also capped by the client's limit. Default 1 MiB. */
  chunkBytes?: number;
  /** Largest frame payload the server accepts (bytes, at least 16 KiB). Default 1 MiB. */
  maxFramePayloadBytes?: number;
  /** Per-connection bytes held for the client before downloads stop reading the disk. Default 4 MiB. */
  outboundHighWaterBytes?: number;
  /** Downloads resume reading the disk once the bytes held fall to this (bytes). Default 1 MiB. */
  outboundLowWaterBytes?: number;
  /**
   * The same, all connections together: past it, a connection holding any file data for its
   * client stops reading the disk (one holding none may still take a small chunk, so none stalls).
   * Default 256 MiB; where the process may use under 2 GiB of memory, an eighth of it.
   */
  serverOutboundHighWaterBytes?: number;
  /**
   * Past `serverOutboundHighWaterBytes`, the largest chunk (bytes, frame header included) a
   * connection holding nothing for its client may still take, so that none stalls; the server
   * then holds at most the budget plus this much per connection. Above 12 (a frame header).
   * Default 64 KiB.
   */
  serverOutboundTrickleBytes?: number;
  /**
   * Frames one connection may hold for its client (queued, or in the socket's buffer until the
   * kernel takes them): a client sending requests or credit far faster than it reads what they
   * produce is closed with FRAME_FLOOD past it. Default 10000.
   */
  maxHeldFramesPerConnection?: number;
  /**
   * Control frames (replies, errors, credit, listings) held for clients by all connections together
   * (bytes, until the kernel takes them): past it, a connection holding any stops reading new
   * requests until they have left or the total is back at three quarters. Default 64 MiB.
   */
  serverControlHighWaterBytes?: number;
  /**
   * Per-connection received upload bytes waiting for the disk before the socket stops being read.
   * Default 8 MiB.
   */
  uploadBacklogHighWaterBytes?: number;
  /**
   * The same, all connections together: past it, each connection holding bytes for the disk, or
   * with an upload open, stops reading until the total is back at half. Default 256 MiB; where the
   * process may use under 2 GiB of memory, an eighth of it.
   */
  serverUploadBacklogHighWaterBytes?: number;
  /**
   * Declared upload sizes one connection may have storage reserve room for at once (bytes).
   * Uploads past it still work; storage just grows them as their data arrives. Default 2 GiB.
   */
  maxReservedBytesPerConnection?: number;
  /**
   * Files open at once for transfers, server-wide; the next get or put gets SERVER_BUSY. Default
   * DEFAULTS.maxOpenFiles, lowered to half of what the descriptor limit leaves after fdReserve
   * and the descriptors the process holds (server/fileDescriptors.ts). One given larger is kept,
   * but a file that would take a descriptor the connections and the reserve need is refused
   * SERVER_BUSY (`fileDescriptors`) all the same.
   */
  maxOpenFiles?: number;
  /**
   * One line per connection and per transfer, with control and bidi characters (from client
   * paths and user names) shown as '?'. Default: stderr. What it throws: see `logEvent`.
   */
  log?: LogFunction;
  /**
   * Each log event with its fields (logEvents.ts: an event name, a level, the text line, the
   * paths and names as the client sent them), for a log of your own format. Given alone, `log`
   * gets nothing; given both, both get every event. `muxftp serve --log-format json` uses it.
   * What `log` or `logEvent` throws is thrown again on a turn of its own: an uncaught exception
   * (the process ends, unless it has an 'uncaughtException' handler), and the server goes on.
   */
  logEvent?: LogEventFunction;
  /**
   * Refused connections: the first of a kind (a limit) is logged, then at most one line per this
   * interval says how many more were refused (ms); 0 logs each. Default 10 s.
   */
  refusalLogIntervalMs?: number;

  /** Who may log in. Default: no login; every connection may do everything in the whole root. */
  accounts?: Accounts;
  /** PEM certificate chain and key: the port then takes TLS connections too (node:tls). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** With `tls`: refuse plain connections (TLS_REQUIRED). Default false. */
  tlsOnly?: boolean;
  /** Connections at once from one address; 0 for no limit. Default 0. */
  maxConnectionsPerIp?: number;
  /** Bytes/s per connection, each direction; 0 for no limit. Default 0. */
  maxRateBytesPerSecond?: number;
  /**
   * Bytes/s per user (all their connections), each direction, unless the users file sets one; 0 for
   * no limit. Default 0.
   */
  maxUserRateBytesPerSecond?: number;
  /**
   * A quota's usage is kept up to date change by change; a reservation walks the home again once
   * the last walk is this old (ms), so that changes made outside muxftp are seen. Default 60 s.
   */
  quotaRecountIntervalMs?: number;
  /** Failed logins one connection may make; the last one closes it. Default 3. */
  maxLoginAttempts?: number;
  /**
   * Delay before answering the first failed login from an address (ms); doubles per recent failure.
   * Default 500.
   */
  loginFailureDelayMs?: number;
  /** The longest that delay grows to (ms). Default 8000. */
  maxLoginFailureDelayMs?: number;
  /**
   * Failures from one address within `loginFailureWindowMs` after which it is refused for
   * `loginBlockMs`. Default 10.
   */
  loginFailuresPerAddress?: number;
  /** How far back an address's failures count towards `loginFailuresPerAddress` (ms). Default 10 min. */
  loginFailureWindowMs?: number;
  /** How long an address past `loginFailuresPerAddress` is refused (ms). Default 5 min. */
  loginBlockMs?: number;
  /**
   * Password checks (scrypt, on libuv's thread pool) run at once, all connections together; the
   * rest wait. Default 2.
   */
  maxConcurrentLoginChecks?: number;
}

/** {@link ServerOptions} with every default filled in. */
export type ResolvedServerOptions = Required<
  Omit<ServerOptions, 'tls' | 'servedByAnother' | 'log' | 'logEvent'>
> &
  Pick<ServerOptions, 'tls' | 'servedByAnother'> & {
    /** Where every log event goes: `logEvent`, and `log` as text lines (logSink). */
    logEvent: LogEventFunction;
    /** A line of text to the same log (event `message`), as `log` took before events had fields. */
    log: LogFunction;
  };

const POSITIVE_INTEGERS = [
  'maxConnections',
  'maxStreamsPerConnection',
  'idleTimeoutMs',
  'handshakeTimeoutMs',
  'streamWindowBytes',
  'streamWindowMaxBytes',
  'connectionWindowGrowthBytes',
  'chunkBytes',
  'maxFramePayloadBytes',
  'outboundHighWaterBytes',
  'outboundLowWaterBytes',
  'serverOutboundHighWaterBytes',
  'serverOutboundTrickleBytes',
  'maxHeldFramesPerConnection',
  'serverControlHighWaterBytes',
  'uploadBacklogHighWaterBytes',
  'serverUploadBacklogHighWaterBytes',
  'maxReservedBytesPerConnection',
  'maxOpenFiles',
  'maxLoginAttempts',
  'loginFailuresPerAddress',
  'maxConcurrentLoginChecks',
  'quotaRecountIntervalMs',
  'stalledUploadTakeoverMs',
  'openFileReclaimIdleMs',
] as const;

/** Limits where 0 means "none". */
const NON_NEGATIVE_INTEGERS = [
  'maxConnectionsPerIp',
  'maxRateBytesPerSecond',
  'maxUserRateBytesPerSecond',
  'loginFailureDelayMs',
  'maxLoginFailureDelayMs',
  'loginFailureWindowMs',
  'loginBlockMs',
  'partialRetentionMs',
  'uploadInitialWindowBytes',
  'refusalLogIntervalMs',
] as const;

/** The default {@link LogFunction}: each line to stderr behind an ISO timestamp. */
export const logToStderr: LogFunction = (line) => {
  writeStderrLine(
    `${new Date().toISOString()} ${line}\n`,
    (count) => `${new Date().toISOString()} ${droppedLinesText(count)}\n`,
  );
};

/**
 * The events' one sink: `logEvent` as they are, `log` as text lines (textLine: control and bidi
 * characters as '?', since lines carry what clients chose); neither given, text to stderr.
 */
function logSink(options: ServerOptions): LogEventFunction {
  const { log, logEvent } = options;
  if (logEvent === undefined) {
    const lines = log ?? logToStderr;
    return thrownApart((event) => lines(textLine(event)));
  }
  if (log === undefined) return thrownApart(logEvent);
  return thrownApart((event) => {
    logEvent(event);
    log(textLine(event));
  });
}

/**
 * What the caller's log function throws is thrown again on a turn of its own (an uncaught
 * exception, as from any listener), never into the work that logged: a put thrown out of half
 * done was never answered, and close() never settled.
 */
function thrownApart(sink: LogEventFunction): LogEventFunction {
  return (event) => {
    try {
      sink(event);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  };
}

export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  if (!options || typeof options.storage !== 'object')
    throw new TypeError('server: options.storage is required');
  const sink = logSink(options);
  const resolved: ResolvedServerOptions = {
    storage: options.storage,
    host: options.host ?? DEFAULTS.host,
    port: options.port ?? DEFAULTS.port,
    maxConnections: options.maxConnections ?? DEFAULTS.maxConnections,
    maxStreamsPerConnection: options.maxStreamsPerConnection ?? DEFAULTS.maxStreamsPerConnection,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    streamWindowBytes: options.streamWindowBytes ?? DEFAULTS.streamWindowBytes,
    streamWindowMaxBytes: options.streamWindowMaxBytes ?? DEFAULTS.streamWindowMaxBytes,
    // The default shrinks with a smaller window; one given larger than the window is refused below.
    uploadInitialWindowBytes:
      options.uploadInitialWindowBytes ??
      Math.min(DEFAULTS.uploadInitialWindowBytes, options.streamWindowBytes ?? DEFAULTS.streamWindowBytes),
    connectionWindowGrowthBytes: options.connectionWindowGrowthBytes ?? DEFAULTS.connectionWindowGrowthBytes,
    chunkBytes: options.chunkBytes ?? DEFAULTS.serverChunkBytes,
    maxFramePayloadBytes: options.maxFramePayloadBytes ?? DEFAULTS.maxFramePayloadBytes,
    outboundHighWaterBytes: options.outboundHighWaterBytes ?? DEFAULTS.outboundHighWaterBytes,
    outboundLowWaterBytes: options.outboundLowWaterBytes ?? DEFAULTS.outboundLowWaterBytes,
    serverOutboundHighWaterBytes: options.serverOutboundHighWaterBytes ?? defaultBufferedBytes() / 2,
    serverOutboundTrickleBytes: options.serverOutboundTrickleBytes ?? DEFAULTS.serverOutboundTrickleBytes,
    maxHeldFramesPerConnection: options.maxHeldFramesPerConnection ?? DEFAULTS.maxHeldFramesPerConnection,
    serverControlHighWaterBytes: options.serverControlHighWaterBytes ?? DEFAULTS.serverControlHighWaterBytes,
    uploadBacklogHighWaterBytes: options.uploadBacklogHighWaterBytes ?? DEFAULTS.uploadBacklogHighWaterBytes,
    serverUploadBacklogHighWaterBytes:
      options.serverUploadBacklogHighWaterBytes ?? defaultBufferedBytes() / 2,
    maxReservedBytesPerConnection:
      options.maxReservedBytesPerConnection ?? DEFAULTS.maxReservedBytesPerConnection,
    maxOpenFiles: options.maxOpenFiles ?? defaultMaxOpenFiles(DEFAULTS.maxOpenFiles, DEFAULTS.fdReserve),
    logEvent: sink,
    log: (line) => sink({ event: 'message', text: line }),
    refusalLogIntervalMs: options.refusalLogIntervalMs ?? DEFAULTS.refusalLogIntervalMs,
    accounts: options.accounts ?? new Accounts(),
    tls: options.tls,
    tlsOnly: options.tlsOnly ?? false,
    maxConnectionsPerIp: options.maxConnectionsPerIp ?? DEFAULTS.maxConnectionsPerIp,
    maxRateBytesPerSecond: options.maxRateBytesPerSecond ?? DEFAULTS.maxRateBytesPerSecond,
    maxUserRateBytesPerSecond: options.maxUserRateBytesPerSecond ?? DEFAULTS.maxUserRateBytesPerSecond,
    quotaRecountIntervalMs: options.quotaRecountIntervalMs ?? DEFAULTS.quotaRecountIntervalMs,
    maxLoginAttempts: options.maxLoginAttempts ?? DEFAULTS.maxLoginAttempts,
    loginFailureDelayMs: options.loginFailureDelayMs ?? DEFAULTS.loginFailureDelayMs,
    maxLoginFailureDelayMs: options.maxLoginFailureDelayMs ?? DEFAULTS.maxLoginFailureDelayMs,
    loginFailuresPerAddress: options.loginFailuresPerAddress ?? DEFAULTS.loginFailuresPerAddress,
    loginFailureWindowMs: options.loginFailureWindowMs ?? DEFAULTS.loginFailureWindowMs,
    loginBlockMs: options.loginBlockMs ?? DEFAULTS.loginBlockMs,
    maxConcurrentLoginChecks: options.maxConcurrentLoginChecks ?? DEFAULTS.maxConcurrentLoginChecks,
    partialRetentionMs: options.partialRetentionMs ?? DEFAULTS.partialRetentionMs,
    ...(options.servedByAnother !== undefined ? { servedByAnother: options.servedByAnother } : {}),
    stalledUploadTakeoverMs: options.stalledUploadTakeoverMs ?? DEFAULTS.stalledUploadTakeoverMs,
    openFileReclaimIdleMs: options.openFileReclaimIdleMs ?? DEFAULTS.openFileReclaimIdleMs,
  };
  for (const key of POSITIVE_INTEGERS) {
    const value = resolved[key];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`server: ${key} must be a positive integer, got ${String(value)}`);
    }
  }
  for (const key of NON_NEGATIVE_INTEGERS) {
    const value = resolved[key];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(
        `server: ${key} must be a non-negative integer (0: no limit), got ${String(value)}`,
      );
    }
  }
  if (!(resolved.accounts instanceof Accounts)) throw new TypeError('server: accounts must be an Accounts');
  if (resolved.tls !== undefined && (resolved.tls.cert === undefined || resolved.tls.key === undefined)) {
    throw new TypeError('server: tls needs both cert and key');
  }
  if (resolved.tlsOnly && resolved.tls === undefined) throw new TypeError('server: tlsOnly needs tls');
  if (!Number.isInteger(resolved.port) || resolved.port < 0 || resolved.port > 65535) {
    throw new TypeError(`server: port must be an integer from 0 to 65535, got ${String(resolved.port)}`);
  }
  if (resolved.maxFramePayloadBytes < MIN_FRAME_PAYLOAD_BYTES) {
    throw new TypeError(`server: maxFramePayloadBytes must be at least ${MIN_FRAME_PAYLOAD_BYTES}`);
  }
  if (resolved.outboundLowWaterBytes > resolved.outboundHighWaterBytes) {
    throw new TypeError('server: outboundLowWaterBytes must not exceed outboundHighWaterBytes');
  }
  if (resolved.serverOutboundTrickleBytes <= HEADER_BYTES)
    throw new TypeError(
      `server: serverOutboundTrickleBytes must exceed a frame header (${HEADER_BYTES} bytes)`,
    );
  if (resolved.streamWindowBytes > 2 ** 31 - 1)
    throw new TypeError('server: streamWindowBytes must be below 2^31');
  if (resolved.uploadInitialWindowBytes > resolved.streamWindowBytes)
    throw new TypeError('server: uploadInitialWindowBytes must not exceed streamWindowBytes');
  return resolved;
}
