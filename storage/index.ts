/** The storage layer: the Storage interface, its disk and memory backends, and openStorage(). */

import { DEFAULTS } from '../shared/defaults.js';
import { DiskStorage } from './disk.js';
import { MemoryStorage } from './memory.js';
import type { Storage } from './types.js';

export { DiskStorage, type DiskStorageOptions } from './disk.js';
export { FsStorage } from './fsStorage.js';
export { MemoryStorage, type MemoryStorageOptions } from './memory.js';
export type {
  CommitOptions,
  CommittedEntry,
  DropKeptPartialsOptions,
  EntryInfo,
  EntryType,
  ListBatchesOptions,
  PartialKey,
  PartialRead,
  ReadHandle,
  RenamedEntries,
  RenameOptions,
  RmdirOptions,
  Storage,
  SweepOptions,
  UploadHandle,
} from './types.js';

/** What {@link openStorage} opens: a directory, or memory. */
export interface OpenStorageOptions {
  /** Directory to serve. Default DEFAULTS.root, relative to the working directory. Unused with `memory`. */
  root?: string;
  /** Serve an empty in-memory tree instead, lost on exit. Default false. */
  memory?: boolean;
  /**
   * Disk only: datasync each upload's file before its rename and its directory after, so a
   * confirmed upload survives a power cut. Default true.
   */
  durable?: boolean;
}

/** The storage `muxftp serve` runs on: a directory (created if missing), or memory. */
export async function openStorage(options: OpenStorageOptions = {}): Promise<Storage> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('openStorage: options must be an object');
  }
  if (options.memory !== undefined && typeof options.memory !== 'boolean') {
    throw new TypeError('openStorage: options.memory must be a boolean');
  }
  if (options.durable !== undefined && typeof options.durable !== 'boolean') {
    throw new TypeError('openStorage: options.durable must be a boolean');
  }
  if (options.memory) return new MemoryStorage();
  return DiskStorage.open({ root: options.root ?? DEFAULTS.root, durable: options.durable ?? true });
}
