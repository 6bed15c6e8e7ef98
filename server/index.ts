/**
 * The `muxftp/server` package entry: the server and its storage backends, for embedding a server in
 * another program. This file is the one list of what `import … from 'muxftp/server'` offers.
 *
 * @packageDocumentation
 * @module muxftp/server
 */

export {
  ERROR_STATUS,
  type ErrorCode,
  type ErrorDetails,
  isErrorCode,
  MuxftpError,
  ProtocolError,
  StorageError,
} from '../shared/errors.js';
export type { FileDigest, IntegrityAlgorithm } from '../shared/integrity/index.js';
export type { ServerStats } from '../shared/protocol/messages.js';
export { fileDigest, type ReadWatch } from '../storage/fileDigest.js';
export {
  type CommitOptions,
  type CommittedEntry,
  DiskStorage,
  type DiskStorageOptions,
  type DropKeptPartialsOptions,
  type EntryInfo,
  type EntryType,
  type FsStorage,
  type ListBatchesOptions,
  MemoryStorage,
  type MemoryStorageOptions,
  type OpenStorageOptions,
  openStorage,
  type PartialKey,
  type PartialRead,
  type ReadHandle,
  type RenamedEntries,
  type RenameOptions,
  type RmdirOptions,
  type Storage,
  type SweepOptions,
  type UploadHandle,
} from '../storage/index.js';
export { type Account, Accounts, type AccountsOptions, type AnonymousAccess } from './auth/accounts.js';
export { hashPassword } from './auth/passwords.js';
export {
  addUser,
  emptyUsersFile,
  listUsers,
  type NewUser,
  PERMISSIONS,
  type Permission,
  READ_ONLY_PERMISSIONS,
  readUsersFile,
  removeUser,
  type UserEntry,
  type UsersFile,
  updateUsersFile,
  writeUsersFile,
} from './auth/usersFile.js';
export {
  jsonLine,
  type LogEvent,
  type LogEventFunction,
  type LogFields,
  type LogLevel,
  textLine,
} from './logEvents.js';
export { DEFAULT_METRICS_PORT, MetricsExporter, type MetricsExporterOptions } from './metrics.js';
export { type LogFunction, logToStderr, type ResolvedServerOptions, type ServerOptions } from './options.js';
export { type ConnectionFigures, MuxServer } from './server.js';
