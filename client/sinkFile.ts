/**
 * The hidden temporary file a download writes (client/sinks.ts's FileSink): created, written,
 * closed and renamed into place on the loop while file calls are fast (localFileCalls, as put's
 * reads are), through the threadpool otherwise and for large writes.
 *
 * Why: get of 5,000 small files spent ~1 s of the client's loop handing these calls to the
 * threadpool (open, write, close, rename: four hand-offs of 40–90 µs each per file on our 2-core
 * VMs), and the loop was that download's bottleneck. A large write stays in the threadpool: on
 * the loop, the copies into fresh pages slowed get of large files (bench/README.md).
 */
import {
  close,
  closeSync,
  fchmod,
  fchmodSync,
  fstat,
  fstatSync,
  ftruncate,
  futimes,
  futimesSync,
  lstatSync,
  openSync,
  renameSync,
  writev,
  writevSync,
} from 'node:fs';
import { type FileHandle, lstat, open, rename } from 'node:fs/promises';
import { CallsInFlight } from '../shared/callsInFlight.js';
import { DEFAULTS } from '../shared/defaults.js';
import { closedFileError } from '../shared/errnoReasons.js';
import { NEW_FILE_BITS } from '../shared/fileModes.js';
import { localFileCalls } from './sources.js';

/**
 * A new file opened for writing, written in order from its start. Like FileHandle, close() waits
 * for calls still in the threadpool, so the descriptor cannot name another file when they run.
 */
export class SinkFile {
  readonly #fd: number | undefined;
  readonly #handle: FileHandle | undefined;
  #closed = false;
  readonly #calls = new CallsInFlight();

  private constructor(fd: number | undefined, handle: FileHandle | undefined) {
    this.#fd = fd;
    this.#handle = handle;
  }

  /**
   * Creates `path`, which must not exist (O_EXCL: nothing there is followed or reused), with
   * `mode` (less the umask; a download's: transferFileBits).
   */
  static async create(path: string, mode = NEW_FILE_BITS): Promise<SinkFile> {
    return localFileCalls.run(
      () => new SinkFile(openSync(path, 'wx', mode), undefined),
      async () => new SinkFile(undefined, await open(path, 'wx', mode)),
    );
  }

  /**
   * Writes all of `chunks` after what was written before (a short write goes on from where it
   * stopped); resolves to the bytes written. close() waits for the whole of it.
   */
  writeAll(chunks: readonly Buffer[]): Promise<number> {
    if (this.#closed) return Promise.reject(closedFileError());
    return this.#calls.track(this.#writeAll(chunks));
  }

  #writeAll(chunks: readonly Buffer[]): Promise<number> {
    return writeFully(chunks, (left, _written, leftBytes) => this.#writev(left, leftBytes));
  }

  async #writev(chunks: Buffer[], bytes: number): Promise<number> {
    const fd = this.#fd;
    if (fd === undefined) return (await this.#handle!.writev(chunks)).bytesWritten;
    if (bytes <= DEFAULTS.inlineUploadWriteMaxBytes) {
      return localFileCalls.run(
        () => writevSync(fd, chunks),
        () => writevAsync(fd, chunks),
      );
    }
    return writevAsync(fd, chunks);
  }

  /** Through the threadpool: cutting a file back frees its blocks. */
  async truncate(length: number): Promise<void> {
    if (this.#closed) throw closedFileError();
    if (this.#handle !== undefined) return this.#handle.truncate(length);
    const fd = this.#fd!;
    await this.#calls.track(
      new Promise<void>((resolve, reject) => ftruncate(fd, length, (err) => (err ? reject(err) : resolve()))),
    );
  }

  /** Sets the access and modification times (seconds since the epoch) once the writes are done. */
  async utimes(atime: number | Date, mtime: number | Date): Promise<void> {
    const fd = await this.#afterWrites();
    if (fd === undefined) return this.#handle!.utimes(atime, mtime);
    await this.#trackOpen(() =>
      localFileCalls.run(
        () => futimesSync(fd, atime, mtime),
        () =>
          new Promise<void>((resolve, reject) =>
            futimes(fd, atime, mtime, (err) => (err ? reject(err) : resolve())),
          ),
      ),
    );
  }

  /** The file's stats (its mode, as created), once the writes are done. */
  async stat(): Promise<{ mode: number }> {
    const fd = await this.#afterWrites();
    if (fd === undefined) return this.#handle!.stat();
    return this.#trackOpen(() =>
      localFileCalls.run(
        () => fstatSync(fd),
        () =>
          new Promise((resolve, reject) => fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats)))),
      ),
    );
  }

  /** Sets the permission bits once the writes are done. */
  async chmod(mode: number): Promise<void> {
    const fd = await this.#afterWrites();
    if (fd === undefined) return this.#handle!.chmod(mode);
    await this.#trackOpen(() =>
      localFileCalls.run(
        () => fchmodSync(fd, mode),
        () =>
          new Promise<void>((resolve, reject) => fchmod(fd, mode, (err) => (err ? reject(err) : resolve()))),
      ),
    );
  }

  /** The descriptor (undefined: a FileHandle) once no write is in flight; EBADF once closed. */
  async #afterWrites(): Promise<number | undefined> {
    if (this.#closed) throw closedFileError();
    await this.#calls.allSettled();
    return this.#fd;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#calls.allSettled();
    if (this.#handle !== undefined) return this.#handle.close();
    const fd = this.#fd!;
    await localFileCalls.run(
      () => closeSync(fd),
      () => closeAsync(fd),
    );
  }

  /**
   * `start`'s call, tracked, unless the file was closed meanwhile (after #afterWrites() waited):
   * a call started on a closed descriptor reaches whatever file took its number since.
   */
  #trackOpen<T>(start: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedFileError());
    return this.#calls.track(start());
  }
}

