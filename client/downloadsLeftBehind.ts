/**
 * Downloads into a file (those that keep a partial should they fail, and those that keep nothing)
 * are written under a name that says which host, process and run write them
 * (downloadInProgressName): a process killed outright (SIGKILL, the out-of-memory killer, a power
 * cut) leaves such a file behind, and `get -c` continues it once that process is gone, as it
 * continues what a failed download kept; any get of that target that succeeds removes it. Only files of this host tag (this machine and
 * pid namespace: shared/hostTag.ts) and this user with one name are ever claimed or removed; what
 * another host, container or namespace left (a shared directory, a volume) is left alone, and so is
 * what an older muxftp left under its hostname's tag (its writer cannot be checked from here).
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { hostTag, legacyHostTag, processRuns, processRunTag } from '../shared/hostTag.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import {
  type DownloadOwner,
  downloadInProgressName,
  parseDownloadInProgress,
} from '../shared/temporaryNames.js';

/**
 * This run of this process: one started later with the same id (a pid reused) is another; every
 * thread of this one has it (processRunTag), so another thread's download is not taken for a gone
 * run's.
 */
const RUN_TAG = processRunTag();
let downloadsNamed = 0;

/**
 * The count's start in this thread: its thread id's 2^32 multiple (the main thread's is 0), so
 * that two threads of one run never name two downloads of one target alike (at most 2^49, within
 * the name's 15 digits).
 */
const SEQ_BASE = (threadId % 2 ** 17) * 2 ** 32;

/** Directories whose left-behind downloads are remembered, at most (a library's process is long-lived). */
const DIRECTORIES_REMEMBERED = 256;

/** A fresh temporary path for a download into `target` (keeping its whole blocks should it fail, or not). */
export function inProgressPath(target: string): string {
  const owner = {
    host: hostTag(),
    pid: process.pid,
    run: RUN_TAG,
    seq: SEQ_BASE + (downloadsNamed++ % 2 ** 32),
  };
  return join(dirname(target), downloadInProgressName(basename(target), owner));
}

/**
 * Whether the process that wrote a download in progress is gone: 'gone' only for this host tag's
 * (its pid means a process here) whose pid no longer runs it. 'unknown' for one an older muxftp
 * wrote under this hostname's tag whose pid does not run here: gone, or running in another
 * container or pid namespace of this hostname; it is left alone (taking it over had two writers
 * in one file). Anything else (running, another host's) is 'running'.
 */
export function writerState(owner: DownloadOwner): 'gone' | 'running' | 'unknown' {
  if (owner.host === hostTag()) return processRuns(owner.pid, owner.run) ? 'running' : 'gone';
  if (owner.host === legacyHostTag() && !processRuns(owner.pid)) return 'unknown';
  return 'running';
}

/**
 * The kept name (`.muxftp-get-<hash>.part`) of the target of `name` in `directory`, a download in
 * progress that a gone process of this host left (a killed get), on the terms get -c claims one
 * by (a file of this user's with one name); undefined for any other. get -r -c --delete removes
 * such files as it removes what is kept, for names the source no longer has.
 */
export async function leftByGoneProcess(directory: string, name: string): Promise<string | undefined> {
  const owner = parseDownloadInProgress(name);
  if (owner === undefined || writerState(owner) !== 'gone') return undefined;
  const info = await lstat(join(directory, name)).catch(() => undefined);
  return info !== undefined && leftByThisUser(info) ? owner.keptName : undefined;
}

/**
 * A file this user's process left: a regular file with one name, of this user's. A link, a file
 * with other names (another's data, linked in) or of another user's is not muxftp's to take.
 */
function leftByThisUser(info: Stats): boolean {
  const uid = process.getuid?.();
  return info.isFile() && info.nlink === 1 && (uid === undefined || info.uid === uid);
}

/**
 * What processes of this host left in progress in a directory, by kept name: those gone, and those
 * whose writer cannot be checked ('unknown': an older muxftp's). Read once per directory and
 * process (another is left there only by a process that dies meanwhile).
 */
interface LeftInDirectory {
  gone: Map<string, string[]>;
  unknown: Map<string, string[]>;
}

