/**
 * The operation table (after pyftpdlib's `proto_cmds`): one row per op with its OPEN validator,
 * the kind of stream that runs it, the permission it needs, and its REPLY validator. The server's
 * gate reads the row before any handler runs and the client checks every REPLY against it; an op
 * in `Request` without a row here does not compile.
 */
import { DEFAULTS } from '../defaults.js';
import { MuxftpError, ProtocolError } from '../errors.js';
import { isPermissionBits, PERMISSION_BITS_WANTED } from '../fileModes.js';
import {
  DIGEST_BYTES,
  INTEGRITY_ALGORITHMS,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
  isIntegrityAlgorithm,
} from '../integrity/algorithms.js';
import type { Frame } from './frame.js';
import {
  isCount,
  type Operation,
  parseJsonObject,
  type Request,
  type ServerStats,
  type SpaceReport,
  type WireEntry,
} from './messages.js';

/** What a user may be allowed to do (pyftpdlib's elradfmw, coarser); issue 9 (users) enforces it. */
export type Permission = 'list' | 'read' | 'write' | 'delete' | 'rename' | 'mkdir';

/** The stream that runs an op: one REPLY, a download (DATA from the server), an upload (DATA to it). */
export type StreamKind = 'request' | 'download' | 'upload';

/** What a `get` REPLY says before the DATA. */
export interface GetReply {
  size: number;
  mtime: number;
  /** The file's permission bits, from a server that sends them. */
  mode?: number;
  /** A resumed download (get -c): the offset the server starts at. */
  offset?: number;
  /** A resumed download: the hex digests of the blocks before `offset`. */
  blocks?: string[];
}

/** What a `put` REPLY says once the upload is committed, and a `digest` REPLY about a file. */
export interface PutReply {
  entry: WireEntry;
  algorithm: IntegrityAlgorithm;
  /** The content digest under `algorithm`, hex. */
  digest: string;
}

export interface OperationSpec<R extends Request = Request, Reply = unknown> {
  readonly stream: StreamKind;
  /** Needed to run the op; null for none (server figures). */
  readonly permission: Permission | null;
  /** Checks an OPEN payload's fields; throws BAD_REQUEST, which fails only that stream. */
  readonly parse: (o: Record<string, unknown>) => R;
  /** Checks one REPLY payload; a malformed one is the server's PROTOCOL_ERROR (the client fails the connection). */
  readonly reply: (o: Record<string, unknown>) => Reply;
}

const badRequest = (message: string) => new MuxftpError('BAD_REQUEST', message);

/** A REPLY the client cannot use: the server broke the protocol. */
const badReply = (op: string, message: string) =>
  new ProtocolError('PROTOCOL_ERROR', `REPLY to ${op}: ${message}`);

/** A modification time in ms since the epoch, within what a JavaScript Date holds (±8.64e15). */
const isFileTime = (v: unknown): v is number =>
  typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= MAX_DATE_MS;
const MAX_DATE_MS = 8.64e15;

/** 16 or 32 bytes in hex: an xxh128 or sha256 D. */
const isHexDigest = (v: unknown): v is string =>
  typeof v === 'string' && /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{64})$/.test(v);

/** Longest `source` identity a resumable upload may declare. */
const MAX_SOURCE_IDENTITY_CHARS = 128;

/**
 * What identifies a resumable upload's source (issue #8): its whole content digest D (hex), or —
 * so that a client need not read a file twice before sending it — an opaque `source` string of
 * its own (e.g. a hash of the local file's device, inode, size and mtime). Exactly one of them.
 */
function parseSourceIdentity(
  o: Record<string, unknown>,
  op: string,
): { digest: string } | { source: string } {
  if (o.digest !== undefined && o.source !== undefined)
    throw badRequest(`${op}: "digest" and "source" are exclusive`);
  if (o.digest !== undefined) {
    if (!isHexDigest(o.digest)) throw badRequest(`${op}: "digest" must be a hex digest`);
    return { digest: o.digest.toLowerCase() };
  }
  if (typeof o.source !== 'string' || o.source.length === 0 || o.source.length > MAX_SOURCE_IDENTITY_CHARS)
    throw badRequest(
      `${op}: a resumable upload needs "digest" (hex D) or "source" (1 to ${MAX_SOURCE_IDENTITY_CHARS} characters)`,
    );
  return { source: o.source };
}

