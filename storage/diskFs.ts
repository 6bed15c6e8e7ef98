/**
 * The fs calls DiskStorage makes, each run on the loop while such calls are fast and through
 * libuv's threadpool once one is slow (shared/inlineFileCalls.ts: why, and the back-off).
 *
 * Always through the threadpool: calls that wait for the disk by design (fdatasync), calls whose
 * cost grows with what they are given (readdir of a large directory; unlink and rename, which
 * free the file they remove or replace), and an upload's writes but small ones (measured: on the
 * loop they made the loop the upload's bottleneck, bench/README.md; a small file's one write costs
 * less than the hand-off).
 */

import * as fs from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { promisify } from 'node:util';
import { CallsInFlight } from '../shared/callsInFlight.js';
import { DEFAULTS } from '../shared/defaults.js';
import { closedFileError } from '../shared/errnoReasons.js';
import type { InlineFileCalls } from '../shared/inlineFileCalls.js';
import type { FsFileHandle, FsPromises, FsStats, PathHandle } from './fsApi.js';
import { O_PATH, PinnedDirectories } from './pinnedDirectories.js';

const readAsync = promisify(fs.read);
const writeAsync = promisify(fs.write);
const writevAsync = promisify(fs.writev);
const fdatasyncAsync = promisify(fs.fdatasync);
const ftruncateAsync = promisify(fs.ftruncate);
// fs.fstat looked up at each call: a test fails it as NFS and FUSE do (test/diskFileClose.test.ts).
const fstatAsync = (fd: number): Promise<fs.Stats> => promisify(fs.fstat)(fd);
const futimesAsync = promisify(fs.futimes);
const fchmodAsync = promisify(fs.fchmod);
const closeAsync = promisify(fs.close);
const openAsync = promisify(fs.open);

/** open(2) flags for openPath: O_PATH with O_NOFOLLOW. Linux only: elsewhere storage sets no bits. */
const OPEN_PATH_FLAGS = process.platform === 'linux' ? O_PATH | fs.constants.O_NOFOLLOW : undefined;

/**
 * `pins`: the served root's directories held open for path-based calls
 * (storage/pinnedDirectories.ts); without them (tests, not Linux), calls use paths as given.
 */
