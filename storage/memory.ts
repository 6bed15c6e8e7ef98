/** Files in memory, gone when the process exits: FsStorage over a fresh memfs volume. */

import { constants as bufferConstants } from 'node:buffer';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type IProcess, Volume } from 'memfs';
import { DEFAULTS } from '../shared/defaults.js';
import {
  lessUmask,
  NEW_FILE_BITS,
  PERMISSION_BITS,
  SERVER_OWN_DIRECTORY_BITS,
  SERVER_OWN_FILE_BITS,
} from '../shared/fileModes.js';
import { LoopTurns, settle } from '../shared/loopTurns.js';
import { processMemoryLimit } from '../shared/memoryLimit.js';
import type { FsFileHandle, FsPromises } from './fsApi.js';
import { checkDigestCacheMaxBytes, FsStorage } from './fsStorage.js';

/** Options of MemoryStorage; every field is optional. */
export interface MemoryStorageOptions {
  /**
   * Bytes all uploads in flight together may have reserved ahead of their data (a declared size
   * is reserved once 1/64 of it has arrived). Past it, uploads grow as their data arrives.
   * Default DEFAULTS.memoryMaxReservedBytes.
   */
  maxReservedBytes?: number;
  /**
   * The process's resident size past which files take no more memory: a write that would grow
   * one fails NO_SPACE, and no declared size is reserved ahead. Default
   * DEFAULTS.memoryStorageShareOfMemory of the memory the process may use (shared/memoryLimit.ts).
   */
  maxResidentBytes?: number;
  /** The most memory the digests remembered of stored files may hold. Default DEFAULTS.digestCacheMaxBytes. */
  digestCacheMaxBytes?: number;
}

/** An empty in-memory tree (memfs), lost when the process exits: for tests and throwaway servers. */
export class MemoryStorage extends FsStorage {
  /** The volume holding the files, for tests that set up what clients cannot (symlinks, say). */
  readonly volume: Volume;
  /** Bytes reserved by uploads in flight right now. */
  #reservedBytes = 0;

