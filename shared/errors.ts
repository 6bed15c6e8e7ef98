/**
 * One error hierarchy for server, client and storage (after undici's lib/core/errors.js).
 * Every error carries a stable string `code` and the numeric wire `status` it maps to; the
 * table below is the only place a code gets its status, and docs/PROTOCOL.md lists the same.
 */

/** Each error code's numeric wire status: 1xx fatal to the connection, 2xx one request, 3xx server conditions, 4xx client-local. */
export const ERROR_STATUS = {
  // 1xx: connection-level protocol errors; the connection is closed after the ERROR frame.
  PROTOCOL_ERROR: 100,
  FRAME_TOO_LARGE: 101,
  UNKNOWN_FRAME_TYPE: 102,
  UNKNOWN_STREAM: 103,
  STREAM_CLOSED: 104,
  FLOW_CONTROL_ERROR: 105,
  VERSION_MISMATCH: 106,
  IDLE_TIMEOUT: 107,
  LOGIN_FAILED: 108,
  TLS_REQUIRED: 109,
  FRAME_FLOOD: 110,
  // 2xx: request errors; only that stream fails.
  BAD_REQUEST: 200,
  UNSUPPORTED: 201,
  INVALID_PATH: 202,
  NOT_FOUND: 203,
  ALREADY_EXISTS: 204,
  NOT_A_DIRECTORY: 205,
  IS_A_DIRECTORY: 206,
  DIRECTORY_NOT_EMPTY: 207,
  PERMISSION_DENIED: 208,
  INTEGRITY_ERROR: 209,
  CANCELLED: 210,
  TOO_MANY_STREAMS: 211,
  RESOURCE_BUSY: 212,
  STREAM_TIMEOUT: 214,
  QUOTA_EXCEEDED: 213,
  // 3xx: server conditions.
  NO_SPACE: 300,
  IO_ERROR: 301,
  SERVER_BUSY: 302,
  SHUTTING_DOWN: 303,
  INTERNAL_ERROR: 304,
  TEMPORARILY_REFUSED: 305,
  // 4xx: local to the client; never sent on the wire.
  CONNECTION_LOST: 400,
  CONNECT_FAILED: 401,
  LOCAL_IO_ERROR: 402,
} as const;

/** Every error code muxftp uses, on the wire and locally; docs/PROTOCOL.md describes each. */
export type ErrorCode = keyof typeof ERROR_STATUS;

const CODE_BY_STATUS = new Map<number, ErrorCode>(
  (Object.entries(ERROR_STATUS) as [ErrorCode, number][]).map(([code, status]) => [status, code]),
);

/** Whether `value` is one of the known {@link ErrorCode}s. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}

export function codeForStatus(status: number): ErrorCode | undefined {
  return CODE_BY_STATUS.get(status);
}

/**
 * Which of the server's limits refused with SERVER_BUSY, as its ERROR's `details.limit` names it
 * (docs/PROTOCOL.md, Errors): `connections` (its connection cap), `connectionsPerAddress`,
 * `fileDescriptors` (near the descriptor limit), `openFiles` (at its cap on open files),
 * `openFileShare` (this connection holds its share of them while another waits for one),
 * `uploadBacklog` (a put on the initial upload window while uploads wait for the disk),
 * `storage` (a connection whose reading the server held for its own storage work, streams over
 * or upload bytes, for its idle timeout: closed).
 */
export type BusyLimit =
  | 'connections'
  | 'connectionsPerAddress'
  | 'fileDescriptors'
  | 'openFiles'
  | 'openFileShare'
  | 'uploadBacklog'
  | 'storage';

/**
 * Facts an ERROR may carry beside its code and message, for programs (`details` on the wire,
 * docs/PROTOCOL.md, Errors). Hints: a receiver ignores what it does not know.
 */
export interface ErrorDetails {
  /** SERVER_BUSY: the limit that refused ({@link BusyLimit}; a newer server's other names come as sent). */
  limit?: string;
  /** SERVER_BUSY on a stream: how long (ms) until trying again may succeed. */
  retryAfterMs?: number;
  /**
   * DIRECTORY_NOT_EMPTY: what keeps a directory that lists as empty, a listing not showing it:
   * `upload` (one in progress into it).
   */
  keptBy?: string;
}

/** Errors a connection ended with, whatever their code (MuxftpError.fatal); not their own field, so an error prints as before. */
const connectionEnders = new WeakSet<MuxftpError>();

