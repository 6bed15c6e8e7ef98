/**
 * The local side of transfers: what a local path is, the tree under a directory (`put -r`),
 * directories to download into, and what a destination tree holds (`get -r --delete`). Every
 * failure is a LOCAL_IO_ERROR whose message names the path.
 */
import { type Dirent, type Stats, statSync } from 'node:fs';
import { readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { leftByGoneProcess } from '../client/downloadsLeftBehind.js';
import { localFileCalls } from '../client/sources.js';
import { characterProblem, extentProblem } from '../shared/clientPaths.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { errnoReason } from '../shared/errnoReasons.js';
import { MuxftpError } from '../shared/errors.js';
import { makeDirectories, NotADirectoryError } from '../shared/makeDirectories.js';
import { isDownloadPartialName, isTemporaryName } from '../shared/temporaryNames.js';
import type { Excluded } from './excludes.js';
import { waitedOn } from './localCallsWaiting.js';
import { normalRemote } from './remotePath.js';

export function localFsError(error: unknown, localPath: string): MuxftpError {
  if (error instanceof MuxftpError) return error;
  return new MuxftpError('LOCAL_IO_ERROR', `${errnoReason(error)}: ${localPath}`, { cause: error });
}

export type LocalKind = 'file' | 'dir' | 'other';

export interface LocalEntry {
  kind: LocalKind;
  /** Bytes for files, 0 otherwise. */
  size: number;
}

/**
 * Where a local call runs. 'loop': on the loop while file calls are fast (localFileCalls): put -r
 * stats every file of a tree, and through the threadpool each stat costs the loop a wake-up of a
 * worker thread (on two cores, descheduling it) for a call of microseconds. 'threadpool': for a
 * path that may be a mount point (an argument, a directory of a tree): a call under a hung mount
 * never returns, and on the loop it held the process deaf to Ctrl-C until SIGKILL
 * (localCallsWaiting.ts).
 */
export type LocalCallPlace = 'loop' | 'threadpool';

/** stat(2) of a local path, `where` says (by default on the loop). */
export function statLocal(localPath: string, where: LocalCallPlace = 'loop'): Promise<Stats> {
  if (where === 'threadpool') return waitedOn(`stat ${localPath}`, stat(localPath));
  return localFileCalls.run(
    () => statSync(localPath),
    () => stat(localPath),
  );
}

/** Follows symbolic links, as opening the path would. Through the threadpool (an argument). */
export async function inspectLocal(localPath: string): Promise<LocalEntry> {
  const entry = await inspectLocalIfExists(localPath, 'threadpool');
  if (entry === undefined) {
    const gone = await missingEntry(localPath);
    throw gone instanceof MuxftpError
      ? gone
      : new MuxftpError('LOCAL_IO_ERROR', `${gone.reason}: ${localPath}`);
  }
  return entry;
}

/**
 * What a path stat(2) found nothing at is: a link to nothing (there, as ls shows it: "no such
 * file" of it reads as a riddle), with why; else the error of a path that is not there.
 */
async function missingEntry(localPath: string): Promise<{ reason: string } | MuxftpError> {
  const leadsTo = await readlink(localPath).catch(() => undefined);
  return leadsTo === undefined
    ? // "local": the line reads as a remote NOT_FOUND's would, but for its code at the end.
      new MuxftpError('LOCAL_IO_ERROR', `no such local file or directory: ${localPath}`)
    : { reason: `symbolic link to nothing (${leadsTo} does not exist)` };
}

/**
 * Like inspectLocal, but a missing path is `undefined` rather than an error. By default through
 * the threadpool: 'loop' for a file a walk has listed, the many.
 */
export async function inspectLocalIfExists(
  localPath: string,
  where: LocalCallPlace = 'threadpool',
): Promise<LocalEntry | undefined> {
  try {
    const info = await statLocal(localPath, where);
    if (info.isFile()) return { kind: 'file', size: info.size };
    return { kind: info.isDirectory() ? 'dir' : 'other', size: 0 };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw localFsError(error, localPath);
  }
}

/**
 * `mkdir -p` (shared/makeDirectories.ts); a failure names the level, as the user wrote it. With
 * `mode` (a remote directory's, get -r keeping them), the directory made at `localPath` gets
 * those bits less the umask, and always its owner's (the download writes into it).
 */
export async function makeLocalDir(localPath: string, mode?: number): Promise<void> {
  try {
    // Named while it waits: a level may be a hung mount (interrupt.ts says which).
    await waitedOn(
      `mkdir ${localPath}`,
      makeDirectories(localPath, mode === undefined ? undefined : mode | 0o700),
    );
  } catch (error) {
    if (error instanceof NotADirectoryError) throw new MuxftpError('LOCAL_IO_ERROR', error.message);
    throw localFsError(error, localPath);
  }
}

/** What `put -r` uploads from one directory. Relative paths use '/', whatever the platform. */
export interface LocalTree {
  /** Subdirectories that could be walked, each after its parent. */
  dirs: string[];
  files: Array<{ relative: string; localPath: string; size: number }>;
  /**
   * Entries that could not be read (a link loop, a name that is not UTF-8, one gone meanwhile);
   * the walk went on without them.
   * `relative` as for files ('' for the root itself). `directory`: what failed is one (not read,
   * a link loop), for a summary that counts files.
   */
  problems: Array<{ localPath: string; relative: string; error: MuxftpError; directory?: true }>;
  /**
   * Entries that are neither files nor directories (a FIFO, a socket, a device) or links to
   * nothing: nothing to send, nothing wrong.
   */
  skipped: Array<{ localPath: string; relative: string; reason: string }>;
}

/**
 * `excluded` entries (cli/excludes.ts) are left out, a directory with everything in it. `remote`:
 * the remote path the tree goes to, so that the walk stops where the paths below it would be past
 * what a request can name.
 */
export async function walkLocalTree(root: string, excluded?: Excluded, remote = ''): Promise<LocalTree> {
  const tree: LocalTree = { dirs: [], files: [], problems: [], skipped: [] };
  // Symbolic links are followed; the directories above, by device and inode as find(1) tells
  // them, stop a link loop (and a bind mount's). Not by realpath(3): it reads every level of its
  // argument again (a readlink each), so a tree 2,000 deep took 2 million readlinks of paths up to
  // 2,000 names long, 100 s of system time before anything was sent. One set for the walk: the
  // walk goes into one subdirectory at a time, and takes each out of it on the way back up.
  const ancestors = new Set<string>();
  // Names as the server counts them (`./d//x` is two deep), bytes as the paths are sent: joined to
  // `remote` as written (joinRemote), which a server reads whole against its 4096 bytes.
  const remoteBase = normalRemote(remote);
  const baseDepth = remoteBase === '' ? 0 : remoteBase.split('/').length;
  const sentBase = remote.replace(/\/+$/, '');
  const baseBytes = sentBase === '' ? 0 : Buffer.byteLength(sentBase, 'utf8') + 1;
  const walk = async (localDir: string, relativeDir: string, depth: number): Promise<void> => {
    // Past the limits every remote path keeps (256 names, 4096 bytes), as get -r's walk stops: no
    // request can name it or what is in it, so it is not read (a tree 2,000 deep was walked to its
    // bottom, 20 s in time cubic in the depth, for each level below 256 to fail on its own).
    const tooFar =
      relativeDir === ''
        ? undefined
        : extentProblem(baseBytes + Buffer.byteLength(relativeDir, 'utf8'), baseDepth + depth);
    if (tooFar !== undefined) {
      tree.problems.push({
        localPath: localDir,
        relative: relativeDir,
        error: new MuxftpError('INVALID_PATH', `its remote path would be ${tooFar}, skipped: ${localDir}`),
        directory: true,
      });
      return;
    }
    let names: string[];
    // A name no remote path can be (not UTF-8, or with a backslash or a newline), as shown, why,
    // and whether it is a directory (undefined: not known). Not walked into: what is in it could
    // have no remote path either, and failed a line each.
    const unsendable: Array<{ shown: string; why: string; isDirectory: boolean | undefined }> = [];
    let identity: string;
    // The names readdir(3) says are regular files.
    const regularFiles = new Set<string>();
    try {
      // Through the threadpool: a directory may be a hung mount (one call for each directory).
      const info = await waitedOn(`stat ${localDir}`, stat(localDir, { bigint: true }));
      identity = `${info.dev}:${info.ino}`;
      // muxftp's own hidden files (a get in progress, or what a failed one kept for get -c) are no
      // file of the tree, and their names are reserved on the server (INVALID_PATH). As bytes:
      // a name that is not UTF-8, read as a string, would be another name.
      names = [];
      const dirents = await waitedOn(
        `readdir ${localDir}`,
        readdir(localDir, { encoding: 'buffer', withFileTypes: true }),
      );
      for (const dirent of dirents) {
        const name = utf8Name(dirent.name);
        const badCharacter = name === undefined ? undefined : characterProblem(name);
        // Its kind for the rules to decide by, as for any name: with `--include '*/' … --exclude
        // '*'` such a directory is kept, so reported, not left out as a file would be.
        if (name === undefined || badCharacter !== undefined)
          unsendable.push({
            shown: name ?? dirent.name.toString('utf8'),
            why:
              badCharacter === undefined
                ? 'name is not UTF-8 (muxftp sends UTF-8 names only)'
                : `muxftp cannot name it (the name ${badCharacter}; rename it)`,
            isDirectory: await isDirectoryEntry(localDir, dirent),
          });
        else if (!isTemporaryName(name)) {
          names.push(name);
          if (dirent.isFile()) regularFiles.add(name);
        }
      }
      names.sort();
    } catch (error) {
      tree.problems.push({
        localPath: localDir,
        relative: relativeDir,
        error: localFsError(error, localDir),
        directory: true,
      });
      return;
    }
    if (ancestors.has(identity)) {
      tree.problems.push({
        localPath: localDir,
        relative: relativeDir,
        error: new MuxftpError('LOCAL_IO_ERROR', `symbolic link loop, not followed: ${localDir}`),
        directory: true,
      });
      return;
    }
    // Created on the server only once it can be walked: a link loop or an unreadable directory is
    // reported, and leaves no empty directory behind it.
    if (relativeDir !== '') tree.dirs.push(relativeDir);
    for (const { shown, why, isDirectory } of unsendable) {
      const localPath = path.join(localDir, shown);
      const relative = relativeDir === '' ? shown : `${relativeDir}/${shown}`;
      if (excluded?.(relative, isDirectory) === true) continue;
      tree.problems.push({
        localPath,
        relative,
        error: new MuxftpError('INVALID_PATH', `${why}, skipped: ${localPath}`),
        ...(isDirectory === true ? { directory: true as const } : {}),
      });
    }
    const entries = await new ConcurrencyLimit(DEFAULTS.localCallsAtOnce).map(names, async (name) => {
      const localPath = path.join(localDir, name);
      const relative = relativeDir === '' ? name : `${relativeDir}/${name}`;
      // Left out as one kind but not the other (`--exclude cache/`, or `--include '*/'` before
      // `--exclude '*'`): its kind decides, so look first; only then is it stat'ed.
      const asDirectory = excluded?.(relative, true, true) === true;
      const asFile = excluded?.(relative, false, true) === true;
      // Left out once its kind is known (or need not be, or could not be): its matches count then.
      const leftOut = (isDirectory: boolean | undefined): undefined => {
        excluded!(relative, isDirectory);
        return undefined;
      };
      // Left out whatever it is: `.git` beside `.git/` both count for it.
      if (asDirectory && asFile) return leftOut(undefined);
      try {
        // A file on the loop (the many); a directory, a link or an unknown kind may be a mount
        // point, a hung one's stat never returns: through the threadpool.
        const entry = await inspectLocalIfExists(localPath, regularFiles.has(name) ? 'loop' : 'threadpool');
        if (entry === undefined) {
          // A link to nothing (an editor's lock link, a build's stale one) has nothing to send,
          // as the server's own are skipped by get -r: a failure would stop every --delete.
          const gone = await missingEntry(localPath);
          if (gone instanceof MuxftpError)
            return asDirectory || asFile ? leftOut(undefined) : { localPath, relative, error: gone };
          // Neither file nor directory: a rule for one kind alone (`--exclude x/`, or `--include
          // '*/' … --exclude '*'`) does not leave it out, as leaving it out made the source
          // hold nothing at x, and put --delete removed the remote x of the other kind. Skipped,
          // it keeps whatever is there (its rule's match counts all the same).
          if (asFile) excluded!(relative, undefined);
          return { localPath, relative, skip: gone.reason };
        }
        // Its kind known, the rules decide and their matches count (an --include that keeps it too).
        if (excluded?.(relative, entry.kind === 'dir') === true) return undefined;
        return { localPath, relative, entry };
      } catch (error) {
        // A link that cannot be followed (a loop) is no directory either: failed, not left out
        // by a rule for directories alone.
        const link = await readlink(localPath).then(
          () => true,
          () => false,
        );
        if (asDirectory && !link) return leftOut(undefined);
        // A loop under a rule for files alone: as a link to nothing, kept, not left out.
        if (asFile && link) {
          excluded!(relative, undefined);
          return {
            localPath,
            relative,
            skip: `symbolic link that cannot be followed (${localFsError(error, localPath).message})`,
          };
        }
        if (asFile) return leftOut(undefined);
        return { localPath, relative, error: localFsError(error, localPath) };
      }
    });
    ancestors.add(identity);
    for (const looked of entries) {
      if (looked === undefined) continue; // excluded
      const { localPath, relative, entry, error, skip } = looked;
      if (skip !== undefined) {
        tree.skipped.push({ localPath, relative, reason: skip });
      } else if (entry === undefined) {
        tree.problems.push({ localPath, relative, error });
      } else if (entry.kind === 'file') {
        tree.files.push({ relative, localPath, size: entry.size });
      } else if (entry.kind === 'dir') {
        await walk(localPath, relative, depth + 1);
      } else {
        tree.skipped.push({ localPath, relative, reason: 'not a regular file' });
      }
    }
    ancestors.delete(identity);
  };
  await walk(root, '', 0);
  return tree;
}

/** What a local destination holds (`get -r --delete`), as it is: links are not followed. */
export interface LocalDestination {
  /**
   * Each directory directly before what is in it (names sorted); `relative` uses '/'. A name that
   * is not UTF-8 (no remote name can be it) is read with U+FFFD in `relative` and `localPath`,
   * the bytes of its path in `rawPath`, as are the paths of everything in it.
   */
  entries: Array<{
    relative: string;
    localPath: string;
    kind: LocalKind;
    /** A symbolic link (`other`) that leads to a file. */
    leadsToFile?: boolean;
    rawPath?: Buffer;
  }>;
  /** Directories that could not be read: nothing in them is known. */
  problems: Array<{ localPath: string; error: MuxftpError }>;
  /** Entries `excluded` left out, by relative path (what is in an excluded directory is not read). */
  excluded: string[];
  /**
   * What failed gets kept for `get -c` (`.muxftp-get-<hash>.part`, regular files), by relative
   * path: not entries, but get -r --delete removes those whose target the source does not have.
   */
  keptPartials: string[];
  /**
   * Downloads in progress a gone process of this host left (a killed get: continued by get -c,
   * as what is kept), by relative path, with the relative path of the kept name they stand for.
   */
  leftBehind: Array<{ relative: string; kept: string }>;
}

/**
 * Walks the destination tree under `root` without following links (a link is an entry of its
 * own, never a way out of the tree), leaving out `excluded` paths and muxftp's own hidden files.
 */
export async function walkLocalDestination(root: string, excluded?: Excluded): Promise<LocalDestination> {
  const found: LocalDestination = {
    entries: [],
    problems: [],
    excluded: [],
    keptPartials: [],
    leftBehind: [],
  };
  // `rawDir`: the bytes of a directory's path that is not UTF-8 (what is in it is named by them).
  const walk = async (localDir: string, relativeDir: string, rawDir?: Buffer): Promise<void> => {
    let dirents: Array<Dirent<Buffer>>;
    try {
      // As bytes: a name that is not UTF-8 read as a string could not be found again.
      dirents = await waitedOn(
        `readdir ${localDir}`,
        readdir(rawDir ?? localDir, { withFileTypes: true, encoding: 'buffer' }),
      );
    } catch (error) {
      // A destination not made yet (a dry run) holds nothing.
      if (relativeDir === '' && (error as NodeJS.ErrnoException).code === 'ENOENT') return;
      found.problems.push({ localPath: localDir, error: localFsError(error, localDir) });
      return;
    }
    const named = dirents.map((dirent) => ({ dirent, name: dirent.name.toString('utf8') }));
    named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { dirent, name } of named) {
      const relative = relativeDir === '' ? name : `${relativeDir}/${name}`;
      if (isTemporaryName(name)) {
        if (rawDir === undefined && dirent.isFile()) {
          if (isDownloadPartialName(name)) found.keptPartials.push(relative);
          const kept = await leftByGoneProcess(localDir, name);
          if (kept !== undefined)
            found.leftBehind.push({ relative, kept: relativeDir === '' ? kept : `${relativeDir}/${kept}` });
        }
        continue;
      }
      if (excluded?.(relative, dirent.isDirectory()) === true) {
        found.excluded.push(relative);
        continue;
      }
      const localPath = path.join(localDir, name);
      // A link is `other`, whatever it leads to.
      const kind: LocalKind = dirent.isDirectory() ? 'dir' : dirent.isFile() ? 'file' : 'other';
      if (rawDir !== undefined || utf8Name(dirent.name) === undefined) {
        const rawPath = Buffer.concat([rawDir ?? Buffer.from(localDir), Buffer.from(path.sep), dirent.name]);
        found.entries.push({ relative, localPath, kind, rawPath });
        // Walked into all the same: an excluded path in it keeps it (what else is in it goes).
        if (kind === 'dir') await walk(localPath, relative, rawPath);
        continue;
      }
      const leadsToFile =
        dirent.isSymbolicLink() &&
        (await statLocal(localPath, 'threadpool').then(
          (info) => info.isFile(),
          () => false,
        ));
      found.entries.push({ relative, localPath, kind, ...(leadsToFile ? { leadsToFile } : {}) });
      if (kind === 'dir') await walk(localPath, relative);
    }
  };
  await walk(root, '');
  return found;
}

/** Whether an entry read as bytes is a directory, a link by what it leads to; undefined when unknown. */
async function isDirectoryEntry(dir: string, dirent: Dirent<Buffer>): Promise<boolean | undefined> {
  if (!dirent.isSymbolicLink()) return dirent.isDirectory();
  const rawPath = Buffer.concat([Buffer.from(`${dir}${path.sep}`), dirent.name]);
  return stat(rawPath).then(
    (info) => info.isDirectory(),
    () => undefined,
  );
}

/** A name read as bytes, as a string; undefined when it is not UTF-8 (no remote name can be it). */
function utf8Name(raw: Buffer): string | undefined {
  const name = raw.toString('utf8');
  return Buffer.from(name, 'utf8').equals(raw) ? name : undefined;
}
