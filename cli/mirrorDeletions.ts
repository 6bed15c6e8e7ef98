/**
 * `--delete` (put -r, get -r): the destination of each tree a run copies is made a copy of its
 * source, as rsync --delete and lftp's `mirror --delete` make it. Only inside those trees (a file
 * given alone drives nothing), never the destination directory itself.
 *
 * Two steps. Before the transfers, an entry of another kind than the source's at the same path
 * (a directory where the source has a file, a file or link where it has a directory) is removed,
 * as rsync replaces one: else that path would fail on every run and the mirror never converge.
 * After them, what the source does not have at all is removed, unless anything failed (rsync's
 * rule too: an entry of the source that could not be read would look extraneous, and a file
 * that failed to go over would leave the destination with neither version of the tree).
 * Excluded paths are kept on both sides (rsync without --delete-excluded); muxftp's own hidden
 * files are never listed, so never removed.
 */

import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../client/client.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { printable } from '../shared/printable.js';
import { planningLimit } from './concurrency.js';
import type { Excluded } from './excludes.js';
import { localFsError, walkLocalDestination } from './localFiles.js';
import type { Output } from './output.js';
import { joinRemote } from './remotePath.js';
import { PartlyRemoved, removeRecursively } from './remoteRemoval.js';
import { walkRemoteTree } from './remoteTree.js';
import { failedOutcome, type TransferOutcome } from './transferRunner.js';

/** What an entry is, on either side: a link or anything else not a file or directory is `other`. */
export type EntryKind = 'file' | 'dir' | 'other';

/** A tree a run copies: where it goes, and what its source has. */
export interface MirroredTree {
  /** The directory the tree goes into: a remote path (put) or a local one (get). */
  destination: string;
  /** What the source has at each relative path ('/'-separated). */
  present: ReadonlyMap<string, EntryKind>;
}

/** The side a run writes: the server's (put) or the local one (get). */
export type MirrorRun = {
  trees: readonly MirroredTree[];
  excluded: Excluded | undefined;
  output: Output;
  /** --dry-run: say what would be removed (both steps' at once, after the transfers), remove nothing. */
  dryRun?: boolean;
} & ({ command: 'put'; client: Client } | { command: 'get' });

interface DestinationEntry {
  relative: string;
  kind: EntryKind;
}

/**
 * The topmost entries `unwanted` picks, each once: what is below a directory it picks goes with
 * it. `entries` lists each directory directly before what is in it.
 */
export function topmostEntries<T extends { relative: string }>(
  entries: readonly T[],
  unwanted: (entry: T) => boolean,
): T[] {
  const picked: T[] = [];
  let goingBelow: string | undefined;
  for (const entry of entries) {
    if (goingBelow !== undefined && entry.relative.startsWith(goingBelow)) continue;
    goingBelow = undefined;
    if (!unwanted(entry)) continue;
    picked.push(entry);
    goingBelow = `${entry.relative}/`;
  }
  return picked;
}

/**
 * Before the transfers: removes what is at a path the source has of another kind. A destination
 * that is not there yet, or cannot be listed, has nothing removed (the transfers report it).
 */
export async function removeConflicting(run: MirrorRun): Promise<TransferOutcome[]> {
  if (run.dryRun === true) return [];
  return removeFromDestinations(run, false, isOfAnotherKind);
}

function isOfAnotherKind(entry: DestinationEntry, present: ReadonlyMap<string, EntryKind>): boolean {
  const wanted = present.get(entry.relative);
  return (wanted === 'file' || wanted === 'dir') && wanted !== entry.kind;
}

/**
 * After the transfers: removes what the source does not have, unless `failed` files of the run
 * failed (then says that nothing was removed, and why).
 */
export async function removeExtraneous(run: MirrorRun & { failed: number }): Promise<TransferOutcome[]> {
  if (run.trees.length === 0) return [];
  if (run.failed > 0) {
    const files = `${run.failed} file${run.failed === 1 ? '' : 's'}`;
    const nothing = run.dryRun === true ? 'nothing would be deleted' : 'nothing deleted';
    run.output.warning(`--delete: ${nothing}, since ${files} failed (delete only after a run with none)`);
    return [];
  }
  // Of another kind too: gone already in a real run (removeConflicting), still there in a dry one.
  return removeFromDestinations(
    run,
    true,
    (entry, present) => !present.has(entry.relative) || isOfAnotherKind(entry, present),
  );
}

/**
 * Walks each tree's destination and removes the topmost entries `unwanted` picks. One outcome
 * per path removed or not removable, `deleted: true`; each removal is said on stderr (not with
 * --quiet). `reportProblems`: a directory that could not be listed fails the run.
 */
