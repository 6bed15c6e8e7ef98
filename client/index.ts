/**
 * The `muxftp` package entry: the client library. This file is the one list of what
 * `import … from 'muxftp'` offers; anything not re-exported here is internal.
 *
 * @packageDocumentation
 * @module muxftp
 */

export {
  ConnectionLostError,
  ERROR_STATUS,
  type ErrorCode,
  isErrorCode,
  MuxftpError,
  ProtocolError,
  RemoteError,
  StorageError,
} from '../shared/errors.js';
export type {
  LoginRequirement,
  ServerLimits,
  ServerStats,
  Welcome,
  WireEntry,
} from '../shared/protocol/messages.js';
export { parseServerAddress, type ServerAddress } from './address.js';
export {
  Client,
  type ClientOptions,
  type ClientTlsOptions,
  type ResolvedClientOptions,
  type TransferOptions,
} from './client.js';
export type { GetTarget } from './sinks.js';
export type { PutSource } from './sources.js';
export type { GetResult, ProgressCallback, PutResult } from './streams.js';
