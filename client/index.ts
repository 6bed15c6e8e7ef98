/**
 * The `muxftp` package entry: the client library. This file is the one list of what
 * `import … from 'muxftp'` offers; anything not re-exported here is internal.
 *
 * @packageDocumentation
 * @module muxftp
 */

export {
  type BusyLimit,
  ConnectionLostError,
  ERROR_STATUS,
  type ErrorCode,
  type ErrorDetails,
  isErrorCode,
  MuxftpError,
  ProtocolError,
  RemoteError,
  ServerBusyError,
  SettingError,
  StorageError,
} from '../shared/errors.js';
export { loadedContentDigest as contentDigest } from '../shared/integrity/contentDigest.js';
export {
  DEFAULT_INTEGRITY_ALGORITHM,
  INTEGRITY_ALGORITHMS,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
} from '../shared/integrity/index.js';
export type {
  LoginRequirement,
  ServerLimits,
  ServerStats,
  SpaceReport,
  Welcome,
  WelcomeIntegrity,
  WireEntry,
} from '../shared/protocol/messages.js';
export { parseServerAddress, type ServerAddress } from './address.js';
export {
  type BusyRetryPolicy,
  Client,
  type ClientOptions,
  type ClientTlsOptions,
  type DigestResult,
  type RenameOptions,
  type RequestOptions,
  type ResolvedClientOptions,
  type TransferOptions,
} from './client.js';
export { LocalDigestMemo } from './localDigests.js';
export type { GetTarget, KeptPartial } from './sinks.js';
export type { PutSource } from './sources.js';
export {
  type GetResult,
  type KnownDigest,
  ListingTooLongError,
  LocalPartialRefusedError,
  type ProgressCallback,
  type PutResult,
} from './streams.js';
