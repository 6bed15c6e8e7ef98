/**
 * An upload in progress on FsStorage: bytes go to a hidden temporary file beside the target, and
 * commit() renames it onto the target only after the server verified the upload.
 */

import { DEFAULTS } from '../shared/defaults.js';
import type { RoomClaim } from '../shared/diskRoom.js';
import { StorageError } from '../shared/errors.js';
import { keepPermissionBits, SERVER_OWN_FILE_BITS } from '../shared/fileModes.js';
import { fileTime } from '../shared/fileTimes.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import type { FileDigest } from '../shared/integrity/contentDigest.js';
import type { DigestCache } from './digestCache.js';
import type { DirectorySyncs } from './directorySyncs.js';
import { entryInfo } from './entryInfo.js';
import type { FsFileHandle, FsPromises, FsStats } from './fsApi.js';
import { storageErrorFromFs } from './fsErrors.js';
import { baseName, type Resolved } from './paths.js';
import type { CommitOptions, CommittedEntry, EntryInfo, UploadHandle } from './types.js';

const noop = (): void => {};

/** Reserves room for `bytes` in the file behind `handle`; returns the release, or undefined. */
export type Reserve = (handle: FsFileHandle, bytes: number) => (() => void) | undefined;

/**
 * A declared size is reserved once this fraction of it has arrived: a client cannot make the
 * server reserve more than this many times what it actually sent (issue #7; address space, which
 * becomes memory only as data fills it, within the caps of shared/defaults.ts), and the copy into
 * the reserved buffer stays small: 16 MiB for 1 GiB, where 1/8 stalled other clients ~0.1 s.
 */
const RESERVE_AFTER_FRACTION = 1 / 64;

export interface UploadContext {
  fs: FsPromises;
  handle: FsFileHandle;
  temporaryPath: string;
  /** Where the open temporary file really is (storage's locateOpened), or undefined. Optional. */
  locate?: (handle: FsFileHandle) => Promise<string | undefined>;
  target: Resolved;
  durable: boolean;
  parentHostPath: string;
  /** Flushes the parent directory after the rename, shared with uploads committing beside it. */
  directorySyncs: DirectorySyncs;
  /** The size the client declared (0 for none): a claim, reserved only once data backs it. */
  expectedSize: number;
  reserve: Reserve | undefined;
  /** The room on disk admitted for what was declared (diskRoom.ts): handed back as it is written. */
  room: RoomClaim | undefined;
  /** Bytes already in the file: a resumed partial upload continues after them. */
  startOffset: number;
  /** The temporary file is a partial upload's, which abort({keepPartial}) keeps (whole blocks). */
  keepable: boolean;
  /** Bytes the partial file held when opened (kept data taken over; it may run past startOffset). */
  heldBytes: number;
  /** The file is the server's alone until committed (createUpload's bitsCarried). */
  bitsCarried: boolean;
  digests: DigestCache;
  /** Runs `task` while no other delete, rename or commit touches the target (storage/pathLocks.ts). */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
  /**
   * Re-checks the target just before the rename; throws a StorageError to refuse. Resolves to
   * what the rename replaces as a listing shows it (a link inside the root as the entry it names,
   * which is what a quota's walk counted and what stat() showed when the upload started), or
   * undefined when nothing is there.
   */
  checkTarget(): Promise<EntryInfo | undefined>;
  /** Called once, when the upload is committed or its temporary file is gone, or kept (`kept`). */
  onFinish(kept: boolean): void;
}

