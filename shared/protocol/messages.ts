/**
 * JSON payloads of control frames: their types, and the checks a receiver runs on them.
 * A malformed handshake or ERROR payload is a connection-level PROTOCOL_ERROR. OPEN payloads are
 * checked by their row of the operation table (operations.ts).
 */
import { isUtf8 } from 'node:buffer';
import {
  codeForStatus,
  type ErrorCode,
  type ErrorDetails,
  isErrorCode,
  type MuxftpError,
  ProtocolError,
} from '../errors.js';
import { isPermissionBits, PERMISSION_BITS_WANTED } from '../fileModes.js';
import {
  algorithmForWireId,
  DIGEST_BYTES,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
  isIntegrityAlgorithm,
} from '../integrity/algorithms.js';
import {
  END_PAYLOAD_BYTES,
  MAX_CREDIT,
  MAX_ERROR_MESSAGE_CHARS,
  MIN_FRAME_PAYLOAD_BYTES,
  PROTOCOL_NAME,
  SUPPORTED_VERSIONS,
} from './constants.js';
import type { Frame } from './frame.js';

export interface Hello {
  protocol: string;
  versions: number[];
  maxFramePayload: number;
  agent?: string;
  /** Integrity algorithms the client accepts, in its order of preference (version 2). */
  integrity?: string[];
  /**
   * The client may send DATA on a new `put` before any WINDOW, up to the initial window WELCOME
   * announces. An explicit opt-in: a client that does not say so is never counted on to send
   * without a WINDOW, and gets none announced.
   */
  uploadInitialWindow?: boolean;
  /**
   * The client gives up on a server silent for about four times this (ms): a server that holds
   * back reading the connection (its upload bytes wait for the disk), and so cannot read the
   * client's PING, sends it a PING this often instead (the reference server: at least 1 s apart).
   */
  keepaliveMs?: number;
}

/** The integrity the server chose: the algorithm and the block size digests are taken over. */
export interface WelcomeIntegrity {
  /** The algorithm of the connection's content digests: the first of the client's list the server has. */
  algorithm: IntegrityAlgorithm;
  /** Bytes per block digest d_i: 4194304 (4 MiB), the only size; a client refuses any other. */
  blockBytes: number;
}

/** The limits a server announces in WELCOME (see docs/PROTOCOL.md). */
export interface ServerLimits {
  /** Largest frame payload the server accepts (bytes, at least 16 KiB): the client sends none larger. */
  maxFramePayload: number;
  /** Streams a connection may have open at once; an OPEN past it fails TOO_MANY_STREAMS. */
  maxStreams: number;
  /** Longest path a request may name, in UTF-8 bytes (4096 on the reference server). */
  maxPathBytes: number;
  /** Credit the server grants each upload stream at first (bytes); a stream's window may grow past it. */
  streamWindow: number;
  /**
   * To a client that opted in (HELLO `uploadInitialWindow`): the credit every new `put` without
   * an `offset` starts with, in bytes, as if a WINDOW of that much had come; absent or 0: none.
   */
  uploadInitialWindow?: number;
}

/**
 * What the server asks of a client before it may open streams. Absent or `required: false`: the
 * connection is ready after WELCOME (a server without accounts).
 */
export interface LoginRequirement {
  /** The client must log in with AUTH before it opens a stream. */
  required: boolean;
  /** AUTH as `anonymous` without a password is accepted. */
  anonymous: boolean;
  /** This connection is plain and the server takes passwords only over TLS: do not send one. */
  passwordNeedsTls: boolean;
}