  /** Throws a TypeError for a bad option. */
  constructor(options: MemoryStorageOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('MemoryStorage: options must be an object');
    }
    const maxReservedBytes = options.maxReservedBytes ?? DEFAULTS.memoryMaxReservedBytes;
    if (!Number.isSafeInteger(maxReservedBytes) || maxReservedBytes < 0) {
      throw new TypeError('MemoryStorage: options.maxReservedBytes must be a non-negative integer');
    }
    const maxResidentBytes =
      options.maxResidentBytes ?? Math.floor(processMemoryLimit() * DEFAULTS.memoryStorageShareOfMemory);
    if (!Number.isSafeInteger(maxResidentBytes) || maxResidentBytes < 0) {
      throw new TypeError('MemoryStorage: options.maxResidentBytes must be a non-negative integer');
    }
    const digestCacheMaxBytes = checkDigestCacheMaxBytes('MemoryStorage', options.digestCacheMaxBytes);
    // Reserved capacity is untouched memory, not yet in the resident size: counted beside it
    // (a review: four uploads declaring 80 MiB each all fitted a room of 96 MiB).
    const room = new MemoryRoom(maxResidentBytes, () => this.#reservedBytes);
    const volume = Volume.fromJSON({}, '/', { process: processOfThisVolume() });
    neverReuseInodeNumbers(volume);
    super({
      fs: memfsPromises(volume, new LoopTurns(), room),
      root: '/',
      durable: false,
      description: 'memory',
      ...(digestCacheMaxBytes !== undefined ? { digestCacheMaxBytes } : {}),
      viewOpened: (handle, position, length) => viewOfOpened(volume, handle, position, length),
      reserve: (handle, bytes) => {
        if (this.#reservedBytes + bytes > maxReservedBytes || !room.has(bytes)) return undefined;
        if (!reserveCapacity(volume, handle, bytes)) return undefined;
        this.#reservedBytes += bytes;
        return () => {
          this.#reservedBytes -= bytes;
        };
      },
    });
    this.volume = volume;
  }

  /** Bytes reserved ahead of their data by uploads in flight. */
  get reservedBytes(): number {
    return this.#reservedBytes;
  }
}

/** Runs a call and gives its outcome as a promise: at once (settle) or as a LoopTurns lets it. */
type CallRunner = <T>(call: () => T | Promise<T>) => Promise<T>;

/**
 * A memfs volume's calls as storage's FsPromises, each done in place (memfs's own promises only
 * defer the same work to a microtask) and run by `run`: at once by default (tests wrap single
 * calls of it), within the loop's turn budget in MemoryStorage.
 */
export function memfsApi(volume: Volume, run: CallRunner = settle): FsPromises {
  return {
    stat: (path) => run(() => volume.statSync(path)),
    lstat: (path) => run(() => volume.lstatSync(path)),
    lstatIfExists: (path) => run(() => volume.lstatSync(path, { throwIfNoEntry: false })),
    readdir: (path) => run(() => volume.readdirSync(path)),
    // memfs applies no umask: applied here, as the kernel does to a disk's new directories and
    // files (without it, memory's were 0777 and 0666 whatever the umask or serve --umask), never
    // taking the server's own bits.
    mkdir: (path, mode) =>
      run(() => volume.mkdirSync(path, lessUmask(mode ?? PERMISSION_BITS) | SERVER_OWN_DIRECTORY_BITS)),
    rmdir: (path) => run(() => volume.rmdirSync(path)),
    unlink: (path) => run(() => volume.unlinkSync(path)),
    rename: (from, to) => run(() => volume.renameSync(from, to)),
    open: (path, flags, mode) =>
      run(
        () =>
          volume.promises.open(
            path,
            flags,
            lessUmask(mode ?? NEW_FILE_BITS) | SERVER_OWN_FILE_BITS,
          ) as unknown as Promise<FsFileHandle>,
      ),
    realpath: (path) => run(() => volume.realpathSync(path)),
    lutimes: (path, atime, mtime) => run(() => volume.lutimesSync(path, wholeMs(atime), wholeMs(mtime))),
    // Nothing outside muxftp changes a volume: a path looked at stays what it was.
    openPath: (path) =>
      run(() => {
        if (volume.lstatSync(path).isSymbolicLink())
          throw Object.assign(new Error(`ELOOP: a symbolic link, not followed: ${path}`), { code: 'ELOOP' });
        return {
          stat: () => run(() => volume.statSync(path)),
          // memfs's chmod moves the times too, which a chmod(2) does not: put back.
          chmod: (mode: number) =>
            run(() => {
              const { atime, mtime } = volume.statSync(path);
              volume.chmodSync(path, mode);
              volume.utimesSync(path, atime, mtime);
            }),
          close: async () => {},
        };
      }),
  };
}

/**
 * The process memfs sees, its user and group read once: memfs asks for both on every path it
 * resolves, and each ask is a system call (1.2 us on a VM with page-table isolation, where they
 * were 45% of the CPU of listing 2,000 entries). muxftp never changes its user while running.
 */
function processOfThisVolume(): IProcess {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return {
    getuid: () => uid,
    getgid: () => gid,
    cwd: () => '/',
    platform: process.platform,
    emitWarning: (message, type) => process.emitWarning(message, type),
    env: {},
  };
}

/**
 * memfsApi held to the loop's turn budget: memfs answers without the loop turning, so hundreds of
 * listings at once otherwise held it for a quarter of a second a batch (disk's calls have the same
 * budget: storage/diskFs.ts). A rename frees the file it replaces.
 */
function memfsPromises(volume: Volume, turns: LoopTurns, room: MemoryRoom): FsPromises {
  const run: CallRunner = (call) => turns.run(call);
  const api = memfsApi(volume, run);
  return {
    ...api,
    open: (path, flags, mode) =>
      api.open(path, flags, mode).then((handle) => writesWithinRoom(volume, readsInTurns(handle, run), room)),
    rename: (from, to) => run(() => renameFreeingReplaced(volume, from, to)),
  };
}

/**
 * A file's reads held to the turn budget too: a digest of a large file (`stat --hash`, a resumed
 * upload's kept bytes) reads it a MiB at a time in a loop, and memfs's reads resolve in
 * microtasks, so a 768 MiB sha256 held the loop for half a second and every other client with it.
 * Downloads read by lending the file's bytes (view), not through here; writes are left alone.
 */
function readsInTurns(handle: FsFileHandle, run: CallRunner): FsFileHandle {
  const read = handle.read.bind(handle);
  handle.read = (buffer, offset, length, position) => run(() => read(buffer, offset, length, position));
  const utimes = handle.utimes.bind(handle);
  handle.utimes = (atime, mtime) => utimes(wholeMs(atime), wholeMs(mtime));
  return handle;
}

/**
 * The memory files may take: the process's resident size is read when a write would make memfs
 * grow a file's buffer (by doubling: a new buffer of twice the old, the old copied in) or when a
 * declared size would be reserved, so most writes, into room already there, cost nothing more.
 * Before a refusal, garbage is collected (at most once a second): a removed or refused file's
 * buffer is given back only then, and every upload after a large refused one was refused too.
 */
class MemoryRoom {
  readonly #maxResidentBytes: number;
  /** Bytes granted ahead and not resident yet (uploads' reserved capacity). */
  readonly #granted: () => number;
  #collectedAt = Number.NEGATIVE_INFINITY;

  constructor(maxResidentBytes: number, granted: () => number) {
    this.#maxResidentBytes = maxResidentBytes;
    this.#granted = granted;
  }