/** utime's and chmod's `ifUnchanged`: the file as the client saw it (its entry's size and mtime). */
function optionalFileAsSeen(
  o: Record<string, unknown>,
  op: string,
): { size: number; mtime: number } | undefined {
  if (o.ifUnchanged === undefined) return undefined;
  const seen = o.ifUnchanged as Record<string, unknown> | null;
  // Whole ms, as entries give them: another time can never match (PROTOCOL.md: BAD_REQUEST).
  if (
    typeof seen !== 'object' ||
    seen === null ||
    !isCount(seen.size) ||
    !isFileTime(seen.mtime) ||
    !Number.isInteger(seen.mtime)
  )
    throw badRequest(`${op}: "ifUnchanged" must be {"size": bytes, "mtime": ms since the epoch}`);
  return { size: seen.size, mtime: seen.mtime };
}

function requireString(o: Record<string, unknown>, key: string, op: string): string {
  const value = o[key];
  if (typeof value !== 'string') throw badRequest(`${op}: "${key}" must be a string`);
  return value;
}

const ENTRY_TYPES: ReadonlySet<unknown> = new Set(['file', 'dir', 'other']);

function replyEntry(value: unknown, op: string, where: string): WireEntry {
  if (typeof value !== 'object' || value === null) throw badReply(op, `"${where}" must be an object`);
  const e = value as Record<string, unknown>;
  if (typeof e.name !== 'string') throw badReply(op, `"${where}.name" must be a string`);
  // A name of maxNameBytes UTF-8 bytes is at most as many UTF-16 units (a bad byte shown as
  // U+FFFD is one): a longer one comes from no filesystem. Unchecked, a server's listing of one
  // 250 KB name per REPLY frame grew the CLI by 40 MB/s, maxListingEntries entries being ~1 TB.
  if (e.name.length > DEFAULTS.maxNameBytes)
    throw badReply(op, `"${where}.name" is longer than a name may be (${DEFAULTS.maxNameBytes} bytes)`);
  if (!ENTRY_TYPES.has(e.type)) throw badReply(op, `"${where}.type" must be "file", "dir" or "other"`);
  if (!isCount(e.size)) throw badReply(op, `"${where}.size" must be a non-negative integer`);
  if (typeof e.mtime !== 'number' || !Number.isFinite(e.mtime))
    throw badReply(op, `"${where}.mtime" must be a number`);
  const entry: WireEntry = { name: e.name, type: e.type as WireEntry['type'], size: e.size, mtime: e.mtime };
  if (e.mode !== undefined) entry.mode = replyMode(e.mode, op, `${where}.mode`);
  // Only `true` means anything; a server may send nothing else (tolerated as absent).
  if (e.link === true) entry.link = true;
  if (e.notUtf8 === true) entry.notUtf8 = true;
  return entry;
}

/** Permission bits in a REPLY: optional, since servers before them send none. */
function replyMode(value: unknown, op: string, where: string): number {
  if (!isPermissionBits(value)) throw badReply(op, `"${where}" must be ${PERMISSION_BITS_WANTED}`);
  return value;
}

function replyDigest(
  o: Record<string, unknown>,
  op: string,
): { algorithm: IntegrityAlgorithm; digest: string } {
  const { algorithm, digest } = o;
  if (!isIntegrityAlgorithm(algorithm)) {
    throw badReply(op, `"algorithm" must be one of ${INTEGRITY_ALGORITHMS.join(', ')}`);
  }
  const hexDigits = 2 * DIGEST_BYTES[algorithm];
  if (typeof digest !== 'string' || digest.length !== hexDigits || !/^[0-9a-f]*$/.test(digest)) {
    throw badReply(op, `"digest" must be ${hexDigits} lowercase hex digits for ${algorithm}`);
  }
  return { algorithm, digest };
}

function replyCount(o: Record<string, unknown>, key: string, op: string): number {
  const value = o[key];
  if (!isCount(value)) throw badReply(op, `"${key}" must be a non-negative integer`);
  return value;
}

function replyObject(value: unknown, op: string, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw badReply(op, `"${where}" must be an object`);
  return value as Record<string, unknown>;
}

/** An answer with nothing to say; fields a newer server adds are ignored. */
const emptyReply = (): Record<string, never> => ({});

const SERVER_STATS_KEYS = [
  'connections',
  'streams',
  'rssBytes',
  'maxRssBytes',
  'uptimeMs',
  'bytesIn',
  'bytesOut',
  'filesIn',
  'filesOut',
] as const satisfies readonly (keyof ServerStats)[];

