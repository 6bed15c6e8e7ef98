/**
 * `--delete` (put -r, get -r): once a run's files have all gone over, what a tree's destination
 * holds that its source does not is removed, so the destination is a copy of the source, as
 * rsync --delete and lftp's `mirror --delete` make it. Only inside the trees the run copied (a
 * file given alone drives no deletion), never the destination directory itself.
 *
 * Nothing is removed after any failure, rsync's rule too: an entry of the source that could not
 * be read would look extraneous, and a file that failed to go over would leave the destination
 * with neither version of the tree. Excluded paths are kept on both sides (rsync without
 * --delete-excluded); muxftp's own hidden files are never listed, so never removed.
 */

import { rm } from 'node:fs/promises';
import type { Client } from '../client/client.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { planningLimit } from './concurrency.js';
import type { Excluded } from './excludes.js';
import { localFsError, walkLocalDestination } from './localFiles.js';
import type { Output } from './output.js';
import { joinRemote } from './remotePath.js';
import { PartlyRemoved, removeRecursively } from './remoteRemoval.js';
import { walkRemoteTree } from './remoteTree.js';
import { failedOutcome, type TransferCommand, type TransferOutcome } from './transferRunner.js';

/** A tree a run copied: where it went, and every path its source has. */
export interface MirroredTree {
  /** The directory the tree went into: a remote path (put) or a local one (get). */
  destination: string;
  /** Relative paths ('/'-separated) of everything in the source, of any kind, problems included. */
  present: ReadonlySet<string>;
}

/**
 * The entries of `entries` that are not in `present`, each once: what is below an extraneous
 * directory goes with it. `entries` lists each directory directly before what is in it.
 */
export function extraneousEntries<T extends { relative: string }>(
  entries: readonly T[],
  present: ReadonlySet<string>,
): T[] {
  const extraneous: T[] = [];
  let goingBelow: string | undefined;
  for (const entry of entries) {
    if (goingBelow !== undefined && entry.relative.startsWith(goingBelow)) continue;
    goingBelow = undefined;
    if (present.has(entry.relative)) continue;
    extraneous.push(entry);
    goingBelow = `${entry.relative}/`;
  }
  return extraneous;
}

/**
 * Removes what the trees' destinations hold beyond their sources, unless `failed` files of the
 * run failed (then says that nothing was removed, and why). One outcome per path removed or not
 * removable, `deleted: true`; each removal is said on stderr (not with --quiet).
 */
export async function deleteExtraneous(
  run: {
    command: TransferCommand;
    trees: readonly MirroredTree[];
    excluded: Excluded | undefined;
    failed: number;
    output: Output;
  } & ({ command: 'put'; client: Client } | { command: 'get' }),
): Promise<TransferOutcome[]> {
  if (run.trees.length === 0) return [];
  if (run.failed > 0) {
    const files = `${run.failed} file${run.failed === 1 ? '' : 's'}`;
    run.output.warning(
      `--delete: nothing deleted, since ${files} failed (delete only after a run with none)`,
    );
    return [];
  }
  const outcomes: TransferOutcome[] = [];
  const removed = (remote: string, local: string, directory: boolean): void => {
    // A directory as ls shows one, ending in '/': it went with everything in it.
    run.output.notice(`muxftp: deleted ${run.command === 'put' ? remote : local}${directory ? '/' : ''}`);
    outcomes.push({ local, remote, ok: true, bytes: 0, deleted: true });
  };
  const notRemoved = (remote: string, local: string, thrown: unknown): void => {
    const explained = thrown instanceof PartlyRemoved;
    const error = explained ? thrown.first : thrown;
    run.output.failure(
      `${run.command} --delete ${run.command === 'put' ? remote : local}`,
      error,
      explained ? thrown.hint : undefined,
    );
    outcomes.push({ ...failedOutcome(local, remote, error), deleted: true });
  };
  for (const tree of run.trees) {
    if (run.command === 'put') await deleteRemote(run.client, tree, run.excluded, removed, notRemoved);
    else await deleteLocal(tree, run.excluded, removed, notRemoved);
  }
  return outcomes;
}

type Removed = (remote: string, local: string, directory: boolean) => void;
type NotRemoved = (remote: string, local: string, error: unknown) => void;

async function deleteRemote(
  client: Client,
  tree: MirroredTree,
  excluded: Excluded | undefined,
  removed: Removed,
  notRemoved: NotRemoved,
): Promise<void> {
  const limit = planningLimit(DEFAULTS.parallel, client);
  const destination = await walkRemoteTree(
    client,
    tree.destination,
    limit,
    Number.POSITIVE_INFINITY,
    excluded,
  );
  // A directory that could not be listed hides what is in it: reported, and nothing in it removed.
  for (const problem of destination.problems)
    if (problem.listed !== true) notRemoved(problem.remote, '', problem.error);
  await Promise.all(
    extraneousEntries(destination.entries, tree.present).map(({ relative, entry }) => {
      const remote = joinRemote(tree.destination, relative);
      // rm -r walks and removes with its own limit: started here one at a time per entry.
      return limit.run(async () => {
        try {
          if (entry.type === 'dir') await removeRecursively(client, remote);
          else await client.delete(remote);
          removed(remote, '', entry.type === 'dir');
        } catch (error) {
          notRemoved(remote, '', error);
        }
      });
    }),
  );
}

async function deleteLocal(
  tree: MirroredTree,
  excluded: Excluded | undefined,
  removed: Removed,
  notRemoved: NotRemoved,
): Promise<void> {
  const destination = await walkLocalDestination(tree.destination, excluded);
  for (const problem of destination.problems) notRemoved('', problem.localPath, problem.error);
  const limit = new ConcurrencyLimit(DEFAULTS.planningRequests);
  await Promise.all(
    extraneousEntries(destination.entries, tree.present).map(({ localPath, directory }) =>
      limit.run(async () => {
        try {
          // rm removes a link, never what it leads to, and a directory with everything in it.
          await rm(localPath, { recursive: true });
          removed('', localPath, directory);
        } catch (error) {
          notRemoved('', localPath, localFsError(error, localPath));
        }
      }),
    ),
  );
}