/** The server's answer to HELLO: the protocol version agreed and the server's limits. */
export interface Welcome {
  /** The protocol version the server chose from the client's list (2, the only one spoken). */
  version: number;
  /** The server's software and version, for logs (the reference server: `muxftp/<version>`). */
  agent?: string;
  /** The limits the server holds this connection to. */
  limits: ServerLimits;
  /**
   * To a client that opted in (HELLO `uploadInitialWindow`): a `put` may decline the initial
   * window with `"initialWindow": false` (it then starts with no credit, and a server past its
   * upload backlog's ceiling admits it instead of refusing it). A server that does not say so
   * ignores the field and counts the window as granted, so a client sends it only when told.
   */
  uploadInitialWindowOptional?: boolean;
  /** The server answers PING (a client may then send it to tell a silent server from a slow one). */
  ping?: boolean;
  /**
   * The server's listings mark symbolic links (`"link": true`): a client removing a tree walks
   * into no link only with a server that says so (one from before it lists a link to a directory
   * as a plain directory).
   */
  links?: boolean;
  /**
   * The server honours `rename`'s `noReplace` (one from before it ignores the field and replaces
   * the file): a client asks it only of a server that says so.
   */
  renameNoReplace?: boolean;
  /**
   * The server honours `partial`'s `drop` (one from before it ignores the field and reads and
   * hashes the kept data to answer): a client asks it only of a server that says so.
   */
  partialDrop?: boolean;
  /**
   * The bits the server takes from what uploads, new directories and chmod get (0 to 0o777),
   * where it knows them: a client keeping permissions tells from it whether a remote copy has
   * the bits an upload would have given it.
   */
  umask?: number;
  /** Whether the client must log in first; absent: it need not (a server without accounts). */
  login?: LoginRequirement;
  /** The integrity algorithm and block size the server chose for this connection. */
  integrity: WelcomeIntegrity;
}

/** The account a server with `--anonymous` lets in without a password; no users-file entry may take it. */
export const ANONYMOUS_USER = 'anonymous';

/** AUTH from the client: a user and password, or `anonymous` without one. */
export interface AuthRequest {
  user: string;
  password?: string;
}

/** AUTH from the server: the outcome of one attempt. */
export type AuthResult =
  | { ok: true; user: string; permissions: string[] }
  | { ok: false; message: string; attemptsLeft: number };

export interface ErrorPayload {
  status: number;
  code: string;
  message: string;
  /** Optional facts for programs (SERVER_BUSY: `limit`, `retryAfterMs`); absent when none. */
  details?: ErrorDetails;
}

/** A directory entry as the server reports it (`list`, `stat`). */
export interface WireEntry {
  /** The last name of its path ('' for the root). */
  name: string;
  /**
   * `other`: anything but a file or directory (a socket, a device), a symbolic link out of the
   * root or dangling, or a name that is not UTF-8.
   */
  type: 'file' | 'dir' | 'other';
  /** Bytes for a file; 0 for anything else. */
  size: number;
  /** Milliseconds since the epoch. */
  mtime: number;
  /** Permission bits (0 to 0o777), where the server has them (not for a link shown as `other`). */
  mode?: number;
  /** In a listing: the entry is a symbolic link (shown as what it leads to, or as `other`). */
  link?: true;
  /** In a listing: the name on the server is not UTF-8 (shown with U+FFFD); no path names it. */
  notUtf8?: true;
}

export type Request =
  | { op: 'list'; path: string; maxEntries?: number }
  | { op: 'stat'; path: string }
  | {
      op: 'mkdir';
      path: string;
      parents?: boolean;
      /** The new directory's permission bits (0 to 0o777, less the server's umask): a tree's, kept. */
      mode?: number;
    }
  | { op: 'rmdir'; path: string }
  | { op: 'delete'; path: string }
  /** `noReplace`: a file at `to` is kept, and the rename fails ALREADY_EXISTS (mv --no-clobber). */
  | { op: 'rename'; from: string; to: string; noReplace?: boolean }
  /** `ifUnchanged`: the file as the client saw it; when it is not that any more, nothing is set. */
  | { op: 'utime'; path: string; mtime: number; ifUnchanged?: { size: number; mtime: number } }
  /** `ifUnchanged`: as for utime. */
  | { op: 'chmod'; path: string; mode: number; ifUnchanged?: { size: number; mtime: number } }
  | { op: 'get'; path: string; offset?: number }
  | {
      op: 'put';
      path: string;
      size?: number;
      digest?: string;
      source?: string;
      offset?: number;
      /** false: this put brings nothing before the server's first WINDOW (no initial window). */
      initialWindow?: false;
      /** The modification time the file gets (ms since the epoch): the source's, to keep it. */
      mtime?: number;
      /** The permission bits the file gets (0 to 0o777, less the server's umask): the source's. */
      mode?: number;
    }
  | {
      op: 'partial';
      path: string;
      size: number;
      algorithm: IntegrityAlgorithm;
      digest?: string;
      source?: string;
      /** Drop what is kept under this key (the upload is no longer wanted) instead of offering it. */
      drop?: true;
    }
  | { op: 'digest'; path: string; algorithm: IntegrityAlgorithm }
  | { op: 'stats' }
  | { op: 'space' };

