/**
 * `--delete` (put -r, get -r): the destination of each tree a run copies is made a copy of its
 * source, as rsync --delete and lftp's `mirror --delete` make it. Only inside those trees (a file
 * given alone drives nothing), never the destination directory itself, and never through a
 * symbolic link: a link in a destination is an entry of its own, removed as a link, and a tree's
 * destination that is a link has nothing removed through it.
 *
 * Two steps. Before the transfers, an entry of another kind than the source's at the same path
 * (a directory where the source has a file, a file or link where it has a directory) is removed,
 * as rsync replaces one: else that path would fail on every run and the mirror never converge.
 * After them, what the source does not have at all is removed. Neither runs after any failure
 * (rsync's rule too: an entry of the source that could not be read would look extraneous, and a
 * file that failed to go over would leave the destination with neither version of the tree).
 * Excluded paths are kept on both sides (rsync without --delete-excluded), and so is each
 * directory holding one, but for what is in the way before the transfers of a kind the rules
 * leave out (destinationRules); muxftp's own hidden files are never listed, so never removed, but
 * for what failed gets kept of files the source no longer has (stalePartials).
 */

import { lstat, realpath, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../client/client.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';
import { printable } from '../shared/printable.js';
import { downloadPartialName } from '../shared/temporaryNames.js';
import { planningLimit } from './concurrency.js';
import type { Excluded } from './excludes.js';
import { localFsError, walkLocalDestination } from './localFiles.js';
import type { Output } from './output.js';
import { isConnectionLoss } from './reconnect.js';
import { joinRemote, normalRemote, remoteBaseName, remoteParent } from './remotePath.js';
import { isGone, PartlyRemoved, refuseWithoutLinkMarks, removeRecursively } from './remoteRemoval.js';
import { asMuxftpError, walkRemoteTree } from './remoteTree.js';
import { failedOutcome, previewTransfers, type TransferJob, type TransferOutcome } from './transferRunner.js';

/** What an entry is, on either side: a link or anything else not a file or directory is `other`. */
export type EntryKind = 'file' | 'dir' | 'other';

/** A tree a run copies: where it goes, and what its source has. */
export interface MirroredTree {
  /** The directory the tree goes into: a remote path (put) or a local one (get). */
  destination: string;
  /** What the source has at each relative path ('/'-separated). */
  present: ReadonlyMap<string, EntryKind>;
  /** What the source has that the rules left out, by relative path (get: a kept partial of one stays). */
  excludedInSource?: readonly string[];
}

/** The side a run writes: the server's (put) or the local one (get). */
export type MirrorRun = {
  trees: readonly MirroredTree[];
  excluded: Excluded | undefined;
  output: Output;
  /** --dry-run: say what would be removed, remove nothing. */
  dryRun?: boolean;
  /**
   * --ignore-existing: a link to a file where the source has a file is that file there, left
   * alone as the transfer's check leaves it (not removed as in the way, then replaced).
   */
  ignoreExisting?: boolean;
} & (
  | {
      command: 'put';
      client: Client;
      /**
       * Runs a request of the removals (`what`: the path it is for), on a new connection should
       * this one go (`--retries`); without it, on `client` once.
       */
      retrying?: <T>(what: string, request: (client: Client) => Promise<T>) => Promise<T>;
    }
  | { command: 'get' }
);

interface DestinationEntry {
  relative: string;
  kind: EntryKind;
  /** A symbolic link (kind `other`) that leads to a file. */
  leadsToFile?: boolean;
  /** A local name that is not UTF-8: its path's bytes (`relative` shows it with U+FFFD). */
  rawPath?: Buffer;
  /** What a failed get kept for `get -c` of a name the source no longer has. */
  keptPartial?: true;
}

/** Paths of each tree's destination that a dry run's first step would have removed. */
const inTheWay = new WeakMap<MirroredTree, Set<string>>();

/**
 * --delete before the transfers: the run refused, with every job failed by why (`refused`), or
 * what was in the way removed (`replaced`; nothing after `failures`).
 */
export async function prepareMirror(
  run: MirrorRun,
  jobs: readonly TransferJob[],
  failures: readonly TransferOutcome[],
): Promise<{ refused: TransferOutcome[] } | { replaced: TransferOutcome[] }> {
  const destinations = jobs.map((job) => (run.command === 'put' ? job.remote : job.local));
  const refused = await refusedMirror(run, destinations);
  if (refused === undefined)
    return { replaced: await removeConflicting({ ...run, failed: failures.length }) };
  const subject =
    refused instanceof UncheckedDestination ? `${run.command} --delete ${refused.destination}` : run.command;
  run.output.failure(subject, refused);
  return { refused: [...failures, ...jobs.map((job) => failedOutcome(job.local, job.remote, refused))] };
}

/**
 * --dry-run: what the run would do, each result saying `dryRun`: what planning passed over (a
 * FIFO in a tree) and what failed already, what is in the way (`replaced`, said by prepareMirror),
 * the transfers, and what --delete would remove.
 */
export async function previewRun(
  run: MirrorRun,
  transfers: Parameters<typeof previewTransfers>[0],
  planned: {
    passedOver: readonly TransferOutcome[];
    failures: readonly TransferOutcome[];
    replaced: readonly TransferOutcome[];
  },
): Promise<TransferOutcome[]> {
  const previews = await previewTransfers(transfers);
  const removals = await removeExtraneous({ ...run, failed: planned.failures.length });
  const dryRun = (outcome: TransferOutcome): TransferOutcome => ({ ...outcome, dryRun: true });
  return [
    ...planned.passedOver.map(dryRun),
    ...planned.failures.map(dryRun),
    ...planned.replaced,
    ...previews,
    ...removals,
  ];
}

/**
 * Why mirroring these trees is refused before anything is sent, if it is (undefined: it is not):
 * a destination that is a symbolic link (what is removed would be what it leads to); two trees
 * bound for one directory, or one inside the other, or a file of the run (`destinations`: where
 * each transfer goes) bound into a tree it is no part of (each would remove what the other sent:
 * `put -r x/a y/a --to d/`, `put -r . ../lone.txt --to d`); a server that does not mark links in
 * its listings (one from before it), through which the removal could walk.
 */
export async function refusedMirror(
  run: MirrorRun,
  destinations: readonly string[],
): Promise<MuxftpError | undefined> {
  if (run.trees.length === 0) return undefined;
  if (run.command === 'put') {
    try {
      refuseWithoutLinkMarks(run.client, 'removing from');
    } catch (error) {
      return error as MuxftpError;
    }
  }
  const normal = run.command === 'put' ? normalRemote : (local: string) => path.resolve(local);
  const inside = (inner: string, outer: string): boolean =>
    run.command === 'put'
      ? outer === '' || inner.startsWith(`${outer}/`)
      : inner.startsWith(outer.endsWith(path.sep) ? outer : `${outer}${path.sep}`);
  const trees = run.trees.map((tree) => ({ tree, at: normal(tree.destination) }));
  for (const { tree, at } of trees) {
    if (run.command === 'get' && (await dotDotAfterLink(tree.destination))) {
      return new MuxftpError(
        'INVALID_PATH',
        `--delete: in ${tree.destination}, '..' comes after a symbolic link (it leads up from where the link goes, not from where its name is): give the path without it`,
      );
    }
    const link =
      run.command === 'put'
        ? await isRemoteLink(run.client, at)
        : await lstat(at).then(
            (info) => info.isSymbolicLink(),
            () => false,
          );
    if (link !== false)
      return link instanceof MuxftpError
        ? new UncheckedDestination(tree.destination, link)
        : throughLink(tree.destination);
  }
  for (const [i, a] of trees.entries()) {
    for (const b of trees.slice(i + 1)) {
      if (a.at !== b.at && !inside(a.at, b.at) && !inside(b.at, a.at)) continue;
      const [x, y] = [a.at || '/', b.at || '/'];
      const where = a.at === b.at ? `both go to ${x}` : `go to ${x} and ${y}, one inside the other`;
      return new MuxftpError(
        'INVALID_PATH',
        `--delete: two of the trees ${where}: each would delete what the other sent`,
      );
    }
  }
  for (const destination of destinations.map(normal)) {
    for (const { tree, at } of trees) {
      if (!inside(destination, at)) continue;
      const relative = destination
        .slice(at === '' ? 0 : at.length + 1)
        .split(path.sep)
        .join('/');
      if (tree.present.has(relative) || keptAsExcluded(run.excluded, relative)) continue;
      return new MuxftpError(
        'INVALID_PATH',
        `--delete: ${destination} goes into ${at || '/'}, where a tree goes that does not have it: it would be deleted as not in that tree`,
      );
    }
  }
  return undefined;
}

/**
 * Whether the rules leave the file at `relative` out of its tree: then the tree's walk of its
 * destination leaves it be, whoever sent it (`put -r . x.log --to d --exclude '*.log'` was
 * refused, x.log said to be deleted as not in the tree). A look ahead: no rule is credited.
 */
function keptAsExcluded(excluded: Excluded | undefined, relative: string): boolean {
  return excluded?.(relative, false, true) === true;
}

/**
 * Whether a local path's `..` would lead up from where a link goes, not from the link's name
 * (`link/..`): the system and a path read as text then name two places.
 */
async function dotDotAfterLink(local: string): Promise<boolean> {
  const names = local.split(path.sep);
  const last = names.lastIndexOf('..');
  if (last < 0) return false;
  const upTo = names.slice(0, last + 1).join(path.sep) || path.sep;
  const [asTheSystemReadsIt, asText] = await Promise.all([
    realpath(upTo).catch(() => undefined),
    realpath(path.resolve(upTo)).catch(() => undefined),
  ]);
  return asTheSystemReadsIt !== asText;
}

/**
 * Before the transfers: removes what is at a path the source has of another kind, unless
 * `failed` things failed already. A dry run says it. A destination that is not there yet, or
 * cannot be listed, has nothing removed (the transfers report it).
 */
async function removeConflicting(run: MirrorRun & { failed: number }): Promise<TransferOutcome[]> {
  if (run.failed > 0) return [];
  return removeFromDestinations(run, 'in the way', (entry, present) => {
    // A name that is not UTF-8 is no path of the source's, whatever it looks like.
    if (entry.rawPath !== undefined) return false;
    const wanted = present.get(entry.relative);
    if (run.ignoreExisting === true && wanted === 'file' && entry.leadsToFile === true) return false;
    return (wanted === 'file' || wanted === 'dir') && wanted !== entry.kind;
  });
}

/**
 * After the transfers: removes what the source does not have, unless `failed` things of the run
 * failed or the run was `interrupted` (then says that nothing was removed, and why). Each removal's outcome goes into
 * `outcomes` as it is made (a command ended meanwhile has them), which is returned.
 */
export async function removeExtraneous(
  run: MirrorRun & { failed: number; interrupted?: boolean },
  outcomes: TransferOutcome[] = [],
): Promise<TransferOutcome[]> {
  if (run.trees.length === 0) return [];
  // A Ctrl-C that came as the last transfer ended (none failed): the user asked to stop.
  if (run.interrupted === true) {
    run.output.warning(
      `--delete: nothing more ${run.dryRun === true ? 'would be ' : ''}deleted, since the run was interrupted`,
    );
    return outcomes;
  }
  if (run.failed > 0) {
    const failures = `${run.failed} failure${run.failed === 1 ? '' : 's'}`;
    const nothing = run.dryRun === true ? 'nothing more would be deleted' : 'nothing more deleted';
    run.output.warning(
      `--delete: ${nothing}, since the run had ${failures} (delete only after a run with none)`,
    );
    return outcomes;
  }
  return removeFromDestinations(
    run,
    'extraneous',
    // A name that is not UTF-8 is shown with U+FFFD, which a source's name may really have.
    (entry, present) => entry.rawPath !== undefined || !present.has(entry.relative),
    outcomes,
  );
}

/**
 * Walks each tree's destination and removes the topmost entries `unwanted` picks, but for a
 * directory holding an excluded path (what else is in it goes). One outcome per path removed or
 * not removable, `deleted: true`; each removal is said on stderr (not with --quiet), a dry run's on
 * stdout. The second step (`extraneous`) reports what it could not look at.
 */
async function removeFromDestinations(
  run: MirrorRun,
  step: 'in the way' | 'extraneous',
  unwanted: (entry: DestinationEntry, present: ReadonlyMap<string, EntryKind>) => boolean,
  outcomes: TransferOutcome[] = [],
): Promise<TransferOutcome[]> {
  const side =
    run.command === 'put' ? remoteSide(run.retrying ?? ((_what, request) => request(run.client))) : localSide;
  const dryRun = run.dryRun === true;
  const at = (where: string): { remote: string; local: string } =>
    run.command === 'put' ? { remote: where, local: '' } : { remote: '', local: where };
  const notRemoved = (where: string, thrown: unknown): void => {
    const explained = thrown instanceof PartlyRemoved;
    const error = explained ? thrown.first : thrown;
    run.output.failure(`${run.command} --delete ${where}`, error, explained ? thrown.hint : undefined);
    outcomes.push({ ...failedOutcome(at(where).local, at(where).remote, error), deleted: true });
  };
  for (const tree of run.trees) {
    const listed = await side.walk(tree.destination, destinationRules(run.excluded, tree, step));
    if (step === 'extraneous') {
      for (const problem of listed.problems) notRemoved(problem.path, problem.error);
    }
    if (listed.problems.some((problem) => problem.path === tree.destination)) continue;
    const gone = new Set(step === 'extraneous' ? inTheWay.get(tree) : undefined);
    // Where the source has what is no file to copy (a FIFO, a link not followed), what stands is
    // left as it is, with everything below it: the source says nothing of what that should hold.
    for (const [relative, kind] of tree.present) if (kind === 'other') gone.add(relative);
    const picked = entriesToRemove(listed.entries, (entry) => unwanted(entry, tree.present), {
      keep: withAncestors(listed.excluded),
      gone,
    });
    if (step === 'extraneous' && run.excluded === undefined)
      picked.push(...stalePartials(tree, listed, gone, picked));
    if (dryRun && step === 'in the way') inTheWay.set(tree, new Set(picked.map((entry) => entry.relative)));
    const limit = new ConcurrencyLimit(DEFAULTS.planningRequests);
    await limit.map(picked, async (entry) => {
      const where = side.pathOf(tree.destination, entry.relative);
      // A directory as ls shows one, ending in '/': it goes with everything in it.
      const named = `${where}${entry.kind === 'dir' ? '/' : ''}`;
      const wanted = tree.present.get(entry.relative) === 'dir' ? 'directory' : 'file';
      const why =
        step === 'in the way'
          ? ` (in the way of a ${wanted})`
          : entry.keptPartial === true
            ? ' (what a failed get kept for -c, of a file the source no longer has)'
            : '';
      if (dryRun) {
        if (!run.output.json) run.output.printLine(printable(`would delete ${named}${why}`));
        outcomes.push({ ...at(where), ok: true, bytes: 0, deleted: true, dryRun: true });
        return;
      }
      try {
        await side.remove(tree.destination, entry);
      } catch (error) {
        notRemoved(where, error);
        return;
      }
      run.output.notice(`muxftp: deleted ${named}${why}`);
      outcomes.push({ ...at(where), ok: true, bytes: 0, deleted: true });
    });
  }
  return outcomes;
}

/**
 * get -r: what failed gets kept (`get -c`) for names the source no longer has: no sync can
 * continue them, and they piled up, hidden, run after run (a kept partial's name is a hash of its
 * target's, so it is told by the names the source has). Not one inside what goes anyway
 * (`picked`) or is left as it is (`gone`); none under rules (--exclude), which may keep a name
 * neither side has, that no hash tells.
 */
function stalePartials(
  tree: MirroredTree,
  listed: DestinationListing,
  gone: ReadonlySet<string>,
  picked: readonly DestinationEntry[],
): DestinationEntry[] {
  const left = listed.leftBehind ?? [];
  if ((listed.keptPartials === undefined || listed.keptPartials.length === 0) && left.length === 0) return [];
  const kept = new Set<string>();
  for (const relative of [...tree.present.keys(), ...listed.excluded, ...(tree.excludedInSource ?? [])])
    kept.add(joinRemote(remoteParent(relative), downloadPartialName(remoteBaseName(relative))));
  const inside = (relative: string, above: Iterable<string>): boolean => {
    for (const dir of above) if (relative.startsWith(`${dir}/`)) return true;
    return false;
  };
  const removed = picked.filter((entry) => entry.kind === 'dir').map((entry) => entry.relative);
  const stale = (relative: string, keptAs: string): boolean =>
    !kept.has(keptAs) && !inside(relative, gone) && !inside(relative, removed);
  return [
    ...(listed.keptPartials ?? []).filter((relative) => stale(relative, relative)),
    // Left in progress by a killed get: get -c would continue it as what is kept.
    ...left.filter((file) => stale(file.relative, file.kept)).map((file) => file.relative),
  ].map((relative) => ({ relative, kind: 'file', keptPartial: true }));
}

// The rules a destination is walked with. Before the transfers, not at a path the source has:
// the rules kept what the source has there, and what stands there of another kind is in its way
// whatever they say of that kind (`--include '*/' … --exclude '*'` left a file where the tree now
// has a directory, and every run failed on it). What is below such an entry is judged by them.
// The rules are still asked first: one that matched only what was in the way matched something
// (it was warned of as matching nothing beside that entry's removal).
function destinationRules(
  excluded: Excluded | undefined,
  tree: MirroredTree,
  step: 'in the way' | 'extraneous',
): Excluded | undefined {
  if (excluded === undefined || step === 'extraneous') return excluded;
  return (relative, isDirectory, peek) =>
    excluded(relative, isDirectory, peek) && !tree.present.has(relative);
}

/**
 * The topmost entries `unwanted` picks, each once: what is below one it picks goes with it. Not
 * one in `keep` (it holds an excluded path: what else is in it is looked at), nor one in `gone`
 * or below it. `entries` lists each directory directly before what is in it.
 */
function entriesToRemove<T extends { relative: string }>(
  entries: readonly T[],
  unwanted: (entry: T) => boolean,
  { keep, gone }: { keep: ReadonlySet<string>; gone: ReadonlySet<string> },
): T[] {
  const picked: T[] = [];
  let skippingBelow: string | undefined;
  for (const entry of entries) {
    if (skippingBelow !== undefined && entry.relative.startsWith(skippingBelow)) continue;
    skippingBelow = undefined;
    const take = !gone.has(entry.relative) && unwanted(entry) && !keep.has(entry.relative);
    if (take) picked.push(entry);
    if (take || gone.has(entry.relative)) skippingBelow = `${entry.relative}/`;
  }
  return picked;
}

/** Each path and every directory above it ('a/b/c' gives 'a', 'a/b', 'a/b/c'). */
function withAncestors(paths: readonly string[]): Set<string> {
  const all = new Set<string>();
  for (const relative of paths) {
    const names = relative.split('/');
    for (let depth = 1; depth <= names.length; depth++) all.add(names.slice(0, depth).join('/'));
  }
  return all;
}

/** What is under a destination, as one side lists it. */
interface DestinationListing {
  entries: DestinationEntry[];
  /** What could not be listed, by its path; the destination itself when it is a link. */
  problems: Array<{ path: string; error: unknown }>;
  /** Paths the exclusions left out. */
  excluded: string[];
  /** A local destination's kept partials (`get -c`), by relative path. */
  keptPartials?: string[];
  /** A local destination's downloads left in progress by gone processes, with their kept names. */
  leftBehind?: Array<{ relative: string; kept: string }>;
}

/** How a destination is listed and changed, on one side. */
interface DestinationSide {
  pathOf(destination: string, relative: string): string;
  walk(destination: string, excluded: Excluded | undefined): Promise<DestinationListing>;
  remove(destination: string, entry: DestinationEntry): Promise<void>;
}

/**
 * A destination --delete could not look at to tell whether it is a symbolic link (its directory's
 * listing failed, the connection lost): that failure, said with the destination's name.
 */
class UncheckedDestination extends MuxftpError {
  constructor(
    readonly destination: string,
    failure: MuxftpError,
  ) {
    super(failure.code, failure.message, {
      cause: failure,
      ...(failure.details === undefined ? {} : { details: failure.details }),
    });
    this.name = 'UncheckedDestination';
  }
}

const throughLink = (destination: string): MuxftpError =>
  new MuxftpError('UNSUPPORTED', `${destination} is a symbolic link: nothing removed through it`);

function remoteSide(
  retrying: <T>(what: string, request: (client: Client) => Promise<T>) => Promise<T>,
): DestinationSide {
  return {
    pathOf: (destination, relative) => (relative === '' ? destination : joinRemote(destination, relative)),
    async walk(destination, excluded) {
      let last: DestinationListing | undefined;
      try {
        return await retrying(destination, async (client) => {
          last = await walkRemote(client, destination, excluded);
          // The connection went while it listed: listed again, whole, on the next one.
          const lost = last.problems.find((problem) => isConnectionLoss(problem.error));
          if (lost !== undefined) throw lost.error;
          return last;
        });
      } catch (error) {
        // Retries spent: what the last try listed, its problems said as such (the run goes on).
        // None tried (the server taken as gone before it, under --retries 0 too): the
        // destination is what could not be listed, said as its own (not the whole command's).
        if (isConnectionLoss(error))
          return last ?? { entries: [], excluded: [], problems: [{ path: destination, error }] };
        throw error;
      }
    },
    async remove(destination, entry) {
      const remote = joinRemote(destination, entry.relative);
      await retrying(remote, async (client) => {
        try {
          await (entry.kind === 'dir' ? removeRecursively(client, remote) : client.delete(remote));
        } catch (error) {
          // Gone since it was listed: the try before removed it and the connection went with the
          // answer, or another remover (a second sync) took it. Either way, as asked.
          if (isGone(error)) return;
          throw error;
        }
      });
    },
  };
}

/** What is under `destination` on the server, as remoteSide lists it. */
async function walkRemote(
  client: Client,
  destination: string,
  excluded: Excluded | undefined,
): Promise<DestinationListing> {
  const empty = { entries: [], excluded: [] };
  const link = await isRemoteLink(client, destination);
  if (link !== false) {
    const error = link instanceof MuxftpError ? link : throughLink(destination);
    return { ...empty, problems: [{ path: destination, error }] };
  }
  const limit = planningLimit(DEFAULTS.parallel, client);
  const tree = await walkRemoteTree(client, destination, limit, Number.POSITIVE_INFINITY, excluded, {
    intoLinks: false,
  });
  return {
    // A link is removed as a link, whatever it leads to.
    entries: tree.entries.map(({ relative, entry }) => ({
      relative,
      kind: entry.link === true ? 'other' : entry.type,
      // A listing shows a link inside the root as what it leads to.
      ...(entry.link === true && entry.type === 'file' ? { leadsToFile: true } : {}),
    })),
    problems: tree.problems
      // Entries listed but not files are entries here; a name with no safe path is a
      // problem; a destination not made yet (a dry run) has nothing in it to remove.
      .filter(
        (problem) =>
          problem.listed !== true && !(problem.relative === '' && problem.error.code === 'NOT_FOUND'),
      )
      .map((problem) => ({ path: problem.remote, error: problem.error })),
    excluded: tree.excluded,
  };
}

/**
 * Whether the server lists `remote` as a symbolic link (the root, or what is not there: no); an
 * error when its directory cannot be listed to tell.
 */
async function isRemoteLink(client: Client, remote: string): Promise<boolean | MuxftpError> {
  const normal = normalRemote(remote);
  if (normal === '') return false;
  const name = remoteBaseName(normal);
  try {
    const siblings = await client.list(remoteParent(normal));
    return siblings.some((entry) => entry.name === name && entry.link === true);
  } catch (error) {
    if (error instanceof MuxftpError && error.code === 'NOT_FOUND') return false;
    return asMuxftpError(error);
  }
}

const localSide: DestinationSide = {
  pathOf: (destination, relative) => joinLocal(destination, relative),
  async walk(destination, excluded) {
    // Resolved: `dir/` and `dir/.` would follow a link at `dir`.
    const info = await lstat(path.resolve(destination)).catch(() => undefined);
    if (info?.isSymbolicLink() === true)
      return {
        entries: [],
        excluded: [],
        problems: [{ path: destination, error: throughLink(destination) }],
      };
    const tree = await walkLocalDestination(destination, excluded);
    return {
      entries: tree.entries,
      problems: tree.problems.map((problem) => ({ path: problem.localPath, error: problem.error })),
      excluded: tree.excluded,
      keptPartials: tree.keptPartials,
      leftBehind: tree.leftBehind,
    };
  },
  async remove(destination, entry) {
    const localPath = joinLocal(destination, entry.relative);
    // rm removes a link, never what it leads to, and a directory with everything in it; what
    // another remover took since the walk (a second sync at once) is gone, as asked (force).
    await rm(entry.rawPath ?? localPath, { recursive: true, force: true }).catch(async (error: unknown) => {
      throw localFsError((await unlinkRefusal(error)) ?? error, localPath);
    });
  },
};

/**
 * Node's rm takes an unlink refused EPERM (an immutable file, one in a directory that is) for a
 * directory's and fails ENOTDIR of the file: `not a directory` said of a file, the reason lost.
 * The file unlinked again gives its own (undefined: no such case, or it went this time).
 */
async function unlinkRefusal(error: unknown): Promise<unknown> {
  const { code, path: at } = error as NodeJS.ErrnoException;
  if (code !== 'ENOTDIR' || at === undefined) return undefined;
  return unlink(at).then(
    () => undefined,
    (refused: unknown) => refused,
  );
}

function joinLocal(destination: string, relative: string): string {
  return path.join(destination, ...relative.split('/'));
}
