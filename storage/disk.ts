/** Files on the local disk: FsStorage over node's fs, each call on the loop while calls are fast (storage/diskFs.ts). */

import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { errnoReason } from '../shared/errnoReasons.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { makeDirectories } from '../shared/makeDirectories.js';
import { diskFs } from './diskFs.js';
import type { FsFileHandle, PathHandle } from './fsApi.js';
import { checkDigestCacheMaxBytes, FsStorage } from './fsStorage.js';
import { PinnedDirectories } from './pinnedDirectories.js';

/** Where {@link DiskStorage} serves from and how durably it commits. */
export interface DiskStorageOptions {
  /** Directory served to clients, relative to the working directory or absolute; created if missing. */
  root: string;
  /** fsync each upload and its rename before commit() resolves. Default true. */
  durable?: boolean;
  /** The most memory the digests remembered of stored files may hold. Default DEFAULTS.digestCacheMaxBytes. */
  digestCacheMaxBytes?: number;
}

/** Storage on the local disk under one root directory; uploads are fsynced before they are committed by default. */
export class DiskStorage extends FsStorage {
  /** Validates the options and creates the root directory (with its parents) if needed. */
  static async open(options: DiskStorageOptions): Promise<DiskStorage> {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('DiskStorage: options must be an object');
    }
    if (typeof options.root !== 'string' || options.root === '' || options.root.includes('\0')) {
      throw new TypeError('DiskStorage: options.root must be a non-empty path without NUL bytes');
    }
    if (options.durable !== undefined && typeof options.durable !== 'boolean') {
      throw new TypeError('DiskStorage: options.durable must be a boolean');
    }
    checkDigestCacheMaxBytes('DiskStorage', options.digestCacheMaxBytes);
    const root = path.resolve(options.root);
    try {
      await makeDirectories(root);
    } catch (error) {
      // In words (`no such file or directory`), not Node's `ENOENT: …, mkdir '<path>'`.
      throw new Error(`DiskStorage: cannot use ${root} as the root: ${errnoReason(error)}`, { cause: error });
    }
    return new DiskStorage(root, options.durable ?? true, options.digestCacheMaxBytes);
  }

  private constructor(root: string, durable: boolean, digestCacheMaxBytes: number | undefined) {
    const inline = new InlineFileCalls();
    super({
      fs: diskFs(inline, PinnedDirectories.forRoot(root, inline)),
      root,
      durable,
      description: `disk:${root}`,
      hostPaths: path,
      locateOpened: openedFileLocation,
      ...(digestCacheMaxBytes !== undefined ? { digestCacheMaxBytes } : {}),
    });
  }
}

/**
 * Where an open file really is, from the kernel: on Linux the target of /proc/self/fd/N, which
 * names the file the descriptor refers to whatever links led to it. Undefined elsewhere, or
 * when /proc is not mounted: then only the check before open() applies.
 */
export async function openedFileLocation(handle: FsFileHandle | PathHandle): Promise<string | undefined> {
  const fd = (handle as { fd?: unknown }).fd;
  if (process.platform !== 'linux' || typeof fd !== 'number') return undefined;
  try {
    // procfs answers from the kernel's tables, never from a disk: not worth a threadpool hand-off.
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}
