/**
 * The one Storage implementation, written against the small slice of `fs.promises` in fsApi.ts. The
 * disk backend runs it over node's fs, the memory backend over a memfs volume, so both behave
 * the same way by construction and one contract suite covers both.
 */

import { constants as fsConstants } from 'node:fs';
import { type PlatformPath, posix } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DEFAULTS } from '../shared/defaults.js';
import { DiskRooms, type RoomClaim } from '../shared/diskRoom.js';
import { StorageError } from '../shared/errors.js';
import {
  hiddenBitsFor,
  lessUmask,
  PERMISSION_BITS,
  SERVER_OWN_DIRECTORY_BITS,
  SERVER_OWN_FILE_BITS,
  transferFileBits,
} from '../shared/fileModes.js';
import { fileTime } from '../shared/fileTimes.js';
import { formatBytesApart } from '../shared/humanUnits.js';
import type { IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import type { FileDigest } from '../shared/integrity/contentDigest.js';
import {
  isDownloadPartialName,
  isPartialName,
  isUploadTemporaryName,
  partialName,
  partialNamesPrefix,
  SERVED_ROOT_LOCK_NAME,
  TEMP_PREFIX,
} from '../shared/temporaryNames.js';
import { DigestCache } from './digestCache.js';
import { DirectorySyncs } from './directorySyncs.js';
import { entryInfo, isFileAsSeen, toMs } from './entryInfo.js';
import type { FsFileHandle, FsPromises, FsStats, PathHandle } from './fsApi.js';
import { displayPath, errnoOf, fsCall, isMissing, storageErrorFromFs } from './fsErrors.js';
import { ListingBudget, namesBytes } from './listingBudget.js';
import { MoveGuard, type UploadClaim } from './moveGuard.js';
import { PathLocks } from './pathLocks.js';
import {
  baseName,
  ConfinedRoot,
  isTemporaryName,
  newTemporaryName,
  normalizeClientPath,
  parentPath,
  type Resolved,
} from './paths.js';
import type {
  DropKeptPartialsOptions,
  EntryInfo,
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
import { FsUpload, type Reserve } from './upload.js';

export interface FsStorageOptions {
  /** The filesystem: disk's calls (`storage/diskFs.ts`), or a memfs volume's `promises`. */
  fs: FsPromises;
  /** Host path of the directory served to clients. It must exist. */
  root: string;
  /** Flush each upload (and the rename) to stable storage before commit() resolves. Default true. */
  durable?: boolean;
  /** For logs. Default `fs:<root>`. */
  description?: string;
  /** Path functions for host paths of this fs: `node:path` for disk, `path.posix` (default) for memfs. */
  hostPaths?: PlatformPath;
  /**
   * Gives an upload's file room for its expected size, keeping what was written; returns a
   * function that gives the reservation back, or undefined when it did not reserve. Called once
   * an upload has sent part of what it declared (upload.ts), never at open. Memory storage uses
   * it to spare memfs growing (and copying) the file; pointless on disk. Default: none.
   */
  reserve?: Reserve;
  /**
   * Where an open file really is, asked of the kernel (on Linux, /proc/self/fd/N), or undefined
   * when it cannot tell. Checked after every open, before a byte moves, so that a directory
   * swapped for a symlink between resolve() and open() cannot lead outside the root. Default:
   * none (memfs: no host can swap its directories).
   */
  locateOpened?: (handle: FsFileHandle | PathHandle) => Promise<string | undefined>;
  /**
   * An open file's bytes without a copy, when this fs holds them in memory (ReadHandle.view);
   * undefined when it cannot. Memory storage serves downloads from it. Default: none (disk).
   */
  viewOpened?: ViewOpened;
  /**
   * The most memory the digests remembered of stored files may hold, as estimated
   * (storage/digestCache.ts). Default DEFAULTS.digestCacheMaxBytes.
   */
  digestCacheMaxBytes?: number;
}

export type ViewOpened = (handle: FsFileHandle, position: number, length: number) => Buffer | undefined;

const noop = (): void => {};

/**
 * The one {@link Storage} implementation, over a small slice of `fs.promises`: DiskStorage runs it
 * over node's fs, MemoryStorage over a memfs volume.
 */
export class FsStorage implements Storage {
  readonly description: string;
  readonly #fs: FsPromises;
  readonly #confinement: ConfinedRoot;
  readonly #durable: boolean;
  readonly #paths: PlatformPath;
  readonly #reserve: Reserve | undefined;
  readonly #locateOpened: ((handle: FsFileHandle | PathHandle) => Promise<string | undefined>) | undefined;
  readonly #viewOpened: ViewOpened | undefined;
  // Shared with subtree() views, so digests, upload bookkeeping and close() span them all.
  #digests: DigestCache;
  /** Open uploads and read handles, finished by close(). */
  #uploads = new Set<FsUpload>();
  #reads = new Set<FsReadHandle>();
  /**
   * Work started on its own, across every view: sweeps walking the tree, kept partials' removals,
   * read handles' closes. close() waits for it (a sweep stops at its next directory or batch):
   * `serve` took such calls still running after `stopped` for a hung mount's. `closed` is the
   * storage's own state, one for all views.
   */
  #background: { closed: boolean; running: Set<Promise<unknown>> } = { closed: false, running: new Set() };
  /**
   * muxftp's own changes of files (#ownChange), across every view: how many have started, and
   * those under way by dev:ino. A download whose open's stat ran beside one looks again (openRead).
   */
  #ownChangeLog: { started: number; running: Map<string, Promise<unknown>> } = {
    started: 0,
    running: new Map(),
  };
  /** Uploads in flight and directory moves under way, kept apart across every view (moveGuard.ts). */
  #moveGuard: MoveGuard;
  /** subtree() views by home, one each, shared by every connection of that home. */
  #views = new Map<string, FsStorage>();
  /**
   * Host paths (real directory + name) of the temporary files of uploads in flight, across every
   * view: sweepTemporaryFiles() leaves them alone, and a kept partial upload in use is neither
   * offered nor taken by a second upload. By path, not name: the same file uploaded into two
   * directories at once keeps a partial in each.
   */
  #activeTemporaryPaths = new Set<string>();
  /** Host paths of kept partial uploads an upload in flight has taken over: keptPartials() skips them. */
  #partialsInUse = new Set<string>();
  /**
   * Kept partial uploads no upload has taken over, by host path of their directory: those seen by
   * a sweep or a listing, and those uploads kept since. A new upload of a file drops those kept
   * for it without reading its directory (7,000 uploads into one directory would read it 7,000
   * times). Where it is wrong either way no harm is done: a name no longer there is looked at and
   * skipped, one missing is not dropped (its retention still ends it).
   */
  #keptPartialIndex = new Map<string, Set<string>>();
  /** Memory the names of directories being listed hold, across every view. */
  #listingBudget = new ListingBudget(DEFAULTS.listingNamesBudgetBytes);
  /** Deletes, renames and commits, one at a time per host path, across every view. */
  #pathLocks = new PathLocks();
  /** Directory flushes after commits, shared by uploads committing side by side (group commit). */
  #directorySyncs: DirectorySyncs;
  /**
   * Free space for declared uploads, per filesystem, shared by every view; undefined where
   * statfs is not there to ask.
   */
  #diskRooms: DiskRooms | undefined;

  constructor(options: FsStorageOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('FsStorage: options must be an object');
    }
    if (typeof options.fs !== 'object' || options.fs === null) {
      throw new TypeError('FsStorage: options.fs must be an fs.promises-like object');
    }
    if (typeof options.root !== 'string' || options.root === '') {
      throw new TypeError('FsStorage: options.root must be a non-empty string');
    }
    if (options.durable !== undefined && typeof options.durable !== 'boolean') {
      throw new TypeError('FsStorage: options.durable must be a boolean');
    }
    this.#digests = new DigestCache(
      DEFAULTS.digestCacheMaxEntries,
      DEFAULTS.maxResumeBlocks,
      checkDigestCacheMaxBytes('FsStorage', options.digestCacheMaxBytes) ?? DEFAULTS.digestCacheMaxBytes,
    );
    this.#fs = options.fs;
    this.#durable = options.durable ?? true;
    this.#paths = options.hostPaths ?? posix;
    this.#confinement = new ConfinedRoot(options.fs, options.root, this.#paths);
    this.#moveGuard = new MoveGuard((base, path) => this.#confinement.isWithin(base, path));
    this.#directorySyncs = new DirectorySyncs(options.fs);
    this.#diskRooms =
      options.fs.statfs === undefined
        ? undefined
        : new DiskRooms(
            (directory) => options.fs.statfs!(directory),
            (bytes, room, clientPath) => {
              const [declared, free] = formatBytesApart(bytes, room);
              return new StorageError(
                'NO_SPACE',
                `not enough room on the server's disk for ${clientPath}: ${declared} declared, ${free} free for it`,
                clientPath,
              );
            },
          );
    this.#reserve = options.reserve;
    this.#locateOpened = options.locateOpened;
    this.#viewOpened = options.viewOpened;
    this.description = options.description ?? `fs:${options.root}`;
  }

  async stat(path: string): Promise<EntryInfo> {
    const target = await this.#resolve(path);
    const stats = await fsCall(target.clientPath, () => this.#fs.stat(target.hostPath)).catch(
      async (error: unknown) => {
        throw (await this.#danglingLink(target, error)) ?? error;
      },
    );
    return entryInfo(baseName(target.clientPath), stats);
  }

  async list(path: string): Promise<EntryInfo[]> {
    const entries: EntryInfo[] = [];
    for await (const batch of this.listBatches(path)) entries.push(...batch);
    return entries;
  }

  /**
   * The entries of a directory in name order, a bounded batch at a time: at most
   * DEFAULTS.listBatchEntries lstat calls run at once, and nothing more is looked up until the
   * consumer asks for the next batch, so a huge directory neither floods the thread pool nor
   * outlives a consumer that stopped (issue #7).
   */
  async *listBatches(path: string, options: ListBatchesOptions = {}): AsyncGenerator<EntryInfo[]> {
    const dir = await this.#resolve(path);
    // Which directory the names are read from (before readdir): one moved away and another put in
    // its place between two batches is told apart from the one listed.
    let listedDir = await this.#fs.stat(dir.hostPath).catch(() => undefined);
    // A link to nothing, as stat says it: the listing of its directory shows it.
    let names = await this.#sortedNames(dir, options.maxEntries).catch(async (error: unknown) => {
      throw (await this.#danglingLink(dir, error)) ?? error;
    });
    // Big, it takes its share of the listing budget first; waiting for it, it holds no names
    // (read again once it has its share).
    const held = namesBytes(names);
    const budgeted = held > DEFAULTS.listingNamesUnbudgetedBytes;
    if (budgeted && !this.#listingBudget.tryTake(held)) {
      names = [];
      options.onWaitingForMemory?.(true);
      try {
        await this.#listingBudget.take(held, options.signal);
      } finally {
        options.onWaitingForMemory?.(false);
      }
      listedDir = await this.#fs.stat(dir.hostPath).catch(() => undefined);
      names = await this.#sortedNames(dir, options.maxEntries).catch((error: unknown) => {
        this.#listingBudget.give(held);
        throw error;
      });
    }
    try {
      for (let start = 0; start < names.length; start += DEFAULTS.listBatchEntries) {
        // The loop turns between batches: memfs answers in microtasks, so a huge listing in memory
        // otherwise held the one thread from its first lookup to its last (20,000 entries: ~230 ms).
        if (start > 0) await nextTurn();
        this.#assertOpen();
        const slice = names.slice(start, start + DEFAULTS.listBatchEntries);
        const infos = await Promise.all(slice.map((name) => this.#listEntry(dir.hostPath, name)));
        // Names gone since readdir: removed, or the directory itself moved or removed meanwhile
        // (another client's mv between two batches), which is a failure, not a shorter listing.
        if (infos.includes(undefined)) await this.#refuseListedDirectoryGone(dir, listedDir);
        yield infos.filter((info): info is EntryInfo => info !== undefined);
      }
    } finally {
      if (budgeted) this.#listingBudget.give(held);
    }
  }

  /**
   * The names a listing shows, in order: not muxftp's hidden files. More than `maxEntries` fail
   * before the sort, which costs more than the read (a 300,000-entry directory: most of 0.6 s).
   */
  async #sortedNames(dir: Resolved, maxEntries = Number.POSITIVE_INFINITY): Promise<string[]> {
    const listed = (name: unknown): name is string => typeof name === 'string' && !isTemporaryName(name);
    // Asked for a few, a large directory is read no further than that.
    const { readdirAtMost } = this.#fs;
    const names =
      maxEntries !== Number.POSITIVE_INFINITY && readdirAtMost !== undefined
        ? await fsCall(dir.clientPath, () => readdirAtMost(dir.hostPath, maxEntries, listed))
        : (await fsCall(dir.clientPath, () => this.#fs.readdir(dir.hostPath))).filter(listed);
    if (names === undefined || names.length > maxEntries)
      throw new StorageError(
        'UNSUPPORTED',
        `listing refused: ${dir.clientPath || '/'} holds more than the ${maxEntries} entries asked for`,
        dir.clientPath,
      );
    return names.sort(compareNames);
  }

  async mkdir(path: string, options: { parents?: boolean; mode?: number } = {}): Promise<boolean> {
    const target = await this.#resolve(path);
    if (target.clientPath === '') {
      // The root always exists: fine with `parents` (like mkdir -p), a conflict without.
      if (options.parents) return false;
      throw new StorageError('ALREADY_EXISTS', 'already exists: /', '');
    }
    // memfs applies no umask: masked here, as the kernel masks the bits given to disk's mkdir.
    const mode = options.mode === undefined ? undefined : lessUmask(options.mode) | SERVER_OWN_DIRECTORY_BITS;
    if (!options.parents) {
      await this.#fs.mkdir(target.hostPath, mode).catch(async (error: unknown) => {
        throw await this.#creationError(error, target.clientPath, target.hostPath);
      });
      return true;
    }
    return this.#makeMissingDirectories(target, mode);
  }

  /**
   * mkdir -p once the path is resolved: one mkdir per missing level, top down, on the host path
   * resolve() found (linear in the depth; it used to resolve every level again). Whether it made
   * the last level (not when another mkdir made it meanwhile).
   */
  async #makeMissingDirectories(target: Resolved, mode: number | undefined): Promise<boolean> {
    const names = target.clientPath.split('/');
    // hostLevels[i]: the host path of the first i+1 client names, for the levels that may be missing.
    const firstMissing = names.length - target.missingNames;
    const hostLevels: string[] = [];
    for (let level = names.length - 1, host = target.hostPath; level >= firstMissing; level--) {
      hostLevels[level] = host;
      host = this.#paths.dirname(host);
    }
    if (target.missingNames === 0) {
      await this.#expectDirectory(target.clientPath, target.hostPath, true);
      return false;
    }
    let made = false;
    for (let level = firstMissing; level < names.length; level++) {
      const clientPath = names.slice(0, level + 1).join('/');
      const hostPath = hostLevels[level]!;
      try {
        await this.#fs.mkdir(hostPath, level === names.length - 1 ? mode : undefined);
        made = true;
      } catch (error) {
        const errno = errnoOf(error);
        if (errno === 'ENOTDIR' && level === firstMissing && level > 0) {
          // What exists above the first missing name is not a directory.
          const parent = names.slice(0, level).join('/');
          throw new StorageError('NOT_A_DIRECTORY', `not a directory: ${parent}`, parent);
        }
        if (errno !== 'EEXIST') throw await this.#creationError(error, clientPath, hostPath);
        // Created meanwhile (another mkdir -p, say): fine if it is a directory.
        await this.#expectDirectory(clientPath, hostPath, level === names.length - 1);
        made = false;
      }
    }
    return made;
  }

  /** mkdir -p found `hostPath` existing: a directory is fine, anything else is in the way. */
  async #expectDirectory(clientPath: string, hostPath: string, isTarget: boolean): Promise<void> {
    const stats = await fsCall(clientPath, () => this.#fs.stat(hostPath));
    if (stats.isDirectory()) return;
    throw isTarget
      ? new StorageError('ALREADY_EXISTS', `already exists: ${clientPath}`, clientPath)
      : new StorageError('NOT_A_DIRECTORY', `not a directory: ${clientPath}`, clientPath);
  }

  async rmdir(path: string, options: RmdirOptions = {}): Promise<void> {
    const target = await this.#resolve(path);
    refuseRoot(target, 'cannot remove the root');
    const stats = await fsCall(target.clientPath, () => this.#fs.lstat(target.hostPath));
    if (!stats.isDirectory()) {
      throw new StorageError('NOT_A_DIRECTORY', `not a directory: ${target.clientPath}`, target.clientPath);
    }
    await this.#removeKeptPartials(target, options.onPartialRemoved);
    await this.#fs.rmdir(target.hostPath).catch(async (error: unknown) => {
      // Listed as empty, it may still hold hidden files: say which, not a riddle.
      const keeper = errnoOf(error) === 'ENOTEMPTY' ? await this.#hiddenKeeper(target.hostPath) : undefined;
      if (keeper !== undefined) {
        const keptBy = keeper === 'upload and hidden' ? 'hidden' : keeper;
        const hidden = `files named ${TEMP_PREFIX}…, a prefix muxftp reserves and never lists: remove them on the server`;
        const why =
          keeper === 'upload'
            ? 'an upload into it is in progress, hidden from listings'
            : keeper === 'upload and hidden'
              ? `an upload into it is in progress, and it holds ${hidden}`
              : `it holds ${hidden}`;
        throw new StorageError(
          'DIRECTORY_NOT_EMPTY',
          `directory not empty: ${displayPath(target.clientPath)} (${why})`,
          target.clientPath,
          { cause: error, details: { keptBy } },
        );
      }
      throw storageErrorFromFs(error, target.clientPath);
    });
  }

  /**
   * What keeps a directory whose every entry is hidden from listings: `upload` when each is an
   * upload's temporary file, `hidden` when none is and all are other files under the reserved
   * prefix (made on the host by other means), both when both; undefined when it holds any entry a
   * listing shows.
   */
  async #hiddenKeeper(hostPath: string): Promise<'upload' | 'hidden' | 'upload and hidden' | undefined> {
    const entries = await this.#fs.readdir(hostPath).catch((): readonly unknown[] => []);
    const names = entries.filter((name): name is string => typeof name === 'string');
    if (names.length === 0 || names.length !== entries.length || !names.every(isTemporaryName))
      return undefined;
    const uploads = names.filter(isUploadTemporaryName).length;
    return uploads === names.length ? 'upload' : uploads === 0 ? 'hidden' : 'upload and hidden';
  }

  /**
   * What interrupted transfers kept in a directory about to be removed goes with it: it is hidden
   * and no client can name it, so it must not keep a directory that lists as empty. That is what
   * uploads kept (issue #8) and what a failed get kept for get -c (which the start-up sweep
   * leaves alone) — never a transfer in progress (an upload's or a download's temporary file,
   * of this process or another), nor a file of another name under the prefix. Only when all
   * that is there are such regular files (else rmdir fails as before, nothing removed), and not
   * one an upload in flight has taken over (rmdir then fails DIRECTORY_NOT_EMPTY).
   */
  async #removeKeptPartials(
    dir: Resolved,
    onPartialRemoved: RmdirOptions['onPartialRemoved'],
  ): Promise<void> {
    const entries = await this.#fs.readdir(dir.hostPath).catch((): readonly unknown[] => []);
    const names = entries.filter((name): name is string => typeof name === 'string');
    const leftBehind = (name: string): boolean => isPartialName(name) || isDownloadPartialName(name);
    if (names.length === 0 || !names.every(leftBehind)) return;
    // All regular files, looked at before any goes: a directory among them would fail the rmdir
    // after the rest were removed.
    const kinds = await Promise.all(
      names.map((name) => this.#fs.lstat(this.#paths.join(dir.hostPath, name)).catch(() => undefined)),
    );
    if (kinds.some((stats) => stats !== undefined && !stats.isFile())) return;
    await this.#unlinkPartials(dir, names, onPartialRemoved);
  }

  async dropKeptPartials(path: string, options: DropKeptPartialsOptions = {}): Promise<void> {
    // Most of the time nothing is kept anywhere: no path to resolve.
    if (this.#keptPartialIndex.size === 0) return;
    this.#assertOpen();
    return this.#tracked(this.#dropKept(path, options));
  }

  async #dropKept(path: string, options: DropKeptPartialsOptions): Promise<void> {
    const target = await this.#resolve(path, { entryItself: true });
    if (target.clientPath === '') return;
    await this.#dropKeptFor(target, options);
  }

  /** What dropKeptPartials() does, for a target resolved already. */
  async #dropKeptFor(
    target: Resolved,
    { keeping, onPartialRemoved }: DropKeptPartialsOptions,
  ): Promise<void> {
    const dirHostPath = this.#paths.dirname(target.hostPath);
    const indexed = this.#keptPartialIndex.get(dirHostPath);
    if (indexed === undefined) return;
    const name = baseName(target.clientPath);
    const prefix = partialNamesPrefix(name);
    const spared = keeping === undefined ? undefined : partialName(name, keeping);
    const stale = [...indexed].filter((kept) => kept.startsWith(prefix) && kept !== spared);
    if (stale.length === 0) return;
    const dir = { hostPath: dirHostPath, clientPath: parentPath(target.clientPath) };
    await this.#unlinkPartials(dir, stale, onPartialRemoved);
  }

  #indexKept(dirHostPath: string, name: string): void {
    const names = this.#keptPartialIndex.get(dirHostPath);
    if (names === undefined) this.#keptPartialIndex.set(dirHostPath, new Set([name]));
    else names.add(name);
  }

  /**
   * A directory moved: what interrupted uploads kept under it is filed under its new place (else
   * a put under another key, or a delete, of a file there left the old blocks until the sweep).
   */
  #moveKeptIndex(fromHostPath: string, toHostPath: string): void {
    const below = `${fromHostPath}${this.#paths.sep}`;
    for (const [dir, names] of [...this.#keptPartialIndex]) {
      if (dir !== fromHostPath && !dir.startsWith(below)) continue;
      this.#keptPartialIndex.delete(dir);
      this.#keptPartialIndex.set(toHostPath + dir.slice(fromHostPath.length), names);
    }
  }

  #unindexKept(dirHostPath: string, name: string): void {
    const names = this.#keptPartialIndex.get(dirHostPath);
    if (names?.delete(name) === true && names.size === 0) this.#keptPartialIndex.delete(dirHostPath);
  }

  /**
   * Unlinks these kept partial uploads in `dir` (or other hidden files: onPartialRemoved is told
   * of partials only), but one an upload in flight has taken over.
   */
  async #unlinkPartials(
    dir: Pick<Resolved, 'hostPath' | 'clientPath'>,
    names: readonly string[],
    onPartialRemoved: RmdirOptions['onPartialRemoved'],
  ): Promise<void> {
    await Promise.all(
      names.map(async (name) => {
        const hostPath = this.#paths.join(dir.hostPath, name);
        if (this.#activeTemporaryPaths.has(hostPath)) return;
        // Claimed while it goes, as the sweep does: no upload takes it over meanwhile.
        this.#activeTemporaryPaths.add(hostPath);
        try {
          const stats = await this.#fs.lstat(hostPath).catch(() => undefined);
          if (stats === undefined) this.#unindexKept(dir.hostPath, name);
          if (stats === undefined || !stats.isFile()) return;
          await this.#fs.unlink(hostPath).then(
            // In the turn the unlink completed, as keptPartials() stops listing it.
            () => {
              this.#unindexKept(dir.hostPath, name);
              if (isPartialName(name)) onPartialRemoved?.(dir.clientPath, Number(stats.size));
            },
            noop,
          );
        } finally {
          this.#activeTemporaryPaths.delete(hostPath);
        }
      }),
    );
  }

  async setModifiedTime(
    path: string,
    mtimeMs: number,
    { ifUnchanged }: { ifUnchanged?: { size: number; mtimeMs: number } } = {},
  ): Promise<EntryInfo> {
    const target = await this.#resolve(path);
    return this.#pathLocks.run([target.hostPath], async () => {
      const stats = await fsCall(target.clientPath, () => this.#fs.lstat(target.hostPath));
      if (!stats.isFile() && !stats.isDirectory()) {
        const message = `not a file or directory: ${target.clientPath}`;
        throw new StorageError('UNSUPPORTED', message, target.clientPath);
      }
      // Another file since the caller looked (another client's upload): its time is its own.
      const found = entryInfo(baseName(target.clientPath), stats);
      if (ifUnchanged !== undefined && !isFileAsSeen(found, ifUnchanged)) return found;
      // lutimes: a link put in its place meanwhile (from outside muxftp) is not followed.
      const lutimes = this.#fs.lutimes?.bind(this.#fs);
      if (lutimes === undefined)
        throw new StorageError('UNSUPPORTED', 'this storage cannot set times', target.clientPath);
      const changed = await this.#ownChange(stats, async () => {
        await fsCall(target.clientPath, () => lutimes(target.hostPath, new Date(), fileTime(mtimeMs)));
        return fsCall(target.clientPath, () => this.#fs.lstat(target.hostPath));
      });
      return entryInfo(baseName(target.clientPath), changed);
    });
  }

  /**
   * Runs `change`, muxftp's own utime, chmod or rename of a file (`before`: the file just before;
   * `change` resolves to it since), telling the downloads and digests of it in flight, in any view:
   * it moves the file's times (a rename its ctime) and no byte, so they go on (they failed
   * IO_ERROR). Told before the call (one checking the file meanwhile takes any time) and after it
   * (the new times are theirs). `told`: some are, so `change` must resolve to the file since.
   */
  async #ownChange<T extends FsStats | undefined>(
    before: FsStats,
    change: (told: boolean) => Promise<T>,
  ): Promise<T> {
    const readers = before.isFile()
      ? [...this.#reads].filter((reader) => reader.ownChangeStarting(before))
      : [];
    let after: FsStats | undefined;
    const log = this.#ownChangeLog;
    const key = `${before.dev}:${before.ino}`;
    log.started++;
    const running = change(readers.length > 0);
    log.running.set(key, running);
    try {
      const result = await running;
      after = result;
      return result;
    } finally {
      if (log.running.get(key) === running) log.running.delete(key);
      for (const reader of readers) reader.ownChangeDone(after);
    }
  }

  /**
   * Lists a download (`make`, given the opened file's stats) in #reads, with stats taken when
   * none of muxftp's own changes ran beside them, in the same turn as it looked: one that did may
   * have moved the file's ctime after a stat the reader was not yet listed to be told of (a get
   * racing an mv failed IO_ERROR). A few tries, then the stats as they are.
   */
  async #listReader(handle: FsFileHandle, make: (opened: FsStats) => FsReadHandle): Promise<FsReadHandle> {
    const log = this.#ownChangeLog;
    for (let tries = 0; ; tries++) {
      const started = log.started;
      const stats = await handle.stat();
      const running = log.running.get(`${stats.dev}:${stats.ino}`);
      if (tries >= 3 || (running === undefined && log.started === started)) {
        const reader = make(stats);
        this.#reads.add(reader);
        return reader;
      }
      await running?.catch(noop);
    }
  }

  async setPermissions(
    path: string,
    mode: number,
    { ifUnchanged }: { ifUnchanged?: { size: number; mtimeMs: number } } = {},
  ): Promise<EntryInfo> {
    const target = await this.#resolve(path);
    const notFileOrDirectory = () =>
      new StorageError('UNSUPPORTED', `not a file or directory: ${target.clientPath}`, target.clientPath);
    const openPath = this.#fs.openPath?.bind(this.#fs);
    if (openPath === undefined)
      throw new StorageError('UNSUPPORTED', 'this storage cannot set permissions', target.clientPath);
    return this.#pathLocks.run([target.hostPath], async () => {
      let handle: PathHandle;
      try {
        handle = await openPath(target.hostPath);
      } catch (error) {
        // A symbolic link (memfs's refusal; O_PATH opens the link itself, refused below).
        if (errnoOf(error) === 'ELOOP') throw notFileOrDirectory();
        throw storageErrorFromFs(error, target.clientPath);
      }
      try {
        // Where it really is, and what: a directory on the path swapped for a link out, or a
        // link, FIFO or device put there, since resolve() looked.
        await this.#refuseOpenedOutside(handle, target.clientPath);
        const stats = await handle.stat();
        if (!stats.isFile() && !stats.isDirectory()) throw notFileOrDirectory();
        // Another file since the caller looked (another client's upload): its bits are its own.
        const found = entryInfo(baseName(target.clientPath), stats);
        if (ifUnchanged !== undefined && !isFileAsSeen(found, ifUnchanged)) return found;
        const bits = permissionsToSet(stats, mode);
        // Not when it has them: a chmod moves ctime, and the digest cache would hash it again.
        if (bits === (Number(stats.mode) & 0o7777)) return entryInfo(baseName(target.clientPath), stats);
        const changed = await this.#ownChange(stats, async () => {
          await handle.chmod(bits);
          return handle.stat();
        });
        return entryInfo(baseName(target.clientPath), changed);
      } catch (error) {
        throw storageErrorFromFs(error, target.clientPath);
      } finally {
        await handle.close().catch(noop);
      }
    });
  }

  async remove(path: string, options: RmdirOptions = {}): Promise<EntryInfo> {
    // A link is unlinked as itself, wherever it leads (storage/paths.ts).
    const target = await this.#resolve(path, { entryItself: true });
    refuseRoot(target, 'cannot remove the root');
    const removed = await this.#pathLocks.run([target.hostPath], async () => {
      // Checked first: unlink on a directory fails with EISDIR on Linux but EPERM on macOS and memfs.
      const stats = await fsCall(target.clientPath, () => this.#fs.lstat(target.hostPath));
      if (stats.isDirectory()) {
        throw new StorageError('IS_A_DIRECTORY', `is a directory: ${target.clientPath}`, target.clientPath);
      }
      await fsCall(target.clientPath, () => this.#fs.unlink(target.hostPath));
      forgetUnlinked(this.#digests, stats);
      return entryInfo(baseName(target.clientPath), stats);
    });
    // What interrupted uploads kept for the file would only hold the disk now.
    await this.#dropKeptFor(target, options).catch(noop);
    return removed;
  }

  /**
   * Replaces an existing file at `to`. An existing directory at `to` is never replaced, and a
   * directory never replaces a file: both fail with ALREADY_EXISTS (checked here, because memfs
   * would replace either silently).
   */
  async rename(from: string, to: string, options: RenameOptions = {}): Promise<RenamedEntries> {
    // The entry itself moves, as remove() removes it: a link leading out of the root (or nowhere)
    // is renamed in its directory, never followed.
    const source = await this.#resolve(from, { entryItself: true });
    const destination = await this.#resolve(to);
    refuseRoot(source, 'cannot move the root');
    refuseRoot(destination, 'cannot replace the root');
    return this.#pathLocks.run([source.hostPath, destination.hostPath], () =>
      this.#renameResolved(source, destination, options),
    );
  }

  async #renameResolved(
    source: Resolved,
    destination: Resolved,
    { refuseReplacing }: RenameOptions,
  ): Promise<RenamedEntries> {
    const sourceStats = await fsCall(source.clientPath, () => this.#fs.lstat(source.hostPath));
    const moved = entryInfo(baseName(source.clientPath), sourceStats);
    if (source.clientPath === destination.clientPath) return { moved, replaced: undefined };
    if (sourceStats.isDirectory()) {
      // Compared by real paths so that a symlink inside the directory cannot hide the loop.
      const destinationParent = await this.#resolve(parentPath(destination.clientPath));
      if (this.#confinement.isWithin(source.realPath, destinationParent.realPath)) {
        throw new StorageError(
          'INVALID_PATH',
          `cannot move a directory into itself: ${source.clientPath} -> ${destination.clientPath}`,
          destination.clientPath,
        );
      }
    }
    const destinationStats = await this.#lstatIfExists(destination);
    if (destinationStats && (destinationStats.isDirectory() || sourceStats.isDirectory())) {
      const reason = destinationStats.isDirectory()
        ? 'a directory is never replaced'
        : 'a directory cannot replace a file';
      throw new StorageError(
        'ALREADY_EXISTS',
        `already exists: ${destination.clientPath} (${reason})`,
        destination.clientPath,
      );
    }
    // The same file under another name: rename(2) then does nothing at all, both names stay. A
    // hard link is refused as mv(1) refuses it (it reported a move, and a replacement that freed
    // quota bytes still held); a name in another case on a case-insensitive filesystem is the
    // one file renamed, and replaces nothing.
    const sameFile =
      destinationStats !== undefined &&
      destinationStats.ino === sourceStats.ino &&
      destinationStats.dev === sourceStats.dev;
    if (sameFile && source.clientPath.toLowerCase() !== destination.clientPath.toLowerCase()) {
      throw new StorageError(
        'ALREADY_EXISTS',
        `${destination.clientPath} and ${source.clientPath} are the same file (hard links): nothing to move`,
        destination.clientPath,
      );
    }
    // A link onto what it leads to: rename(2) would put the link in the file's place, leading to
    // itself, the file's bytes gone. mv(1) refuses it as the same file; so does this.
    if (destinationStats !== undefined && !sameFile && sourceStats.isSymbolicLink()) {
      const led = await this.#fs.stat(source.hostPath).catch(() => undefined);
      if (led !== undefined && led.ino === destinationStats.ino && led.dev === destinationStats.dev) {
        throw new StorageError(
          'ALREADY_EXISTS',
          `${source.clientPath} leads to ${destination.clientPath}: the same file, nothing to move`,
          destination.clientPath,
        );
      }
    }
    if (destinationStats !== undefined && !sameFile && refuseReplacing !== undefined) throw refuseReplacing;
    const replaced =
      destinationStats === undefined || sameFile
        ? undefined
        : entryInfo(baseName(destination.clientPath), destinationStats);
    if (!sourceStats.isDirectory()) {
      // rename(2) moves the file's ctime (not on memfs). Its lstat after only when a reader needs it.
      await this.#ownChange(sourceStats, async (told) => {
        await fsCall(destination.clientPath, () => this.#fs.rename(source.hostPath, destination.hostPath));
        return told ? fsCall(destination.clientPath, () => this.#fs.lstat(destination.hostPath)) : undefined;
      });
      if (replaced !== undefined) forgetUnlinked(this.#digests, destinationStats!);
      return { moved, replaced };
    }
    // After every await above: refused if an upload is in flight under it, in any view (issue #7).
    await this.#moveGuard.move(this, source, async () => {
      await fsCall(destination.clientPath, () => this.#fs.rename(source.hostPath, destination.hostPath));
      this.#moveKeptIndex(source.hostPath, destination.hostPath);
    });
    return { moved, replaced };
  }

  async openRead(path: string): Promise<ReadHandle> {
    const target = await this.#resolve(path);
    const refuseUnlessFile = async (): Promise<void> =>
      refuseNonFile(target.clientPath, await fsCall(target.clientPath, () => this.#fs.stat(target.hostPath)));
    // Opening a FIFO would block a libuv thread until a writer appears: open without waiting
    // (as vsftpd does) and refuse what is not a file once open, else look before opening.
    if (READ_WITHOUT_WAITING === undefined)
      await refuseUnlessFile().catch(async (refusal: unknown) => {
        throw (await this.#danglingLink(target, refusal)) ?? refusal;
      });
    let handle: FsFileHandle;
    try {
      handle = await this.#fs.open(target.hostPath, READ_WITHOUT_WAITING ?? 'r');
    } catch (error) {
      // Say why, when it is not a file (a socket, say, does not open at all).
      await refuseUnlessFile().catch(async (refusal: unknown) => {
        throw (await this.#danglingLink(target, refusal)) ?? refusal;
      });
      throw storageErrorFromFs(error, target.clientPath);
    }
    try {
      await this.#refuseOpenedOutside(handle, target.clientPath);
      const observedAtMs = Date.now();
      const reader = await this.#listReader(handle, (opened) => {
        refuseNonFile(target.clientPath, opened);
        const made: FsReadHandle = new FsReadHandle(
          handle,
          target.clientPath,
          opened,
          observedAtMs,
          this.#digests,
          (closing) => {
            this.#reads.delete(made);
            this.#tracked(closing).catch(noop);
          },
          this.#viewOpened,
        );
        return made;
      });
      return reader;
    } catch (error) {
      await handle.close().catch(noop);
      throw storageErrorFromFs(error, target.clientPath);
    }
  }

  async createUpload(
    path: string,
    options: Parameters<Storage['createUpload']>[1] = {},
  ): Promise<UploadHandle> {
    this.#assertOpen();
    // Claimed before the first await, so that a directory move handled after this call already
    // sees the upload and refuses (issue #7: otherwise the move could carry the temporary file
    // away between our checks and our open).
    const clientPath = normalizeClientPath(path);
    const realRoot = this.#confinement.knownRealRoot;
    const lexicalParent =
      realRoot === undefined ? undefined : this.#paths.join(realRoot, parentPath(clientPath));
    const claim = this.#moveGuard.claim(this, clientPath, lexicalParent);
    try {
      return await this.#startUpload(
        claim,
        options.expectedSize ?? 0,
        options.partial,
        options.resumeFrom ?? 0,
        options.onPartialRemoved,
        options.bitsCarried === true,
      );
    } catch (error) {
      this.#moveGuard.release(claim);
      throw error;
    }
  }

  async #startUpload(
    claim: UploadClaim,
    expectedSize: number,
    partial: PartialKey | undefined,
    resumeFrom: number,
    onPartialRemoved: RmdirOptions['onPartialRemoved'],
    bitsCarried: boolean,
  ): Promise<UploadHandle> {
    let target: Resolved;
    let parentHostPath: string;
    for (;;) {
      target = await this.#resolve(claim.clientPath);
      if (target.clientPath === '') throw new StorageError('IS_A_DIRECTORY', 'is a directory: /', '');
      parentHostPath = this.#paths.dirname(target.hostPath);
      claim.parentHostPath = parentHostPath;
      await this.#refuseDirectory(target);
      // A move that passed its check before this upload was claimed may still be under way: wait
      // for it, then look again (the parent has moved, so the path now fails or means a new place).
      const move = this.#moveGuard.moveAffecting(claim);
      if (move === undefined) break;
      await move;
    }

    // One kept upload per file: what earlier uploads of it kept under other keys (its source
    // changed since, or was another's) is dropped as this one starts, before it needs the room;
    // a resume of a key nothing is known kept for only once it holds what it continues (one
    // refused for want of it changes nothing).
    const keyed = partial === undefined ? undefined : partialName(baseName(target.clientPath), partial);
    const dropOtherKeys = async (): Promise<void> => {
      if (this.#keptPartialIndex.has(parentHostPath))
        await this.#dropKeptFor(target, { keeping: partial, onPartialRemoved });
    };
    const resumesKnownKept =
      resumeFrom > 0 && this.#keptPartialIndex.get(parentHostPath)?.has(keyed!) === true;
    if (resumeFrom === 0 || resumesKnownKept) await dropOtherKeys();

    // A resumable upload writes straight into its partial file (one upload per key and directory
    // at a time: a second one at once gets a fresh temporary file and is not kept). The path is
    // claimed before the first await, so that two uploads of one key at once cannot both take it.
    const keep =
      keyed !== undefined && !this.#activeTemporaryPaths.has(this.#paths.join(parentHostPath, keyed));
    if (resumeFrom > 0 && !keep) {
      // Another upload of the same key took it over since the client asked (two `put -c` of one
      // file at once): it is there, only busy. NOT_FOUND read as a missing directory ("add -p").
      throw new StorageError(
        'RESOURCE_BUSY',
        `another upload is continuing what the server kept of ${target.clientPath}: try again once it is over`,
        target.clientPath,
      );
    }
    const temporaryPath = this.#paths.join(parentHostPath, keep ? keyed : newTemporaryName());
    this.#activeTemporaryPaths.add(temporaryPath);
    let handle: FsFileHandle;
    let heldBytes = 0;
    let room: RoomClaim | undefined;
    try {
      // Refused before a byte moves (and before a file is made) when what it declared does not
      // fit beside the uploads in flight on its filesystem: the parent's, as a disk mounted
      // below the root has its own. A parent that cannot be looked at is the open's to report.
      if (expectedSize > resumeFrom && this.#diskRooms !== undefined) {
        // What an earlier upload of this key kept is written over, not beside: its blocks need
        // no room (a put run again after a crash into a nearly full disk was refused for its own).
        const keptBytes =
          keep && this.#keptPartialIndex.get(parentHostPath)?.has(keyed!) === true
            ? await this.#fs.stat(temporaryPath).then(
                // Its blocks, not its size: a sparse one holds fewer.
                (stats) =>
                  !stats.isFile()
                    ? 0
                    : stats.blocks === undefined
                      ? Number(stats.size)
                      : Math.min(Number(stats.size), Number(stats.blocks) * 512),
                () => 0,
              )
            : 0;
        const device = await this.#fs.stat(parentHostPath).then(
          (stats) => stats.dev,
          () => undefined,
        );
        if (device !== undefined)
          room = await this.#diskRooms.admit(
            device,
            expectedSize - resumeFrom,
            target.clientPath,
            parentHostPath,
            Math.max(0, keptBytes - resumeFrom),
          );
      }
      handle = await this.#openTemporary(
        target.clientPath,
        temporaryPath,
        keep,
        resumeFrom > 0,
        bitsCarried,
      ).catch(async (error: unknown) => {
        // The parent is looked at only when the open failed for want of it: say which.
        const code = (error as { code?: unknown }).code;
        if (code === 'NOT_FOUND' || code === 'NOT_A_DIRECTORY') await this.#refuseParent(target);
        throw error;
      });
      try {
        await this.#refuseOpenedOutside(handle, target.clientPath);
        if (keep) {
          // Kept data is left as it is until the upload ends (upload.ts cuts it then), so that an
          // upload refused or cut before its first byte leaves it whole.
          const held = await handle.stat();
          heldBytes = held.isFile() ? Number(held.size) : 0;
          // Kept before they were made the server's alone, or by a put carrying no bits: so from
          // here on, when this one carries them.
          const hidden = held.isFile() ? hiddenBitsFor(held.mode, bitsCarried) : undefined;
          if (hidden !== undefined) await handle.chmod(hidden).catch(noop);
          if (!held.isFile() || heldBytes < resumeFrom) {
            throw new StorageError(
              'NOT_FOUND',
              `the partial upload no longer holds ${resumeFrom} bytes: ${target.clientPath}`,
              target.clientPath,
            );
          }
        }
        if (resumeFrom > 0 && !resumesKnownKept) await dropOtherKeys();
      } catch (error) {
        await handle.close().catch(noop);
        if (!keep) await this.#fs.unlink(temporaryPath).catch(noop);
        throw error;
      }
    } catch (error) {
      this.#activeTemporaryPaths.delete(temporaryPath);
      room?.release();
      throw error;
    }
    // From here to the caller there is no await: a quota applies the bytes taken over (the
    // upload's takenOverBytes) in the same turn as keptPartials() stops listing them.
    if (keep) {
      this.#partialsInUse.add(temporaryPath);
      this.#unindexKept(parentHostPath, keyed!);
    }
    const upload = new FsUpload({
      fs: this.#fs,
      handle,
      temporaryPath,
      target,
      durable: this.#durable,
      parentHostPath,
      directorySyncs: this.#directorySyncs,
      expectedSize,
      startOffset: resumeFrom,
      keepable: keep,
      heldBytes,
      bitsCarried,
      reserve: this.#reserve,
      room,
      digests: this.#digests,
      ...(this.#locateOpened !== undefined ? { locate: this.#locateOpened } : {}),
      exclusive: (task) => this.#pathLocks.run([target.hostPath], task),
      // Checked again at the end: an upload can take minutes, and the tree may change meanwhile.
      // Not refused once close() has begun: close() waits for a commit under way to finish (a
      // connection cut during its commit leaves it running), and refusing here removed the
      // verified file's bytes.
      checkTarget: async () => {
        const now = await this.#confinement.resolve(target.clientPath);
        await this.#refuseDirectory(now);
        if (now.missingNames > 0) return undefined;
        // Called right before the commit's rename: the file it finds is the one replaced.
        return this.#listEntry(this.#paths.dirname(now.hostPath), baseName(now.clientPath), (stats) =>
          forgetUnlinked(this.#digests, stats),
        );
      },
      onFinish: (kept) => {
        if (kept && keep) this.#indexKept(parentHostPath, keyed!);
        this.#activeTemporaryPaths.delete(temporaryPath);
        this.#partialsInUse.delete(temporaryPath);
        this.#uploads.delete(upload);
        this.#moveGuard.release(claim);
      },
    });
    this.#uploads.add(upload);
    return upload;
  }

  /**
   * Opens an upload's temporary file: a fresh name exclusively ('wx' never follows a link in the
   * last name; #refuseOpenedOutside covers the rest); a partial's as it is ('r+'), created when
   * missing unless a resume needs it. Names under .muxftp- are reserved, so no client can have
   * put a link there; one made on the host is not followed, and goes.
   */
  async #openTemporary(
    clientPath: string,
    hostPath: string,
    partial: boolean,
    resuming: boolean,
    bitsCarried: boolean,
  ): Promise<FsFileHandle> {
    if (partial) {
      try {
        return await this.#fs.open(hostPath, OPEN_KEPT_PARTIAL);
      } catch (error) {
        // A link where the kept blocks go was made on the host: no upload's, so nothing kept. It
        // goes, or every later put of that name failed "path leads outside the root" (a helper's
        // pass), with a name the user can neither see nor remove.
        const linked = errnoOf(error) === 'ELOOP';
        if (linked) await this.#fs.unlink(hostPath).catch(noop);
        if (resuming && (isMissing(error) || linked))
          throw new StorageError(
            'NOT_FOUND',
            `nothing is kept of an upload of ${clientPath} of this source and size to continue: put it from the start`,
            clientPath,
          );
        if (resuming || !(isMissing(error) || linked)) throw storageErrorFromFs(error, clientPath);
      }
    }
    // Carrying bits, the server's alone until committed: a private file's bytes, kept for a day
    // should it fail. Else as any new file: the kernel's bits (umask, default ACL) are its final ones.
    return this.#fs.open(hostPath, 'wx', transferFileBits(bitsCarried)).catch(async (error: unknown) => {
      throw await this.#creationError(error, clientPath, hostPath);
    });
  }

  /**
   * A new file's or directory's failure, said: ENOSPC with bytes free is a filesystem out of
   * inodes, which "no space left on device" beside a `df` showing room left unexplained (a
   * helper's pass: a tmpfs of 200 inodes).
   */
  async #creationError(error: unknown, clientPath: string, hostPath: string): Promise<StorageError> {
    if (errnoOf(error) === 'ENOSPC' && this.#fs.statfs !== undefined) {
      const room = await this.#fs.statfs(this.#paths.dirname(hostPath)).catch(() => undefined);
      // A filesystem without an inode table (btrfs, vfat) says 0 of 0: not this.
      const counted = room?.files === undefined || Number(room.files) > 0;
      if (counted && room?.ffree !== undefined && Number(room.ffree) === 0 && Number(room.bavail) > 0)
        return new StorageError(
          'NO_SPACE',
          `no free inodes left on the server's disk (its count of files and directories is full, though bytes are free): ${displayPath(clientPath)}`,
          clientPath,
          { cause: error },
        );
    }
    return storageErrorFromFs(error, clientPath);
  }

  /**
   * Refuses a file whose opened descriptor really lies outside the real root: a directory on
   * the path was swapped for a symlink after resolve() checked it (issue #7).
   */
  async #refuseOpenedOutside(handle: FsFileHandle | PathHandle, clientPath: string): Promise<void> {
    const location = await this.#locateOpened?.(handle);
    if (location === undefined) return;
    if (this.#confinement.isWithin(await this.#confinement.realRoot(), location)) return;
    throw new StorageError('INVALID_PATH', `path leads outside the root: ${clientPath}`, clientPath);
  }

  async openPartial(path: string, key: PartialKey): Promise<PartialRead | undefined> {
    const target = await this.#resolve(path);
    if (target.clientPath === '') return undefined;
    const name = partialName(baseName(target.clientPath), key);
    const hostPath = this.#paths.join(this.#paths.dirname(target.hostPath), name);
    // One in use is being written: nothing to offer until that upload ends.
    if (this.#activeTemporaryPaths.has(hostPath)) return undefined;
    let handle: FsFileHandle;
    try {
      // Not waiting: a FIFO under this name (a host user's) would hold the loop (opens run on it).
      handle = await this.#fs.open(hostPath, READ_KEPT_PARTIAL);
    } catch (error) {
      if (isMissing(error)) return undefined;
      // A link made on the host in its place (no upload's): nothing is kept (#openTemporary removes it).
      if (errnoOf(error) === 'ELOOP') return undefined;
      throw storageErrorFromFs(error, target.clientPath);
    }
    try {
      await this.#refuseOpenedOutside(handle, target.clientPath);
      const stats = await handle.stat();
      if (!stats.isFile()) throw new StorageError('NOT_FOUND', `no partial upload: ${path}`, path);
      return {
        size: Number(stats.size),
        read: async (buffer, offset, length, position) =>
          (await handle.read(buffer, offset, length, position)).bytesRead,
        close: () => handle.close(),
      };
    } catch (error) {
      await handle.close().catch(noop);
      throw error;
    }
  }

  async partialInUse(path: string, key: PartialKey): Promise<boolean> {
    const target = await this.#resolve(path);
    if (target.clientPath === '') return false;
    const name = partialName(baseName(target.clientPath), key);
    return this.#activeTemporaryPaths.has(this.#paths.join(this.#paths.dirname(target.hostPath), name));
  }

  async dropPartial(path: string, key: PartialKey, options: RmdirOptions = {}): Promise<void> {
    // Resolved as openPartial() and createUpload() resolve it: beside the file an upload writes.
    const target = await this.#resolve(path);
    if (target.clientPath === '') return;
    const dir = { hostPath: this.#paths.dirname(target.hostPath), clientPath: parentPath(target.clientPath) };
    // One an upload in flight writes (or one being kept or dropped) is passed over.
    await this.#unlinkPartials(
      dir,
      [partialName(baseName(target.clientPath), key)],
      options.onPartialRemoved,
    );
  }

  async keptPartials(path: string): Promise<EntryInfo[]> {
    const dir = await this.#resolve(path);
    const entries = await fsCall(dir.clientPath, () => this.#fs.readdir(dir.realPath));
    const names = entries.filter((name): name is string => typeof name === 'string' && isPartialName(name));
    const kept = await Promise.all(
      names.map(async (name) => {
        const hostPath = this.#paths.join(dir.realPath, name);
        // One an upload has taken over is its own, not kept (the sweep leaves it out too).
        if (this.#partialsInUse.has(hostPath)) return undefined;
        this.#indexKept(dir.realPath, name);
        const stats = await this.#fs.lstat(hostPath).catch(() => undefined);
        // Looked up again after the await: an upload may have taken it over meanwhile.
        if (stats === undefined || !stats.isFile() || this.#partialsInUse.has(hostPath)) return undefined;
        return entryInfo(name, stats);
      }),
    );
    return kept.filter((entry): entry is EntryInfo => entry !== undefined);
  }

  /**
   * Best effort: entries that vanish or cannot be read are skipped. Symlinks are not followed,
   * and temporary files of uploads in flight on this instance are left alone.
   */
  async sweepTemporaryFiles(options: SweepOptions = {}): Promise<number> {
    this.#assertOpen();
    return this.#tracked(this.#sweep(options));
  }

  async #sweep(options: SweepOptions): Promise<number> {
    const keepAfterMs = Date.now() - (options.partialRetentionMs ?? 0);
    let removed = 0;
    // Host paths, with the client path of each below the root (for onPartialRemoved).
    const pending: Array<{ hostPath: string; clientPath: string }> = [
      { hostPath: await this.#confinement.realRoot(), clientPath: '' },
    ];
    // Stopped between directories and batches once closed: a large tree's sweep ran on after close().
    const background = this.#background;
    while (pending.length > 0 && !background.closed) {
      const dir = pending.pop()!;
      const entries = await this.#fs.readdir(dir.hostPath).catch((): readonly unknown[] => []);
      const names = entries.filter((name): name is string => typeof name === 'string');
      // Another server's root inside this one: its uploads in flight are not our leftovers.
      if (
        dir.clientPath !== '' &&
        options.servedByAnother !== undefined &&
        names.includes(SERVED_ROOT_LOCK_NAME) &&
        (await options.servedByAnother(dir.hostPath))
      ) {
        continue;
      }
      // A batch at a time, the loop turning between batches, as listBatches does: a directory of
      // 50,000 entries looked every one up at once and held the loop ~0.24 s.
      for (let start = 0; start < names.length && !background.closed; start += DEFAULTS.listBatchEntries) {
        if (start > 0) await nextTurn();
        await Promise.all(
          names.slice(start, start + DEFAULTS.listBatchEntries).map(async (name) => {
            const hostPath = this.#paths.join(dir.hostPath, name);
            const stats = await this.#fs.lstat(hostPath).catch(() => undefined);
            if (stats === undefined) return;
            if (!isTemporaryName(name)) {
              if (stats.isDirectory()) {
                pending.push({
                  hostPath,
                  clientPath: dir.clientPath === '' ? name : `${dir.clientPath}/${name}`,
                });
              }
              return;
            }
            // Only the server's own uploads' files: a name reserved but not of its making
            // (`.muxftp-notes.txt`), or a client's download kept for get -c or in progress in a
            // directory the server also serves, is hidden, never removed.
            if (!isUploadTemporaryName(name)) return;
            if (!stats.isFile() || this.#activeTemporaryPaths.has(hostPath)) return;
            const partial = isPartialName(name);
            if (!partial && options.partialsOnly) return;
            if (
              !partial &&
              options.temporariesUntouchedForMs !== undefined &&
              Math.max(toMs(stats.mtimeMs), toMs(stats.ctimeMs)) >
                Date.now() - options.temporariesUntouchedForMs
            ) {
              return;
            }
            // A kept partial upload lives out its retention (issue #8).
            // Its age is its last change's: a commit killed after stamping the source's time
            // (maybe years old) left an mtime that says nothing of when the data was kept.
            if (partial && Math.max(toMs(stats.mtimeMs), toMs(stats.ctimeMs)) > keepAfterMs) {
              if (!this.#partialsInUse.has(hostPath)) this.#indexKept(dir.hostPath, name);
              return;
            }
            // Looked up again after the await, and claimed while it goes: an upload that took it
            // over meanwhile keeps it, and none takes it over while it goes (its bytes would be
            // freed twice).
            if (this.#activeTemporaryPaths.has(hostPath)) return;
            this.#activeTemporaryPaths.add(hostPath);
            await this.#fs.unlink(hostPath).then(() => {
              removed++;
              if (partial) this.#unindexKept(dir.hostPath, name);
              // In the turn the unlink completed, as keptPartials() stops listing it.
              if (partial) options.onPartialRemoved?.(dir.clientPath, Number(stats.size));
            }, noop);
            this.#activeTemporaryPaths.delete(hostPath);
          }),
        );
      }
    }
    return removed;
  }

  async space(): Promise<{ totalBytes: number; freeBytes: number; keptBytes: number } | undefined> {
    if (this.#fs.statfs === undefined) return undefined;
    try {
      const realRoot = await this.#confinement.realRoot();
      const stats = await this.#fs.statfs(realRoot);
      const { bsize, blocks, bavail } = stats;
      // Less what uploads in flight declared and have not written: the room a new one is admitted to.
      const claimed = this.#diskRooms?.claimedBytes((await this.#fs.stat(realRoot)).dev, stats) ?? 0;
      return {
        totalBytes: Number(bsize) * Number(blocks),
        freeBytes: Math.max(0, Number(bsize) * Number(bavail) - claimed),
        keptBytes: await this.#keptBytesUnder(realRoot),
      };
    } catch (error) {
      throw storageErrorFromFs(error, '');
    }
  }

  /**
   * Bytes of the kept partial uploads under `realRoot` that no upload has taken over: room that
   * listings do not show (their names are hidden), freed by put -c or their retention's end.
   */
  async #keptBytesUnder(realRoot: string): Promise<number> {
    const sizes = [...this.#keptPartialIndex]
      .filter(([dir]) => this.#confinement.isWithin(realRoot, dir))
      .flatMap(([dir, names]) =>
        [...names].map((name) =>
          this.#fs.lstat(this.#paths.join(dir, name)).then(
            (info) => (info.isFile() ? Number(info.size) : 0),
            () => 0,
          ),
        ),
      );
    return (await Promise.all(sizes)).reduce((sum, size) => sum + size, 0);
  }

  /**
   * The directory `path` (created with its parents if missing) as a storage of its own: its
   * paths are relative to it and confined to its real location by its own ConfinedRoot, exactly
   * as this storage's are to the root, so nothing outside it is reachable, symlinks included.
   * Used for a user's home.
   */
  async subtree(path: string): Promise<Storage> {
    await this.mkdir(path, { parents: true });
    const target = await this.#resolve(path);
    if (target.clientPath === '') return this;
    // One the server may not enter (mode 000, another account's 700) logged its user in to have
    // every request refused PERMISSION_DENIED: refused here, at login, as a file there is. `home/.`
    // is looked up inside it, which takes the right to enter it; asked at each login, as its
    // mode may change while its view is kept.
    await fsCall(target.clientPath, () => this.#fs.stat(`${target.hostPath}${this.#paths.sep}.`));
    const cached = this.#views.get(target.realPath);
    if (cached !== undefined) return cached;
    const view = new FsStorage({
      // Its calls check against the home, not the served root: a swap cannot lead into another's.
      fs: this.#fs.confinedTo?.(target.realPath) ?? this.#fs,
      root: target.realPath,
      durable: this.#durable,
      description: `${this.description} home ${target.clientPath}`,
      hostPaths: this.#paths,
      ...(this.#reserve !== undefined ? { reserve: this.#reserve } : {}),
      ...(this.#locateOpened !== undefined ? { locateOpened: this.#locateOpened } : {}),
      // A home's downloads are lent the buffers as the root's are (memory storage).
      ...(this.#viewOpened !== undefined ? { viewOpened: this.#viewOpened } : {}),
    });
    view.#digests = this.#digests;
    view.#uploads = this.#uploads;
    view.#reads = this.#reads;
    view.#background = this.#background;
    view.#ownChangeLog = this.#ownChangeLog;
    view.#activeTemporaryPaths = this.#activeTemporaryPaths;
    view.#partialsInUse = this.#partialsInUse;
    view.#keptPartialIndex = this.#keptPartialIndex;
    view.#listingBudget = this.#listingBudget;
    view.#views = this.#views;
    view.#pathLocks = this.#pathLocks;
    view.#directorySyncs = this.#directorySyncs;
    view.#diskRooms = this.#diskRooms;
    // One guard for all views: a move through one home sees uploads through a home nested in it.
    view.#moveGuard = this.#moveGuard;
    this.#views.set(target.realPath, view);
    // Known from the start, so each upload's claim carries a host path before it resolves.
    await view.#confinement.realRoot();
    return view;
  }

  /** How many file versions' digests are remembered (the digest cache, shared by every view). */
  get rememberedDigestVersions(): number {
    return this.#digests.size;
  }

  /** The memory those digests hold, as the cache estimates it (at most its maxBytes). */
  get rememberedDigestBytes(): number {
    return this.#digests.bytes;
  }

  /**
   * Aborts uploads still open (a resumable one keeps its whole blocks, as for any interruption)
   * and closes read handles; later calls reject, through every subtree() view too. Work started
   * on its own is waited for: a sweep stops at its next directory (or batch of one), kept
   * partials' removals and handles' closes under way end. Safe to call twice.
   */
  async close(): Promise<void> {
    this.#background.closed = true;
    await Promise.all([
      // An interruption like any other: a resumable upload keeps its whole blocks (issue #8).
      ...[...this.#uploads].map((upload) => upload.abort({ keepPartial: true })),
      ...[...this.#reads].map((reader) => reader.close().catch(noop)),
    ]);
    const running = this.#background.running;
    while (running.size > 0) await Promise.allSettled([...running]);
  }

  /** `work`, waited for by close() until it settles. */
  #tracked<T>(work: Promise<T>): Promise<T> {
    const running = this.#background.running;
    running.add(work);
    const settled = (): void => {
      running.delete(work);
    };
    work.then(settled, settled);
    return work;
  }

  #assertOpen(): void {
    // Shared by every view: a home's view refuses with the root's storage (a quota's walk of a
    // large home went on after close()).
    if (this.#background.closed) throw new StorageError('IO_ERROR', 'storage is closed');
  }

  /** Checks and confines a client path (storage/paths.ts); refused once storage is closed. */
  #resolve(path: string, options?: { entryItself?: boolean }): Promise<Resolved> {
    this.#assertOpen();
    return this.#confinement.resolve(path, options);
  }

  /** NOT_FOUND when the directory a listing reads is no longer where it was listed from. */
  async #refuseListedDirectoryGone(dir: Resolved, listed: FsStats | undefined): Promise<void> {
    const stats = await this.#fs.stat(dir.hostPath).catch(() => undefined);
    if (stats?.isDirectory() === true && stats.dev === listed?.dev && stats.ino === listed.ino) return;
    throw new StorageError(
      'NOT_FOUND',
      `directory moved or removed while it was listed: ${displayPath(dir.clientPath)}`,
      dir.clientPath,
    );
  }

  /**
   * NOT_FOUND of a name that is there, a symbolic link leading to nothing (ls lists it): said so,
   * not as "no such file". Undefined for any other failure.
   */
  async #danglingLink(target: Resolved, error: unknown): Promise<StorageError | undefined> {
    if (!(error instanceof StorageError) || error.code !== 'NOT_FOUND') return undefined;
    const stats = await this.#fs.lstat(target.hostPath).catch(() => undefined);
    if (stats?.isSymbolicLink() !== true) return undefined;
    return new StorageError(
      'NOT_FOUND',
      `symbolic link to nothing (what it leads to does not exist): ${displayPath(target.clientPath)}`,
      target.clientPath,
    );
  }

  /**
   * One entry of a listing; a link that dangles or leads outside shows as 'other'. `seen`: told
   * the entry's own stats (not a link's).
   */
  async #listEntry(
    dirHostPath: string,
    name: string,
    seen?: (stats: FsStats) => void,
  ): Promise<EntryInfo | undefined> {
    const hostPath = this.#paths.join(dirHostPath, name);
    let stats: FsStats;
    try {
      stats = await this.#fs.lstat(hostPath);
    } catch (error) {
      // A name not UTF-8 on the host came back from readdir with U+FFFD for its bad bytes, so
      // no call finds it: shown as such (else a copy of the tree left it out without a word).
      // (A true U+FFFD name removed since readdir is shown so once, too: unreachable either way.)
      if (isMissing(error) && name.includes('\uFFFD'))
        return { name, type: 'other', size: 0, mtimeMs: 0, notUtf8: true };
      // Removed since readdir: leave it out. Anything else: show it, without details.
      return isMissing(error) ? undefined : { name, type: 'other', size: 0, mtimeMs: 0 };
    }
    if (!stats.isSymbolicLink()) {
      seen?.(stats);
      return entryInfo(name, stats);
    }
    const asLink: EntryInfo = { name, type: 'other', size: 0, mtimeMs: toMs(stats.mtimeMs), link: true };
    try {
      const real = (await this.#fs.realpath(hostPath)).toString();
      if (!this.#confinement.isWithin(await this.#confinement.realRoot(), real)) return asLink;
      return { ...entryInfo(name, await this.#fs.stat(hostPath)), link: true };
    } catch {
      return asLink;
    }
  }

  async #lstatIfExists(target: Resolved): Promise<FsStats | undefined> {
    try {
      return await this.#fs.lstat(target.hostPath);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return undefined;
      throw storageErrorFromFs(error, target.clientPath);
    }
  }

  /** Throws NOT_FOUND or NOT_A_DIRECTORY when the target's parent is missing or not a directory. */
  async #refuseParent(target: Resolved): Promise<void> {
    const parentClientPath = parentPath(target.clientPath);
    const stats = await fsCall(parentClientPath, () => this.#fs.stat(this.#paths.dirname(target.hostPath)));
    if (!stats.isDirectory()) {
      throw new StorageError('NOT_A_DIRECTORY', `not a directory: ${parentClientPath}`, parentClientPath);
    }
  }

  /** Throws IS_A_DIRECTORY when the target is a directory (a link to one included). */
  async #refuseDirectory(target: Resolved): Promise<void> {
    // resolve() found no such entry: nothing to look at (the rename decides in the end).
    if (target.missingNames > 0) return;
    let stats: FsStats;
    try {
      stats = await this.#fs.stat(target.hostPath);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return;
      throw storageErrorFromFs(error, target.clientPath);
    }
    if (stats.isDirectory()) {
      throw new StorageError('IS_A_DIRECTORY', `is a directory: ${target.clientPath}`, target.clientPath);
    }
  }
}

class FsReadHandle implements ReadHandle {
  readonly size: number;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly #handle: FsFileHandle;
  readonly #clientPath: string;
  readonly #stats: FsStats;
  /** When #stats was taken: what the digest cache needs to tell a racily clean version. */
  readonly #observedAtMs: number;
  readonly #digests: DigestCache;
  readonly #onClose: (closing: Promise<void>) => void;
  readonly #viewOpened: ViewOpened | undefined;
  #closing: Promise<void> | undefined;
  /**
   * The modification and change times and the link count the file should still have: the opened
   * ones, or those muxftp's own utime, chmod or mv left it with since.
   */
  #expectedMtimeMs: number;
  #expectedCtimeMs: number;
  #expectedNlink: number;
  /** How many of muxftp's own changes of the file are under way (ownChangeStarting() to ownChangeDone()). */
  #ownChanges = 0;

  constructor(
    handle: FsFileHandle,
    clientPath: string,
    stats: FsStats,
    observedAtMs: number,
    digests: DigestCache,
    onClose: (closing: Promise<void>) => void,
    viewOpened: ViewOpened | undefined,
  ) {
    this.#handle = handle;
    this.#clientPath = clientPath;
    this.#stats = stats;
    this.#observedAtMs = observedAtMs;
    this.#digests = digests;
    this.#onClose = onClose;
    this.#viewOpened = viewOpened;
    this.size = Number(stats.size);
    this.#expectedMtimeMs = Number(stats.mtimeMs);
    this.#expectedCtimeMs = Number(stats.ctimeMs);
    this.#expectedNlink = Number(stats.nlink ?? 1);
    this.mtimeMs = toMs(stats.mtimeMs);
    this.mode = Number(stats.mode) & PERMISSION_BITS;
  }

  knownDigest(algorithm: IntegrityAlgorithm): FileDigest | undefined {
    return this.#digests.get(this.#stats, algorithm);
  }

  rememberDigest(digest: FileDigest): void {
    this.#digests.set(this.#stats, digest, this.#observedAtMs);
  }

  knownLeadingBlocks(algorithm: IntegrityAlgorithm): readonly Buffer[] {
    return this.#digests.leadingBlocks(this.#stats, algorithm);
  }

  rememberLeadingBlocks(algorithm: IntegrityAlgorithm, blockDigests: readonly Buffer[]): void {
    this.#digests.setLeadingBlocks(this.#stats, algorithm, blockDigests, this.#observedAtMs);
  }

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.#closing)
      throw new StorageError('IO_ERROR', `file is closed: ${this.#clientPath}`, this.#clientPath);
    const { bytesRead } = await fsCall(this.#clientPath, () =>
      this.#handle.read(buffer, offset, length, position),
    );
    return bytesRead;
  }

  async changedSinceOpen(): Promise<boolean> {
    const now = await fsCall(this.#clientPath, () => this.#handle.stat());
    if (now.size !== this.#stats.size) return true;
    // While muxftp itself sets the file's time, bits or name, the new times are no change either.
    if (this.#ownChanges > 0) return false;
    if (Number(now.mtimeMs) !== this.#expectedMtimeMs) return true;
    // ctime too: a write with its mtime put back (rsync --inplace -t, touch -r) moves it, as
    // GNU tar counts it. A link or unlink moves it and no byte (an upload committed over the
    // file unlinks it): a moved link count clears it.
    return Number(now.ctimeMs) !== this.#expectedCtimeMs && Number(now.nlink ?? 1) === this.#expectedNlink;
  }

  /**
   * muxftp is about to set this file's time or bits, or rename it (`before`: the file just
   * before): true when this reader takes it for no change, the file being as it expects it (a
   * write before that still shows). ownChangeDone() follows, once.
   */
  ownChangeStarting(before: FsStats): boolean {
    const asExpected =
      before.dev === this.#stats.dev &&
      before.ino === this.#stats.ino &&
      before.size === this.#stats.size &&
      Number(before.mtimeMs) === this.#expectedMtimeMs &&
      (Number(before.ctimeMs) === this.#expectedCtimeMs || Number(before.nlink ?? 1) !== this.#expectedNlink);
    if (asExpected) this.#ownChanges++;
    return asExpected;
  }

  /** The change is made (`after`: the file since, its times and links now the expected ones), or failed (undefined). */
  ownChangeDone(after: FsStats | undefined): void {
    this.#ownChanges--;
    if (after === undefined || after.dev !== this.#stats.dev || after.ino !== this.#stats.ino) return;
    this.#expectedMtimeMs = Number(after.mtimeMs);
    this.#expectedCtimeMs = Number(after.ctimeMs);
    this.#expectedNlink = Number(after.nlink ?? 1);
  }

  view(position: number, length: number): Buffer | undefined {
    if (this.#closing || this.#viewOpened === undefined || position + length > this.size) return undefined;
    return this.#viewOpened(this.#handle, position, length);
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = fsCall(this.#clientPath, () => this.#handle.close());
      this.#onClose(this.#closing);
    }
    return this.#closing;
  }
}

function refuseRoot(target: Resolved, reason: string): void {
  if (target.clientPath === '') throw new StorageError('INVALID_PATH', `invalid path: ${reason}`, '');
}

/** A directory's setgid and sticky bits: its new files' group, and who may remove what in it. */
const DIRECTORY_SPECIAL_BITS = 0o3000;

/**
 * The bits chmod gives: those asked for less the server's umask (the admin's bound on what any
 * client may open up, as for uploads), never fewer than the server's own. A directory keeps its
 * setgid and sticky bits; a file loses setuid and setgid (else a client could make a setuid
 * program someone put on the host runnable by others).
 */
function permissionsToSet(stats: FsStats, mode: number): number {
  const asked = lessUmask(mode);
  if (!stats.isDirectory()) return asked | SERVER_OWN_FILE_BITS;
  return asked | SERVER_OWN_DIRECTORY_BITS | (Number(stats.mode) & DIRECTORY_SPECIAL_BITS);
}

/** open(2) flags to read a file without waiting to open it; undefined where there are none (Windows). */
const READ_WITHOUT_WAITING =
  fsConstants.O_NONBLOCK === undefined ? undefined : fsConstants.O_RDONLY | fsConstants.O_NONBLOCK;
/** The same for a kept partial upload opened to continue it ('r+'); a regular file ignores O_NONBLOCK. */
const READ_WRITE_WITHOUT_WAITING =
  fsConstants.O_NONBLOCK === undefined ? undefined : fsConstants.O_RDWR | fsConstants.O_NONBLOCK;

/** A kept partial opened to read what it holds, never through a link in its name (ELOOP). */
const READ_KEPT_PARTIAL =
  fsConstants.O_NOFOLLOW === undefined
    ? (READ_WITHOUT_WAITING ?? 'r')
    : (READ_WITHOUT_WAITING ?? fsConstants.O_RDONLY) | fsConstants.O_NOFOLLOW;
/** A kept partial opened to continue it, never through a link in its name (ELOOP). */
const OPEN_KEPT_PARTIAL =
  fsConstants.O_NOFOLLOW === undefined
    ? (READ_WRITE_WITHOUT_WAITING ?? 'r+')
    : (READ_WRITE_WITHOUT_WAITING ?? fsConstants.O_RDWR) | fsConstants.O_NOFOLLOW;

function refuseNonFile(clientPath: string, stats: FsStats): void {
  if (stats.isDirectory()) {
    throw new StorageError('IS_A_DIRECTORY', `is a directory: ${displayPath(clientPath)}`, clientPath);
  }
  if (!stats.isFile()) {
    // Nothing to read (a FIFO, a socket, a device), not a right the account lacks: as the CLI says it.
    throw new StorageError('UNSUPPORTED', `not a regular file: ${clientPath}`, clientPath);
  }
}

/** By UTF-16 code units: the same order on every host, unlike localeCompare. */
function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/** A file's last name is gone: what the cache knew of it goes too (one with other names stays). */
function forgetUnlinked(digests: DigestCache, stats: FsStats): void {
  if (Number(stats.nlink ?? 1) <= 1) digests.forget(stats);
}

/**
 * `digestCacheMaxBytes` as given, or a TypeError naming `owner`: one check for every storage that
 * takes the option, made before anything is created (DiskStorage.open checks it before the root).
 */
export function checkDigestCacheMaxBytes(owner: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`${owner}: options.digestCacheMaxBytes must be a non-negative integer`);
  }
  return value;
}
