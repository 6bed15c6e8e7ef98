import {
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  renameSync,
  type Stats,
  statSync,
  truncateSync,
  unlinkSync,
} from 'node:fs';
import { type FileHandle, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { MuxftpError } from '../shared/errors.js';
import {
  hiddenBitsFor,
  keepPermissionBits,
  type ModableFile,
  transferFileBits,
} from '../shared/fileModes.js';
import { fileTime } from '../shared/fileTimes.js';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import { downloadPartialName } from '../shared/temporaryNames.js';
import { claimLeftBehind, inProgressPath, removeLeftBehind } from './downloadsLeftBehind.js';
import { renameIntoPlace, SinkFile, targetKind, writeFully } from './sinkFile.js';
import { LocalFile, localError, localFileCalls, notRegularFileError } from './sources.js';

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
  /**
   * All bytes are verified: make them final; a file sink gives the file what `kept` asks of the
   * remote one's (its modification time, its permission bits) before it takes the target's name.
   */
  finish(kept?: KeptAttributes): Promise<void>;
  /** The download failed: drop what was written. Idempotent. */
  abort(): Promise<void>;
  /**
   * The download failed for good: keep its whole blocks for `get -c` (a hidden file beside the
   * target) when the sink was opened to, else drop what was written as abort() does. Files only.
   * `upTo`: keep only the whole blocks within its first `upTo` bytes.
   */
  keepPartial?(upTo?: number): Promise<KeptPartial | undefined>;
  /** It writes into what an earlier failed download kept (claimed, not a copy): that file's blocks are there already. */
  readonly continuesKept?: boolean;
  /**
   * A sink that can fail between writes (a caller's stream destroyed or failing while no write is
   * in flight) tells `listener`, so the download stops at once rather than at its next write.
   */
  onFailure?(listener: (error: MuxftpError) => void): void;
}

/** What `Client.get` accepts: a local file path or a writable stream. */
export type GetTarget = string | Writable;

/**
 * `signal` cancels the wait for a FIFO's reader; `inPlace` is what isSpecialFile said of the
 * target, when the caller asked it already (else it is asked here). `keepsPartial`: a download
 * into a file that fails keeps its whole blocks for `get -c` (a FIFO, a device or a stream keeps
 * nothing: written in place). `bitsCarried`: the file is to get the remote one's bits (keepModes),
 * so its hidden file is its owner's alone until then (transferFileBits).
 */