/** Base of every muxftp error. */
export class MuxftpError extends Error {
  /** The stable error code, e.g. `NOT_FOUND`. */
  readonly code: ErrorCode;
  /** The code's numeric wire status (see {@link ERROR_STATUS}). */
  readonly status: number;
  /** What the error says beyond its code, when anything (sent on the wire with it). */
  readonly details: ErrorDetails | undefined;

  /** `options.cause` becomes the error's `cause`; `options.details` its {@link MuxftpError.details}. */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: ErrorDetails }) {
    super(message, options !== undefined && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'MuxftpError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options?.details;
  }

  /**
   * True when the connection this error came from cannot go on: reconnect (a new Client) to carry
   * on. Always for the 1xx codes, CONNECTION_LOST and CONNECT_FAILED; for any other code when the
   * connection ended with it (SHUTTING_DOWN to the whole connection, a call cut off by `close()`'s
   * grace or by `destroy()`). False for an error that failed one call, the connection going on (a
   * SHUTTING_DOWN refusing one new call while the server lets the calls in flight finish).
   */
  get fatal(): boolean {
    return (
      this.status < 200 ||
      this.code === 'CONNECTION_LOST' ||
      this.code === 'CONNECT_FAILED' ||
      connectionEnders.has(this)
    );
  }
}

/** Marks `error` as the one its connection ended with: it is then {@link MuxftpError.fatal}. Returns it. */
export function endedConnectionWith<E extends MuxftpError>(error: E): E {
  connectionEnders.add(error);
  return error;
}

/** A violation of the wire protocol: fatal to the connection it happened on. */
export class ProtocolError extends MuxftpError {
  constructor(code: ErrorCode = 'PROTOCOL_ERROR', message = 'protocol error') {
    super(code, message);
    this.name = 'ProtocolError';
  }
}

/** SERVER_BUSY, naming the limit that refused and, for a stream, when trying again may succeed. */
export class ServerBusyError extends MuxftpError {
  /** `limit` and `retryAfterMs` (ms, for a stream) go into {@link MuxftpError.details}. */
  constructor(limit: BusyLimit, message: string, retryAfterMs?: number) {
    super('SERVER_BUSY', message, {
      details: retryAfterMs === undefined ? { limit } : { limit, retryAfterMs },
    });
    this.name = 'ServerBusyError';
  }
}

/**
 * A SERVER_BUSY refusing a put sent on the initial upload window because the server's upload bytes
 * wait for the disk (`uploadBacklog`): the same put declining the window would be admitted. One
 * naming no limit counts too: a server from before `details` names none, and the client then
 * behaves as it did with such servers.
 */
export function refusedForUploadBacklog(error: unknown): boolean {
  if (!(error instanceof MuxftpError) || error.code !== 'SERVER_BUSY') return false;
  const limit = error.details?.limit;
  return limit === undefined || limit === ('uploadBacklog' satisfies BusyLimit);
}

/**
 * A connect the client's own settings would let through, made by the client (never sent):
 * `setting` names which, so a program can say what to change in its own terms (the CLI names its
 * flags; a library caller has none). `user`: the server requires a login; `password`: it
 * requires one, and no password was given for the user; `tls`: it takes passwords over TLS only; `ca`: its TLS certificate is not trusted (a CA would help);
 * `otherCa`: it is not signed by the CA given; `plain`: the server does not speak TLS.
 */
export class SettingError extends MuxftpError {
  /** The setting that would let the connect through (see the class comment for each). */
  readonly setting: 'user' | 'password' | 'tls' | 'ca' | 'otherCa' | 'plain';

  constructor(
    code: ErrorCode,
    message: string,
    setting: SettingError['setting'],
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'SettingError';
    this.setting = setting;
  }
}

/** A failure of a storage operation (missing file, bad path, full disk, ...). */
export class StorageError extends MuxftpError {
  /** The path the failure concerns, relative to the storage root ('' is the root); undefined when none. */
  readonly path: string | undefined;

  /** `path`: the storage path the failure concerns, as {@link StorageError.path}. */
  constructor(
    code: ErrorCode,
    message: string,
    path?: string,
    options?: { cause?: unknown; details?: ErrorDetails },
  ) {
    super(code, message, options);
    this.name = 'StorageError';
    this.path = path;
  }
}

/** An error the server reported on the wire, raised on the client with the server's code (and details). */
export class RemoteError extends MuxftpError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details === undefined ? undefined : { details });
    this.name = 'RemoteError';
  }
}

/** The connection to the peer closed or failed before the operation finished. */
export class ConnectionLostError extends MuxftpError {
  constructor(message = 'connection lost', options?: { cause?: unknown }) {
    super('CONNECTION_LOST', message, options);
    this.name = 'ConnectionLostError';
  }
}
