/**
 * Client paths on the host: the rule every client path follows (shared/clientPaths.ts, after
 * pyftpdlib's AbstractedFS.validpath), checked before any backend sees it, and the half of the
 * check that needs the filesystem (ConfinedRoot).
 */

import type { PlatformPath } from 'node:path';
import { normalizeClientPath } from '../shared/clientPaths.js';
import { StorageError } from '../shared/errors.js';
import type { FsPromises } from './fsApi.js';
import { isMissing, storageErrorFromFs } from './fsErrors.js';

// The rule is the client's too (which names a server answers for); the temporary-name scheme is
// shared with the client's downloads (shared/temporaryNames.ts).
export { normalizeClientPath } from '../shared/clientPaths.js';
export { isTemporaryName, newTemporaryName, TEMP_PREFIX } from '../shared/temporaryNames.js';

/** The last name of a normalized client path ('' for the root). */
export function baseName(clientPath: string): string {
  return clientPath.slice(clientPath.lastIndexOf('/') + 1);
}

/** The parent of a normalized client path ('' for a name directly under the root). */
export function parentPath(clientPath: string): string {
  const slash = clientPath.lastIndexOf('/');
  return slash === -1 ? '' : clientPath.slice(0, slash);
}

/** A client path checked, confined and placed on the host. */
export interface Resolved {
  clientPath: string;
  /** Where the path is on the host: links among the ancestors resolved, the last name as given. */
  hostPath: string;
  /** Where the path really is: symlinks followed, or as far as the path exists. */
  realPath: string;
  /** How many of the path's last names did not exist when it was resolved (0: it exists). */
  missingNames: number;
}

/**
 * A root on the host and the rule that every client path stays inside it, symlinks followed:
 * the second half of path checking, the half that needs the filesystem.
 */
export class ConfinedRoot {
  readonly #fs: Pick<FsPromises, 'realpath' | 'lstat' | 'lstatIfExists'>;
  readonly #root: string;
  readonly #paths: PlatformPath;
  #realRoot: Promise<string> | undefined;
  #knownRealRoot: string | undefined;

  constructor(
    fs: Pick<FsPromises, 'realpath' | 'lstat' | 'lstatIfExists'>,
    root: string,
    hostPaths: PlatformPath,
  ) {
    this.#fs = fs;
    this.#root = root;
    this.#paths = hostPaths;
  }

