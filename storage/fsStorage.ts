/**
 * The one Storage implementation, written against the small slice of `fs.promises` below. The
 * disk backend runs it over node's fs, the memory backend over a memfs volume, so both behave
 * the same way by construction and one contract suite covers both.
 */

import { type PlatformPath, posix } from 'node:path';
import { StorageError } from '../shared/errors.js';
import { DigestCache, type FileVersion } from './digestCache.js';
import { displayPath, errnoOf, storageErrorFromFs } from './fsErrors.js';
import { baseName, isTemporaryName, newTemporaryName, normalizeClientPath, parentPath } from './paths.js';
import type { EntryInfo, EntryType, ReadHandle, Storage, UploadHandle } from './types.js';

/** The Stats fields storage reads (a file's version, plus its type); node's Stats and memfs's both fit. */
export interface FsStats extends FileVersion {
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
  close(): Promise<void>;
}

/** The `fs.promises` functions storage uses; node's `fs/promises` and memfs's `vol.promises` fit. */
export interface FsPromises {
  stat(path: string): Promise<FsStats>;
  lstat(path: string): Promise<FsStats>;
  /** Called without options, both return names as strings; memfs's types allow more, hence unknown. */
  readdir(path: string): Promise<readonly unknown[]>;
  mkdir(path: string): Promise<unknown>;
  rmdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(oldPath: string, newPath: string): Promise<void>;
  open(path: string, flags: string): Promise<FsFileHandle>;
  realpath(path: string): Promise<string | Buffer>;
}

export interface FsStorageOptions {
  /** The filesystem: node's `fs/promises`, or a memfs volume's `promises`. */
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
   * Gives an upload's new file room for its expected size before the first write; returns
   * whether it did. Memory storage uses it to spare memfs growing (and copying) the file;
   * pointless on disk. Default: none.
   */
  preallocate?: (handle: FsFileHandle, bytes: number) => boolean;
}

/** A client path checked, confined and placed on the host. */
interface Resolved {
  clientPath: string;
  /** Where the path is on the host: links among the ancestors resolved, the last name as given. */
  hostPath: string;
  /** Where the path really is: symlinks followed, or as far as the path exists. */
  realPath: string;
}

const noop = (): void => {};