export type Operation = Request['op'];

/** Room left for a connection's uploads, as the `space` operation reports it (each part when known). */
export interface SpaceReport {
  /**
   * The filesystem holding the served tree: its size, what an unprivileged writer may still use,
   * and what interrupted uploads' kept blocks hold in the tree (hidden from listings).
   */
  disk?: { totalBytes: number; freeBytes: number; keptBytes?: number };
  /** The account's quota: its limit, the bytes its home holds, and those uploads in flight reserve. */
  quota?: { limitBytes: number; usedBytes: number; reservedBytes: number };
}

/**
 * A server's running totals, as the `stats` operation reports them: one server (one MuxServer),
 * all its connections and accounts together; it needs no permission. Totals count from the
 * MuxServer's construction.
 */
export interface ServerStats {
  /**
   * Connections open now, logged in or not: each counts from its first byte (over TLS, once its
   * TLS handshake is done).
   */
  connections: number;
  /** Streams open now, all connections together (a `stats` request counts its own). */
  streams: number;
  /** The server process's resident memory now (bytes): the whole process, whatever else it runs. */
  rssBytes: number;
  /** The most RSS the server process has had since it started (bytes). */
  maxRssBytes: number;
  /** Milliseconds since the MuxServer was constructed (not since listen()). */
  uptimeMs: number;
  /**
   * Bytes received by completed uploads since then; a failed or cancelled one adds nothing, a
   * resumed one only what it sent from its offset.
   */
  bytesIn: number;
  /** Bytes sent by completed downloads since then (a resumed one: from its offset). */
  bytesOut: number;
  /** Uploads completed (committed) since then. */
  filesIn: number;
  /** Downloads completed (their END sent) since then. */
  filesOut: number;
}

export interface EndPayload {
  size: number;
  algorithm: IntegrityAlgorithm;
  /** The content digest D (docs/PROTOCOL.md, Integrity). */
  digest: Buffer;
}

