/** The tree under a remote directory, for `get -r`, `rm -r` and `ls -r`: walked with `list`, a few listings at a time. */

import type { Client, WireEntry } from '../client/client.js';
import { characterProblem, extentProblem, nameProblem } from '../shared/clientPaths.js';
import type { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';
import { LinkBudget } from '../shared/linkBudget.js';
import { CliError } from './cliError.js';
import type { Excluded } from './excludes.js';
import { isPlainName, joinRemote, normalRemote } from './remotePath.js';

export interface RemoteTree {
  /** Subdirectories relative to the root, '/'-separated, each after its parent. */
  dirs: string[];
  files: Array<{ relative: string; remote: string; size: number; mtime: number; mode?: number }>;
  /** Every entry listed under a safe name (directories, files and anything else), as the server listed it. */
  entries: Array<{ relative: string; entry: WireEntry }>;
  /**
   * Directories that could not be listed and entries that could not be walked; `relative` as for
   * files ('' for the root itself), undefined for a name that has no safe local path. `listed`:
   * the entry is in `entries` too (a link not followed: nothing wrong to list). `directory`: what
   * failed is one (not listed, a link to one not followed), for a summary that counts files.
   */
  problems: Array<{ remote: string; relative?: string; error: MuxftpError; listed?: true; directory?: true }>;
  /**
   * Entries in `entries` that are neither a file nor a directory to walk (a FIFO, a socket, a
   * device, a link the server does not follow): nothing to copy, and nothing wrong (rsync's
   * "skipping non-regular file"). `reason` says which.
   */
  skipped: Array<{ remote: string; relative: string; reason: string }>;
  /** Entries `excluded` left out, by relative path (what is in an excluded directory is not listed). */
  excluded: string[];
}

/** A problem's mark when the entry it is about is a directory (RemoteTree.problems). */
const directoryIf = (entry: WireEntry): { directory?: true } =>
  entry.type === 'dir' ? { directory: true } : {};

/**
 * Walks the tree under `root`. `maxDepth` bounds how deep (1: the entries of `root` only; the
 * directories at the last level are listed as entries, not opened); `excluded` entries
 * (cli/excludes.ts) are left out, a directory with everything in it. A symbolic link the server
 * shows as a directory is walked into, as what it leads to, unless `intoLinks` is false (what
 * removes or changes a tree: the link is then an entry, and what it leads to is no part of it).
 */
export async function walkRemoteTree(
  client: Client,
  root: string,
  limit: ConcurrencyLimit,
  maxDepth = Number.POSITIVE_INFINITY,
  excluded?: Excluded,
  { intoLinks = true }: { intoLinks?: boolean } = {},
): Promise<RemoteTree> {
  const tree: RemoteTree = { dirs: [], files: [], entries: [], problems: [], skipped: [], excluded: [] };
  const links = new LinkBudget();
  // Directories found and not yet listed, first found first (the order their listings were asked
  // for when each had a call of its own): data, not a suspended call each. A call per directory,
  // each waiting in line at `limit` for its listing (some 2 KiB), ran a directory of 50,000
  // subdirectories out of a 96 MB heap that the same tree's files fit in below 48.
  const pending: Array<{ remoteDir: string; relativeDir: string; depth: number; linksOnTheWay: number }> = [];
  let next = 0;
  const walk = async (
    remoteDir: string,
    relativeDir: string,
    depth: number,
    linksOnTheWay: number,
  ): Promise<void> => {
    let entries: Awaited<ReturnType<Client['list']>>;
    try {
      entries = await limit.run(() => client.list(remoteDir));
    } catch (error) {
      tree.problems.push({
        remote: remoteDir,
        relative: relativeDir,
        error: asMuxftpError(error),
        directory: true,
      });
      return;
    }
    const names = new Set<string>();
    // A name no request can carry that a rule leaves out (matched as shown, by its kind, as put -r
    // matches a local one): left out, not failed, so --delete still runs and it is kept. One not
    // UTF-8 lists with no kind (the server cannot look it up): left out only as both.
    const leftOutUnnamed = (entry: WireEntry): boolean => {
      const relative = relativeDir === '' ? String(entry.name) : `${relativeDir}/${entry.name}`;
      if (excluded === undefined) return false;
      const leftOut =
        entry.notUtf8 === true
          ? excluded(relative, true, true) && excluded(relative, false, true) && excluded(relative, undefined)
          : excluded(relative, entry.type === 'dir');
      if (leftOut) tree.excluded.push(relative);
      return leftOut;
    };
    for (const entry of entries) {
      const remote = joinRemote(remoteDir, String(entry.name));
      if (entry.notUtf8 === true) {
        if (leftOutUnnamed(entry)) continue;
        const error = new MuxftpError(
          'INVALID_PATH',
          `name on the server is not UTF-8 (muxftp names files in UTF-8 only), skipped: ${remote}`,
        );
        tree.problems.push({ remote, error });
        continue;
      }
      // One name, one entry: a listing naming one twice (a directory and a file, say) says
      // nothing true of it, and a mirror would remove what is there for either. After the
      // not-UTF-8 check: two such names both list with U+FFFD in one place.
      if (names.has(entry.name)) {
        tree.problems.push({
          remote,
          error: new MuxftpError('PROTOCOL_ERROR', `server listed ${remote} twice`),
        });
        continue;
      }
      names.add(entry.name);
      // Put there on the host by other means: listed, but no request can name it.
      const badCharacter = characterProblem(entry.name);
      if (badCharacter !== undefined) {
        if (leftOutUnnamed(entry)) continue;
        const error = new MuxftpError(
          'INVALID_PATH',
          `muxftp cannot name it (the name ${badCharacter}; rename it on the server), skipped: ${remote}`,
        );
        tree.problems.push({ remote, error, ...directoryIf(entry) });
        continue;
      }
      if (!isPlainName(entry.name)) {
        const error = new MuxftpError('INVALID_PATH', `server listed an unsafe name, skipped: ${remote}`);
        tree.problems.push({ remote, error, ...directoryIf(entry) });
        continue;
      }
      // Past the limits every path keeps (256 names deep, 4096 bytes): no request could name it,
      // and a server listing ever deeper (a broken or hostile one) held the walk and memory without end.
      const pathProblem = invalidPathReason(remote, entry.name);
      if (pathProblem !== undefined) {
        tree.problems.push({
          remote,
          error: new MuxftpError(
            'INVALID_PATH',
            `server listed an invalid path (${pathProblem}), skipped: ${remote}`,
          ),
          ...directoryIf(entry),
        });
        continue;
      }
      const relative = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      // A link to nothing (or out of the root) is neither file nor directory: left out only by a
      // rule for both kinds. Left out by one for files alone (`--include '*/' … --exclude '*'`),
      // the tree had nothing at its name and get -r --delete removed the local directory there.
      // Only where links are walked (a source): a destination's link is an entry like a file,
      // judged as one, and a rule for files alone leaves it be as before.
      const linkToNothing = intoLinks && entry.type === 'other' && entry.link === true;
      const leftOut = linkToNothing
        ? excluded?.(relative, true, true) === true &&
          excluded(relative, false, true) &&
          excluded(relative, undefined)
        : excluded?.(relative, entry.type === 'dir') === true;
      if (leftOut) {
        tree.excluded.push(relative);
        continue;
      }
      // Its rule's match counts all the same.
      if (linkToNothing) excluded?.(relative, undefined);
      tree.entries.push({ relative, entry });
      const link = entry.type === 'dir' && entry.link === true ? 1 : 0;
      if (link === 1 && !intoLinks) continue;
      if (link === 1 && !links.take(linksOnTheWay)) {
        const error = new MuxftpError(
          'UNSUPPORTED',
          `symbolic link not followed (a loop, or more than ${DEFAULTS.maxLinksOnTheWay} links on the way): ${remote}`,
        );
        tree.problems.push({ remote, relative, error, listed: true, directory: true });
        continue;
      }
      if (entry.type === 'dir') {
        tree.dirs.push(relative);
        if (depth < maxDepth)
          pending.push({
            remoteDir: remote,
            relativeDir: relative,
            depth: depth + 1,
            linksOnTheWay: linksOnTheWay + link,
          });
      } else if (entry.type === 'file') {
        tree.files.push({ relative, remote, size: entry.size, mtime: entry.mtime, mode: entry.mode });
      } else {
        // A link listed as `other` leads out of the served root or nowhere: the server will not
        // follow it, on any run.
        const reason =
          entry.link === true
            ? 'symbolic link out of the served root or leading nowhere'
            : 'not a regular file';
        tree.skipped.push({ remote, relative, reason });
      }
    }
  };
  // Each worker lists one directory at a time; a listing that finds more wakes the idle ones.
  pending.push({ remoteDir: root, relativeDir: '', depth: 1, linksOnTheWay: 0 });
  let idle: Array<() => void> = [];
  let busy = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (next === pending.length) {
        if (busy === 0) break; // nothing listed, nothing being listed: the tree is walked
        await new Promise<void>((wake) => idle.push(wake));
        continue;
      }
      const { remoteDir, relativeDir, depth, linksOnTheWay } = pending[next]!;
      // Let go of what was taken, now and then: the list holds only what is still to walk.
      if (++next === 4096) {
        pending.splice(0, next);
        next = 0;
      }
      busy++;
      try {
        await walk(remoteDir, relativeDir, depth, linksOnTheWay);
      } finally {
        busy--;
        const woken = idle;
        idle = [];
        for (const wake of woken) wake();
      }
    }
  };
  await Promise.all(Array.from({ length: limit.max }, worker));
  // Listings finish in any order; sorted, every path still follows its parent (a prefix sorts first).
  tree.dirs.sort();
  tree.files.sort(byRelative);
  tree.skipped.sort(byRelative);
  tree.entries.sort((a, b) => compareBySegments(a.relative, b.relative));
  return tree;
}