export class FsStorage implements Storage {
  readonly description: string;
  readonly #fs: FsPromises;
  readonly #root: string;
  readonly #durable: boolean;
  readonly #paths: PlatformPath;
  readonly #preallocate: ((handle: FsFileHandle, bytes: number) => boolean) | undefined;
  readonly #digests = new DigestCache();
  #realRoot: Promise<string> | undefined;
  #closed = false;
  /** Open uploads and read handles, finished by close(). */
  readonly #uploads = new Set<FsUpload>();
  readonly #reads = new Set<FsReadHandle>();
  /** Temporary names of uploads in flight here, which sweepTemporaryFiles() must leave alone. */
  readonly #activeTemporaryNames = new Set<string>();

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
    this.#fs = options.fs;
    this.#root = options.root;
    this.#durable = options.durable ?? true;
    this.#paths = options.hostPaths ?? posix;
    this.#preallocate = options.preallocate;
    this.description = options.description ?? `fs:${options.root}`;
  }

  async stat(path: string): Promise<EntryInfo> {
    const target = await this.#resolve(path);
    const stats = await fsCall(target.clientPath, () => this.#fs.stat(target.hostPath));
    return entryInfo(baseName(target.clientPath), stats);
  }

  async list(path: string): Promise<EntryInfo[]> {
    const dir = await this.#resolve(path);
    const entries = await fsCall(dir.clientPath, () => this.#fs.readdir(dir.hostPath));
    const names = entries
      .filter((name): name is string => typeof name === 'string' && !isTemporaryName(name))
      .sort(compareNames);
    const infos = await Promise.all(names.map((name) => this.#listEntry(dir.hostPath, name)));
    return infos.filter((info): info is EntryInfo => info !== undefined);
  }

  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<void> {
    const target = await this.#resolve(path);
    if (target.clientPath === '') {
      // The root always exists: fine with `parents` (like mkdir -p), a conflict without.
      if (options.parents) return;
      throw new StorageError('ALREADY_EXISTS', 'already exists: /', '');
    }
    if (!options.parents) {
      await fsCall(target.clientPath, () => this.#fs.mkdir(target.hostPath));
      return;
    }
    const names = target.clientPath.split('/');
    for (let depth = 1; depth <= names.length; depth++) {
      const { clientPath, hostPath } = await this.#resolve(names.slice(0, depth).join('/'));
      try {
        await this.#fs.mkdir(hostPath);
      } catch (error) {
        if (errnoOf(error) !== 'EEXIST') throw storageErrorFromFs(error, clientPath);
        const stats = await fsCall(clientPath, () => this.#fs.stat(hostPath));
        if (stats.isDirectory()) continue;
        throw depth === names.length
          ? new StorageError('ALREADY_EXISTS', `already exists: ${clientPath}`, clientPath)
          : new StorageError('NOT_A_DIRECTORY', `not a directory: ${clientPath}`, clientPath);
      }
    }
  }

  async rmdir(path: string): Promise<void> {
    const target = await this.#resolve(path);
    refuseRoot(target, 'cannot remove the root');
    const stats = await fsCall(target.clientPath, () => this.#fs.lstat(target.hostPath));
    if (!stats.isDirectory()) {
      throw new StorageError('NOT_A_DIRECTORY', `not a directory: ${target.clientPath}`, target.clientPath);
    }
    await fsCall(target.clientPath, () => this.#fs.rmdir(target.hostPath));
  }

  async remove(path: string): Promise<void> {
    const target = await this.#resolve(path);
    refuseRoot(target, 'cannot remove the root');
    // Checked first: unlink on a directory fails with EISDIR on Linux but EPERM on macOS and memfs.
    const stats = await fsCall(target.clientPath, () => this.#fs.lstat(target.hostPath));
    if (stats.isDirectory()) {
      throw new StorageError('IS_A_DIRECTORY', `is a directory: ${target.clientPath}`, target.clientPath);
    }
    await fsCall(target.clientPath, () => this.#fs.unlink(target.hostPath));
  }

  /**
   * Replaces an existing file at `to`. An existing directory at `to` is never replaced, and a
   * directory never replaces a file: both fail with ALREADY_EXISTS (checked here, because memfs
   * would replace either silently).
   */
  async rename(from: string, to: string): Promise<void> {
    const source = await this.#resolve(from);
    const destination = await this.#resolve(to);
    refuseRoot(source, 'cannot move the root');
    refuseRoot(destination, 'cannot replace the root');
    const sourceStats = await fsCall(source.clientPath, () => this.#fs.lstat(source.hostPath));
    if (source.clientPath === destination.clientPath) return;
    if (sourceStats.isDirectory()) {
      // Compared by real paths so that a symlink inside the directory cannot hide the loop.
      const destinationParent = await this.#resolve(parentPath(destination.clientPath));
      if (this.#isWithin(source.realPath, destinationParent.realPath)) {
        throw new StorageError(
          'INVALID_PATH',
          `cannot move a directory into itself: ${source.clientPath} -> ${destination.clientPath}`,
          destination.clientPath,
        );
      }
    }
    if (sourceStats.isDirectory()) {
      // An upload's temporary file sits beside its target; moving a directory above it would
      // strand the file where neither commit nor abort can find it.
      for (const upload of this.#uploads) {
        if (this.#isWithin(source.hostPath, upload.temporaryPath)) {
          throw new StorageError(
            'RESOURCE_BUSY',
            `uploads are in progress under ${source.clientPath}; move it when they are done`,
            source.clientPath,
          );
        }
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
    await fsCall(destination.clientPath, () => this.#fs.rename(source.hostPath, destination.hostPath));
  }

  async openRead(path: string): Promise<ReadHandle> {
    const target = await this.#resolve(path);
    // Checked before open: opening a FIFO would block a libuv thread until a writer appears.
    const stats = await fsCall(target.clientPath, () => this.#fs.stat(target.hostPath));
    refuseNonFile(target.clientPath, stats);
    const handle = await fsCall(target.clientPath, () => this.#fs.open(target.hostPath, 'r'));
    try {
      const opened = await handle.stat();
      refuseNonFile(target.clientPath, opened);
      const reader = new FsReadHandle(handle, target.clientPath, opened, this.#digests, () =>
        this.#reads.delete(reader),
      );
      this.#reads.add(reader);
      return reader;
    } catch (error) {
      await handle.close().catch(noop);
      throw storageErrorFromFs(error, target.clientPath);
    }
  }

  async createUpload(path: string, options: { expectedSize?: number } = {}): Promise<UploadHandle> {
    const target = await this.#resolve(path);
    if (target.clientPath === '') throw new StorageError('IS_A_DIRECTORY', 'is a directory: /', '');
    const parentClientPath = parentPath(target.clientPath);
    const parentHostPath = this.#paths.dirname(target.hostPath);
    const parentStats = await fsCall(parentClientPath, () => this.#fs.stat(parentHostPath));
    if (!parentStats.isDirectory()) {
      throw new StorageError('NOT_A_DIRECTORY', `not a directory: ${parentClientPath}`, parentClientPath);
    }
    await this.#refuseDirectory(target);

    const temporaryName = newTemporaryName();
    const temporaryPath = this.#paths.join(parentHostPath, temporaryName);
    const handle = await fsCall(target.clientPath, () => this.#fs.open(temporaryPath, 'wx'));
    this.#activeTemporaryNames.add(temporaryName);
    const expectedSize = options.expectedSize ?? 0;
    const preallocated = expectedSize > 0 && this.#tryPreallocate(handle, expectedSize) ? expectedSize : 0;
    const upload = new FsUpload({
      fs: this.#fs,
      handle,
      temporaryPath,
      target,
      durable: this.#durable,
      parentHostPath,
      preallocatedSize: preallocated,
      digests: this.#digests,
      // Checked again at the end: an upload can take minutes, and the tree may change meanwhile.
      checkTarget: async () => this.#refuseDirectory(await this.#resolve(target.clientPath)),
      onFinish: () => {
        this.#activeTemporaryNames.delete(temporaryName);
        this.#uploads.delete(upload);
      },
    });
    this.#uploads.add(upload);
    return upload;
  }

  /** Preallocation is an optimisation: when it fails (no memory for it), the upload goes on without. */
  #tryPreallocate(handle: FsFileHandle, bytes: number): boolean {
    try {
      return this.#preallocate?.(handle, bytes) === true;
    } catch {
      return false;
    }
  }

  /**
   * Best effort: entries that vanish or cannot be read are skipped. Symlinks are not followed,
   * and temporary files of uploads in flight on this instance are left alone.
   */
  async sweepTemporaryFiles(): Promise<number> {
    this.#assertOpen();
    let removed = 0;
    const pending = [await this.#realRootPath()];
    while (pending.length > 0) {
      const dir = pending.pop()!;
      const entries = await this.#fs.readdir(dir).catch((): readonly unknown[] => []);
      const names = entries.filter((name): name is string => typeof name === 'string');
      await Promise.all(
        names.map(async (name) => {
          const hostPath = this.#paths.join(dir, name);
          const stats = await this.#fs.lstat(hostPath).catch(() => undefined);
          if (stats === undefined) return;
          if (!isTemporaryName(name)) {
            if (stats.isDirectory()) pending.push(hostPath);
            return;
          }
          if (!stats.isFile() || this.#activeTemporaryNames.has(name)) return;
          await this.#fs.unlink(hostPath).then(() => {
            removed++;
          }, noop);
        }),
      );
    }
    return removed;
  }

  /** Aborts uploads still open and closes read handles; later calls reject. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([
      ...[...this.#uploads].map((upload) => upload.abort()),
      ...[...this.#reads].map((reader) => reader.close().catch(noop)),
    ]);
  }

  #assertOpen(): void {
    if (this.#closed) throw new StorageError('IO_ERROR', 'storage is closed');
  }

  #realRootPath(): Promise<string> {
    if (this.#realRoot === undefined) {
      const realRoot = this.#fs.realpath(this.#root).then(
        (real) => real.toString(),
        (error: unknown) => {
          this.#realRoot = undefined; // let a later call retry, e.g. once the root is mounted
          throw storageErrorFromFs(error, '');
        },
      );
      this.#realRoot = realRoot;
    }
    return this.#realRoot;
  }

  /**
   * Checks a client path, places it under the root, and refuses it when its real location
   * (symlinks followed, as far as the path exists) or its parent's is outside the real root.
   *
   * The check happens before the operation, so a symlink swapped in between can still lead
   * outside (a check-then-use race). Closing it needs openat2(RESOLVE_BENEATH)-style calls,
   * which node's fs does not offer; it takes write access to the host tree to exploit.
   */
  async #resolve(path: string): Promise<Resolved> {
    this.#assertOpen();
    const clientPath = normalizeClientPath(path);
    const realRoot = await this.#realRootPath();
    if (clientPath === '') return { clientPath, hostPath: realRoot, realPath: realRoot };

    const lexicalPath = this.#paths.join(realRoot, clientPath);
    // The parent too: operations on the entry itself (unlink, rename, the upload's temporary
    // file) happen in the parent, even when the entry is a link back into the root.
    const realParent = await this.#realLocation(this.#paths.dirname(lexicalPath), clientPath, realRoot);
    // Links among the ancestors are resolved once, here; the last name is kept as is so that
    // remove and rename act on a link rather than on its target. (memfs's rename also fails
    // through a linked directory.)
    const hostPath = this.#paths.join(realParent, baseName(clientPath));
    let realPath: string;
    try {
      realPath = (await this.#fs.realpath(hostPath)).toString();
    } catch (error) {
      if (!isMissing(error)) throw storageErrorFromFs(error, clientPath);
      realPath = hostPath;
    }
    if (!this.#isWithin(realRoot, realParent) || !this.#isWithin(realRoot, realPath)) {
      throw new StorageError('INVALID_PATH', `path leads outside the root: ${clientPath}`, clientPath);
    }
    return { clientPath, hostPath, realPath };
  }

  /** The real path of `hostPath`, or of its deepest existing ancestor joined with the rest. */
  async #realLocation(hostPath: string, clientPath: string, realRoot: string): Promise<string> {
    const missing: string[] = [];
    for (let existing = hostPath; ; existing = this.#paths.dirname(existing)) {
      try {
        const real = (await this.#fs.realpath(existing)).toString();
        return this.#paths.join(real, ...missing.reverse());
      } catch (error) {
        const atTop = existing === realRoot || this.#paths.dirname(existing) === existing;
        if (!isMissing(error) || atTop) throw storageErrorFromFs(error, clientPath);
        missing.push(this.#paths.basename(existing));
      }
    }
  }

  /** True when `path` is `base` or lies below it. */
  #isWithin(base: string, path: string): boolean {
    const relative = this.#paths.relative(base, path);
    return (
      relative === '' ||
      (relative !== '..' && !relative.startsWith(`..${this.#paths.sep}`) && !this.#paths.isAbsolute(relative))
    );
  }

  /** One entry of a listing; a link that dangles or leads outside shows as 'other'. */
  async #listEntry(dirHostPath: string, name: string): Promise<EntryInfo | undefined> {
    const hostPath = this.#paths.join(dirHostPath, name);
    let stats: FsStats;
    try {
      stats = await this.#fs.lstat(hostPath);
    } catch (error) {
      // Removed since readdir: leave it out. Anything else: show it, without details.
      return isMissing(error) ? undefined : { name, type: 'other', size: 0, mtimeMs: 0 };
    }
    if (!stats.isSymbolicLink()) return entryInfo(name, stats);
    const asLink: EntryInfo = { name, type: 'other', size: 0, mtimeMs: toMs(stats.mtimeMs) };
    try {
      const real = (await this.#fs.realpath(hostPath)).toString();
      if (!this.#isWithin(await this.#realRootPath(), real)) return asLink;
      return entryInfo(name, await this.#fs.stat(hostPath));
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

  async #refuseDirectory(target: Resolved): Promise<void> {
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
  readonly sha256: Buffer | undefined;
  readonly #handle: FsFileHandle;
  readonly #clientPath: string;
  readonly #stats: FsStats;
  readonly #digests: DigestCache;
  readonly #onClose: () => void;
  #closing: Promise<void> | undefined;

  constructor(
    handle: FsFileHandle,
    clientPath: string,
    stats: FsStats,
    digests: DigestCache,
    onClose: () => void,
  ) {
    this.#handle = handle;
    this.#clientPath = clientPath;
    this.#stats = stats;
    this.#digests = digests;
    this.#onClose = onClose;
    this.size = Number(stats.size);
    this.mtimeMs = toMs(stats.mtimeMs);
    this.sha256 = digests.get(stats);
  }

  rememberSha256(sha256: Buffer): void {
    this.#digests.set(this.#stats, sha256);
  }

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.#closing)
      throw new StorageError('IO_ERROR', `file is closed: ${this.#clientPath}`, this.#clientPath);
    const { bytesRead } = await fsCall(this.#clientPath, () =>
      this.#handle.read(buffer, offset, length, position),
    );
    return bytesRead;
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#onClose();
      this.#closing = fsCall(this.#clientPath, () => this.#handle.close());
    }
    return this.#closing;
  }
}

interface UploadContext {
  fs: FsPromises;
  handle: FsFileHandle;
  temporaryPath: string;
  target: Resolved;
  durable: boolean;
  parentHostPath: string;
  /** Size the file was given before the first write (0 for none); cut back to what was written. */
  preallocatedSize: number;
  digests: DigestCache;
  /** Re-checks the target just before the rename; throws a StorageError to refuse. */
  checkTarget(): Promise<void>;
  /** Called once, when the upload is committed or its temporary file is gone. */
  onFinish(): void;
}

class FsUpload implements UploadHandle {
  readonly #context: UploadContext;
  /** Host path of the temporary file, for the rename check. */
  readonly temporaryPath: string;
  readonly #clientPath: string;
  /** Bytes written so far: the position of the next write. */
  #offset = 0;
  /** The write in progress (settled), so commit and abort wait for it. */
  #writing: Promise<void> = Promise.resolve();
  /** Set by a failed write: the file is incomplete, so every later call fails with it. */
  #failure: StorageError | undefined;
  #handleClosed = false;
  /** Set by the first commit() or abort(). */
  #finishing: Promise<unknown> | undefined;

  constructor(context: UploadContext) {
    this.#context = context;
    this.temporaryPath = context.temporaryPath;
    this.#clientPath = context.target.clientPath;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    if (this.#finishing) return Promise.reject(this.#finishedError());
    const written = this.#writing.then(() => this.#writeNow(chunks));
    this.#writing = written.catch(noop);
    return written;
  }

  commit(sha256?: Buffer): Promise<EntryInfo> {
    if (this.#finishing) return Promise.reject(this.#finishedError());
    const committed = this.#writing.then(() => this.#commitNow(sha256));
    this.#finishing = committed.catch(noop);
    return committed;
  }

  abort(): Promise<void> {
    if (this.#finishing === undefined) this.#finishing = this.#writing.then(() => this.#discard());
    return this.#finishing.then(noop, noop);
  }

  async #writeNow(chunks: readonly Buffer[]): Promise<void> {
    if (this.#failure) throw this.#failure;
    const { handle } = this.#context;
    const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
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
    } catch (error) {
      this.#failure = storageErrorFromFs(error, this.#clientPath);
      throw this.#failure;
    }
  }

  async #commitNow(sha256: Buffer | undefined): Promise<EntryInfo> {
    const { fs, handle, temporaryPath, target, durable } = this.#context;
    let stats: FsStats;
    try {
      if (this.#failure) throw this.#failure;
      if (this.#context.preallocatedSize !== this.#offset && this.#context.preallocatedSize > 0) {
        await handle.truncate(this.#offset);
      }
      // datasync covers the data and the size, which is all a reader needs.
      if (durable) await handle.datasync();
      stats = await handle.stat();
      await this.#closeHandle();
      await this.#context.checkTarget();
      await fs.rename(temporaryPath, target.hostPath);
    } catch (error) {
      await this.#discard();
      throw storageErrorFromFs(error, this.#clientPath);
    }
    this.#context.onFinish();
    if (durable) await syncDirectory(fs, this.#context.parentHostPath);
    if (sha256 !== undefined) {
      // The rename changed ctime: remember the digest under the version readers will see, if the
      // target is still our file (another upload may have replaced it since).
      const committed = await fs.stat(target.hostPath).catch(() => undefined);
      if (committed !== undefined && committed.ino === stats.ino && committed.dev === stats.dev) {
        this.#context.digests.set(committed, sha256);
      }
    }
    return entryInfo(baseName(this.#clientPath), stats);
  }

  /** Closes the file and removes it; never throws. */
  async #discard(): Promise<void> {
    await this.#closeHandle().catch(noop);
    await this.#context.fs.unlink(this.#context.temporaryPath).catch(noop);
    this.#context.onFinish();
  }

  async #closeHandle(): Promise<void> {
    if (this.#handleClosed) return;
    this.#handleClosed = true;
    await this.#context.handle.close();
  }

  #finishedError(): StorageError {
    return new StorageError('IO_ERROR', `upload already finished: ${this.#clientPath}`, this.#clientPath);
  }
}

/** Runs an fs call, turning its failure into a StorageError about `clientPath`. */
async function fsCall<T>(clientPath: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw storageErrorFromFs(error, clientPath);
  }
}

/**
 * Makes a rename in `dir` durable. Best effort: some platforms (Windows) cannot open a
 * directory, and the data itself is already on disk by then.
 */
async function syncDirectory(fs: FsPromises, dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, 'r');
    await handle.datasync().finally(() => handle.close());
  } catch {
    // Nothing to undo: the upload is committed either way.
  }
}

function isMissing(error: unknown): boolean {
  const errno = errnoOf(error);
  return errno === 'ENOENT' || errno === 'ENOTDIR';
}

function refuseRoot(target: Resolved, reason: string): void {
  if (target.clientPath === '') throw new StorageError('INVALID_PATH', `invalid path: ${reason}`, '');
}

function refuseNonFile(clientPath: string, stats: FsStats): void {
  if (stats.isDirectory()) {
    throw new StorageError('IS_A_DIRECTORY', `is a directory: ${displayPath(clientPath)}`, clientPath);
  }
  if (!stats.isFile()) {
    throw new StorageError('PERMISSION_DENIED', `not a regular file: ${clientPath}`, clientPath);
  }
}

function entryType(stats: FsStats): EntryType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  return 'other';
}

function entryInfo(name: string, stats: FsStats): EntryInfo {
  const type = entryType(stats);
  return { name, type, size: type === 'file' ? Number(stats.size) : 0, mtimeMs: toMs(stats.mtimeMs) };
}

/** Whole milliseconds: node reports fractions, which clients have no use for. */
function toMs(mtimeMs: number | bigint): number {
  return Math.floor(Number(mtimeMs));
}

/** By UTF-16 code units: the same order on every host, unlike localeCompare. */
function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
