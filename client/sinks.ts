import { constants, fstatSync, type Stats, statSync, unlinkSync } from 'node:fs';
import { copyFile, type FileHandle, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { MuxftpError } from '../shared/errors.js';
import { newTemporaryName } from '../shared/temporaryNames.js';
import { localError, localFileCalls } from './sources.js';

export interface ByteSink {
  /**
   * Writes chunks in order; callers wait for one write before the next. Unless the sink
   * `keepsChunks`, the chunks' memory is used again once the write is over.
   */
  write(chunks: readonly Buffer[]): Promise<void>;
  /** The sink holds on to the chunks it is given (a stream may buffer them, memory keeps them). */
  readonly keepsChunks: boolean;
  /** The sink drops every byte (Client.verify): nothing needs to be held for it at all. */
  readonly discards?: boolean;
  /** All bytes are verified: make them final. */
  finish(): Promise<void>;
  /** The download failed: drop what was written. Idempotent. */
  abort(): Promise<void>;
  /**
   * The connection was lost and the caller will try again: close, keep what was written (a hidden
   * file beside the target) and return its path for the next attempt to continue. Files only.
   */
  keep?(): Promise<string | undefined>;
}

/** What `Client.get` accepts: a local file path or a writable stream. */
export type GetTarget = string | Writable;

/**
 * `signal` cancels the wait for a FIFO's reader; `inPlace` is what isSpecialFile said of the
 * target, when the caller asked it already (else it is asked here).
 */
export async function openSink(
  target: GetTarget,
  signal?: AbortSignal,
  inPlace?: boolean,
): Promise<ByteSink> {
  if (typeof target !== 'string') return new WritableSink(target);
  if (inPlace ?? (await isSpecialFile(target))) {
    const sink = await SpecialFileSink.open(target, signal);
    if (sink !== undefined) return sink;
  }
  return FileSink.open(target);
}

/**
 * True when `target` exists (a symbolic link is followed, as `/dev/stdout` is one) and is neither
 * a regular file nor a directory: a FIFO, a device, a socket; or it is a link to the regular
 * file this process's stdin, stdout or stderr is (`get f /dev/stdout > out`: renaming a file onto
 * the link would replace it, /dev/stdout itself as root, and leave `out` empty). Written in place.
 */
export async function isSpecialFile(target: string): Promise<boolean> {
  // On the loop while file calls are fast: asked once per download, and a threadpool hand-off
  // for a stat cost more than the stat (500 × 64 KiB get -j 16: +0.06 s of client CPU).
  const info = await localFileCalls.run(
    () => statSync(target, { throwIfNoEntry: false }),
    () => stat(target).catch(() => undefined),
  );
  if (info === undefined || info.isDirectory()) return false;
  if (!info.isFile()) return true;
  // Only through a link (/dev/stdout, /dev/fd/1): `get f out > out` names the file itself, which
  // is replaced as usual (stdout, --json, writes into the file the shell opened, not into the new one).
  return (
    isStandardStreamFile(info) && (await lstat(target).catch(() => undefined))?.isSymbolicLink() === true
  );
}

/** `info` is the file one of this process's standard descriptors (0, 1, 2) is open on. */
function isStandardStreamFile(info: Stats): boolean {
  for (const fd of [0, 1, 2]) {
    try {
      const standard = fstatSync(fd);
      if (standard.dev === info.dev && standard.ino === info.ino) return true;
    } catch {
      // Closed: none there.
    }
  }
  return false;
}

/** Temporary files of downloads in progress in this process, by path. */
const temporaryFilesInProgress = new Set<string>();

/**
 * Removes the temporary files of every download in progress, synchronously: for a process that
 * must exit now (a second Ctrl-C) and so cannot wait for the downloads' own asynchronous cleanup.
 * Returns how many it removed.
 */
export function removeTemporaryFilesNow(): number {
  let removed = 0;
  for (const path of temporaryFilesInProgress) {
    try {
      unlinkSync(path);
      removed++;
    } catch {
      // Already gone, or never created: nothing to remove.
    }
  }
  temporaryFilesInProgress.clear();
  return removed;
}

/**
 * A download into a hidden temporary file beside its target, renamed onto the target only once
 * verified. The file is registered in `temporaryFilesInProgress` for as long as it may exist.
 */
abstract class HiddenFileSink implements ByteSink {
  readonly keepsChunks = false;
  protected readonly target: string;
  protected readonly temporary: string;
  protected handle: FileHandle | undefined;
  /** Work that writes and the end wait for (ContinueSink cuts its copy back first). */
  protected ready: Promise<void> | undefined;

  protected constructor(target: string, temporary: string, handle: FileHandle) {
    this.target = target;
    this.temporary = temporary;
    this.handle = handle;
  }

  abstract write(chunks: readonly Buffer[]): Promise<void>;

  async finish(): Promise<void> {
    const handle = this.handle!;
    this.handle = undefined;
    try {
      await this.ready;
      await handle.close();
      await rename(this.temporary, this.target);
      temporaryFilesInProgress.delete(this.temporary);
    } catch (err) {
      await unlink(this.temporary).catch(() => {});
      temporaryFilesInProgress.delete(this.temporary);
      throw localError(err, this.target);
    }
  }

  async abort(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) return;
    this.handle = undefined;
    await this.ready?.catch(() => {});
    await handle.close().catch(() => {});
    await unlink(this.temporary).catch(() => {});
    temporaryFilesInProgress.delete(this.temporary);
  }

  /** Still registered: a second Ctrl-C before the next attempt removes it too. */
  async keep(): Promise<string | undefined> {
    const handle = this.handle;
    if (handle === undefined) return undefined;
    this.handle = undefined;
    await this.ready?.catch(() => {});
    await handle.close().catch(() => {});
    return this.temporary;
  }
}