  /** The root with every symlink resolved; computed once (retried after a failure). */
  realRoot(): Promise<string> {
    if (this.#realRoot === undefined) {
      const realRoot = this.#fs.realpath(this.#root).then(
        (real) => {
          this.#knownRealRoot = real.toString();
          return this.#knownRealRoot;
        },
        (error: unknown) => {
          this.#realRoot = undefined; // let a later call retry, e.g. once the root is mounted
          throw storageErrorFromFs(error, '');
        },
      );
      this.#realRoot = realRoot;
    }
    return this.#realRoot;
  }

  /** The real root if realRoot() has found it already, else undefined: for callers that cannot wait. */
  get knownRealRoot(): string | undefined {
    return this.#knownRealRoot;
  }

  /**
   * Checks a client path, places it under the root, and refuses it when its real location
   * (symlinks followed, as far as the path exists) or its parent's is outside the real root.
   *
   * The check happens before the operation, so a symlink swapped in between could lead outside
   * (a check-then-use race; it takes write access to the host tree). On Linux the disk's calls
   * act in the directory checked, held open (storage/pinnedDirectories.ts), and opens are
   * checked again on the descriptor (FsStorage's locateOpened); what stays path-based is listed
   * in docs/THREAT-MODEL.md.
   *
   * `entryItself`: the operation acts on a link as the last name itself, never on what it leads
   * to (remove: an unlink in the parent), so only the parent must lie inside; a link that leads
   * outside the root, or nowhere, can then be removed like any other entry.
   */
  async resolve(path: string, { entryItself = false }: { entryItself?: boolean } = {}): Promise<Resolved> {
    const clientPath = normalizeClientPath(path);
    const realRoot = await this.realRoot();
    if (clientPath === '') return { clientPath, hostPath: realRoot, realPath: realRoot, missingNames: 0 };

    const lexicalPath = this.#paths.join(realRoot, clientPath);
    // The parent too: operations on the entry itself (unlink, rename, the upload's temporary
    // file) happen in the parent, even when the entry is a link back into the root.
    const parent = await this.#realLocation(this.#paths.dirname(lexicalPath), clientPath, realRoot);
    const realParent = parent.real;
    // Links among the ancestors are resolved once, here; the last name is kept as is so that
    // remove and rename act on a link rather than on its target. (memfs's rename also fails
    // through a linked directory.)
    const hostPath = this.#paths.join(realParent, baseName(clientPath));
    let realPath = hostPath;
    let missingNames = 0;
    try {
      // The parent is real already: only a link as the last name can move the path. One lstat
      // where realpath(3) reads every level again (a readlink each): an upload resolves its
      // target twice, at its start and before its commit.
      const stats =
        this.#fs.lstatIfExists !== undefined
          ? await this.#fs.lstatIfExists(hostPath)
          : await this.#fs.lstat(hostPath);
      if (stats === undefined) missingNames = parent.missing + 1;
      else if (stats.isSymbolicLink() && !entryItself)
        realPath = (await this.#fs.realpath(hostPath)).toString();
    } catch (error) {
      if (!isMissing(error)) throw storageErrorFromFs(error, clientPath);
      realPath = hostPath;
      missingNames = parent.missing + 1;
    }
    if (!this.isWithin(realRoot, realParent) || !this.isWithin(realRoot, realPath)) {
      throw new StorageError('INVALID_PATH', `path leads outside the root: ${clientPath}`, clientPath);
    }
    return { clientPath, hostPath, realPath, missingNames };
  }

  /**
   * The real path of `hostPath`, or of its deepest existing ancestor joined with the rest, and
   * how many trailing names are missing. The deepest existing ancestor is found by bisection:
   * realpath costs time in the depth of its argument, so asking it once per level made a deep
   * `mkdir -p` cubic (issue #7).
   */
  async #realLocation(
    hostPath: string,
    clientPath: string,
    realRoot: string,
  ): Promise<{ real: string; missing: number }> {
    // ancestors[i] is hostPath with its last i names removed, up to the root.
    const ancestors = [hostPath];
    for (let path = hostPath; path !== realRoot && this.#paths.dirname(path) !== path; ) {
      path = this.#paths.dirname(path);
      ancestors.push(path);
    }
    const realOf = async (index: number): Promise<string | undefined> => {
      try {
        return (await this.#fs.realpath(ancestors[index]!)).toString();
      } catch (error) {
        // The top must exist: it is the root.
        if (!isMissing(error) || index === ancestors.length - 1) throw storageErrorFromFs(error, clientPath);
        return undefined;
      }
    };
    const first = await realOf(0);
    if (first !== undefined) return { real: first, missing: 0 };
    // Invariant: ancestors[low] is missing, ancestors[high] exists (with its real path).
    let low = 0;
    let high = ancestors.length - 1;
    let highReal = (await realOf(high))!;
    while (high - low > 1) {
      const middle = (low + high) >>> 1;
      const real = await realOf(middle);
      if (real === undefined) low = middle;
      else {
        high = middle;
        highReal = real;
      }
    }
    const missingNames = this.#paths.relative(ancestors[high]!, hostPath);
    return { real: this.#paths.join(highReal, missingNames), missing: high };
  }

  /** True when `path` is `base` or lies below it. */
  isWithin(base: string, path: string): boolean {
    const relative = this.#paths.relative(base, path);
    return (
      relative === '' ||
      (relative !== '..' && !relative.startsWith(`..${this.#paths.sep}`) && !this.#paths.isAbsolute(relative))
    );
  }
}
