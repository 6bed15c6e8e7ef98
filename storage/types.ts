/**
 * The storage contract. Server code talks to files only through this interface (after
 * pyftpdlib's AbstractedFS): paths are client paths, relative to the storage root, checked by
 * storage/paths.ts; every failure is a StorageError with a wire code (storage/fsErrors.ts).
 */

import type { IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import type { FileDigest } from '../shared/integrity/contentDigest.js';

/** What a directory entry is; `other` covers sockets, devices and the like. */
export type EntryType = 'file' | 'dir' | 'other';

/** A file or directory as storage describes it. */
export interface EntryInfo {
  /** Last path segment ('' for the root). */
  name: string;
  /** `other` also for a symbolic link out of the root or dangling, and a name that is not UTF-8. */
  type: EntryType;
  /** Bytes for files, 0 for directories. */
  size: number;
  /** Modification time, milliseconds since the epoch. */
  mtimeMs: number;
  /** Permission bits (0 to 0o777), where the entry has them (not a link shown as `other`). */
  mode?: number;
  /**
   * A listing's entry that is a symbolic link, shown as what it leads to (inside the root) or as
   * `other`: so a client can remove it as a link, not walk into it (rm -r, --delete).
   */
  link?: true;
  /**
   * A listing's entry whose name on the host is not valid UTF-8: `name` shows it with U+FFFD in
   * place of the bad bytes, and no path can name it (so a client copying the tree says it left it).
   */
  notUtf8?: true;
}

/**
 * What commit() returns: the new entry, and the entry it replaced as a listing showed it just
 * before the rename (undefined: there was none). The rename replaces a symbolic link itself, but
 * a listing, stat() and a quota's walk all show a link inside the root as the entry it names, so
 * that is what it replaced for them. A quota's byte delta comes from the two.
 */
export interface CommittedEntry extends EntryInfo {
  /** The entry the rename replaced, as a listing showed it; undefined when there was none. */
  replaced: EntryInfo | undefined;
}

/** How rename() treats a file at its destination. */
export interface RenameOptions {
  /** Thrown instead of replacing a file at the destination (the server: the user may not delete). */
  refuseReplacing?: Error;
}

/** What rename() acted on, as lstat saw it just before: the entry moved, and the file it replaced. */
export interface RenamedEntries {
  /** The entry moved, as it was at `from`. */
  moved: EntryInfo;
  /** Undefined when nothing was at the destination. */
  replaced: EntryInfo | undefined;
}

/** A file opened for reading. Reads never block the loop. */
export interface ReadHandle {
  /** Bytes, as the file was when opened. */
  readonly size: number;
  /** Modification time when opened, milliseconds since the epoch. */
  readonly mtimeMs: number;
  /** Permission bits (0 to 0o777). */
  readonly mode: number;
  /** The content digest under `algorithm` (with its block digests), if storage knows it for this version. */
  knownDigest(algorithm: IntegrityAlgorithm): FileDigest | undefined;
  /** The caller hashed the whole file as opened: remember it for later readers. */
  rememberDigest(digest: FileDigest): void;
  /**
   * The digests d_0 … of this version's first blocks under `algorithm`, as far as storage knows
   * them (all of them when it knows the whole digest; maybe none).
   */
  knownLeadingBlocks(algorithm: IntegrityAlgorithm): readonly Buffer[];
  /** The caller hashed this version's first whole blocks (not the whole file): remember their digests. */
  rememberLeadingBlocks(algorithm: IntegrityAlgorithm, blockDigests: readonly Buffer[]): void;
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; resolves to bytes read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /**
   * Whether the file was written since it was opened (its size, modification time or change
   * time moved; a change time moved with the link count, an unlink, is none, and so are
   * storage's own utime, chmod and rename). Storage never writes it; another program on the host
   * may, under a download.
   */
  changedSinceOpen(): Promise<boolean>;
  /**
   * The `length` bytes at `position` without a copy, where storage holds the file in memory, or
   * undefined (then read() them). Valid for as long as anyone holds it: storage never rewrites a
   * file in place (an upload replaces it by a rename), so the bytes are the version opened.
   */
  view?(position: number, length: number): Buffer | undefined;
  /** Releases the file. */
  close(): Promise<void>;
}

/** What commit() checks at the last moment. */
export interface CommitOptions {
  /**
   * Called with what the rename is about to replace (as lstat sees it, undefined: nothing), under
   * the target's lock, so no other change muxftp makes to the target comes between the look and
   * the rename. Throwing refuses the commit with that error; the temporary file is dropped.
   */
  beforeReplace?: (replaced: EntryInfo | undefined) => void;
  /**
   * Called under the target's lock right after the rename, with what commit() resolves to later:
   * from then on the file is under its name, whatever follows (its directory's flush), and a
   * change another client makes to it (a delete) comes after. Optional for a Storage to call:
   * the server then takes commit()'s result as the moment.
   */
  onPlaced?: (entry: CommittedEntry) => void;
  /**
   * The modification time to give the file, in ms since the epoch (the client's source file's,
   * `put` keeping times); set before the rename, so the file never shows under its name with
   * another. Default: the time it was written.
   */
  mtimeMs?: number;
  /**
   * The permission bits to give the file (0 to 0o777: the client's source file's, `put` keeping
   * them), less the server's umask, always with read and write for the server's own account
   * (it serves the file and may continue it); set before the rename, as the time. Default: what
   * a new file gets there: the kernel's (the umask, or its directory's default ACL) as it was
   * created, or the umask's when createUpload was told `bitsCarried` (it was the server's alone).
   */
  mode?: number;
}

/**
 * An upload in progress: bytes go to a hidden temporary file beside the target, which is
 * renamed onto the target only by commit(). abort() removes the temporary file. After either,
 * the handle is finished and further calls reject.
 */
export interface UploadHandle {
  /** Appends bytes in order. Callers wait for one write before issuing the next. */
  write(chunks: readonly Buffer[]): Promise<void>;
  /**
   * Makes the upload visible under its target name, atomically; returns the new entry and what
   * it replaced. The caller passes the verified digest so later downloads need not hash the file
   * again.
   */
  commit(digest?: FileDigest, options?: CommitOptions): Promise<CommittedEntry>;
  /**
   * Drops the temporary file. Safe to call more than once and after a failed commit. With
   * `keepPartial`, an upload started with a `partial` key keeps its whole 4 MiB blocks for a
   * later resume (issue #8) instead, or the kept data untouched when it wrote nothing; any other
   * upload is dropped as usual. Resolves to the bytes kept (0: nothing), in the turn the kept
   * data is listed by keptPartials() again.
   */
  abort(options?: { keepPartial?: boolean }): Promise<number>;
  /**
   * Bytes of kept partial data (issue #8) this upload took over when it started: its file now,
   * no longer listed by keptPartials(). 0 or absent when it took over none.
   */
  readonly takenOverBytes?: number;
  /**
   * Reads the kept data this upload took over (`takenOverBytes` of it) through its own file, as
   * FileHandle.read: a resumed upload hashes the bytes before its offset here, after the takeover,
   * so what it checked is what it continues. (Read through another handle before it, they could
   * be rewritten by another upload of the same key in between.) Absent: the storage cannot
   * continue uploads, and a resume fails with NOT_FOUND.
   */
  readKept?(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
}

/**
 * What an interrupted upload's kept data is filed under (issue #8): its target, the whole file's
 * size, the algorithm, and the source's identity the client declared before sending a byte —
 * its D, or an opaque identity of its own. Data kept for one source file is so not offered for
 * another (and the client compares block digests before it extends anything).
 */
export interface PartialKey {
  /** The whole file's size (bytes), not what was kept. */
  readonly size: number;
  /** The integrity algorithm the client declared the upload under (`digest`'s). */
  readonly algorithm: IntegrityAlgorithm;
  /** D, hex, when the client declared it... */
  readonly digest?: string;
  /** ...else the client's own identity of the source file version (opaque). */
  readonly source?: string;
}

/** The kept data of an interrupted upload, opened for reading. */
export interface PartialRead {
  /** Bytes kept. */
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; resolves to bytes read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Releases the file. */
  close(): Promise<void>;
}

/** What sweepTemporaryFiles() keeps, and whom it tells about kept partial uploads it removes. */
export interface SweepOptions {
  /** Kept partial uploads younger than this (ms since their last write) stay. Default 0. */
  partialRetentionMs?: number;
  /**
   * Expired kept partial uploads only; other temporary files stay. For a server already running
   * (its retention timer): a temporary file it does not know of is then not a crash's leftover
   * but may be another process's transfer in progress in the same tree. Default false.
   */
  partialsOnly?: boolean;
  /**
   * Other temporary files only when their last change is older than this: for a server that
   * could not take its root's lock, which cannot tell another server's uploads in flight from a
   * crash's leftovers but by their age. Default: any age.
   */
  temporariesUntouchedForMs?: number;
  /**
   * Called for each kept partial upload removed, with its directory (a client path below the
   * storage's root) and its size, in the turn the removal completed: a quota frees the bytes.
   */
  onPartialRemoved?: (dir: string, bytes: number) => void;
  /**
   * Asked of each directory below the root that holds a served-root lock (SERVED_ROOT_LOCK_NAME),
   * with its path on the host: true when another live server serves it, whose uploads in flight
   * there are not this one's leftovers; its whole tree is then left alone. Default: none asked.
   */
  servedByAnother?: (hostDirectory: string) => Promise<boolean>;
}

/** Whom rmdir(), remove(), dropKeptPartials() and dropPartial() tell about the kept partial uploads they remove. */
export interface RmdirOptions {
  /**
   * Called for each kept partial upload removed, with its directory (a client path, normalized)
   * and its size, in the turn the removal completed: a quota frees the bytes.
   */
  onPartialRemoved?: (dir: string, bytes: number) => void;
}

/** What dropKeptPartials() spares, and whom it tells about what it removes. */
export interface DropKeptPartialsOptions extends RmdirOptions {
  /** The key whose kept data stays (an upload's own). */
  keeping?: PartialKey;
}

/** How a listing goes (Storage.listBatches). */
export interface ListBatchesOptions {
  /** Aborted when no one wants the listing any more: a wait for memory ends with it. */
  signal?: AbortSignal;
  /**
   * Told true when the listing waits for memory other listings hold (a big directory, past the
   * storage's listing budget), false when it goes on: the wait is the server's, not the client's.
   */
  onWaitingForMemory?: (waiting: boolean) => void;
  /**
   * The listing fails UNSUPPORTED at once when the directory holds more entries than this (a
   * client that would rather ask for the few it wants): before sorting or looking anything up.
   */
  maxEntries?: number;
}

/** Where a server keeps its files; implement it to serve something other than a disk or memory. */
export interface Storage {
  /** A short description for logs, e.g. `disk:/srv/files` or `memory`. */
  readonly description: string;
  /** The entry at `path`; rejects NOT_FOUND if there is none. */
  stat(path: string): Promise<EntryInfo>;
  /** Entries of a directory, sorted by name; temporary upload files never appear. */
  list(path: string): Promise<EntryInfo[]>;
  /**
   * The same entries, in the same order, a bounded batch at a time, looked up only as the
   * consumer asks: stop iterating and the work stops.
   */
  listBatches(path: string, options?: ListBatchesOptions): AsyncIterable<EntryInfo[]>;
  /**
   * Creates a directory; with `parents`, missing ancestors too and no error if it exists. With
   * `mode`, the directory made at `path` (not a parent made with it) gets those permission bits
   * less the umask, and never fewer than the server's own (SERVER_OWN_DIRECTORY_BITS).
   * Resolves whether it made the directory at `path`: false when, with `parents`, it was there
   * already (the server then logs no change). A Storage that resolves nothing is taken as having
   * made it.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: an embedder's Storage from before may resolve nothing.
  mkdir(path: string, options?: { parents?: boolean; mode?: number }): Promise<boolean | void>;
  /**
   * Removes an empty directory. What interrupted uploads kept in it (hidden, issue #8) goes with
   * it when nothing else is there, each reported to `onPartialRemoved`.
   */
  rmdir(path: string, options?: RmdirOptions): Promise<void>;
  /**
   * Gives a file or directory `mtimeMs` (ms since the epoch) as its modification time; returns the
   * entry as it is then. Anything else (a symbolic link) is refused UNSUPPORTED, unchanged.
   * `ifUnchanged`: only if it is still a file of that size and time (whole ms), else nothing is set.
   */
  setModifiedTime?(
    path: string,
    mtimeMs: number,
    options?: { ifUnchanged?: { size: number; mtimeMs: number } },
  ): Promise<EntryInfo>;
  /**
   * Gives a file or directory the permission bits `mode` (0 to 0o777), never fewer than the
   * server's own (read and write of a file, and search of a directory: it must go on serving
   * them); returns the entry as it is then. Anything else (a symbolic link) is refused
   * UNSUPPORTED, unchanged. `ifUnchanged`: as for setModifiedTime.
   */
  setPermissions?(
    path: string,
    mode: number,
    options?: { ifUnchanged?: { size: number; mtimeMs: number } },
  ): Promise<EntryInfo>;
  /**
   * Removes a file (not a directory); returns it as lstat saw it just before (a symlink is
   * `other`). A symbolic link is removed as itself, wherever it leads (outside the root too).
   * What interrupted uploads kept for the file goes with it (dropKeptPartials), each told to
   * `onPartialRemoved`.
   */
  remove(path: string, options?: RmdirOptions): Promise<EntryInfo>;
  /**
   * Moves a file or directory; replaces an existing file at `to`, never a directory. With
   * `refuseReplacing`, a file at `to` is not replaced: that error is thrown instead (decided under
   * the same lock as the move, so no file slips in between).
   */
  rename(from: string, to: string, options?: RenameOptions): Promise<RenamedEntries>;
  /** Opens a file for reading; rejects IS_A_DIRECTORY for a directory. */
  openRead(path: string): Promise<ReadHandle>;
  /**
   * Starts an upload to `path`; its parent directory must exist. `expectedSize` is a hint that
   * lets in-memory storage allocate the file once instead of growing it.
   */
  createUpload(
    path: string,
    options?: {
      expectedSize?: number;
      /** Keep the data under this key if the upload is aborted with keepPartial. */
      partial?: PartialKey;
      /** Continue the data kept under `partial` from this many bytes (it must hold them). */
      resumeFrom?: number;
      /**
       * Told of each kept partial upload of the same file under another key that the upload
       * drops as it starts (one kept upload per file: the new one replaces it).
       */
      onPartialRemoved?: RmdirOptions['onPartialRemoved'];
      /**
       * commit() will be given bits (CommitOptions.mode: a put keeping its source's): the
       * temporary file, and kept data taken over, is then the server's alone until committed
       * (transferFileBits). Without, it is created as any new file, the umask or its directory's
       * default ACL deciding its bits, and a commit() given none leaves them (kept data taken
       * over loses those the umask takes). Default false.
       */
      bitsCarried?: boolean;
    },
  ): Promise<UploadHandle>;
  /**
   * The data kept for `path` under `key`, if any (none while an upload in flight writes it).
   * Optional: a storage without it never keeps partial uploads, so every resume starts at 0 (both
   * built-in storages, disk and memory, keep them).
   */
  openPartial?(path: string, key: PartialKey): Promise<PartialRead | undefined>;
  /**
   * Whether an upload in flight writes the data kept for `path` under `key` (openPartial gives
   * none then): a `partial` query says so. Optional, like openPartial.
   */
  partialInUse?(path: string, key: PartialKey): Promise<boolean>;
  /**
   * Removes the data kept for `path` under `key` alone (found where openPartial finds it), but not
   * while an upload in flight writes it: a `partial` request with `drop`, from a client that found
   * the file already whole and will not continue it (`put -c`, `--skip-identical`). Optional,
   * like openPartial; best effort (nothing kept, or a name that is no file, is no error).
   */
  dropPartial?(path: string, key: PartialKey, options?: RmdirOptions): Promise<void>;
  /**
   * The directory `path` (created if missing) as a Storage rooted there: a user's home. Nothing
   * outside it is reachable through the view.
   */
  subtree(path: string): Promise<Storage>;
  /**
   * The kept partial uploads in the directory `path` (issue #8) that no upload in flight has
   * taken over, by their temporary names: the bytes they hold count against a quota. Optional,
   * like openPartial.
   */
  keptPartials?(path: string): Promise<EntryInfo[]>;
  /**
   * Removes what interrupted uploads kept for the file `path` (any key but `keeping`), but data an
   * upload in flight has taken over: before an upload of the file counts its room against a quota
   * (they would hold it until their retention ran out). createUpload does the same as an upload
   * starts, remove() as the file goes. Optional, like keptPartials; best effort.
   */
  dropKeptPartials?(path: string, options?: DropKeptPartialsOptions): Promise<void>;
  /**
   * Removes temporary files left behind by a crash, and kept partial uploads older than
   * `partialRetentionMs` (default 0: all of them; with `partialsOnly`, only those). Resolves to
   * how many were removed.
   */
  sweepTemporaryFiles(options?: SweepOptions): Promise<number>;
  /**
   * The filesystem the files are on: its size and the bytes an unprivileged writer may still use
   * (statfs's blocks and bavail, less what uploads in flight declared and have not written yet),
   * and what kept partial uploads under the root hold of what is used; or undefined where there
   * is none to ask (memory). Optional.
   */
  space?(): Promise<{ totalBytes: number; freeBytes: number; keptBytes?: number } | undefined>;
  /**
   * Aborts uploads in progress (a resumable one keeps its whole blocks) and closes open files;
   * the work it started on its own (a sweep, stopped at its next directory; kept partials'
   * removals; files closing) has ended once it resolves. No time limit of its own: a call hung on
   * a dead mount holds it (`serve` waits DEFAULTS.stopStorageWaitMs, then goes on without it).
   */
  close(): Promise<void>;
}