export function diskFs(inline: InlineFileCalls, pins?: PinnedDirectories): FsPromises {
  const inParent = <T>(hostPath: string, call: (path: string) => Promise<T>): Promise<T> =>
    pins === undefined ? call(hostPath) : pins.inParent(hostPath, call);
  const inParents = <T>(
    from: string,
    to: string,
    call: (from: string, to: string) => Promise<T>,
  ): Promise<T> => (pins === undefined ? call(from, to) : pins.inParents(from, to, call));
  return {
    confinedTo: (root) =>
      diskFs(inline, pins === undefined ? undefined : PinnedDirectories.forRoot(root, inline)),
    stat: (path) =>
      inline.run(
        () => fs.statSync(path),
        () => fsPromises.stat(path),
      ),
    lstat: (path) =>
      inline.run(
        () => fs.lstatSync(path),
        () => fsPromises.lstat(path),
      ),
    // A new file's path is missing twice per upload (its start and its commit): without the
    // error node builds (message, stack) for each.
    lstatIfExists: (path) =>
      inline.run(
        () => fs.lstatSync(path, { throwIfNoEntry: false }),
        () => fsPromises.lstat(path).catch(undefinedWhenMissing),
      ),
    readdir: (path) =>
      pins === undefined
        ? fsPromises.readdir(path)
        : pins.itself(path, (pinned) => fsPromises.readdir(pinned)),
    readdirAtMost: (path, count, wanted) =>
      pins === undefined
        ? readdirAtMost(path, count, wanted)
        : pins.itself(path, (pinned) => readdirAtMost(pinned, count, wanted)),
    mkdir: (path, mode) =>
      inParent(path, (pinned) =>
        inline.run(
          () => fs.mkdirSync(pinned, mode),
          () => fsPromises.mkdir(pinned, mode),
        ),
      ),
    rmdir: (path) =>
      inParent(path, (pinned) =>
        inline.run(
          () => fs.rmdirSync(pinned),
          () => fsPromises.rmdir(pinned),
        ),
      ),
    // Removing a file's last name frees its blocks and cached pages in the call (a 1 GiB file
    // in the page cache: 0.15–0.4 s on this VM's ext4), and a rename onto a file removes that one;
    // a rename onto nothing (a new file's commit) frees nothing.
    unlink: (path) => inParent(path, (pinned) => fsPromises.unlink(pinned)),
    rename: (from, to) =>
      inParents(from, to, (pinnedFrom, pinnedTo) => fsPromises.rename(pinnedFrom, pinnedTo)),
    renameOntoNothing: (from, to) =>
      inParents(from, to, (pinnedFrom, pinnedTo) =>
        inline.run(
          () => fs.renameSync(pinnedFrom, pinnedTo),
          () => fsPromises.rename(pinnedFrom, pinnedTo),
        ),
      ),
    statfs: (path) => fsPromises.statfs(path),
    lutimes: (path, atime, mtime) =>
      inParent(path, (pinned) =>
        inline.run(
          () => fs.lutimesSync(pinned, atime, mtime),
          () => fsPromises.lutimes(pinned, atime, mtime),
        ),
      ),
    ...(OPEN_PATH_FLAGS === undefined
      ? {}
      : {
          async openPath(path: string): Promise<PathHandle> {
            const fd = await inline.run(
              () => fs.openSync(path, OPEN_PATH_FLAGS),
              () => openAsync(path, OPEN_PATH_FLAGS),
            );
            return new DiskPathHandle(fd, inline);
          },
        }),
    realpath: (path) =>
      inline.run(
        () => fs.realpathSync.native(path),
        () => fsPromises.realpath(path),
      ),
    async open(path, flags, mode) {
      const opening = (at: string): Promise<number> =>
        inline.run(
          () => fs.openSync(at, flags, mode),
          () => openAsync(at, flags, mode),
        );
      // A file made (an upload's temporary file) is made in the directory checked; an existing
      // one opened is checked on its descriptor by storage (locateOpened).
      const fd = await (createsFile(flags) ? inParent(path, opening) : opening(path));
      return new DiskFileHandle(fd, inline);
    },
  };
}

/** FsPromises.readdirAtMost: the directory read through the threadpool a few entries at a time. */
async function readdirAtMost(
  path: string,
  count: number,
  wanted: (name: string) => boolean,
): Promise<string[] | undefined> {
  const dir = await fsPromises.opendir(path, { bufferSize: 256 });
  try {
    const names: string[] = [];
    for (let entry = await dir.read(); entry !== null; entry = await dir.read()) {
      if (!wanted(entry.name)) continue;
      if (names.length === count) return undefined;
      names.push(entry.name);
    }
    return names;
  } finally {
    await dir.close().catch(noop);
  }
}

const noop = (): void => {};

function createsFile(flags: string | number): boolean {
  return typeof flags === 'number' ? (flags & fs.constants.O_CREAT) !== 0 : /[wax]/.test(flags);
}

/**
 * An open file by its descriptor (node's FileHandle has no way to make a call synchronously).
 * Whoever opens one closes it: storage does, on every path (test/hostile.fds.test.ts). As with
 * FileHandle, close() waits for the calls still running in the threadpool: closed under them, the
 * number could name another file by the time they run. Once closed, every call fails with EBADF
 * and a second close does nothing.
 */
class DiskFileHandle implements FsFileHandle {
  readonly #fd: number;
  readonly #inline: InlineFileCalls;
  #closed = false;
  readonly #calls = new CallsInFlight();

  constructor(fd: number, inline: InlineFileCalls) {
    this.#fd = fd;
    this.#inline = inline;
  }