/**
 * What is at a download's target as it starts, as lstat(2) sees it (a link to a directory is no
 * directory: the rename replaces the link): one look per download, on the loop while file calls
 * are fast, as the rename's. What cannot be looked at is 'none': the download's own calls say
 * what is wrong.
 */
export async function targetKind(target: string): Promise<'none' | 'directory' | 'other'> {
  const info = await localFileCalls.run(
    () => {
      try {
        return lstatSync(target, { throwIfNoEntry: false });
      } catch {
        return undefined;
      }
    },
    () => lstat(target).catch(() => undefined),
  );
  return info === undefined ? 'none' : info.isDirectory() ? 'directory' : 'other';
}

/**
 * Renames `from` onto `to`: on the loop when nothing is at `to` (the usual download into a new
 * name), through the threadpool when something is, since replacing a file frees it in the call.
 * `replacing`: whether something was there when the download started (targetKind), so that `to`
 * is looked at once a download (a file put there meanwhile is replaced on the loop); else looked
 * at now.
 */
export async function renameIntoPlace(from: string, to: string, replacing?: boolean): Promise<void> {
  const renamed = await localFileCalls.run(
    () => {
      if (replacing ?? lstatSync(to, { throwIfNoEntry: false }) !== undefined) return false;
      renameSync(from, to);
      return true;
    },
    async () => false,
  );
  if (!renamed) await rename(from, to);
}

/**
 * Calls `writev` with what is left of `chunks` until all of it is written: a write may stop short
 * (a signal, a disk nearly full), and goes on from there. `written` is the bytes written so far,
 * `leftBytes` what is left; resolves to the bytes written.
 */
export async function writeFully(
  chunks: readonly Buffer[],
  writev: (left: Buffer[], written: number, leftBytes: number) => Promise<number>,
): Promise<number> {
  let bytes = 0;
  for (const chunk of chunks) bytes += chunk.length;
  let left = [...chunks];
  let written = 0;
  while (written < bytes) {
    const done = await writev(left, written, bytes - written);
    if (done <= 0) throw new Error('write made no progress');
    written += done;
    left = after(left, done);
  }
  return written;
}

/** `chunks` without their first `bytes` bytes. */
function after(chunks: Buffer[], bytes: number): Buffer[] {
  let skip = bytes;
  let i = 0;
  while (i < chunks.length && skip >= chunks[i]!.length) skip -= chunks[i++]!.length;
  const rest = chunks.slice(i);
  if (skip > 0) rest[0] = rest[0]!.subarray(skip);
  return rest;
}

function writevAsync(fd: number, chunks: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, chunks, (err, bytesWritten) => (err ? reject(err) : resolve(bytesWritten)));
  });
}

function closeAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    close(fd, (err) => (err ? reject(err) : resolve()));
  });
}
