/**
 * The operation table (after pyftpdlib's `proto_cmds`): one row per op with its OPEN validator,
 * the kind of stream that runs it, and the permission it needs. The server's gate reads the row
 * before any handler runs; adding an op to `Request` without a row here does not compile.
 */
import { MuxftpError } from '../errors.js';
import {
  INTEGRITY_ALGORITHMS,
  INTEGRITY_BLOCK_BYTES,
  isIntegrityAlgorithm,
} from '../integrity/algorithms.js';
import type { Frame } from './frame.js';
import { type Operation, parseJsonObject, type Request } from './messages.js';

/** What a user may be allowed to do (pyftpdlib's elradfmw, coarser); issue 9 (users) enforces it. */
export type Permission = 'list' | 'read' | 'write' | 'delete' | 'rename' | 'mkdir';

/** The stream that runs an op: one REPLY, a download (DATA from the server), an upload (DATA to it). */
export type StreamKind = 'request' | 'download' | 'upload';

export interface OperationSpec<R extends Request = Request> {
  readonly stream: StreamKind;
  /** Needed to run the op; null for none (server figures). */
  readonly permission: Permission | null;
  /** Checks an OPEN payload's fields; throws BAD_REQUEST, which fails only that stream. */
  readonly parse: (o: Record<string, unknown>) => R;
}

const badRequest = (message: string) => new MuxftpError('BAD_REQUEST', message);

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function requireString(o: Record<string, unknown>, key: string, op: string): string {
  const value = o[key];
  if (typeof value !== 'string') throw badRequest(`${op}: "${key}" must be a string`);
  return value;
}

export const OPERATIONS = {
  list: {
    stream: 'request',
    permission: 'list',
    parse: (o) => ({ op: 'list', path: requireString(o, 'path', 'list') }),
  },
  stat: {
    stream: 'request',
    permission: 'list',
    parse: (o) => ({ op: 'stat', path: requireString(o, 'path', 'stat') }),
  },
  mkdir: {
    stream: 'request',
    permission: 'mkdir',
    parse: (o) => {
      if (o.parents !== undefined && typeof o.parents !== 'boolean')
        throw badRequest('mkdir: "parents" must be a boolean');
      return { op: 'mkdir', path: requireString(o, 'path', 'mkdir'), parents: o.parents === true };
    },
  },
  rmdir: {
    stream: 'request',
    permission: 'delete',
    parse: (o) => ({ op: 'rmdir', path: requireString(o, 'path', 'rmdir') }),
  },
  delete: {
    stream: 'request',
    permission: 'delete',
    parse: (o) => ({ op: 'delete', path: requireString(o, 'path', 'delete') }),
  },
  rename: {
    stream: 'request',
    permission: 'rename',
    parse: (o) => ({
      op: 'rename',
      from: requireString(o, 'from', 'rename'),
      to: requireString(o, 'to', 'rename'),
    }),
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
  },
  put: {
    stream: 'upload',
    permission: 'write',
    parse: (o) => {
      if (o.size !== undefined && !isCount(o.size))
        throw badRequest('put: "size" must be a non-negative integer');
      const path = requireString(o, 'path', 'put');
      return o.size === undefined ? { op: 'put', path } : { op: 'put', path, size: o.size };
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
  },
  stats: { stream: 'request', permission: null, parse: () => ({ op: 'stats' }) },
} satisfies { readonly [O in Operation]: OperationSpec<Extract<Request, { op: O }>> };

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
    throw new MuxftpError('UNSUPPORTED', `unsupported operation: ${JSON.stringify(op).slice(0, 64)}`);
  }
  const spec = OPERATIONS[op as Operation] as OperationSpec;
  return { request: spec.parse(o), spec };
}
