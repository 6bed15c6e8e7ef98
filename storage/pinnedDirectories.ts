/**
 * Path-based calls made inside a directory held open (Linux). FsStorage checks a path before
 * using it (storage/paths.ts); someone with write access to the served tree on the host could
 * swap a directory on it for a symbolic link in between, and a rename, unlink, mkdir, rmdir,
 * utime, listing or new file then acted wherever the link led — a helper's race moved files from
 * outside into a user's home, deleted them, and planted uploads outside.
 *
 * Here the directory a call acts in (an entry's parent, or the directory a listing reads) is
 * opened first (O_PATH: no read permission needed, nothing read), where the kernel says it is
 * (/proc/self/fd/N) is checked against the real root, and the call names its entry through
 * /proc/self/fd/N/NAME: the directory checked is the one used, whatever is swapped afterwards.
 * This stands in for openat(2) and openat2's RESOLVE_BENEATH, which node's fs lacks. Without
 * /proc the calls are made as given (the check before them alone applies).
 */
import * as fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import type { InlineFileCalls } from '../shared/inlineFileCalls.js';

const openAsync = promisify(fs.open);

/** Linux's O_PATH, which node does not name (010000000 on Linux's common architectures). */
export const O_PATH = 0o10000000;

const PIN_FLAGS = O_PATH | fs.constants.O_DIRECTORY;

/** A call's directory turned out to lie outside the root: storage says INVALID_PATH for it. */
class LedOutsideRootError extends Error {
  readonly code = 'ELEDOUTSIDE';
  constructor(hostPath: string) {
    super(`led outside the root: ${hostPath}`);
  }
}

/** One line for every root and home: the descriptors they hold come out of the server's reserve. */
const PINNED_CALLS = new ConcurrencyLimit(DEFAULTS.maxPinnedCalls);

export class PinnedDirectories {
  readonly #inline: InlineFileCalls;
  readonly #root: string;
  #realRoot: string | undefined;
  /** Calls holding a directory at once, in the whole process: each holds a descriptor. */
  readonly #calls = PINNED_CALLS;

  /** `root`: the served root (made already); undefined where /proc cannot pin (not Linux). */
  static forRoot(root: string, inline: InlineFileCalls): PinnedDirectories | undefined {
    if (process.platform !== 'linux' || !fs.existsSync('/proc/self/fd')) return undefined;
    return new PinnedDirectories(root, inline);
  }

  private constructor(root: string, inline: InlineFileCalls) {
    this.#root = root;
    this.#inline = inline;
  }

  /** `call` on `hostPath`'s entry, named through its parent held open and checked. */
  inParent<T>(hostPath: string, call: (pinnedPath: string) => Promise<T>): Promise<T> {
    return this.#calls.run(() => this.#inParent(hostPath, call));
  }

  /** `call` on the directory `hostPath` itself, held open and checked (a listing). */
  itself<T>(hostPath: string, call: (pinnedPath: string) => Promise<T>): Promise<T> {
    return this.#calls.run(() => this.#within(hostPath, call));
  }

  /**
   * Both entries' parents held at once (a rename's source and destination), in one turn of the
   * limit (two turns nested could each wait for the other's); one directory is held once.
   */
  inParents<T>(
    from: string,
    to: string,
    call: (pinnedFrom: string, pinnedTo: string) => Promise<T>,
  ): Promise<T> {
    return this.#calls.run(() => {
      const realRoot = this.#realRootOrUndefined();
      if (path.dirname(from) === path.dirname(to) && from !== realRoot && to !== realRoot)
        return this.#inParent(from, (pinnedFrom) =>
          call(pinnedFrom, `${path.dirname(pinnedFrom)}/${path.basename(to)}`),
        );
      return this.#inParent(from, (pinnedFrom) =>
        this.#inParent(to, (pinnedTo) => call(pinnedFrom, pinnedTo)),
      );
    });
  }

  #inParent<T>(hostPath: string, call: (pinnedPath: string) => Promise<T>): Promise<T> {
    const parent = path.dirname(hostPath);
    // The root itself is the operator's; its own parent is not ours to check.
    if (parent === hostPath || hostPath === this.#realRootOrUndefined()) return call(hostPath);
    return this.#within(parent, (fdPath) => call(`${fdPath}/${path.basename(hostPath)}`));
  }

  async #within<T>(dir: string, call: (fdPath: string) => Promise<T>): Promise<T> {
    const fd = await this.#inline.run(
      () => fs.openSync(dir, PIN_FLAGS),
      () => openAsync(dir, PIN_FLAGS),
    );
    try {
      const fdPath = `/proc/self/fd/${fd}`;
      // procfs answers from the kernel's tables, never from a disk: no threadpool hand-off.
      const where = fs.readlinkSync(fdPath);
      if (!this.#isWithinRoot(where)) throw new LedOutsideRootError(dir);
      return await call(fdPath);
    } finally {
      // After the call has settled, even in the threadpool: a number closed under it could name
      // another directory by the time it runs.
      fs.closeSync(fd);
    }
  }

  #realRootOrUndefined(): string | undefined {
    if (this.#realRoot === undefined) {
      try {
        this.#realRoot = fs.realpathSync.native(this.#root);
      } catch {
        return undefined;
      }
    }
    return this.#realRoot;
  }

  #isWithinRoot(where: string): boolean {
    const realRoot = this.#realRootOrUndefined();
    if (realRoot === undefined) return false;
    return where === realRoot || where.startsWith(realRoot.endsWith('/') ? realRoot : `${realRoot}/`);
  }
}