/** Parses a JSON frame payload into a plain object, or throws ProtocolError. */
export function parseJsonObject(frame: Frame, what: string): Record<string, unknown> {
  // Decoding would turn bytes that are not UTF-8 into U+FFFD: another name than the one sent.
  if (!isUtf8(frame.payload))
    throw new ProtocolError('PROTOCOL_ERROR', `${what}: payload is not valid UTF-8`);
  let value: unknown;
  try {
    value = JSON.parse(frame.payload.toString('utf8'));
  } catch {
    throw new ProtocolError('PROTOCOL_ERROR', `${what}: payload is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('PROTOCOL_ERROR', `${what}: payload must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A JSON number that counts something (a size, an offset, a limit): a non-negative safe integer. */
export const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function parseHello(frame: Frame): Hello {
  const o = parseJsonObject(frame, 'HELLO');
  if (o.protocol !== PROTOCOL_NAME) {
    throw new ProtocolError('PROTOCOL_ERROR', `HELLO: protocol must be "${PROTOCOL_NAME}"`);
  }
  if (!Array.isArray(o.versions) || !o.versions.every((v) => Number.isInteger(v))) {
    throw new ProtocolError('PROTOCOL_ERROR', 'HELLO: versions must be an array of integers');
  }
  if (!isCount(o.maxFramePayload)) {
    throw new ProtocolError(
      'PROTOCOL_ERROR',
      'HELLO: maxFramePayload must be a non-negative safe integer (at most 2^53 - 1)',
    );
  }
  // Optional here so a version-1 HELLO, which has no list, is answered VERSION_MISMATCH.
  if (
    o.integrity !== undefined &&
    (!Array.isArray(o.integrity) || !o.integrity.every((a) => typeof a === 'string'))
  ) {
    throw new ProtocolError('PROTOCOL_ERROR', 'HELLO: integrity must be an array of algorithm names');
  }
  if (o.uploadInitialWindow !== undefined && typeof o.uploadInitialWindow !== 'boolean') {
    throw new ProtocolError('PROTOCOL_ERROR', 'HELLO: uploadInitialWindow must be a boolean');
  }
  if (o.keepaliveMs !== undefined && !(isCount(o.keepaliveMs) && o.keepaliveMs > 0)) {
    throw new ProtocolError('PROTOCOL_ERROR', 'HELLO: keepaliveMs must be a positive integer');
  }
  return {
    protocol: o.protocol,
    versions: o.versions as number[],
    maxFramePayload: o.maxFramePayload,
    ...(typeof o.agent === 'string' ? { agent: o.agent } : {}),
    ...(o.integrity !== undefined ? { integrity: o.integrity as string[] } : {}),
    ...(o.uploadInitialWindow === true ? { uploadInitialWindow: true } : {}),
    ...(o.keepaliveMs !== undefined ? { keepaliveMs: o.keepaliveMs } : {}),
  };
}

export function parseWelcome(frame: Frame): Welcome {
  const o = parseJsonObject(frame, 'WELCOME');
  const limits = o.limits as Record<string, unknown> | undefined;
  if (!Number.isInteger(o.version) || typeof limits !== 'object' || limits === null) {
    throw new ProtocolError('PROTOCOL_ERROR', 'WELCOME: version and limits are required');
  }
  for (const key of ['maxFramePayload', 'maxStreams', 'maxPathBytes', 'streamWindow'] as const) {
    if (!isCount(limits[key])) throw new ProtocolError('PROTOCOL_ERROR', `WELCOME: limits.${key} is invalid`);
  }
  if (!SUPPORTED_VERSIONS.includes(o.version as number)) {
    throw new ProtocolError(
      'VERSION_MISMATCH',
      `WELCOME: server chose version ${String(o.version)}, not offered`,
    );
  }
  const initialWindow = limits.uploadInitialWindow;
  if (initialWindow !== undefined && !(isCount(initialWindow) && initialWindow <= MAX_CREDIT)) {
    throw new ProtocolError('PROTOCOL_ERROR', 'WELCOME: limits.uploadInitialWindow is invalid');
  }
  if (o.uploadInitialWindowOptional !== undefined && typeof o.uploadInitialWindowOptional !== 'boolean') {
    throw new ProtocolError('PROTOCOL_ERROR', 'WELCOME: uploadInitialWindowOptional must be a boolean');
  }
  if (o.ping !== undefined && typeof o.ping !== 'boolean') {
    throw new ProtocolError('PROTOCOL_ERROR', 'WELCOME: ping must be a boolean');
  }
  if (o.umask !== undefined && !isPermissionBits(o.umask)) {
    throw new ProtocolError('PROTOCOL_ERROR', `WELCOME: umask must be ${PERMISSION_BITS_WANTED}`);
  }
  if ((limits.maxStreams as number) < 1 || (limits.streamWindow as number) < 1) {
    throw new ProtocolError('PROTOCOL_ERROR', 'WELCOME: maxStreams and streamWindow must be at least 1');
  }
  // Well-formed, on terms this client cannot take (as a version it did not offer): VERSION_MISMATCH.
  if ((limits.maxFramePayload as number) < MIN_FRAME_PAYLOAD_BYTES) {
    throw new ProtocolError(
      'VERSION_MISMATCH',
      `WELCOME: maxFramePayload must be at least ${MIN_FRAME_PAYLOAD_BYTES}`,
    );
  }
  let login: LoginRequirement | undefined;
  if (o.login !== undefined) {
    const l = o.login as Record<string, unknown> | null;
    if (
      typeof l !== 'object' ||
      l === null ||
      typeof l.required !== 'boolean' ||
      typeof l.anonymous !== 'boolean' ||
      typeof l.passwordNeedsTls !== 'boolean'
    ) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        'WELCOME: login must have booleans required, anonymous, passwordNeedsTls',
      );
    }
    login = { required: l.required, anonymous: l.anonymous, passwordNeedsTls: l.passwordNeedsTls };
  }
  const integrity = o.integrity as Record<string, unknown> | undefined;
  if (typeof integrity !== 'object' || integrity === null || !isIntegrityAlgorithm(integrity.algorithm)) {
    throw new ProtocolError(
      // A name all the same: one this client does not know, so did not offer.
      typeof integrity?.algorithm === 'string' ? 'VERSION_MISMATCH' : 'PROTOCOL_ERROR',
      'WELCOME: integrity.algorithm must name an algorithm this client knows',
    );
  }
  if (integrity.blockBytes !== INTEGRITY_BLOCK_BYTES) {
    throw new ProtocolError(
      isCount(integrity.blockBytes) ? 'VERSION_MISMATCH' : 'PROTOCOL_ERROR',
      `WELCOME: integrity.blockBytes must be ${INTEGRITY_BLOCK_BYTES}, got ${String(integrity.blockBytes)}`,
    );
  }
  return {
    version: o.version as number,
    ...(typeof o.agent === 'string' ? { agent: o.agent } : {}),
    limits: limits as unknown as ServerLimits,
    ...(o.uploadInitialWindowOptional === true ? { uploadInitialWindowOptional: true } : {}),
    ...(o.ping === true ? { ping: true } : {}),
    ...(o.links === true ? { links: true } : {}),
    ...(o.renameNoReplace === true ? { renameNoReplace: true } : {}),
    ...(o.partialDrop === true ? { partialDrop: true } : {}),
    ...(o.umask !== undefined ? { umask: o.umask as number } : {}),
    ...(login !== undefined ? { login } : {}),
    integrity: { algorithm: integrity.algorithm, blockBytes: INTEGRITY_BLOCK_BYTES },
  };
}

/** AUTH from a client; a malformed one is a PROTOCOL_ERROR (the handshake cannot go on). */
export function parseAuthRequest(frame: Frame): AuthRequest {
  const o = parseJsonObject(frame, 'AUTH');
  if (typeof o.user !== 'string' || o.user.length === 0 || o.user.length > 256) {
    throw new ProtocolError('PROTOCOL_ERROR', 'AUTH: "user" must be a string of 1 to 256 characters');
  }
  if (o.password !== undefined && typeof o.password !== 'string') {
    throw new ProtocolError('PROTOCOL_ERROR', 'AUTH: "password" must be a string');
  }
  return o.password === undefined ? { user: o.user } : { user: o.user, password: o.password };
}

/** AUTH from a server. */
export function parseAuthResult(frame: Frame): AuthResult {
  const o = parseJsonObject(frame, 'AUTH');
  if (o.ok === true && typeof o.user === 'string' && Array.isArray(o.permissions)) {
    return { ok: true, user: o.user, permissions: o.permissions.filter((p) => typeof p === 'string') };
  }
  if (o.ok === false && typeof o.message === 'string' && isCount(o.attemptsLeft)) {
    // Cut as an ERROR's is (boundedMessage): the CLI shows it, and a hostile server's went whole.
    return { ok: false, message: boundedMessage(o.message), attemptsLeft: o.attemptsLeft };
  }
  throw new ProtocolError('PROTOCOL_ERROR', 'AUTH: malformed result');
}

/**
 * Turns an ERROR payload into an error with a known code (unknown statuses fall back by range).
 * `details` are hints: a field of another type than documented is left out, not an error.
 */
export function parseErrorPayload(frame: Frame): {
  code: ErrorCode;
  message: string;
  details?: ErrorDetails;
} {
  const o = parseJsonObject(frame, 'ERROR');
  const status = typeof o.status === 'number' ? o.status : 100;
  // Cut as a sender must cut it (errorPayload): a peer's longer one went whole into the server's
  // log (`client error …`, a 32 KiB line per connection) and the CLI's messages.
  const message = typeof o.message === 'string' ? boundedMessage(o.message) : 'unspecified error';
  let code: ErrorCode | undefined = isErrorCode(o.code) ? o.code : codeForStatus(status);
  // By range (PROTOCOL.md, Errors): 1xx fatal, anything else, below 100 too, a failure of that stream.
  if (code === undefined) code = status >= 100 && status < 200 ? 'PROTOCOL_ERROR' : 'INTERNAL_ERROR';
  const details = parseErrorDetails(o.details);
  return details === undefined ? { code, message } : { code, message, details };
}

/** The documented fields of an ERROR's `details` that have their documented types; undefined for none. */
function parseErrorDetails(value: unknown): ErrorDetails | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const details: ErrorDetails = {};
  if (typeof o.limit === 'string' && o.limit.length > 0 && o.limit.length <= MAX_LIMIT_NAME_LENGTH)
    details.limit = o.limit;
  if (typeof o.retryAfterMs === 'number' && Number.isFinite(o.retryAfterMs) && o.retryAfterMs >= 0)
    details.retryAfterMs = o.retryAfterMs;
  if (typeof o.keptBy === 'string' && o.keptBy.length > 0 && o.keptBy.length <= MAX_LIMIT_NAME_LENGTH)
    details.keptBy = o.keptBy;
  return Object.keys(details).length === 0 ? undefined : details;
}