const leftIn = new Map<string, Promise<LeftInDirectory>>();

function leftInDirectory(directory: string): Promise<LeftInDirectory> {
  let left = leftIn.get(directory);
  if (left === undefined) {
    left = readdir(directory).then(
      (names) => {
        const found: LeftInDirectory = { gone: new Map(), unknown: new Map() };
        for (const name of names) {
          const owner = parseDownloadInProgress(name);
          if (owner === undefined) continue;
          const state = writerState(owner);
          if (state === 'running') continue;
          const byKeptName = found[state];
          const same = byKeptName.get(owner.keptName);
          if (same === undefined) byKeptName.set(owner.keptName, [name]);
          else same.push(name);
        }
        return found;
      },
      (): LeftInDirectory => ({ gone: new Map(), unknown: new Map() }),
    );
    if (leftIn.size >= DIRECTORIES_REMEMBERED) leftIn.delete(leftIn.keys().next().value!);
    leftIn.set(directory, left);
  }
  return left;
}

/**
 * The files left for the target kept at `keptPath` that are this user's, with one name, largest
 * first (forgotten: each is claimed or removed once). A link, a file with other names or of another
 * user's is not one muxftp left: left alone.
 */
async function ownLeftFor(
  keptPath: string,
  forget = true,
  which: keyof LeftInDirectory = 'gone',
): Promise<Array<{ path: string; size: number }>> {
  const directory = dirname(keptPath);
  const left = (await leftInDirectory(directory))[which];
  const names = left.get(basename(keptPath));
  if (names === undefined) return [];
  if (forget) left.delete(basename(keptPath));
  const files = await Promise.all(
    names.map(async (name) => {
      const path = join(directory, name);
      const info = await lstat(path).catch(() => undefined);
      return info !== undefined && leftByThisUser(info) ? { path, size: info.size } : undefined;
    }),
  );
  return files.filter((file) => file !== undefined).sort((a, b) => b.size - a.size);
}

/**
 * What an older muxftp's get left in progress for the target kept at `keptPath` under this
 * hostname's tag, whose process does not run here but may in another container or pid namespace
 * of this hostname: neither claimed nor removed, and named once per process (for the caller to
 * say so), then forgotten.
 */
export async function leftAloneFor(keptPath: string): Promise<string[]> {
  return (await ownLeftFor(keptPath, true, 'unknown')).map(({ path }) => path);
}

const wholeBlocks = (bytes: number): number => Math.floor(bytes / INTEGRITY_BLOCK_BYTES);

/**
 * Renames what gone processes left in progress for the target kept at `keptPath` to `to`: the
 * largest, if several (the rest are removed), and only if it holds more whole blocks than
 * `targetBytes` (the local file under the target's name, which get -c continues otherwise: a
 * target already whole is not downloaded again from a stale start). False when none was taken.
 */
export async function claimLeftBehind(keptPath: string, to: string, targetBytes: number): Promise<boolean> {
  const files = await ownLeftFor(keptPath);
  let claimed = false;
  for (const { path, size } of files) {
    if (!claimed && wholeBlocks(size) > wholeBlocks(targetBytes)) {
      // Gone meanwhile (another get -c took it): the next one.
      claimed = await rename(path, to).then(
        () => true,
        () => false,
      );
      if (claimed) continue;
    }
    // Stale: a smaller one left for the same target, or less than the target holds.
    await unlink(path).catch(() => {});
  }
  return claimed;
}

/** Bytes of the largest file gone processes left in progress for the target kept at `keptPath` (0: none). */
export async function leftBehindBytes(keptPath: string): Promise<number> {
  return (await ownLeftFor(keptPath, false))[0]?.size ?? 0;
}

/**
 * The target kept at `keptPath` is whole now: what gone processes left for it goes too. A plain get
 * (the library's without keepPartial too) after a killed one would otherwise leave that file hidden
 * beside it for good; it costs one readdir per directory and process (of the last 256 directories),
 * as get -c's claims do, and a map look-up per get after it.
 */
export async function removeLeftBehind(keptPath: string): Promise<void> {
  for (const { path } of await ownLeftFor(keptPath)) await unlink(path).catch(() => {});
}
