/**
 * Downloads that keep a partial are written under a name that says which host and process write
 * them (downloadInProgressName): a process killed outright (SIGKILL, the out-of-memory killer, a
 * power cut) leaves such a file behind, and `get -c` continues it once that process is gone,
 * as it continues what a failed download kept.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { downloadInProgressName, parseDownloadInProgress } from '../shared/temporaryNames.js';

/** This host, as the names of its downloads in progress say it: a directory may be shared. */
const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
let downloadsNamed = 0;

/** A fresh temporary path for a download into `target` that keeps its whole blocks should it fail. */
export function inProgressPath(target: string): string {
  const owner = { host: HOST_TAG, pid: process.pid, seq: downloadsNamed++ };
  return join(dirname(target), downloadInProgressName(basename(target), owner));
}

/** A process runs with this id (one of another user's too: EPERM). */
function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What processes of this host that are gone left in progress in a directory, by kept name: read
 * once per directory and process (another is left there only by a process that dies meanwhile).
 */
const leftIn = new Map<string, Promise<Map<string, string[]>>>();

function leftInDirectory(directory: string): Promise<Map<string, string[]>> {
  let left = leftIn.get(directory);
  if (left === undefined) {
    left = readdir(directory).then(
      (names) => {
        const byKeptName = new Map<string, string[]>();
        for (const name of names) {
          const owner = parseDownloadInProgress(name);
          if (owner === undefined || owner.host !== HOST_TAG || processRuns(owner.pid)) continue;
          const same = byKeptName.get(owner.keptName);
          if (same === undefined) byKeptName.set(owner.keptName, [name]);
          else same.push(name);
        }
        return byKeptName;
      },
      () => new Map<string, string[]>(),
    );
    leftIn.set(directory, left);
  }
  return left;
}

/**
 * Renames what gone processes left in progress for the target kept at `keptPath` to `to`: the
 * largest, if several (the rest are removed). False when there is none.
 */
export async function claimLeftBehind(keptPath: string, to: string): Promise<boolean> {
  const directory = dirname(keptPath);
  const left = await leftInDirectory(directory);
  const names = left.get(basename(keptPath));
  if (names === undefined) return false;
  left.delete(basename(keptPath));
  const sized = await Promise.all(
    names.map(async (name) => {
      const path = join(directory, name);
      const info = await lstat(path).catch(() => undefined);
      return { path, size: info?.isFile() === true ? info.size : -1 };
    }),
  );
  sized.sort((a, b) => b.size - a.size);
  let claimed = false;
  for (const { path, size } of sized) {
    if (!claimed && size >= 0) {
      // Gone meanwhile (another get -c took it): the next one.
      claimed = await rename(path, to).then(
        () => true,
        () => false,
      );
      if (claimed) continue;
    }
    // Stale: a smaller one left for the same target, or no file.
    if (size >= 0) await unlink(path).catch(() => {});
  }
  return claimed;
}