export async function openSink(
  target: GetTarget,
  signal?: AbortSignal,
  inPlace?: boolean,
  keepsPartial = false,
  bitsCarried = false,
): Promise<ByteSink> {
  if (typeof target !== 'string') {
    // A JavaScript caller's null or number failed deep inside, as "stream.on is not a function".
    const stream = target as Partial<Writable> | null;
    if (typeof stream?.write !== 'function' || typeof stream.on !== 'function')
      throw new TypeError(`get: the target must be a local path or a Writable, got ${String(target)}`);
    const sink = new WritableSink(target);
    // Closed or failed already: nothing could be written, so nothing is asked of the server.
    sink.throwIfUnusable();
    return sink;
  }
  if (inPlace ?? (await isSpecialFile(target))) {
    const sink = await SpecialFileSink.open(target, signal);
    if (sink !== undefined) return sink;
  }
  return FileSink.open(target, keepsPartial, bitsCarried);
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
  // What cannot be looked at (a name too long for this filesystem, say) is no special file: the
  // download's own open says what is wrong, for that file alone.
  const info = await localFileCalls.run(
    () => {
      try {
        return statSync(target, { throwIfNoEntry: false });
      } catch {
        return undefined;
      }
    },
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

/** What a failed download kept for `get -c`: the hidden file beside its target, and its bytes (whole blocks). */
export interface KeptPartial {
  /** The hidden file beside the target (`.muxftp-get-<hash>.part`), in the target's directory. */
  path: string;
  /** Bytes it holds: whole 4 MiB blocks of the file, from its start. */
  bytes: number;
}

/** Where a failed download into `target` keeps what it received, for `get -c` to continue. */
export function keptPartialPath(target: string): string {
  return join(dirname(target), downloadPartialName(basename(target)));
}

/**
 * Where a download into `target` is written until it is verified, whether or not it keeps its
 * whole blocks should it fail: under a name that says which host and process write it
 * (inProgressPath), so that what a process killed outright left is told from one being written,
 * and `get -c` continues it or a get of the target that succeeds removes it. A random name
 * (`.muxftp-dl-<hex>.part`, before) said no writer: nothing could ever remove it.
 */
function temporaryPath(target: string): string {
  return inProgressPath(target);
}

/** A regular file with one name, owned by this process's user (where it has one): safe to write in place. */
function isOwnSoleFile(info: Stats): boolean {
  return info.isFile() && info.nlink === 1 && (process.getuid === undefined || info.uid === process.getuid());
}

/** A hidden file of a download in progress, as the synchronous clean-up at exit needs it. */
interface TemporaryFile {
  readonly temporary: string;
  /** Where its whole blocks are kept if the download fails; undefined: it is removed. */
  readonly keptPath: string | undefined;
  /** It holds received bytes worth keeping (not, say, get -c's copy of a file not yet checked). */
  readonly keepable: boolean;
  /** When its download started (Date.now()): what is kept at keptPath since is another's (keptMeanwhile). */
  readonly startedMs?: number;
}

/**
 * The whole blocks another download of the same target kept at `kept` since `sinceMs`, when
 * they are more than the `bytes` this one would keep there (two `get -c` runs of one file
 * overlapping, as cron jobs do): renaming onto them would throw away the larger of the two, and
 * what the other process told its user it kept. Undefined otherwise: what was kept before this
 * download started (an earlier run's, maybe of another version) is replaced as always, and only
 * a file muxftp could have kept (this user's, regular, one name) is weighed at all.
 */
function keptMeanwhile(
  info: Stats | undefined,
  sinceMs: number | undefined,
  bytes: number,
): number | undefined {
  if (info === undefined || sinceMs === undefined || !isOwnSoleFile(info) || info.ctimeMs < sinceMs)
    return undefined;
  const held = wholeBlockBytes(info.size);
  return held > bytes ? held : undefined;
}

/** Temporary files of downloads in progress in this process, by path. */
const temporaryFilesInProgress = new Map<string, TemporaryFile>();

/**
 * Registers `temporary` before it exists: a process told to exit while it is made still settles
 * it. With `keptPath` (a claimed kept partial) it goes back there; without, it is removed.
 */
function registerTemporary(temporary: string, keptPath?: string): void {
  temporaryFilesInProgress.set(temporary, { temporary, keptPath, keepable: keptPath !== undefined });
}

/**
 * Removes `kept`, what an earlier failed download kept of a target now whole (stale). On the loop
 * while file calls are fast, as the target's stat is: once per download, almost always absent,
 * so looked for first (existsSync, ~1 µs) rather than unlinked blind (ENOENT's error, ~8 µs).
 */
export async function removeStaleKeptPartial(kept: string): Promise<void> {
  await localFileCalls
    .run(
      () => {
        if (existsSync(kept)) unlinkSync(kept);
      },
      () => unlink(kept),
    )
    .catch(() => {});
}

/** The whole 4 MiB blocks of `size` bytes: what of a partial download counts (get -c checks them). */
function wholeBlockBytes(size: number): number {
  return size - (size % INTEGRITY_BLOCK_BYTES);
}

/**
 * Settles the temporary files of every download in progress, synchronously: for a process that
 * must exit now (a second Ctrl-C) and so cannot wait for the downloads' own asynchronous
 * clean-up. Those that keep a partial are cut to their whole blocks and renamed to their kept
 * name (a write still in flight may land past the cut: get -c checks every block it reuses), the
 * rest removed. Returns how many of each.
 */
export function settleTemporaryFilesNow(): { kept: number; removed: number } {
  let kept = 0;
  let removed = 0;
  for (const file of temporaryFilesInProgress.values()) {
    try {
      const bytes = wholeBlockBytes(statSync(file.temporary).size);
      if (file.keptPath !== undefined && file.keepable && bytes > 0) {
        const there = lstatSync(file.keptPath, { throwIfNoEntry: false });
        // Another process's larger one, kept since this download began, stays: ours goes.
        if (keptMeanwhile(there, file.startedMs, bytes) !== undefined) {
          unlinkSync(file.temporary);
          kept++;
          continue;
        }
        truncateSync(file.temporary, bytes);
        renameSync(file.temporary, file.keptPath);
        kept++;
        continue;
      }
      unlinkSync(file.temporary);
      removed++;
    } catch {
      // Already gone, or never created: nothing to settle.
    }
  }
  temporaryFilesInProgress.clear();
  return { kept, removed };
}

/** What a downloaded file keeps of the remote one (TransferOptions.keepTimes, keepModes). */
export interface KeptAttributes {
  /** Its modification time, ms since the epoch. */
  mtimeMs?: number;
  /** Its permission bits, less the umask (shared/fileModes.ts). */
  mode?: number;
}

/** What HiddenFileSink needs of its open file: FileHandle, or SinkFile (FileSink's). */
interface HiddenFile extends ModableFile {
  truncate(length: number): Promise<void>;
  /** Seconds, or Dates (shared/fileTimes.ts). */
  utimes(atime: number | Date, mtime: number | Date): Promise<void>;
  close(): Promise<void>;
}

/**
 * A download into a hidden temporary file beside its target, renamed onto the target only once
 * verified. The file is registered in `temporaryFilesInProgress` for as long as it may exist.
 * Opened to keep a partial (`keepsPartial`), a failure keeps its whole blocks under the target's
 * kept name (keepPartial()) and a success removes what an earlier failure kept there. Carrying the
 * remote file's bits (`bitsCarried`), the file is its owner's alone until finished; else it is
 * made as any new file, and keeps the bits the kernel gave it (transferFileBits).
 */
abstract class HiddenFileSink<File extends HiddenFile = FileHandle> implements ByteSink, TemporaryFile {
  readonly keepsChunks = false;
  protected readonly target: string;
  readonly temporary: string;
  readonly keptPath: string | undefined;
  keepable = true;
  /** Created by this download, not a kept partial claimed (made earlier, maybe under another umask). */
  protected createdHere = true;
  protected handle: File | undefined;
  /** Work that writes and the end wait for (ContinueSink cuts its copy back first). */
  protected ready: Promise<void> | undefined;
  /** The write in flight, if any: a failure's stat and cut wait for it (a handle does not order them). */
  private writing: Promise<unknown> | undefined;
  /** abort() was called: work it waits for (ContinueSink's copy) stops instead of going on. */
  protected aborted = false;
  /** Something was at the target when the download started (undefined: looked at when renamed). */
  protected replacing: boolean | undefined;
  readonly startedMs = Date.now();

  /** The file gets the remote one's bits (keepModes): it is its owner's alone until then. */
  protected readonly bitsCarried: boolean;

  protected constructor(
    target: string,
    temporary: string,
    handle: File,
    keepsPartial: boolean,
    bitsCarried: boolean,
  ) {
    this.bitsCarried = bitsCarried;
    this.target = target;
    this.temporary = temporary;
    this.handle = handle;
    this.keptPath = keepsPartial ? keptPartialPath(target) : undefined;
    temporaryFilesInProgress.set(temporary, this);
  }

  abstract write(chunks: readonly Buffer[]): Promise<void>;

  /** The bytes the file holds, once no write is in flight. */
  protected abstract bytesHeld(handle: File): Promise<number>;

  /** `write` is in flight until it settles. */
  protected tracked<T>(write: Promise<T>): Promise<T> {
    this.writing = write.catch(() => {});
    return write;
  }

  async finish(kept: KeptAttributes = {}): Promise<void> {
    const handle = this.handle!;
    this.handle = undefined;
    try {
      await this.ready;
      // Where the filesystem refuses them, the verified file is kept all the same, as written.
      // Without the remote file's bits, the kernel's (umask or default ACL), unless it was made
      // its owner's alone (bitsCarried: a server that sent none): a new file's then.
      // With the final bits (0444, say), it is no partial to continue: an exit now removes it.
      this.keepable = false;
      await keepPermissionBits(handle, kept.mode, {
        createdHere: this.createdHere,
        bitsCarried: this.bitsCarried,
      }).catch(() => {});
      if (kept.mtimeMs !== undefined) await handle.utimes(new Date(), fileTime(kept.mtimeMs)).catch(() => {});
      await handle.close();
      await renameIntoPlace(this.temporary, this.target, this.replacing);
      temporaryFilesInProgress.delete(this.temporary);
    } catch (err) {
      await unlink(this.temporary).catch(() => {});
      temporaryFilesInProgress.delete(this.temporary);
      throw localError(err, this.target);
    }
    // The target is whole: what an earlier failed download kept of it is stale (when this one
    // keeps partials), and what one killed outright left (any: its name is a keeping one's too).
    if (this.keptPath !== undefined) await removeStaleKeptPartial(this.keptPath);
    await removeLeftBehind(this.keptPath ?? keptPartialPath(this.target));
  }

  async abort(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) return;
    this.handle = undefined;
    this.aborted = true;
    await this.ready?.catch(() => {});
    await handle.close().catch(() => {});
    await unlink(this.temporary).catch(() => {});
    temporaryFilesInProgress.delete(this.temporary);
  }

  get continuesKept(): boolean {
    return !this.createdHere;
  }

  /**
   * The download failed for good: when opened to keep a partial, cut the file to its whole blocks
   * (those within its first `upTo` bytes) and rename it to the target's kept name (replacing what
   * was kept there, unless another download of the target kept more there since this one began:
   * then that stays, and is what is returned), else (or when not one whole block arrived) remove
   * it. Idempotent.
   */
  async keepPartial(upTo = Number.POSITIVE_INFINITY): Promise<KeptPartial | undefined> {
    const handle = this.handle;
    const keptPath = this.keptPath;
    if (handle === undefined || keptPath === undefined || !this.keepable)
      return this.abort().then(() => undefined);
    this.handle = undefined;
    try {
      await this.ready?.catch(() => {});
      await this.writing;
      const held = await this.bytesHeld(handle);
      const bytes = wholeBlockBytes(Math.min(held, upTo));
      // Another process's larger one, kept since this download began, stays: ours goes.
      const theirs = keptMeanwhile(await lstat(keptPath).catch(() => undefined), this.startedMs, bytes);
      if (bytes > 0 && theirs !== undefined) {
        await handle.close().catch(() => {});
        await unlink(this.temporary).catch(() => {});
        temporaryFilesInProgress.delete(this.temporary);
        return { path: keptPath, bytes: theirs };
      }
      if (bytes > 0) {
        // Not when whole already (a try refused before a byte came): a truncate moves the
        // modification time, and the next try would take the same bytes for another version
        // and hash them again (LocalDigestMemo).
        if (bytes !== held) await handle.truncate(bytes);
        await handle.close();
        await rename(this.temporary, keptPath);
        temporaryFilesInProgress.delete(this.temporary);
        return { path: keptPath, bytes };
      }
    } catch {
      // Could not be kept (the directory went, a full disk): removed below, as without keeping.
    }
    await handle.close().catch(() => {});
    await unlink(this.temporary).catch(() => {});
    temporaryFilesInProgress.delete(this.temporary);
    return undefined;
  }
}

class FileSink extends HiddenFileSink<SinkFile> {
  /** Written from 0 in order: what the file holds, without a stat (most failures hold no whole block). */
  private written = 0;

  static async open(target: string, keepsPartial: boolean, bitsCarried: boolean): Promise<FileSink> {
    // A directory there is found before a byte is asked for: its rename refused the whole file
    // once it had come (EISDIR), and nothing of it was kept.
    const kind = await targetKind(target);
    if (kind === 'directory')
      throw localError(Object.assign(new Error('EISDIR: is a directory'), { code: 'EISDIR' }), target);
    const temporary = temporaryPath(target);
    registerTemporary(temporary);
    try {
      const sink = new FileSink(
        target,
        temporary,
        await SinkFile.create(temporary, transferFileBits(bitsCarried)),
        keepsPartial,
        bitsCarried,
      );
      sink.replacing = kind === 'other';
      return sink;
    } catch (err) {
      temporaryFilesInProgress.delete(temporary);
      throw localError(err, target);
    }
  }

  protected async bytesHeld(): Promise<number> {
    return this.written;
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    try {
      this.written += await this.tracked(this.handle!.writeAll(chunks));
    } catch (err) {
      throw localError(err, this.target);
    }
  }
}

/** Piece by which get -c copies a partial file. */
const COPY_CHUNK_BYTES = 1024 * 1024;

/**
 * Copies the first `bytes` of the file at `source` into `into` (from its start), through the open
 * handle: a copy by path (copyFile) onto the temporary file's name would follow a link swapped in
 * for it, in a directory others may write, and write the partial file wherever that leads. Its
 * blocks were read as a regular file's: a FIFO swapped in since fails, never waited on (its
 * waiting open held a threadpool thread that Node's exit joins: only SIGKILL ended the process).
 */
async function copyPrefix(
  source: string,
  into: FileHandle,
  blocks: PrefixBlocks,
  stopped: () => boolean,
): Promise<void> {
  const bytes = blocks.digests.length * INTEGRITY_BLOCK_BYTES;
  const from = await LocalFile.openRegular(source);
  if (from === undefined) throw notRegularFileError(source);
  // The blocks were hashed before the server answered: the bytes copied now are hashed again, or
  // a file rewritten meanwhile would pass END's check (D is computed from those digests).
  const digester = new ContentDigester(blocks.algorithm);
  const changed = () => new MuxftpError('LOCAL_IO_ERROR', `the local file changed meanwhile: ${source}`);
  try {
    const buffer = Buffer.allocUnsafe(Math.min(bytes, COPY_CHUNK_BYTES));
    for (let position = 0; position < bytes; ) {
      // The download failed or was cancelled: gigabytes copied for nothing would hold its end.
      if (stopped()) throw new MuxftpError('CANCELLED', 'cancelled');
      const bytesRead = await from.readAt(buffer, 0, Math.min(buffer.length, bytes - position), position);
      // Shorter than when its blocks were hashed: changed meanwhile.
      if (bytesRead === 0) throw changed();
      digester.update(buffer.subarray(0, bytesRead));
      await into.write(buffer, 0, bytesRead, position);
      position += bytesRead;
    }
    if (digester.blockDigests.some((digest, i) => !digest.equals(blocks.digests[i]!))) throw changed();
  } finally {
    digester.release();
    await from.close();
  }
}

/** The whole blocks a resumed download reuses: their digests, as the server vouched for them. */
export interface PrefixBlocks {
  algorithm: IntegrityAlgorithm;
  digests: readonly Buffer[];
}

/**
 * get -c: continues a partial local file without touching it until the download is verified. Once
 * the server has accepted the download and chosen its offset (startAt), the partial file's bytes
 * up to that offset are copied into a hidden temporary file (copyPrefix): a refusal before that,
 * such as SERVER_BUSY tried again and again, copies nothing. The copy receives the rest, and
 * replaces the target only after the whole file's digest checked out. A failure
 * removes the copy: the partial file stays as it was (with `keepsPartial`, a failure after the
 * server's offset checked out keeps the copy's whole blocks under the kept name instead, for the
 * next get -c).
 */
export class ContinueSink extends HiddenFileSink {
  private position = 0;
  /** The user's partial file, copied into the temporary file by startAt(); undefined once copied, or for a claimed kept file. */
  private copyFrom: string | undefined;

  static async open(target: string, keepsPartial: boolean, bitsCarried: boolean): Promise<ContinueSink> {
    const temporary = temporaryPath(target);
    registerTemporary(temporary);
    try {
      // Empty for now: the copy comes in startAt(), written through this handle.
      const sink = new ContinueSink(
        target,
        temporary,
        await open(temporary, 'wx+', transferFileBits(bitsCarried)),
        keepsPartial,
        bitsCarried,
      );
      sink.copyFrom = target;
      // A copy of the user's file: nothing of it is ours to keep until the server vouched for it.
      sink.keepable = false;
      return sink;
    } catch (err) {
      await unlink(temporary).catch(() => {});
      temporaryFilesInProgress.delete(temporary);
      throw localError(err, target);
    }
  }

  /**
   * Continues what a failed download into `target` kept (keptPartialPath): it is ours, so it is
   * written in place instead of copied, once claimed by renaming it to a fresh temporary name — of
   * two processes continuing it, one gets it and the other starts afresh. Should this download
   * fail too, its whole blocks are kept there again (whatever the caller asked: they were kept
   * already). With `leftBehind`, when nothing was kept, what a process killed outright left in
   * progress is claimed instead (claimLeftBehind). Undefined when there is none to claim.
   * `bitsCarried`, as openSink's.
   */
  static async claimKept(
    target: string,
    { leftBehind = false, bitsCarried = false } = {},
  ): Promise<ContinueSink | undefined> {
    const kept = keptPartialPath(target);
    // Named as its own download in progress: killed outright, the next get -c finds it again.
    const temporary = inProgressPath(target);
    // A process told to exit between the rename and the open puts it back.
    registerTemporary(temporary, kept);
    let claimed: boolean;
    try {
      claimed = await rename(kept, temporary).then(
        () => true,
        (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
          throw err;
        },
      );
      if (!claimed && leftBehind) {
        const targetBytes = await stat(target).then(
          (info) => (info.isFile() ? info.size : 0),
          () => 0,
        );
        claimed = await claimLeftBehind(kept, temporary, targetBytes);
      }
    } catch (err) {
      temporaryFilesInProgress.delete(temporary);
      throw localError(err, target);
    }
    if (!claimed) {
      temporaryFilesInProgress.delete(temporary);
      return undefined;
    }
    let handle: FileHandle | undefined;
    let failure: unknown;
    try {
      // muxftp only ever leaves a regular file there, of this user's, with no other name: anything
      // else is not opened through, nor written, but put back and left alone. A symbolic link
      // someone planted in a shared directory would lead to a file of yours; a hard link (a
      // `cp -al` or rsnapshot copy of the directory, or one planted) is another name of a file
      // that writing in place would change too; a file another user owns would end up, written
      // in place, as the target, theirs to change after it was verified.
      handle = await open(temporary, constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const info = await handle.stat();
      if (isOwnSoleFile(info)) {
        // Kept before hidden files were made their owner's alone, or by a get carrying no bits:
        // so for what comes now, when this one carries them.
        const hidden = hiddenBitsFor(info.mode, bitsCarried);
        if (hidden !== undefined) await handle.chmod(hidden).catch(() => {});
        const sink = new ContinueSink(target, temporary, handle, true, bitsCarried);
        sink.createdHere = false;
        return sink;
      }
    } catch (err) {
      // A link (ELOOP) or a directory is simply not ours; anything else fails the download.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ELOOP' && code !== 'EISDIR') failure = err;
    }
    // Put back as it was, and left alone.
    await handle?.close().catch(() => {});
    await rename(temporary, kept).catch(() => {});
    temporaryFilesInProgress.delete(temporary);
    if (failure !== undefined) throw localError(failure, target);
    return undefined;
  }

  /** What it was continued from counts too (a claimed partial not yet cut back holds all of it). */
  protected async bytesHeld(handle: FileHandle): Promise<number> {
    return (await handle.stat()).size;
  }

  /**
   * The server's offset (`prefix`'s blocks, which its digests matched): keep the first `offset`
   * bytes of the partial file, write from there.
   */
  startAt(prefix: PrefixBlocks): void {
    const offset = prefix.digests.length * INTEGRITY_BLOCK_BYTES;
    this.position = offset;
    const copyFrom = offset > 0 ? this.copyFrom : undefined;
    this.copyFrom = undefined;
    const handle = this.handle!;
    this.ready = (async () => {
      if (copyFrom !== undefined) await copyPrefix(copyFrom, handle, prefix, () => this.aborted);
      await handle.truncate(offset);
      // Only now does the file hold just what the server vouched for: a failure while the copy
      // is made drops it (the partial file itself was never touched).
      this.keepable = true;
    })();
    // Seen by the next write, finish or failure; until then a failed copy is not unhandled.
    this.ready.catch(() => {});
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    try {
      await this.ready;
      const handle = this.handle!;
      const start = this.position;
      this.position += await this.tracked(
        writeFully(
          chunks,
          async (left, written) => (await handle.writev(left, start + written)).bytesWritten,
        ),
      );
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
      if (signal?.aborted) throw new MuxftpError('CANCELLED', 'cancelled', { cause: signal.reason });
      // No O_CREAT nor O_TRUNC: only what is there now is written into, and never cut. A regular
      // file (a redirected stdout) is appended to, as the shell's `>` (emptied) or `>>` left it.
      const info = await stat(target);
      // Aborted during the stat: nothing opened (a device's open may do something).
      if (signal?.aborted) throw new MuxftpError('CANCELLED', 'cancelled', { cause: signal.reason });
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
      // Only a FIFO's open waits: a device's or a file's returns, and a second open could do something.
      const waits = info.isFIFO();
      if (waits) signal?.addEventListener('abort', unblock, { once: true });
      try {
        handle = await opening;
      } finally {
        if (waits) signal?.removeEventListener('abort', unblock);
      }
      if (signal?.aborted) throw new MuxftpError('CANCELLED', 'cancelled', { cause: signal.reason });
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
      const handle = this.handle!;
      await writeFully(chunks, async (left) => (await handle.writev(left)).bytesWritten);
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

/**
 * A caller's stream, written to but not ended. Its 'error' and 'close' are watched while the
 * download runs: either fails the download at once (a write in flight on a destroyed stream never
 * calls back, and an 'error' without a listener would take the process down), with the stream's
 * own error as cause where it has one.
 */
class WritableSink implements ByteSink {
  readonly keepsChunks = true;
  private readonly stream: Writable;
  private failure: MuxftpError | undefined;
  private failed: ((error: MuxftpError) => void) | undefined;
  private closeSeen = false;
  /** Rejects the write in flight. */
  private rejectWrite: ((error: MuxftpError) => void) | undefined;

  constructor(stream: Writable) {
    this.stream = stream;
    stream.on('error', this.streamOnError);
    stream.on('close', this.streamOnClose);
  }

  onFailure(listener: (error: MuxftpError) => void): void {
    this.failed = listener;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    const failure = this.failureNow();
    if (failure !== undefined) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      this.rejectWrite = reject;
      for (let i = 0; i < chunks.length - 1; i++) this.stream.write(chunks[i]);
      this.stream.write(chunks[chunks.length - 1], (err) => {
        this.rejectWrite = undefined;
        // Node's own ERR_STREAM_DESTROYED says less than what destroyed the stream.
        if (err) reject(this.failureNow() ?? localError(err, 'output'));
        else resolve();
      });
    });
  }

  async finish(): Promise<void> {
    // A download of 0 bytes writes nothing: a stream closed meanwhile would have gone unnoticed.
    this.throwIfUnusable();
    this.detach();
  }

  async abort(): Promise<void> {
    this.detach();
  }

  /** Throws why the stream takes no more, if it does not. */
  throwIfUnusable(): void {
    const failure = this.failureNow();
    if (failure !== undefined) {
      this.detach();
      throw failure;
    }
  }

  /** Why the stream takes no more: what it failed with, or that it was closed or ended. */
  private failureNow(): MuxftpError | undefined {
    if (this.failure !== undefined) return this.failure;
    const stream = this.stream;
    if (stream.errored) this.failure = localError(stream.errored, 'output');
    else if (stream.destroyed || stream.writableEnded)
      this.failure = new MuxftpError('LOCAL_IO_ERROR', 'output closed before the download finished');
    return this.failure;
  }

  private fail(): void {
    const failure = this.failureNow();
    if (failure === undefined) return;
    this.rejectWrite?.(failure);
    this.rejectWrite = undefined;
    this.failed?.(failure);
  }

  private readonly streamOnError = (err: Error): void => {
    this.failure ??= localError(err, 'output');
    this.fail();
  };

  private readonly streamOnClose = (): void => {
    this.closeSeen = true;
    this.fail();
  };

  /**
   * The call is settling. A stream destroyed or failed but not yet closed may emit its 'error'
   * later: the listener stays until its 'close', so that 'error' does not go unhandled.
   */
  private detach(): void {
    const stream = this.stream;
    this.failed = undefined;
    stream.off('close', this.streamOnClose);
    if ((stream.destroyed || stream.errored !== null) && !this.closeSeen)
      stream.once('close', () => stream.off('error', this.streamOnError));
    else stream.off('error', this.streamOnError);
  }
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