class FileSink extends HiddenFileSink {
  static async open(target: string): Promise<FileSink> {
    // Fixed length, not derived from the target's name: a 255-byte name must still fit.
    const temporary = join(dirname(target), newTemporaryName());
    // Known before it exists: a process told to exit while open() runs still removes it.
    temporaryFilesInProgress.add(temporary);
    try {
      return new FileSink(target, temporary, await open(temporary, 'wx'));
    } catch (err) {
      temporaryFilesInProgress.delete(temporary);
      throw localError(err, target);
    }
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    try {
      await this.handle!.writev(chunks as Buffer[]);
    } catch (err) {
      throw localError(err, this.target);
    }
  }
}

/**
 * get -c: continues a partial local file without touching it until the download is verified. The
 * partial file is copied (a reflink where the filesystem can) to a hidden temporary file, which is
 * cut back to the offset the server chose, receives the rest, and replaces the target only after
 * the whole file's digest checked out. A failure removes the copy: the partial file stays as it was.
 */
export class ContinueSink extends HiddenFileSink {
  private position = 0;

  static async open(target: string): Promise<ContinueSink> {
    const temporary = join(dirname(target), newTemporaryName());
    temporaryFilesInProgress.add(temporary);
    try {
      await copyFile(target, temporary, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      return new ContinueSink(target, temporary, await open(temporary, 'r+'));
    } catch (err) {
      await unlink(temporary).catch(() => {});
      temporaryFilesInProgress.delete(temporary);
      throw localError(err, target);
    }
  }

  /**
   * Continues a partial file an earlier attempt of this command kept (`keep()`): it is ours, a
   * hidden file beside the target already, so it is written in place instead of copied.
   */
  static async adopt(partial: string, target: string): Promise<ContinueSink> {
    temporaryFilesInProgress.add(partial);
    try {
      return new ContinueSink(target, partial, await open(partial, 'r+'));
    } catch (err) {
      await unlink(partial).catch(() => {});
      temporaryFilesInProgress.delete(partial);
      throw localError(err, target);
    }
  }

  /** The server's offset: keep the copy's first `offset` bytes, write from there. */
  startAt(offset: number): void {
    this.position = offset;
    this.ready = this.handle!.truncate(offset);
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    try {
      await this.ready;
      const { bytesWritten } = await this.handle!.writev(chunks as Buffer[], this.position);
      this.position += bytesWritten;
      let total = 0;
      for (const chunk of chunks) total += chunk.length;
      if (bytesWritten !== total) throw new Error('short write');
    } catch (err) {
      throw localError(err, this.target);
    }
  }
}

/**
 * An existing FIFO or device (`/dev/null`) as the target: written in place, as `cp` and `curl -o`
 * write into one; renaming a file onto it would replace the device (as root), and the hidden file
 * beside it could not be made in `/dev` (as anyone else). Like a stream, the bytes are out before
 * the digest is checked, and cannot be taken back: a failed download is reported, not undone.
 */
class SpecialFileSink implements ByteSink {
  readonly keepsChunks = false;
  private readonly target: string;
  private handle: FileHandle | undefined;