  /** Whether `bytes` more fit under the limit now. */
  has(bytes: number): boolean {
    if (this.#fits(bytes)) return true;
    const now = performance.now();
    if (now - this.#collectedAt < 1000) return false;
    this.#collectedAt = now;
    collectGarbage();
    return this.#fits(bytes);
  }

  #fits(bytes: number): boolean {
    return process.memoryUsage.rss() + this.#granted() + bytes <= this.#maxResidentBytes;
  }
}

/** A full collection, the function taken from a fresh context once `--expose-gc` is set. */
let collect: (() => void) | undefined;
function collectGarbage(): void {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/** A memfs file's writes that would grow it past the room fail ENOSPC-like, before memfs allocates. */
function writesWithinRoom(volume: Volume, handle: FsFileHandle, room: MemoryRoom): FsFileHandle {
  const refuseGrowth = (end: number): void => {
    const node = nodeOfOpened(volume, handle);
    if (node === undefined || typeof node.capacity !== 'number' || end <= node.capacity) return;
    // memfs grows a buffer to at least twice what it was: both are held while it copies.
    if (!room.has(Math.max(end, 2 * node.capacity)))
      throw Object.assign(new Error("no room left in the server's memory"), { code: 'ENOMEMROOM' });
  };
  const write = handle.write.bind(handle);
  handle.write = async (buffer, offset, length, position) => {
    refuseGrowth(position + length);
    return write(buffer, offset, length, position);
  };
  const writev = handle.writev?.bind(handle);
  if (writev !== undefined)
    handle.writev = async (buffers, position) => {
      refuseGrowth(position + buffers.reduce((sum, buffer) => sum + buffer.length, 0));
      return writev(buffers, position);
    };
  return handle;
}

/**
 * memfs keeps times as Dates, which cut a time in seconds to the millisecond below: a time given
 * to a fraction of one (shared/fileTimes.ts) goes in as the nearest.
 */
function wholeMs(time: number | Date): Date {
  return typeof time === 'number' ? new Date(Math.round(time * 1000)) : time;
}

/** The parts of memfs's internals this module touches. */
interface MemfsFileNode {
  buf: Buffer;
  capacity: number;
  size: number;
  nlink: number;
}
interface MemfsCore {
  fds?: Record<number, { node?: unknown }>;
  inodes?: Record<number, MemfsFileNode | undefined>;
  deleteNode?(node: MemfsFileNode): void;
  releasedInos?: number[];
  newInoNumber?(): number;
}
const coreOf = (volume: Volume) => (volume as unknown as { _core?: MemfsCore })._core;

/**
 * memfs gives a removed file's inode number to the next file it creates, and its times tick in
 * milliseconds, so (inode, size, mtime, ctime), which is how storage's digest cache tells file
 * versions apart, could name a removed file and one put within the same millisecond: the new
 * file was served the old one's digests. Numbers are handed out fresh instead (memfs's own
 * counter; it wraps only after 2^32 files), as a disk's timestamps in nanoseconds in effect do.
 * Should memfs change shape, this does nothing.
 */
function neverReuseInodeNumbers(volume: Volume): void {
  const core = coreOf(volume);
  const newInoNumber = core?.newInoNumber;
  if (core === undefined || typeof newInoNumber !== 'function' || !Array.isArray(core.releasedInos)) return;
  core.newInoNumber = () => {
    core.releasedInos!.length = 0;
    return newInoNumber.call(core);
  };
}

/**
 * rename(2) over an existing file drops that file's last link, which frees it. memfs replaces
 * the directory entry but keeps the replaced node in its inode table, so every `put` or `mv`
 * over a file leaked the old content (issue #7). This renames and then releases the replaced
 * node, in one synchronous step: no reader ever sees the path missing. A reader that still has
 * the old file open keeps its node alive until it closes it, as on disk. The directory's count
 * of entries is kept right (keepsCount).
 */
function renameFreeingReplaced(volume: Volume, from: string, to: string): void {
  const replaced = volume.lstatSync(to, { throwIfNoEntry: false });
  if (replaced !== undefined) refuseAsRename2Would(volume, from, to, replaced.isDirectory());
  keepsCount(volume, to, () => volume.renameSync(from, to));
  if (replaced === undefined || replaced.isDirectory()) return;
  const now = volume.lstatSync(to);
  if (now.ino === replaced.ino) return; // a second link to the same file: nothing was replaced
  const core = coreOf(volume);
  const node = core?.inodes?.[Number(replaced.ino)];
  if (node === undefined || typeof core?.deleteNode !== 'function') return;
  node.nlink--;
  if (node.nlink <= 0) core.deleteNode(node);
}

/** The parts of a memfs directory this module touches: its names, and its count of entries. */
interface MemfsDirectory {
  children: Map<string, unknown>;
  length: number;
}

/**
 * The directory `path` is in, as memfs holds it, to count its entries again after a rename over
 * one of them (keepsCount); undefined should memfs change shape.
 */
function directoryOf(volume: Volume, path: string): MemfsDirectory | undefined {
  const core = coreOf(volume) as { getLink?: (steps: string[]) => unknown } | undefined;
  if (typeof core?.getLink !== 'function') return undefined;
  const steps = path.split('/').filter((step) => step !== '');
  try {
    const dir = core.getLink(steps.slice(0, -1)) as Partial<MemfsDirectory> | null;
    if (!(dir?.children instanceof Map) || typeof dir.length !== 'number') return undefined;
    return dir as MemfsDirectory;
  } catch {
    return undefined;
  }
}

/**
 * memfs counts a directory's entries apart from its names, and a rename over an entry counted
 * the one taking its name as one more: that directory, emptied, then failed rmdir ENOTEMPTY for
 * ever (after any `put` or `mv` over a file in it). `move` runs, and the count then changes by
 * as many names as the directory gained or lost, whatever memfs counted.
 */
function keepsCount(volume: Volume, to: string, move: () => void): void {
  const dir = directoryOf(volume, to);
  const names = dir?.children.size;
  const count = dir?.length;
  move();
  if (dir === undefined || names === undefined || count === undefined) return;
  dir.length = count + (dir.children.size - names);
}

/**
 * rename(2)'s refusals that memfs lacks: it replaces a directory with a file, or a non-empty
 * directory with a directory, silently dropping what the directory held. Storage looks at the
 * target before a rename, but a directory made there since (a concurrent mkdir) reached the
 * rename; on disk the kernel refuses it, and so does this, in the same synchronous step.
 */
function refuseAsRename2Would(volume: Volume, from: string, to: string, targetIsDirectory: boolean): void {
  const sourceIsDirectory = volume.lstatSync(from).isDirectory();
  const refusal = (code: string, what: string): Error =>
    Object.assign(new Error(`${code}: ${what}, rename '${from}' -> '${to}'`), { code, syscall: 'rename' });
  if (targetIsDirectory && !sourceIsDirectory) throw refusal('EISDIR', 'illegal operation on a directory');
  if (!targetIsDirectory && sourceIsDirectory) throw refusal('ENOTDIR', 'not a directory');
  if (targetIsDirectory && volume.readdirSync(to).length > 0)
    throw refusal('ENOTEMPTY', 'directory not empty');
}

/**
 * Gives a memfs file a buffer of `bytes`, keeping what was written, without filling the rest.
 * memfs keeps a file in one buffer and grows it by doubling, copying everything each time, and
 * its truncate() zero-fills: either way a large upload stalls the server's one thread for a
 * second or more inside one synchronous copy into fresh pages. An unfilled buffer is touched a
 * chunk at a time as the writes arrive instead. memfs has no API for this, so it reaches the
 * file's node; should memfs change shape, it does nothing and memfs grows the file as before.
 * Bytes past `size` are never readable, so the unfilled buffer exposes nothing.
 */
function reserveCapacity(volume: Volume, handle: FsFileHandle, bytes: number): boolean {
  if (bytes > bufferConstants.MAX_LENGTH) return false;
  const node = nodeOfOpened(volume, handle);
  if (node === undefined || typeof node.capacity !== 'number' || node.size > bytes) return false;
  if (node.capacity >= bytes) return true;
  const buf = Buffer.allocUnsafe(bytes); // throws when there is no memory: the caller goes on without
  if (node.size > 0) node.buf.copy(buf, 0, 0, node.size);
  node.buf = buf;
  node.capacity = bytes;
  return true;
}

/** The memfs file node behind an open handle, if memfs still has the shape this module knows. */
function nodeOfOpened(volume: Volume, handle: FsFileHandle): MemfsFileNode | undefined {
  const fd = (handle as { fd?: unknown }).fd;
  const node = typeof fd === 'number' ? coreOf(volume)?.fds?.[fd]?.node : undefined;
  return node as MemfsFileNode | undefined;
}

/**
 * Bytes of an open file as a view of memfs's own buffer: a download then goes from that buffer
 * to the socket with no copy into a frame (which cost a third of a 1 GiB download's time on the
 * server's thread: bench/README.md). Storage never writes a served file in place, and a view
 * keeps the buffer it views alive, so the bytes stay those of the version opened.
 */
function viewOfOpened(
  volume: Volume,
  handle: FsFileHandle,
  position: number,
  length: number,
): Buffer | undefined {
  const node = nodeOfOpened(volume, handle);
  if (node === undefined || !Buffer.isBuffer(node.buf) || typeof node.size !== 'number') return undefined;
  if (position + length > node.size) return undefined;
  return node.buf.subarray(position, position + length);
}