async function removeFromDestinations(
  run: MirrorRun,
  reportProblems: boolean,
  unwanted: (entry: DestinationEntry, present: ReadonlyMap<string, EntryKind>) => boolean,
): Promise<TransferOutcome[]> {
  const outcomes: TransferOutcome[] = [];
  const side = run.command === 'put' ? remoteSide(run.client) : localSide;
  for (const tree of run.trees) {
    const shown = (relative: string): { remote: string; local: string } => {
      const at = side.pathOf(tree.destination, relative);
      return run.command === 'put' ? { remote: at, local: '' } : { remote: '', local: at };
    };
    const notRemoved = ({ remote, local }: { remote: string; local: string }, thrown: unknown): void => {
      const explained = thrown instanceof PartlyRemoved;
      const error = explained ? thrown.first : thrown;
      const hint = explained ? thrown.hint : undefined;
      run.output.failure(`${run.command} --delete ${remote || local}`, error, hint);
      outcomes.push({ ...failedOutcome(local, remote, error), deleted: true });
    };
    const listed = await side.walk(tree.destination, run.excluded);
    if (reportProblems) {
      for (const problem of listed.problems) {
        const at =
          run.command === 'put' ? { remote: problem.path, local: '' } : { remote: '', local: problem.path };
        notRemoved(at, problem.error);
      }
    }
    const limit = new ConcurrencyLimit(DEFAULTS.planningRequests);
    await Promise.all(
      topmostEntries(listed.entries, (entry) => unwanted(entry, tree.present)).map((entry) =>
        limit.run(async () => {
          const { remote, local } = shown(entry.relative);
          // A directory as ls shows one, ending in '/': it goes with everything in it.
          const named = `${remote || local}${entry.kind === 'dir' ? '/' : ''}`;
          if (run.dryRun === true) {
            if (!run.output.json) run.output.printLine(printable(`would delete ${named}`));
            outcomes.push({ local, remote, ok: true, bytes: 0, deleted: true, dryRun: true });
            return;
          }
          try {
            await side.remove(tree.destination, entry);
          } catch (error) {
            notRemoved({ remote, local }, error);
            return;
          }
          run.output.notice(`muxftp: deleted ${named}`);
          outcomes.push({ local, remote, ok: true, bytes: 0, deleted: true });
        }),
      ),
    );
  }
  return outcomes;
}

/** How a destination is listed and changed, on one side. */
interface DestinationSide {
  pathOf(destination: string, relative: string): string;
  /** What is under `destination`; `problems`: what could not be listed, by its path. */
  walk(
    destination: string,
    excluded: Excluded | undefined,
  ): Promise<{ entries: DestinationEntry[]; problems: Array<{ path: string; error: unknown }> }>;
  remove(destination: string, entry: DestinationEntry): Promise<void>;
}

function remoteSide(client: Client): DestinationSide {
  return {
    pathOf: (destination, relative) => (relative === '' ? destination : joinRemote(destination, relative)),
    async walk(destination, excluded) {
      const limit = planningLimit(DEFAULTS.parallel, client);
      const tree = await walkRemoteTree(client, destination, limit, Number.POSITIVE_INFINITY, excluded);
      return {
        entries: tree.entries.map(({ relative, entry }) => ({ relative, kind: entry.type })),
        // Entries listed but not files are entries here; a name with no safe path is a problem.
        problems: tree.problems
          // A destination not made yet (a dry run) has nothing in it to remove.
          .filter(
            (problem) =>
              problem.listed !== true && !(problem.relative === '' && problem.error.code === 'NOT_FOUND'),
          )
          .map((problem) => ({ path: problem.remote, error: problem.error })),
      };
    },
    async remove(destination, entry) {
      const remote = joinRemote(destination, entry.relative);
      if (entry.kind === 'dir') await removeRecursively(client, remote);
      else await client.delete(remote);
    },
  };
}

const localSide: DestinationSide = {
  pathOf: (destination, relative) => joinLocal(destination, relative),
  async walk(destination, excluded) {
    const tree = await walkLocalDestination(destination, excluded);
    return {
      entries: tree.entries,
      problems: tree.problems.map((problem) => ({ path: problem.localPath, error: problem.error })),
    };
  },
  async remove(destination, entry) {
    const localPath = joinLocal(destination, entry.relative);
    // rm removes a link, never what it leads to, and a directory with everything in it.
    await rm(localPath, { recursive: true }).catch((error: unknown) => {
      throw localFsError(error, localPath);
    });
  },
};

function joinLocal(destination: string, relative: string): string {
  return path.join(destination, ...relative.split('/'));
}