  private constructor(target: string, handle: FileHandle) {
    this.target = target;
    this.handle = handle;
  }

  /** Undefined when `target` turned out to be a regular file after all (replaced meanwhile). */
  static async open(target: string, signal?: AbortSignal): Promise<SpecialFileSink | undefined> {
    let handle: FileHandle | undefined;
    try {
      if (signal?.aborted) throw new MuxftpError('CANCELLED', 'cancelled');
      // No O_CREAT nor O_TRUNC: only what is there now is written into, and never cut. A regular
      // file (a redirected stdout) is appended to, as the shell's `>` (emptied) or `>>` left it.
      const info = await stat(target);
      const flags = constants.O_WRONLY | (info.isFile() ? constants.O_APPEND : 0);
      const opening = open(target, flags);
      // A FIFO's open waits for a reader, in the threadpool, where it cannot be cancelled (and
      // keeps the process alive): on abort this process is that reader for a moment, so it returns.
      const unblock = (): void => {
        open(target, constants.O_RDONLY | constants.O_NONBLOCK).then(
          (reader) => opening.finally(() => reader.close()).catch(() => {}),
          () => {},
        );
      };
      signal?.addEventListener('abort', unblock, { once: true });
      try {
        handle = await opening;
      } finally {
        signal?.removeEventListener('abort', unblock);
      }
      if (signal?.aborted) throw new MuxftpError('CANCELLED', 'cancelled');
      const opened = await handle.stat();
      if (opened.isFile() && !isStandardStreamFile(opened)) {
        await handle.close();
        return undefined;
      }
      return new SpecialFileSink(target, handle);
    } catch (err) {
      await handle?.close().catch(() => {});
      throw localError(err, target);
    }
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    try {
      let total = 0;
      for (const chunk of chunks) total += chunk.length;
      const { bytesWritten } = await this.handle!.writev(chunks as Buffer[]);
      if (bytesWritten !== total) throw new Error('short write');
    } catch (err) {
      throw localError(err, this.target);
    }
  }

  async finish(): Promise<void> {
    await this.close();
  }

  async abort(): Promise<void> {
    await this.close();
  }

  private async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => {});
  }
}

class WritableSink implements ByteSink {
  readonly keepsChunks = true;
  private readonly stream: Writable;

  constructor(stream: Writable) {
    this.stream = stream;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    return new Promise((resolve, reject) => {
      for (let i = 0; i < chunks.length - 1; i++) this.stream.write(chunks[i]);
      this.stream.write(chunks[chunks.length - 1], (err) =>
        err ? reject(localError(err, 'output')) : resolve(),
      );
    });
  }

  async finish(): Promise<void> {}

  async abort(): Promise<void> {}
}

/** Keeps nothing (Client.verify): the download is only checked. */
export class DiscardSink implements ByteSink {
  readonly keepsChunks = false;
  readonly discards = true;

  async write(): Promise<void> {}

  async finish(): Promise<void> {}

  async abort(): Promise<void> {}
}

/** Collects a download in memory (Client.getBuffer). */
export class MemorySink implements ByteSink {
  readonly keepsChunks = true;
  private readonly chunks: Buffer[] = [];

  async write(chunks: readonly Buffer[]): Promise<void> {
    this.chunks.push(...chunks);
  }

  async finish(): Promise<void> {}

  async abort(): Promise<void> {
    this.chunks.length = 0;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
