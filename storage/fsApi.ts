/**
 * The small slice of `fs.promises` storage is written against: disk's calls (storage/diskFs.ts,
 * over node's fs) and a memfs volume's `promises` (memory) both fit, so one implementation serves
 * both.
 */

import type { FileVersion } from './digestCache.js';

/** The Stats fields storage reads (a file's version, plus its type); node's Stats and memfs's both fit. */
export interface FsStats extends FileVersion {
  /** Type and permission bits, as stat(2)'s st_mode. */
  readonly mode: number | bigint;
  /** 512-byte blocks allocated (stat(2)'s st_blocks), where the filesystem says. */
  readonly blocks?: number | bigint;
  /** Names the file has (st_nlink), where the filesystem says. */
  readonly nlink?: number | bigint;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

/** The FileHandle methods storage uses. */
export interface FsFileHandle {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  /** Optional: without it, uploads write chunk by chunk. */
  writev?(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  /** Cuts a preallocated upload back to what was written. */
  truncate(length: number): Promise<void>;
  stat(): Promise<FsStats>;
  /** Sets the access and modification times (seconds, or Dates: shared/fileTimes.ts). */
  utimes(atime: number | Date, mtime: number | Date): Promise<void>;
  /** Sets the permission bits (as node's fchmod). */
  chmod(mode: number): Promise<void>;
  close(): Promise<void>;
}

/** A path opened by openPath: what it is, and its bits to change. Whoever opens one closes it. */
export interface PathHandle {
  stat(): Promise<FsStats>;
  chmod(mode: number): Promise<void>;
  close(): Promise<void>;
}

/** The `fs.promises` functions storage uses; node's `fs/promises` and memfs's `vol.promises` fit. */
export interface FsPromises {
  stat(path: string): Promise<FsStats>;
  lstat(path: string): Promise<FsStats>;
  /** lstat() that resolves undefined where nothing is (ENOENT) instead of building an error. Optional. */
  lstatIfExists?(path: string): Promise<FsStats | undefined>;
  /** Called without options, both return names as strings; memfs's types allow more, hence unknown. */
  readdir(path: string): Promise<readonly unknown[]>;
  /**
   * The directory's names that `wanted` accepts if there are at most `count` of them, else
   * undefined, reading no further than that (a few entries at a time). Optional: without it,
   * storage reads the whole directory to tell.
   */
  readdirAtMost?(
    path: string,
    count: number,
    wanted: (name: string) => boolean,
  ): Promise<string[] | undefined>;
  /** With `mode`, the new directory's bits (less the umask, where the fs applies one). */
  mkdir(path: string, mode?: number): Promise<unknown>;
  rmdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(oldPath: string, newPath: string): Promise<void>;
  /**
   * rename() where the caller found nothing at `newPath` just before: it frees nothing, so it may
   * run on the loop. Must still work (as rename) when something is there by then. Optional.
   */
  renameOntoNothing?(oldPath: string, newPath: string): Promise<void>;
  /**
   * `flags` as a string ('r', 'wx', ...) or open(2)'s bits (fs.constants); `mode`, the bits a
   * file it creates gets (less the umask, where the fs applies one; default NEW_FILE_BITS).
   */
  open(path: string, flags: string | number, mode?: number): Promise<FsFileHandle>;
  realpath(path: string): Promise<string | Buffer>;
  /**
   * Sets a path's access and modification times, never following a last-name link. Optional:
   * without it, storage refuses to set times (UNSUPPORTED).
   */
  lutimes?(path: string, atime: number | Date, mtime: number | Date): Promise<void>;
  /**
   * Opens a path to look at and change its permission bits, without reading it (a file or
   * directory the server may not read: Linux's O_PATH) and never through a last-name link: the
   * handle is then the link's own, which stat() shows as one (O_PATH|O_NOFOLLOW), or the open
   * fails ELOOP. Optional: without it, storage refuses to set bits (UNSUPPORTED).
   */
  openPath?(path: string): Promise<PathHandle>;
  /**
   * The same calls, confined to `root` (a user's home within the served root) where they check
   * where they act (storage/pinnedDirectories.ts). Optional: without it, a subtree shares these.
   */
  confinedTo?(root: string): FsPromises;
  /** The filesystem holding `path` (statfs(2)); absent where there is none to ask (memfs). */
  statfs?(path: string): Promise<{
    /** f_type: which filesystem (btrfs's subvolumes share one room: shared/diskRoom.ts). */
    type?: number | bigint;
    bsize: number | bigint;
    blocks: number | bigint;
    bavail: number | bigint;
    bfree?: number | bigint;
    /** Free inodes: 0 with bytes free is why a new file or directory fails ENOSPC. */
    ffree?: number | bigint;
    /** Inodes in all (0 where the filesystem has no fixed table: btrfs). */
    files?: number | bigint;
  }>;
}