function byRelative(a: { relative: string }, b: { relative: string }): number {
  return a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0;
}

/** Path order in which a directory's entries follow it directly: `a/`, `a/x`, then `a.txt`. */
function compareBySegments(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * Why a listed entry at `remote` cannot be part of a copy, or undefined: a name no path may hold
 * (too long, or reserved: never listed by a muxftp server), or a path past the limits every
 * request keeps, so that no request can name it (a server listing ever deeper held a walk and
 * its memory without end).
 */
function invalidPathReason(remote: string, name: string): string | undefined {
  // Bytes as the path is sent (`./t/…` whole), names as the server counts them: not `.` nor ''
  // (`get -r ./t` refused what lay 256 names deep, the `.` counted as one).
  const bytes = Buffer.byteLength(remote, 'utf8');
  return nameProblem(name) ?? extentProblem(bytes, normalRemote(remote).split('/').length);
}

/**
 * A listing's failure as a problem of the tree: a reconnect that failed (retries spent) is
 * openClient's CliError, whose code (CONNECT_FAILED, ...) and exit status (as its cause) stay.
 */
export function asMuxftpError(error: unknown): MuxftpError {
  if (error instanceof MuxftpError) return error;
  if (error instanceof CliError) return new MuxftpError(error.code, error.message, { cause: error });
  return new MuxftpError('INTERNAL_ERROR', error instanceof Error ? error.message : String(error));
}