export class FsUpload implements UploadHandle {
  readonly #context: UploadContext;
  /** Host path of the temporary file, for the rename check. */
  readonly temporaryPath: string;
  readonly #clientPath: string;
  readonly takenOverBytes: number;
  /** Bytes abort({keepPartial}) kept. */
  #kept = 0;
  /** Bytes written so far: the position of the next write. */
  #offset = 0;
  /** The write in progress (settled), so commit and abort wait for it. */
  #writing: Promise<void> = Promise.resolve();
  /** Set by a failed write: the file is incomplete, so every later call fails with it. */
  #failure: StorageError | undefined;
  /** Where the temporary file really was when its handle closed (UploadContext.locate). */
  #located: string | undefined;
  #handleClosed = false;
  /** Size of the reserved buffer (0: none), and how to give it back. */
  #reservedSize = 0;
  #releaseReservation: (() => void) | undefined;
  /** Set by the first commit() or abort(). */
  #finishing: Promise<unknown> | undefined;
  /** Bytes written since the last early flush started (durable uploads only). */
  #unflushed = 0;
  /** An early flush in flight (see #flushAhead). */
  #flushingAhead: Promise<void> | undefined;

  constructor(context: UploadContext) {
    this.#context = context;
    this.temporaryPath = context.temporaryPath;
    this.#clientPath = context.target.clientPath;
    this.#offset = context.startOffset;
    this.takenOverBytes = context.heldBytes;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    if (this.#finishing) return Promise.reject(this.#finishedError());
    const written = this.#writing.then(() => this.#writeNow(chunks));
    this.#writing = written.catch(noop);
    return written;
  }

  async readKept(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.#finishing) throw this.#finishedError();
    if (position + length > this.takenOverBytes) throw new RangeError('readKept: past the kept data');
    return (await this.#context.handle.read(buffer, offset, length, position)).bytesRead;
  }

  commit(digest?: FileDigest, options: CommitOptions = {}): Promise<CommittedEntry> {
    if (this.#finishing) return Promise.reject(this.#finishedError());
    const committed = this.#writing.then(() => this.#commitNow(digest, options));
    this.#finishing = committed.catch(noop);
    return committed;
  }

  abort(options: { keepPartial?: boolean } = {}): Promise<number> {
    const keep = options.keepPartial === true && this.#context.keepable;
    if (this.#finishing === undefined)
      this.#finishing = this.#writing.then(() => (keep ? this.#keepWholeBlocks() : this.#discard()));
    const kept = () => this.#kept;
    return this.#finishing.then(kept, kept);
  }

  async #writeNow(chunks: readonly Buffer[]): Promise<void> {
    if (this.#failure) throw this.#failure;
    const { handle } = this.#context;
    const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    this.#reserveWhenBacked(this.#offset + total);
    try {
      let written = 0;
      if (handle.writev && total > 0) {
        written = (await handle.writev([...chunks], this.#offset)).bytesWritten;
      }
      // writev may stop short (or be missing): finish chunk by chunk from where it stopped.
      let skip = written;
      for (const chunk of chunks) {
        let done = Math.min(skip, chunk.length);
        skip -= done;
        while (done < chunk.length) {
          const { bytesWritten } = await handle.write(
            chunk,
            done,
            chunk.length - done,
            this.#offset + written,
          );
          if (bytesWritten <= 0) throw new Error('write made no progress');
          done += bytesWritten;
          written += bytesWritten;
        }
      }
      this.#offset += total;
      this.#context.room?.wrote(total);
      this.#flushAhead(total);
    } catch (error) {
      this.#failure = storageErrorFromFs(error, this.#clientPath);
      throw this.#failure;
    }
  }

  /**
   * A durable upload starts flushing what it has written every DEFAULTS.uploadFlushAheadBytes, in
   * the background while more arrives, so the flush before the commit finds little left: the
   * disk writes while the network receives, instead of after it (a 1 GiB put waited ~20% of its
   * time for that final flush; bench/README.md). The commit's own flush still decides durability.
   */
  #flushAhead(bytes: number): void {
    if (!this.#context.durable) return;
    this.#unflushed += bytes;
    if (this.#unflushed < DEFAULTS.uploadFlushAheadBytes || this.#flushingAhead !== undefined) return;
    this.#unflushed = 0;
    const flushing = this.#context.handle.datasync().then(noop, noop);
    this.#flushingAhead = flushing;
    void flushing.then(() => {
      if (this.#flushingAhead === flushing) this.#flushingAhead = undefined;
    });
  }

  /** Reserves the declared size once `bytes` is a fair part of it; a refusal is retried later. */
  #reserveWhenBacked(bytes: number): void {
    const { expectedSize, reserve, handle } = this.#context;
    if (reserve === undefined || this.#reservedSize > 0 || expectedSize <= 0) return;
    if (bytes < expectedSize * RESERVE_AFTER_FRACTION || bytes > expectedSize) return;
    try {
      this.#releaseReservation = reserve(handle, expectedSize);
    } catch {
      this.#releaseReservation = undefined; // no memory for it: go on without
    }
    if (this.#releaseReservation !== undefined) this.#reservedSize = expectedSize;
  }

  #release(): void {
    this.#context.room?.release();
    this.#releaseReservation?.();
    this.#releaseReservation = undefined;
  }

  async #commitNow(digest: FileDigest | undefined, options: CommitOptions): Promise<CommittedEntry> {
    const { fs, handle, temporaryPath, target, durable } = this.#context;
    let stats: FsStats;
    let replaced: EntryInfo | undefined;
    /** Renamed onto the target: from then on a failure must not remove it. */
    let placed = false;
    /** The caller's beforeReplace refused: its error goes back as it is. */
    let refusal: { error: unknown } | undefined;
    try {
      if (this.#failure) throw this.#failure;
      await this.#flushingAhead;
      // A reserved buffer, or kept data taken over, may run past what this upload wrote.
      const longest = Math.max(this.#reservedSize, this.#context.heldBytes);
      if (longest > this.#offset) await handle.truncate(this.#offset);
      // The bits and the time first, so the stat below (the digest cache's version) sees the file
      // as it stays; the bits before the time (memfs's chmod moves mtime). A filesystem that
      // refuses either costs it, not the verified upload (the entry says what the file got).
      // Without bits asked for, the kernel's (umask or default ACL), unless it was made the
      // server's alone (bitsCarried): a new file's then.
      await keepPermissionBits(handle, options.mode, {
        floor: SERVER_OWN_FILE_BITS,
        // Kept data taken over: a file made before, maybe under another umask.
        createdHere: this.#context.heldBytes === 0,
        bitsCarried: this.#context.bitsCarried,
      }).catch(noop);
      if (options.mtimeMs !== undefined)
        await handle.utimes(new Date(), fileTime(options.mtimeMs)).catch(noop);
      // datasync covers the data and the size, which is all a reader needs.
      if (durable) await handle.datasync();
      stats = await handle.stat();
      // The file stays open through the rename: asked where it is only if it must be removed
      // (#discard), and asked its version after the rename on its descriptor, not by its path.
      replaced = await this.#context.exclusive(async () => {
        const entry = await this.#context.checkTarget();
        try {
          options.beforeReplace?.(entry);
        } catch (error) {
          refusal = { error };
          throw error;
        }
        if (entry === undefined && fs.renameOntoNothing !== undefined)
          await fs.renameOntoNothing(temporaryPath, target.hostPath);
        else await fs.rename(temporaryPath, target.hostPath);
        placed = true;
        // Still under the lock: a delete of the file just placed is told of after this.
        options.onPlaced?.({ ...entryInfo(baseName(this.#clientPath), stats!), replaced: entry });
        // The rename changed ctime: the version readers will see, taken and remembered while no
        // delete, rename or commit can have replaced the file at the target; if the file is still
        // as we wrote it (a writer outside muxftp may have changed it since; a rename changes
        // neither size nor mtime).
        if (digest !== undefined) {
          const committed = await handle.stat().catch(() => undefined);
          if (committed !== undefined && committed.size === stats.size && committed.mtimeMs === stats.mtimeMs)
            this.#context.digests.set(committed, digest);
        }
        return entry;
      });
    } catch (error) {
      // Once renamed, the file is the target's: #discard would find it there and remove it.
      await (placed ? this.#closePlaced() : this.#discard());
      if (refusal !== undefined) throw refusal.error;
      throw (await this.#temporaryFileTaken(error)) ?? storageErrorFromFs(error, this.#clientPath);
    }
    await this.#closePlaced();
    if (durable) await this.#context.directorySyncs.sync(this.#context.parentHostPath);
    return { ...entryInfo(baseName(this.#clientPath), stats), replaced };
  }

  /**
   * The rename failed ENOENT with the directory still there: the temporary file itself was removed
   * behind the server's back (another server sweeping the same root at its start, a cleanup job).
   * Said so, rather than NOT_FOUND on the target, which reads as a missing directory.
   */
  async #temporaryFileTaken(error: unknown): Promise<StorageError | undefined> {
    if ((error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') return undefined;
    const directory = await this.#context.fs.stat(this.#context.parentHostPath).catch(() => undefined);
    if (directory?.isDirectory() !== true) return undefined;
    return new StorageError(
      'IO_ERROR',
      `the upload's temporary file was removed from the server's disk before it could be put in place (by another process: a second server on the same root?): ${this.#clientPath}`,
      this.#clientPath,
      { cause: error },
    );
  }

  /**
   * Keeps the whole blocks written (issue #8: a resume continues from a block boundary) for a
   * later put with offset; nothing at all is removed. An upload that wrote nothing leaves the
   * kept data it took over as it was. Never throws.
   */
  async #keepWholeBlocks(): Promise<void> {
    const { heldBytes, startOffset } = this.#context;
    const untouched = this.#failure === undefined && this.#offset === startOffset;
    // After a failed write (a full disk) what this upload wrote is not trusted, but the blocks it
    // continued from were there before, whole, and took no room now: kept as they were, where a
    // put -c into a disk someone else filled lost an earlier attempt's blocks.
    const whole = untouched
      ? heldBytes
      : this.#failure === undefined
        ? Math.floor(this.#offset / INTEGRITY_BLOCK_BYTES) * INTEGRITY_BLOCK_BYTES
        : Math.min(startOffset, heldBytes);
    if (whole === 0) return this.#discard();
    try {
      if (!untouched) await this.#context.handle.truncate(whole);
      await this.#closeHandle();
    } catch {
      return this.#discard();
    }
    this.#kept = whole;
    this.#release();
    this.#context.onFinish(true);
  }

  /**
   * The file is under the target's name: closed without asking where it is (nothing is left to
   * remove), and a failed close (which Linux does not report for a file this process wrote) cannot
   * undo the upload.
   */
  async #closePlaced(): Promise<void> {
    this.#handleClosed = true;
    await this.#context.handle.close().catch(noop);
    this.#release();
    this.#context.onFinish(false);
  }

  /** Closes the file and removes it; never throws. */
  async #discard(): Promise<void> {
    const { fs, temporaryPath } = this.#context;
    await this.#closeHandle().catch(noop);
    // A directory on its path swapped for a link (a host user racing) leaves the path refused,
    // and the file, with the client's bytes, behind: removed where it really was.
    const located = this.#located;
    await fs.unlink(temporaryPath).catch(async () => {
      // Already removed, the kernel names it "… (deleted)": nothing to do.
      if (located !== undefined && located !== temporaryPath && !located.endsWith(' (deleted)'))
        await fs.unlink(located).catch(noop);
    });
    this.#release();
    this.#context.onFinish(false);
  }

  async #closeHandle(): Promise<void> {
    if (this.#handleClosed) return;
    this.#handleClosed = true;
    await this.#flushingAhead;
    // Where the file really is, asked while it is open (the kernel's answer, not its path).
    this.#located = await this.#context.locate?.(this.#context.handle).catch(() => undefined);
    await this.#context.handle.close();
  }

  #finishedError(): StorageError {
    return new StorageError('IO_ERROR', `upload already finished: ${this.#clientPath}`, this.#clientPath);
  }
}