  /** The descriptor (openedFileLocation asks the kernel where it points). */
  get fd(): number {
    if (this.#closed) throw closedFileError();
    return this.#fd;
  }

  async read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number }> {
    const fd = this.fd;
    const bytesRead = await this.#calls.track(
      this.#inline.run(
        () => fs.readSync(fd, buffer, offset, length, position),
        () => readAsync(fd, buffer, offset, length, position).then((result) => result.bytesRead),
      ),
    );
    return { bytesRead };
  }

  async write(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }> {
    const written = await this.#calls.track(writeAsync(this.fd, buffer, offset, length, position));
    return { bytesWritten: written.bytesWritten };
  }

  async writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    const fd = this.fd;
    let bytes = 0;
    for (const buffer of buffers) bytes += buffer.length;
    if (bytes <= DEFAULTS.inlineUploadWriteMaxBytes) {
      const bytesWritten = await this.#calls.track(
        this.#inline.run(
          () => fs.writevSync(fd, buffers, position),
          async () => (await writevAsync(fd, buffers, position)).bytesWritten,
        ),
      );
      return { bytesWritten };
    }
    return { bytesWritten: (await this.#calls.track(writevAsync(fd, buffers, position))).bytesWritten };
  }

  async datasync(): Promise<void> {
    await this.#calls.track(fdatasyncAsync(this.fd));
  }

  /** Through the threadpool: cutting back a preallocated file frees its blocks. */
  async truncate(length: number): Promise<void> {
    await this.#calls.track(ftruncateAsync(this.fd, length));
  }

  async stat(): Promise<FsStats> {
    const fd = this.fd;
    return this.#calls.track(
      this.#inline.run(
        () => fs.fstatSync(fd),
        () => fstatAsync(fd),
      ),
    );
  }

  async utimes(atime: number | Date, mtime: number | Date): Promise<void> {
    const fd = this.fd;
    await this.#calls.track(
      this.#inline.run(
        () => fs.futimesSync(fd, atime, mtime),
        () => futimesAsync(fd, atime, mtime),
      ),
    );
  }

  async chmod(mode: number): Promise<void> {
    const fd = this.fd;
    await this.#calls.track(
      this.#inline.run(
        () => fs.fchmodSync(fd, mode),
        () => fchmodAsync(fd, mode),
      ),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#calls.allSettled();
    const fd = this.#fd;
    // The last close of a file whose last name is gone (removed, or replaced, while open) frees
    // its blocks and cached pages in the call, as unlink would have (0.19 s per GiB here): such a
    // file is closed in the threadpool. Asking costs one fstat (~2 µs on the loop).
    // A failed fstat (ESTALE on NFS, EIO on a FUSE mount gone) must not keep the descriptor open;
    // but EBADF says it is closed already (a bug elsewhere), its number perhaps another file's now.
    const removed = await this.#inline
      .run(
        () => fs.fstatSync(fd).nlink === 0,
        async () => (await fstatAsync(fd)).nlink === 0,
      )
      .catch((error: unknown) =>
        (error as NodeJS.ErrnoException).code === 'EBADF' ? 'closed already' : true,
      );
    if (removed === 'closed already') return;
    if (removed) await closeAsync(fd);
    else
      await this.#inline.run(
        () => fs.closeSync(fd),
        () => closeAsync(fd),
      );
  }
}

function undefinedWhenMissing(error: unknown): undefined {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw error;
}

/**
 * A path opened O_PATH (openPath): fstat works on it, fchmod does not, so its bits change through
 * /proc/self/fd/N, which names the very file the descriptor holds, whatever its path now leads to.
 */
class DiskPathHandle implements PathHandle {
  readonly fd: number;
  readonly #inline: InlineFileCalls;

  constructor(fd: number, inline: InlineFileCalls) {
    this.fd = fd;
    this.#inline = inline;
  }

  stat(): Promise<FsStats> {
    const fd = this.fd;
    return this.#inline.run(
      () => fs.fstatSync(fd),
      () => fstatAsync(fd),
    );
  }

  async chmod(mode: number): Promise<void> {
    const proc = `/proc/self/fd/${this.fd}`;
    await this.#inline.run(
      () => fs.chmodSync(proc, mode),
      () => fsPromises.chmod(proc, mode),
    );
  }

  async close(): Promise<void> {
    const fd = this.fd;
    await this.#inline.run(
      () => fs.closeSync(fd),
      () => closeAsync(fd),
    );
  }
}