export const OPERATIONS = {
  list: {
    stream: 'request',
    permission: 'list',
    parse: (o) => {
      // A client that wants no more than this many entries: a directory holding more fails the
      // listing at once (UNSUPPORTED), before the server sorts it or looks anything up.
      if (o.maxEntries !== undefined && (!isCount(o.maxEntries) || o.maxEntries === 0))
        throw badRequest('list: "maxEntries" must be a positive integer');
      const path = requireString(o, 'path', 'list');
      return o.maxEntries === undefined
        ? { op: 'list', path }
        : { op: 'list', path, maxEntries: o.maxEntries };
    },
    // One batch: a long listing comes in several REPLY frames flagged MORE.
    reply: (o): { entries: WireEntry[] } => {
      if (!Array.isArray(o.entries)) throw badReply('list', '"entries" must be an array');
      return { entries: o.entries.map((e, i) => replyEntry(e, 'list', `entries[${i}]`)) };
    },
  },
  stat: {
    stream: 'request',
    permission: 'list',
    parse: (o) => ({ op: 'stat', path: requireString(o, 'path', 'stat') }),
    reply: (o): { entry: WireEntry } => ({ entry: replyEntry(o.entry, 'stat', 'entry') }),
  },
  mkdir: {
    stream: 'request',
    permission: 'mkdir',
    parse: (o) => {
      if (o.parents !== undefined && typeof o.parents !== 'boolean')
        throw badRequest('mkdir: "parents" must be a boolean');
      if (o.mode !== undefined && !isPermissionBits(o.mode))
        throw badRequest(`mkdir: "mode" must be ${PERMISSION_BITS_WANTED}`);
      const request: Extract<Request, { op: 'mkdir' }> = {
        op: 'mkdir',
        path: requireString(o, 'path', 'mkdir'),
        parents: o.parents === true,
      };
      if (o.mode !== undefined) request.mode = o.mode;
      return request;
    },
    reply: emptyReply,
  },
  rmdir: {
    stream: 'request',
    permission: 'delete',
    parse: (o) => ({ op: 'rmdir', path: requireString(o, 'path', 'rmdir') }),
    reply: emptyReply,
  },
  delete: {
    stream: 'request',
    permission: 'delete',
    parse: (o) => ({ op: 'delete', path: requireString(o, 'path', 'delete') }),
    reply: emptyReply,
  },
  rename: {
    stream: 'request',
    permission: 'rename',
    parse: (o) => {
      if (o.noReplace !== undefined && typeof o.noReplace !== 'boolean')
        throw badRequest('rename: "noReplace" must be a boolean');
      return {
        op: 'rename',
        from: requireString(o, 'from', 'rename'),
        to: requireString(o, 'to', 'rename'),
        ...(o.noReplace === true ? { noReplace: true } : {}),
      };
    },
    reply: emptyReply,
  },
  utime: {
    stream: 'request',
    permission: 'write',
    parse: (o) => {
      const path = requireString(o, 'path', 'utime');
      if (!isFileTime(o.mtime))
        throw badRequest('utime: "mtime" must be a time in ms since the epoch, within ±8.64e15');
      const ifUnchanged = optionalFileAsSeen(o, 'utime');
      return ifUnchanged === undefined
        ? { op: 'utime', path, mtime: o.mtime }
        : { op: 'utime', path, mtime: o.mtime, ifUnchanged };
    },
    reply: (o): { entry: WireEntry } => ({ entry: replyEntry(o.entry, 'utime', 'entry') }),
  },
  chmod: {
    stream: 'request',
    permission: 'write',
    parse: (o) => {
      const path = requireString(o, 'path', 'chmod');
      if (!isPermissionBits(o.mode)) throw badRequest(`chmod: "mode" must be ${PERMISSION_BITS_WANTED}`);
      const ifUnchanged = optionalFileAsSeen(o, 'chmod');
      return ifUnchanged === undefined
        ? { op: 'chmod', path, mode: o.mode }
        : { op: 'chmod', path, mode: o.mode, ifUnchanged };
    },
    reply: (o): { entry: WireEntry } => ({ entry: replyEntry(o.entry, 'chmod', 'entry') }),
  },
  get: {
    stream: 'download',
    permission: 'read',
    parse: (o) => {
      const path = requireString(o, 'path', 'get');
      if (o.offset === undefined) return { op: 'get', path };
      // A resumed download (get -c) starts at a whole block: the server answers with the offset it
      // chose and the digests of the blocks before it, which the client checks against its own.
      if (!isCount(o.offset) || o.offset % INTEGRITY_BLOCK_BYTES !== 0)
        throw badRequest(`get: "offset" must be a non-negative multiple of ${INTEGRITY_BLOCK_BYTES}`);
      return { op: 'get', path, offset: o.offset };
    },
    reply: (o): GetReply => {
      const mtime = o.mtime;
      if (typeof mtime !== 'number' || !Number.isFinite(mtime))
        throw badReply('get', '"mtime" must be a number');
      const reply: GetReply = { size: replyCount(o, 'size', 'get'), mtime };
      if (o.mode !== undefined) reply.mode = replyMode(o.mode, 'get', 'mode');
      // A resumed download's answer: where the server starts, and the digests of the blocks before.
      if (o.offset !== undefined) reply.offset = replyCount(o, 'offset', 'get');
      if (o.blocks !== undefined) {
        if (
          !Array.isArray(o.blocks) ||
          !o.blocks.every((d) => typeof d === 'string' && /^[0-9a-f]+$/.test(d))
        )
          throw badReply('get', '"blocks" must be an array of hex digests');
        reply.blocks = o.blocks as string[];
      }
      return reply;
    },
  },
  put: {
    stream: 'upload',
    permission: 'write',
    parse: (o) => {
      if (o.size !== undefined && !isCount(o.size))
        throw badRequest('put: "size" must be a non-negative integer');
      const path = requireString(o, 'path', 'put');
      if (o.initialWindow !== undefined && typeof o.initialWindow !== 'boolean')
        throw badRequest('put: "initialWindow" must be a boolean');
      // Declined (false): the put brings no DATA before the server's first WINDOW.
      const declined = o.initialWindow === false ? ({ initialWindow: false } as const) : {};
      if (o.mtime !== undefined && !isFileTime(o.mtime))
        throw badRequest('put: "mtime" must be a time in ms since the epoch, within ±8.64e15');
      if (o.mode !== undefined && !isPermissionBits(o.mode))
        throw badRequest(`put: "mode" must be ${PERMISSION_BITS_WANTED}`);
      const extras: { initialWindow?: false; mtime?: number; mode?: number } = { ...declined };
      if (o.mtime !== undefined) extras.mtime = o.mtime;
      if (o.mode !== undefined) extras.mode = o.mode;
      if (o.digest === undefined && o.source === undefined && o.offset === undefined)
        return o.size === undefined
          ? { op: 'put', path, ...extras }
          : { op: 'put', path, size: o.size, ...extras };
      // A resumable upload (issue #8) declares its size and what identifies its source: the key
      // of its kept data.
      if (o.size === undefined) throw badRequest('put: a resumable upload needs "size"');
      const identity = parseSourceIdentity(o, 'put');
      const offset = o.offset ?? 0;
      if (!isCount(offset) || offset % INTEGRITY_BLOCK_BYTES !== 0 || offset > o.size)
        throw badRequest(`put: "offset" must be a multiple of ${INTEGRITY_BLOCK_BYTES} within "size"`);
      return { op: 'put', path, size: o.size, ...identity, offset, ...extras };
    },
    reply: (o): PutReply => ({ entry: replyEntry(o.entry, 'put', 'entry'), ...replyDigest(o, 'put') }),
  },
  partial: {
    stream: 'request',
    permission: 'write',
    parse: (o) => {
      if (!isCount(o.size)) throw badRequest('partial: "size" must be a non-negative integer');
      if (!isIntegrityAlgorithm(o.algorithm))
        throw badRequest(`partial: "algorithm" must be one of ${INTEGRITY_ALGORITHMS.join(', ')}`);
      if (o.drop !== undefined && typeof o.drop !== 'boolean')
        throw badRequest('partial: "drop" must be a boolean');
      return {
        op: 'partial',
        path: requireString(o, 'path', 'partial'),
        size: o.size,
        algorithm: o.algorithm,
        ...parseSourceIdentity(o, 'partial'),
        ...(o.drop === true ? { drop: true as const } : {}),
      };
    },
    // What the server keeps of an interrupted upload: whole blocks, and their digests.
    // `inUse`: kept, but another upload writes it now (none offered).
    reply: (o): { offset: number; blocks: string[]; inUse?: true } => {
      const offset = replyCount(o, 'offset', 'partial');
      if (!Array.isArray(o.blocks) || !o.blocks.every((d) => typeof d === 'string' && /^[0-9a-f]+$/.test(d)))
        throw badReply('partial', '"blocks" must be an array of hex digests');
      if (offset !== o.blocks.length * INTEGRITY_BLOCK_BYTES)
        throw badReply('partial', '"offset" must be the bytes of the blocks listed');
      return { offset, blocks: o.blocks as string[], ...(o.inUse === true ? { inUse: true as const } : {}) };
    },
  },
  digest: {
    stream: 'request',
    permission: 'read',
    parse: (o) => {
      if (!isIntegrityAlgorithm(o.algorithm)) {
        throw badRequest(`digest: "algorithm" must be one of ${INTEGRITY_ALGORITHMS.join(', ')}`);
      }
      return { op: 'digest', path: requireString(o, 'path', 'digest'), algorithm: o.algorithm };
    },
    reply: (o): PutReply => ({ entry: replyEntry(o.entry, 'digest', 'entry'), ...replyDigest(o, 'digest') }),
  },
  stats: {
    stream: 'request',
    permission: null,
    parse: () => ({ op: 'stats' }),
    reply: (o): ServerStats => {
      const stats = {} as ServerStats;
      for (const key of SERVER_STATS_KEYS) stats[key] = replyCount(o, key, 'stats');
      return stats;
    },
  },
  space: {
    stream: 'request',
    permission: 'list',
    parse: () => ({ op: 'space' }),
    reply: (o): SpaceReport => {
      const report: SpaceReport = {};
      if (o.disk !== undefined) {
        const disk = replyObject(o.disk, 'space', 'disk');
        report.disk = {
          totalBytes: replyCount(disk, 'totalBytes', 'space'),
          freeBytes: replyCount(disk, 'freeBytes', 'space'),
        };
        // Added later: a server before it does not say.
        if (disk.keptBytes !== undefined) report.disk.keptBytes = replyCount(disk, 'keptBytes', 'space');
      }
      if (o.quota !== undefined) {
        const quota = replyObject(o.quota, 'space', 'quota');
        report.quota = {
          limitBytes: replyCount(quota, 'limitBytes', 'space'),
          usedBytes: replyCount(quota, 'usedBytes', 'space'),
          reservedBytes: replyCount(quota, 'reservedBytes', 'space'),
        };
      }
      return report;
    },
  },
} satisfies { readonly [O in Operation]: OperationSpec<Extract<Request, { op: O }>> };