/** A limit's name is a short identifier; anything longer is not one (and is not kept). */
const MAX_LIMIT_NAME_LENGTH = 64;

/** An ERROR's message at most MAX_ERROR_MESSAGE_CHARS long: a longer one cut, ending with `…`. */
function boundedMessage(message: string): string {
  return message.length > MAX_ERROR_MESSAGE_CHARS
    ? `${message.slice(0, MAX_ERROR_MESSAGE_CHARS - 1).replace(/[\uD800-\uDBFF]$/, '')}…`
    : message;
}

export function errorPayload(err: MuxftpError): ErrorPayload {
  const payload: ErrorPayload = { status: err.status, code: err.code, message: boundedMessage(err.message) };
  if (err.details !== undefined) payload.details = err.details;
  return payload;
}

export function parseWindow(frame: Frame): number {
  const increment = frame.payload.readUInt32BE(0);
  if (increment === 0) throw new ProtocolError('PROTOCOL_ERROR', 'WINDOW increment must be at least 1');
  return increment;
}

export function parseEnd(frame: Frame): EndPayload {
  if (frame.payload.length !== END_PAYLOAD_BYTES)
    throw new ProtocolError('PROTOCOL_ERROR', 'END: bad length');
  const size = frame.payload.readBigUInt64BE(0);
  if (size > BigInt(Number.MAX_SAFE_INTEGER))
    throw new ProtocolError('PROTOCOL_ERROR', 'END: size too large');
  const algorithm = algorithmForWireId(frame.payload[8]!);
  if (algorithm === undefined)
    throw new ProtocolError('PROTOCOL_ERROR', `END: unknown algorithm ${frame.payload[8]}`);
  const digestEnd = 9 + DIGEST_BYTES[algorithm];
  if (frame.payload.subarray(digestEnd).some((byte) => byte !== 0)) {
    throw new ProtocolError('PROTOCOL_ERROR', `END: bytes after the ${algorithm} digest must be zero`);
  }
  return { size: Number(size), algorithm, digest: Buffer.from(frame.payload.subarray(9, digestEnd)) };
}
