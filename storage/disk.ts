/** Files on the local disk: FsStorage over node's fs/promises. */

import { constants as fsConstants, readSync } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import path from 'node:path';
import { errnoReason } from '../shared/errnoReasons.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { makeDirectories } from '../shared/makeDirectories.js';
import type { FsFileHandle, FsPromises, FsStats } from './fsApi.js';
import { FsStorage } from './fsStorage.js';

/** Where {@link DiskStorage} serves from and how durably it commits. */
export interface DiskStorageOptions {
  /** Directory served to clients, relative to the working directory or absolute; created if missing. */
  root: string;
  /** fsync each upload and its rename before commit() resolves. Default true. */
  durable?: boolean;
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
    const root = path.resolve(options.root);
    try {
      await makeDirectories(root);
    } catch (error) {
      // In words (`no such file or directory`), not Node's `ENOENT: …, mkdir '<path>'`.
      throw new Error(`DiskStorage: cannot use ${root} as the root: ${errnoReason(error)}`, { cause: error });
    }
    return new DiskStorage(root, options.durable ?? true);
  }

  private constructor(root: string, durable: boolean) {
    super({
      fs: diskFs(new InlineFileCalls()),
      root,
      durable,
      description: `disk:${root}`,
      hostPaths: path,
      locateOpened: openedFileLocation,
    });
  }
}

/**
 * node's fs/promises, except that a file opened only for reading (downloads, digests) is read on
 * the loop while reads stay fast (shared/inlineFileCalls.ts). Uploads write through the threadpool:
 * measured, writing on the loop made the server's loop the upload's bottleneck (bench/README.md).
 */
function diskFs(inline: InlineFileCalls): FsPromises {
  return {
    ...fsPromises,
    async open(hostPath: string, flags: string | number): Promise<FsFileHandle> {
      const handle = await fsPromises.open(hostPath, flags);
      return opensForReadingOnly(flags) ? new InlineReadHandle(handle, inline) : handle;
    },
  };
}

function opensForReadingOnly(flags: string | number): boolean {
  if (typeof flags === 'string') return flags === 'r';
  return (flags & (fsConstants.O_WRONLY | fsConstants.O_RDWR)) === 0;
}

class InlineReadHandle implements FsFileHandle {
  readonly #handle: fsPromises.FileHandle;
  readonly #inline: InlineFileCalls;

  constructor(handle: fsPromises.FileHandle, inline: InlineFileCalls) {
    this.#handle = handle;
    this.#inline = inline;
  }

  /** The descriptor, for openedFileLocation. */
  get fd(): number {
    return this.#handle.fd;
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return this.#inline.run(
      () => ({ bytesRead: readSync(this.#handle.fd, buffer, offset, length, position) }),
      () => this.#handle.read(buffer, offset, length, position),
    );
  }

  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    return this.#handle.write(buffer, offset, length, position);
  }

  datasync(): Promise<void> {
    return this.#handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.#handle.truncate(length);
  }

  stat(): Promise<FsStats> {
    return this.#handle.stat();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}

/**
 * Where an open file really is, from the kernel: on Linux the target of /proc/self/fd/N, which
 * names the file the descriptor refers to whatever links led to it. Undefined elsewhere, or
 * when /proc is not mounted: then only the check before open() applies.
 */
export async function openedFileLocation(handle: FsFileHandle): Promise<string | undefined> {
  const fd = (handle as { fd?: unknown }).fd;
  if (process.platform !== 'linux' || typeof fd !== 'number') return undefined;
  try {
    return await fsPromises.readlink(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}