/** What the server answers to `op`, as its row's REPLY validator returns it. */
export type ReplyOf<O extends Operation> = ReturnType<(typeof OPERATIONS)[O]['reply']>;

/** The ops a kind of stream runs, e.g. `OperationOf<'request'>` is list, stat, mkdir, .... */
export type OperationOf<K extends StreamKind> = {
  [O in Operation]: (typeof OPERATIONS)[O]['stream'] extends K ? O : never;
}[Operation];

/** The requests a kind of stream runs. */
export type RequestOf<K extends StreamKind> = Extract<Request, { op: OperationOf<K> }>;

/** A request paired with its row. */
export interface OpenRequest {
  readonly request: Request;
  readonly spec: OperationSpec;
}

/** How a server words its refusal of an op it does not know (a server from before the op). */
const UNKNOWN_OPERATION = 'unsupported operation:';

/** The error is a server's refusal of an op it does not know, not of what the op asked. */
export function isUnknownOperation(error: unknown): boolean {
  return (
    error instanceof MuxftpError &&
    error.code === 'UNSUPPORTED' &&
    error.message.startsWith(UNKNOWN_OPERATION)
  );
}

/**
 * Validates an OPEN payload against the table; throws a BAD_REQUEST or UNSUPPORTED MuxftpError,
 * which fails only that stream (the framing itself is intact).
 */
export function parseRequest(frame: Frame): Request {
  return parseOpen(frame).request;
}

export function parseOpen(frame: Frame): OpenRequest {
  let o: Record<string, unknown>;
  try {
    o = parseJsonObject(frame, 'OPEN');
  } catch (err) {
    throw badRequest((err as Error).message);
  }
  const op = o.op;
  if (typeof op !== 'string') throw badRequest('OPEN: "op" must be a string');
  if (!Object.hasOwn(OPERATIONS, op)) {
    throw new MuxftpError('UNSUPPORTED', `${UNKNOWN_OPERATION} ${JSON.stringify(op).slice(0, 64)}`);
  }
  const spec = OPERATIONS[op as Operation] as OperationSpec;
  return { request: spec.parse(o), spec };
}
