/**
 * `muxftp put`: uploads local files, stdin, or directory trees (-r), several at a time over one
 * connection. Shapes, as with cp: `put FILE [REMOTE]`, `put FILE... --to DIR`, `put -r DIR [REMOTE]`.
 */

import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Command } from 'commander';
import type { Client, WireEntry } from '../../client/client.js';
import { namesDirectory, normalizeClientPath } from '../../shared/clientPaths.js';
import { MuxftpError } from '../../shared/errors.js';
import { PERMISSION_BITS } from '../../shared/fileModes.js';
import { planningLimit } from '../concurrency.js';
import { keepRemoteDirectoryTimes } from '../directoryTimes.js';
import {
  compileExcludes,
  type Excluded,
  refuseOrWarnOfExcludedSources,
  warnOfUnmatchedExcludes,
} from '../excludes.js';
import { EXIT_STATUS } from '../exitStatus.js';
import { globalOptionsOf } from '../globalOptions.js';
import { cannotLook } from '../listPermission.js';
import { inspectLocal, type LocalEntry, statLocal, walkLocalTree } from '../localFiles.js';
import {
  type EntryKind,
  type MirroredTree,
  type MirrorRun,
  prepareMirror,
  previewRun,
  removeExtraneous,
} from '../mirrorDeletions.js';
import { ADD_PARENTS_HINT, type Output } from '../output.js';
import {
  directoryInTheWayHint,
  emptyPathError,
  severalWithoutTo,
  shellWord,
  shownArgument,
} from '../pathArguments.js';
import { CommandPlanning } from '../planning.js';
import {
  AFTER_DRAIN,
  isDraining,
  type ReconnectingClient,
  requestWithRetries,
  retryNotice,
  withReconnectingClient,
} from '../reconnect.js';
import {
  byDepth,
  hostPathWarning,
  isPlainName,
  joinRemote,
  normalRemote,
  remoteParent,
  remotePathFromArgument,
  tildePathWarning,
} from '../remotePath.js';
import { destinationSkips } from '../skipIdentical.js';
import {
  checkTransferOptions,
  type DestinationCreation,
  destinationCreation,
  type TransferCommandOptions,
} from '../transferOptions.js';
import {
  failedOutcome,
  passedOverOutcome,
  runTransfers,
  type TransferJob,
  type TransferOutcome,
  type TreeMadeAsDestination,
  withoutSharedDestinations,
} from '../transferRunner.js';

export type PutOptions = TransferCommandOptions & {
  /** put -c: continue what the server kept of an interrupted upload of the same file. */
  continue?: boolean;
};

/** Where the arguments say the uploads go. */
type PutTarget =
  /** Each source goes inside `dir`: --to DIR (checked first), or the root when no remote is named. */
  | { kind: 'into'; dir: string; argument: string | undefined }
  /** One source and a remote name; if that names an existing directory, the source goes inside. */
  | { kind: 'named'; remote: string; argument: string };

/**
 * The target once the server has been asked what exists. `as`: `standing` is what is at `remote` already (a file,
 * say), if anything.
 */
type ResolvedPutTarget =
  | { kind: 'into'; dir: string }
  | { kind: 'as'; remote: string; standing?: WireEntry['type'] };

/** The action of `muxftp put`, loaded only when it runs (cli/commands/put.ts registers it). */
export async function runPut(
  args: string[],
  options: PutOptions,
  command: Command,
  output: Output,
): Promise<void> {
  const global = globalOptionsOf(command);
  output.configure(global);
  checkTransferOptions(options, command);
  const { sources, target } = putTargetFromArguments(args, options, command);
  const hostPath = hostPathWarning(target.argument);
  if (hostPath !== undefined) output.warning(hostPath);
  const tilde = options.parents === true ? tildePathWarning(target.argument) : undefined;
  if (tilde !== undefined) output.warning(tilde);
  output.setJsonFailureShape((error) =>
    sources.map((source) => failedOutcome(source, intendedRemote(source, target), error)),
  );
  const outcomes = await withReconnectingClient(global, output, options, (connection) =>
    put(connection, sources, target, options, output),
  );
  if (output.json) output.printJson(outcomes);
}

function putTargetFromArguments(
  args: string[],
  options: PutOptions,
  command: Command,
): { sources: string[]; target: PutTarget } {
  const usage = (message: string): never =>
    command.error(`error: ${message}`, { exitCode: EXIT_STATUS.usage });
  // stdin is read once, as it comes: no file version to continue, nor to compare first.
  const fromStdin = options.to !== undefined ? args.includes('-') : args[0] === '-';
  if (fromStdin && options.continue === true)
    usage(
      "-c/--continue does not apply to stdin ('-'): it can be read only once, so there is no file to continue",
    );
  if (fromStdin && (options.skipIdentical === true || options.skipUnchanged === true))
    usage(
      `${options.skipIdentical === true ? '--skip-identical' : '--skip-unchanged'} does not apply to stdin ('-'): there is no local file to compare`,
    );
  if (options.to !== undefined) {
    if (args.includes('-')) usage("stdin ('-') needs a remote file name: muxftp put - NAME");
    return {
      sources: args,
      target: { kind: 'into', dir: remotePathFromArgument(options.to), argument: options.to },
    };
  }
  const [local, remote] = args as [string, string | undefined];
  if (args.length > 2) usage(severalWithoutTo('put', args));
  if (remote === undefined) {
    if (local === '-') usage("stdin ('-') needs a remote file name: muxftp put - NAME");
    return { sources: [local], target: { kind: 'into', dir: '', argument: undefined } };
  }
  return {
    sources: [local],
    target: { kind: 'named', remote: remotePathFromArgument(remote), argument: remote },
  };
}

/** Where `source` was meant to go, for the outcome of an upload that failed before it was planned. */
function intendedRemote(source: string, target: PutTarget): string {
  return target.kind === 'into' ? (remoteInside(target.dir, source) ?? target.dir) : target.remote;
}

/**
 * Where `source` goes inside the remote `dir`: `dir/NAME`, named as the local file or directory
 * is. `.` and `..` (also `dir/.`) are no name of their own: as with `cp -r` and `scp -r`, what
 * is in them goes into `dir` itself, so `put -r .` uploads the working directory's contents.
 */
function remoteInside(dir: string, source: string): string | undefined {
  const written = path.basename(source);
  if (written === '.' || written === '..') return dir;
  const name = path.basename(path.resolve(source));
  return isPlainName(name) ? joinRemote(dir, name) : undefined;
}

const isNotFound = (error: unknown): boolean => error instanceof MuxftpError && error.code === 'NOT_FOUND';
const isRefused = (error: unknown): boolean =>
  error instanceof MuxftpError && error.code === 'PERMISSION_DENIED';

async function statIfExists(client: Client, remote: string): Promise<WireEntry | undefined> {
  try {
    return await client.stat(remote);
  } catch (error) {
    if (error instanceof MuxftpError && error.code === 'NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * Fails as a transfer to a path under `parent` would when it is missing (`missing`: what to say)
 * or not a directory. What cannot be looked at (a user without the list permission) is left to
 * the transfer.
 */
async function requireRemoteParent(client: Client, parent: string, missing: string): Promise<void> {
  const entry = await statIfExists(client, parent).catch(() => null);
  if (entry === undefined) throw new MuxftpError('NOT_FOUND', `${missing}: ${parent}`);
  if (entry !== null && entry.type !== 'dir')
    throw new MuxftpError('NOT_A_DIRECTORY', `not a directory: ${parent}`);
}

/**
 * Whether `dir` is to be made (it is not there and `creation` allows it); fails as its mkdir
 * would where it cannot be (a parent missing without -p) or where it is not a directory.
 */
async function remoteDirToMake(
  client: Client,
  dir: string,
  creation: DestinationCreation,
): Promise<boolean | 'unlooked'> {
  // An account that may not list cannot look: `DIR/` says it is a directory. Without -r or -p it
  // is taken as there; with them it is made as it would be were it missing (its parent there
  // unless -p), a refusal of that mkdir because it is there, or because the account may not
  // make it, taking it as there: each upload fails on its own if it is not.
  const existing = await statIfExists(client, dir).catch((error: unknown) => {
    if (cannotLook(client, error)) {
      normalizeClientPath(dir);
      return null;
    }
    throw error;
  });
  if (existing === null) return creation === 'none' ? false : 'unlooked';
  if (existing === undefined) {
    if (creation === 'none') throw new MuxftpError('NOT_FOUND', `no such directory: ${dir}`);
    // The parent is what is missing: say so, not that the directory to be made is.
    const parent = remoteParent(dir);
    if (creation === 'itself' && parent !== '' && (await statIfExists(client, parent)) === undefined)
      throw new MuxftpError('NOT_FOUND', `no such directory: ${parent}`);
    return true;
  }
  if (existing.type !== 'dir') throw new MuxftpError('NOT_A_DIRECTORY', `not a directory: ${dir}`);
  return false;
}

async function makeRemoteDir(
  client: Client,
  dir: string,
  creation: DestinationCreation,
  unlooked = false,
): Promise<void> {
  await client.mkdir(dir, { parents: creation === 'with-parents' }).catch(async (error: unknown) => {
    const exists = error instanceof MuxftpError && error.code === 'ALREADY_EXISTS';
    if (unlooked && (isRefused(error) || exists)) return;
    // Made since it was looked at (another run putting into it at once): fine, as mkdir -p takes it.
    if (exists && (await statIfExists(client, dir).catch(() => undefined))?.type === 'dir') return;
    if (error instanceof MuxftpError && error.code === 'NOT_FOUND')
      throw new MuxftpError('NOT_FOUND', `no such directory: ${remoteParent(dir)}`);
    throw error;
  });
}

/**
 * Looks, makes nothing: what the server has decides where the sources go, and `make` (if any)
 * makes the directory they go into, run once the run is known not to be refused (--delete's
 * checks need the planned trees): a refused run changes nothing on the server. A dry run never
 * makes it.
 */
async function resolvePutTarget(
  client: Client,
  target: PutTarget,
  creation: DestinationCreation,
  dryRun: boolean,
  /** The one source is a local directory sent with -r: it goes into REMOTE, or is made as it. */
  sourceIsTree: () => Promise<boolean>,
): Promise<{ resolved: ResolvedPutTarget; make?: () => Promise<void> }> {
  if (target.argument === '') throw emptyPathError('remote');
  const into = async (dir: string) => {
    const toMake = await remoteDirToMake(client, dir, creation);
    return {
      resolved: { kind: 'into' as const, dir },
      ...(toMake !== false
        ? { make: () => makeRemoteDir(client, dir, creation, toMake === 'unlooked') }
        : {}),
    };
  };
  if (target.kind === 'into') {
    if (target.argument === undefined) return { resolved: { kind: 'into', dir: target.dir } };
    return into(target.dir);
  }
  // The root ('.'), like `DIR/`, is a directory whoever may look at it.
  const namesRoot = target.remote.split('/').every((name) => name === '' || name === '.');
  if (namesDirectory(target.argument) || namesRoot) return into(target.remote);
  // Any other stat failure (a bad path, say) is left for the upload itself to report. But where
  // the account may not list, whether REMOTE is a directory (a tree goes into it) or not (a tree
  // is made as it) cannot be told: a guess put a tree's files straight into a directory that is
  // there, over its files. Refused, saying how to ask for the one meant.
  const existing = await statIfExists(client, target.remote).catch(async (error: unknown) => {
    // A file goes as REMOTE either way (its upload fails IS_A_DIRECTORY on a directory): only a
    // tree's place depends on the answer. A path no request may name is said as such, not hinted.
    if (creation !== 'none' && cannotLook(client, error) && (await sourceIsTree())) {
      normalizeClientPath(target.remote);
      throw new MuxftpError(
        'PERMISSION_DENIED',
        `cannot tell whether ${target.remote} is a directory (${(error as MuxftpError).message}): give ${target.remote}/ to put into it`,
        { cause: error },
      );
    }
    return undefined;
  });
  if (existing?.type === 'dir') return { resolved: { kind: 'into', dir: target.remote } };
  const parent = remoteParent(target.remote);
  // A name no upload can take (too long, too deep) is refused before -p makes its parents.
  if (creation === 'with-parents' && parent !== '') normalizeClientPath(target.remote);
  // A tree is made at REMOTE only where REMOTE's parent is (get -r's rule, cp -r's): its mkdir
  // would make the parents too. A file's upload says so itself; a dry run looks instead.
  if (creation === 'itself' && parent !== '') await requireRemoteParent(client, parent, 'no such directory');
  if (creation === 'none' && parent !== '' && dryRun)
    await requireRemoteParent(client, parent, 'no such file or directory');
  const resolved: ResolvedPutTarget =
    existing === undefined
      ? { kind: 'as', remote: target.remote }
      : { kind: 'as', remote: target.remote, standing: existing.type };
  if (creation !== 'with-parents' || parent === '') return { resolved };
  return { resolved, make: async () => void (await client.mkdir(parent, { parents: true })) };
}

async function put(
  connection: ReconnectingClient,
  sources: string[],
  target: PutTarget,
  options: PutOptions,
  output: Output,
): Promise<TransferOutcome[]> {
  // Planning (stat, mkdir, listing) reconnects as the transfers do.
  const planning = new CommandPlanning(connection, 'put', options.retries, output);
  const { client } = planning;
  const parents = options.parents === true;
  const dryRun = options.dryRun === true;
  // What each source is, looked at once: the check below and the planning both need it, and a
  // put of many small files stat'ed each twice.
  const inspected = new Map<string, Promise<LocalEntry>>();
  const inspect = (source: string): Promise<LocalEntry> => {
    let entry = inspected.get(source);
    if (entry === undefined) {
      entry = inspectLocal(source);
      entry.catch(() => {}); // looked at again by whoever asks
      inspected.set(source, entry);
    }
    return entry;
  };
  // Nothing to send (every source missing or unreadable): said of each as its upload would, and
  // -p makes nothing on the server for it.
  if (parents && !dryRun) {
    const missing = await Promise.all(
      sources.map((source) =>
        source === '-' || source === ''
          ? undefined
          : inspect(source).then(
              () => undefined,
              (error: unknown) => error,
            ),
      ),
    );
    if (missing.every((error) => error !== undefined)) {
      return sources.map((source, i) => {
        output.failure(`put ${shownArgument(source)}`, missing[i]);
        return failedOutcome(source, intendedRemote(source, target), missing[i]);
      });
    }
  }
  // The target's own failure (it cannot be made, or is no directory): one line for it.
  const targetFailed = (error: unknown): void => {
    const hint =
      error instanceof MuxftpError && error.code === 'NOT_FOUND' && !parents ? ADD_PARENTS_HINT : undefined;
    // A dry run's look for a missing parent stands for the upload's own failure, said of the file.
    const ofTheFile =
      dryRun && target.kind === 'named' && destinationCreation(options) === 'none' && sources.length === 1;
    output.failure(`put ${shownArgument(ofTheFile ? sources[0]! : (target.argument ?? '/'))}`, error, hint);
  };
  let resolved: ResolvedPutTarget;
  let makeTarget: (() => Promise<void>) | undefined;
  try {
    ({ resolved, make: makeTarget } = await resolvePutTarget(
      client,
      target,
      destinationCreation(options),
      dryRun,
      async () =>
        options.recursive === true &&
        sources.length === 1 &&
        (await inspect(sources[0]!).then(
          (entry) => entry.kind === 'dir',
          () => false,
        )),
    ));
  } catch (error) {
    targetFailed(error);
    return sources.map((source) => failedOutcome(source, intendedRemote(source, target), error));
  }

  const failures: TransferOutcome[] = [];
  const fail = (local: string, remote: string, error: unknown, hint?: string): void => {
    // Given up with the server away: one line for all (planning.end()), a result each.
    if (!planning.tookAway(error)) output.failure(`put ${shownArgument(local)}`, error, hint);
    failures.push(failedOutcome(local, remote, error));
  };
  // Of those, directories (not read, not made): the summary counts files, these apart.
  let failedDirectories = 0;
  const failDirectory: typeof fail = (...failed) => {
    failedDirectories++;
    fail(...failed);
  };
  // Entries of a tree with nothing to send (a FIFO): said, given as results, not failures.
  const passedOver: TransferOutcome[] = [];
  const passOver = (local: string, remote: string, reason: string): void => {
    output.notice(`muxftp: put ${shownArgument(local)}: ${reason}, skipped`);
    passedOver.push(passedOverOutcome(local, remote, reason));
  };
  const excluded = compileExcludes(options.filters);
  if (excluded !== undefined) {
    // Before the trees are walked: with --delete, a run refused here has done nothing.
    const kinds = await Promise.all(
      sources.map((source) =>
        source === '-' || source === ''
          ? undefined
          : inspect(source).then(
              (entry) => entry.kind,
              () => undefined,
            ),
      ),
    );
    const given = sources.flatMap((argument, i) =>
      kinds[i] === 'file' || kinds[i] === 'dir' ? [{ argument, tree: kinds[i] === 'dir' }] : [],
    );
    refuseOrWarnOfExcludedSources(excluded, given, options.delete === true, (message) =>
      output.warning(message),
    );
  }
  const planned = await planUploads(sources, resolved, options.recursive === true, {
    fail,
    failDirectory,
    passOver,
    excluded,
    inspect,
  });
  const { dirs } = planned;
  // -r made the tree as the remote name given (nothing there then): run again, the same put puts
  // it inside that name. Not a source given as its contents (`.`, `src/.`): into it either way.
  const written = path.basename(sources[0] ?? '');
  const treeMadeAs: TreeMadeAsDestination | undefined =
    resolved.kind === 'as' &&
    resolved.standing === undefined &&
    target.kind === 'named' &&
    planned.trees.length > 0 &&
    written !== '.' &&
    written !== '..'
      ? {
          source: sources[0]!,
          contents: shellWord(`${sources[0]!.replace(/[\\/]+$/, '')}/.`),
          destination: target.argument,
        }
      : undefined;
  const jobs = withoutSharedDestinations(
    planned.jobs,
    (job) => job.remote,
    (job, first) =>
      fail(
        job.local,
        job.remote,
        new MuxftpError('ALREADY_EXISTS', `${job.remote} is where ${first.local} goes too`),
        'put them into different directories',
      ),
    (job) => path.resolve(job.local),
  );

  // --delete: what stands where the tree has something of another kind goes first.
  const mirror: MirrorRun = {
    command: 'put',
    client,
    // The connection may go while --delete lists or removes: it reconnects as the transfers do.
    retrying: (what, request) =>
      requestWithRetries(connection, options.retries, request, (error, attempt, delayMs, failed) => {
        const when = isDraining(failed, error) ? AFTER_DRAIN : undefined;
        output.notice(retryNotice(`put --delete ${what}`, error, attempt, options.retries, delayMs, when));
      }),
    trees: options.delete === true ? planned.trees : [],
    excluded,
    output,
    dryRun,
    ignoreExisting: options.ignoreExisting === true,
  };
  const prepared = await prepareMirror(mirror, jobs, failures);
  // `put -r .` is the tree of the directory's own name, as a pattern written with it names it.
  // Only with patterns to warn of: resolving 5,000 sources again cost 15–40 ms of CPU (cold, once).
  const treeNames =
    excluded === undefined ? [] : sources.map((source) => path.basename(path.resolve(source)));
  warnOfUnmatchedExcludes(excluded, treeNames, (message) => output.warning(message));
  if ('refused' in prepared) return [...passedOver, ...prepared.refused];
  const { replaced } = prepared;
  if (makeTarget !== undefined && !dryRun) {
    try {
      await makeTarget();
    } catch (error) {
      targetFailed(error);
      const unsent = jobs.map((job) => failedOutcome(job.local, job.remote, error));
      return [...passedOver, ...failures, ...replaced, ...unsent];
    }
  }

  const parallel = Math.min(options.parallel, client.serverInfo.limits.maxStreams);
  // put -c also leaves a file already whole on the server (as get -c of a whole file sends
  // nothing, and lftp's mirror -c): a put -r -c after Ctrl-C sent every finished file again.
  const skipIdentical = options.skipIdentical === true || options.continue === true;
  const skip = destinationSkips('put', { ...options, skipIdentical }, jobs);
  if (dryRun) {
    planning.end();
    const transfers = {
      command: 'put' as const,
      jobs,
      parallel,
      output,
      connection,
      retries: options.retries,
      ...skip,
    };
    const previews = await previewRun(mirror, transfers, { passedOver, failures, replaced });
    // As a real run's stdin skipped, below: the pipeline a dry run is tried in succeeds as it.
    if (jobs.some((job) => job.standardStream)) await discard(process.stdin);
    return previews;
  }
  const limit = planningLimit(parallel, client);
  // Keeping bits, a depth at a time (in any order within it): each directory is then made by its
  // own mkdir, which gives it its local one's bits (mkdir -p gives none to the parents it makes).
  // Else all at once: with `parents` every mkdir stands alone.
  const made: typeof dirs = [];
  // Why each directory that could not be made was not; what is inside one fails with it, as get -r
  // has it: not sent (each failed NOT_FOUND with "add -p", which -p did not help), no line each.
  const unmade = new Map<string, unknown>();
  // Refused (no mkdir permission) where the account cannot look (no list permission either):
  // said, but what goes into it is still sent, the directory may well be there.
  const unlooked = new Map<string, unknown>();
  const unmadeAbove = (remote: string): { error: unknown } | undefined => {
    for (let dir = remoteParent(remote); dir !== ''; dir = remoteParent(dir))
      if (unmade.has(dir)) return { error: unmade.get(dir) };
    return undefined;
  };
  const unlookedAbove = (remote: string): boolean => {
    for (let dir = remoteParent(remote); dir !== ''; dir = remoteParent(dir))
      if (unlooked.has(dir)) return true;
    return false;
  };
  for (const level of options.perms ? byDepth(dirs, (dir) => dir.remote) : [dirs]) {
    await limit.map(level, async (dir) => {
      if (unmadeAbove(dir.remote) !== undefined) return;
      const mode = options.perms ? await permissionBits(dir.local) : undefined;
      await client.mkdir(dir.remote, { parents: true, mode }).then(
        () => made.push(dir),
        async (error: unknown) => {
          const refused = isRefused(error);
          // Refused: a look says whether it is there after all (made: the connection went during
          // planningClient's own look), missing or not a directory (nothing can go into it), or
          // cannot say (no list permission, the connection gone): left to the uploads.
          const looked = !refused
            ? 'missing'
            : await client.stat(dir.remote).then(
                (entry) => (entry.type === 'dir' ? 'there' : 'missing'),
                (stat: unknown) =>
                  isNotFound(stat) || (stat instanceof MuxftpError && stat.code === 'NOT_A_DIRECTORY')
                    ? 'missing'
                    : 'unlooked',
              );
          if (looked === 'there') made.push(dir);
          else (looked === 'missing' ? unmade : unlooked).set(dir.remote, error);
        },
      );
    });
  }
  // In path order, a line for each not inside another that failed (made at once, those fail too).
  for (const dir of dirs) {
    const above = unmadeAbove(dir.remote);
    const error = unmade.get(dir.remote) ?? unlooked.get(dir.remote);
    if (above !== undefined) {
      failedDirectories++;
      failures.push(failedOutcome(dir.local, dir.remote, above.error));
    } else if (error !== undefined) failDirectory(dir.local, dir.remote, error);
  }
  planning.end();
  const sendable = jobs.filter((job) => {
    const above = unmadeAbove(job.remote);
    if (above !== undefined) failures.push(failedOutcome(job.local, job.remote, above.error));
    return above === undefined;
  });

  const usesStdin = jobs.some((job) => job.standardStream);
  if (usesStdin && process.stdin.isTTY === true)
    output.notice('muxftp: reading the upload from the terminal: end it with Ctrl-D on a line of its own');
  // Ctrl-C: the directories' times are not set either (a request each: with the server stalled,
  // the command hung for --timeout after it).
  let interrupted = false;
  try {
    const outcomes = await runTransfers({
      command: 'put',
      jobs: sendable,
      parallel,
      output,
      connection,
      startedAt: connection.startedAt,
      retries: options.retries,
      failedBeforeStart: failures.length - failedDirectories,
      failedDirectoriesBeforeStart: failedDirectories,
      // The local file was there (else LOCAL_IO_ERROR): the remote directory it goes into is not;
      // or the server has a directory under the file's name ("is a directory" read as the source).
      failureHint: (error, job) => {
        if (!(error instanceof MuxftpError)) return undefined;
        // Not where the run's own mkdir of its directory was refused (its line said so): -p asks it again.
        if (error.code === 'NOT_FOUND')
          return parents || unlookedAbove(job.remote) ? undefined : ADD_PARENTS_HINT;
        if (error.code !== 'IS_A_DIRECTORY') return undefined;
        const alone =
          sources.length === 1 &&
          options.recursive !== true &&
          target.kind === 'into' &&
          target.argument === undefined;
        return directoryInTheWayHint('put', job.remote, alone);
      },
      continueUploads: options.continue === true,
      ...(treeMadeAs !== undefined ? { treeMadeAs } : {}),
      onInterrupted: () => {
        interrupted = true;
      },
      ...skip,
      perform: async (job, client, transferOptions) => {
        const result = await client.put(job.remote, job.standardStream ? process.stdin : job.local, {
          ...transferOptions,
          keepTimes: options.times,
          keepModes: options.perms,
          // Planned as a regular file: a FIFO swapped in since fails, never waited on.
          regularFileOnly: true,
        });
        const { algorithm, digest, continuedFrom } = result;
        return {
          bytes: result.entry.size,
          algorithm,
          digest,
          ...(continuedFrom === undefined ? {} : { continuedFrom }),
        };
      },
    });
    // Ended from here on (Ctrl-C while stdin is read to its end, during --delete's removals or
    // the directories' times), --json says what was done, not every file failed.
    const done = [...passedOver, ...failures, ...replaced, ...outcomes];
    const removed: TransferOutcome[] = [];
    output.setJsonFailureShape(() => [...done, ...removed]);
    // stdin left unsent (--ignore-existing) is read to its end, as an upload would have: cut, its
    // writer would die of SIGPIPE and fail a `set -o pipefail` script for a file rightly skipped.
    if (outcomes.some((outcome) => outcome.local === '-' && outcome.skipped === true))
      await discard(process.stdin);
    // Before the directories' times: removing from a directory changes its time.
    const failed = [...failures, ...replaced, ...outcomes].filter((outcome) => !outcome.ok).length;
    await removeExtraneous({ ...mirror, client: connection.client, failed, interrupted }, removed);
    if (options.times && made.length > 0 && !interrupted)
      await keepRemoteDirectoryTimes(connection.client, made, limit);
    return [...done, ...removed];
  } finally {
    // An interrupted upload may leave a read pending on stdin, which would keep the process alive.
    if (usesStdin) process.stdin.destroy();
  }
}

/** Reads `input` to its end and drops it; not a terminal's, which would wait for a Ctrl-D. */
async function discard(input: Readable & { isTTY?: boolean }): Promise<void> {
  if (input.isTTY === true) return;
  input.resume();
  // A read error ends it too: there was nothing to keep.
  await finished(input).catch(() => {});
}

interface PlanningReports {
  fail: (local: string, remote: string, error: unknown, hint?: string) => void;
  /** `fail` for a directory of a tree (not read, a link loop): the summary counts it apart. */
  failDirectory: PlanningReports['fail'];
  /** An entry of a tree with nothing to send, and why. */
  passOver: (local: string, remote: string, reason: string) => void;
  excluded: Excluded | undefined;
  /** What a source is (inspectLocal's answer, which the caller may have asked for already). */
  inspect: (source: string) => Promise<LocalEntry>;
}

/** A local directory's permission bits; undefined when it cannot be looked at (it gets a new one's). */
async function permissionBits(local: string): Promise<number | undefined> {
  return statLocal(local).then(
    (info) => info.mode & PERMISSION_BITS,
    () => undefined,
  );
}

/** Turns the sources into uploads and the remote directories they need; `fail` gets the rest. */
async function planUploads(
  sources: string[],
  target: ResolvedPutTarget,
  recursive: boolean,
  { fail, failDirectory, passOver, excluded, inspect }: PlanningReports,
): Promise<{ jobs: TransferJob[]; dirs: Array<{ local: string; remote: string }>; trees: MirroredTree[] }> {
  const jobs: TransferJob[] = [];
  const dirs: Array<{ local: string; remote: string }> = [];
  const trees: MirroredTree[] = [];
  // Each tree walked, by its source and destination.
  const walkedTrees = new Set<string>();
  for (const source of sources) {
    if (source === '-') {
      if (target.kind === 'as') {
        jobs.push({ local: '-', remote: target.remote, size: undefined, standardStream: true });
      } else {
        const error = new MuxftpError('IS_A_DIRECTORY', `is a directory: ${target.dir}`);
        fail('-', target.dir, error, 'stdin needs a file name');
      }
      continue;
    }
    if (source === '') {
      fail(source, target.kind === 'as' ? target.remote : target.dir, emptyPathError('local'));
      continue;
    }
    const remote = target.kind === 'as' ? target.remote : remoteInside(target.dir, source);
    if (remote === undefined) {
      const dir = target.kind === 'into' ? target.dir : '';
      const error = new MuxftpError('INVALID_PATH', `no name for the remote copy of ${source}`);
      fail(source, dir, error, 'give a remote name');
      continue;
    }
    let entry: LocalEntry;
    try {
      entry = await inspect(source);
    } catch (error) {
      fail(source, remote, error);
      continue;
    }
    if (entry.kind === 'file') {
      jobs.push({ local: source, remote, size: entry.size, standardStream: false });
    } else if (entry.kind === 'dir' && recursive && target.kind === 'as' && target.standing !== undefined) {
      // A file (not a directory) where the tree would be made: one line, as with --to, and a dry
      // run says it too. Planned, its mkdir failed, then every file of the tree with a line each.
      failDirectory(source, remote, new MuxftpError('NOT_A_DIRECTORY', `not a directory: ${remote}`));
    } else if (entry.kind === 'dir' && recursive) {
      // The same tree named twice (`put -r src ./src --to d`, or two shell globs that both match
      // src) is sent once, as a file named twice is (withoutSharedDestinations): walked twice,
      // --delete refused the run, saying the two would delete what each other sent.
      const walked = `${path.resolve(source)}\0${normalRemote(remote)}`;
      if (walkedTrees.has(walked)) continue;
      walkedTrees.add(walked);
      const tree = await walkLocalTree(source, excluded, remote);
      if (remote !== '') dirs.push({ local: source, remote }); // '' is the root: there already
      for (const dir of tree.dirs)
        dirs.push({ local: path.join(source, dir), remote: joinRemote(remote, dir) });
      for (const file of tree.files) {
        const fileRemote = joinRemote(remote, file.relative);
        jobs.push({ local: file.localPath, remote: fileRemote, size: file.size, standardStream: false });
      }
      for (const problem of tree.problems) {
        const problemRemote = problem.relative === '' ? remote : joinRemote(remote, problem.relative);
        (problem.directory === true ? failDirectory : fail)(problem.localPath, problemRemote, problem.error);
      }
      for (const entry of tree.skipped)
        passOver(entry.localPath, joinRemote(remote, entry.relative), entry.reason);
      const present = new Map<string, EntryKind>(tree.dirs.map((dir) => [dir, 'dir']));
      for (const file of tree.files) present.set(file.relative, 'file');
      // What stands where one was skipped is kept: the source has something there.
      for (const entry of tree.skipped) present.set(entry.relative, 'other');
      trees.push({ destination: remote, present });
    } else if (entry.kind === 'dir') {
      const error = new MuxftpError('IS_A_DIRECTORY', `is a directory: ${source}`);
      fail(source, remote, error, 'add -r to upload directories');
    } else {
      // Never read as a file: /dev/zero has no end. A stream is sent as stdin, as documented.
      const error = new MuxftpError('UNSUPPORTED', `not a regular file: ${source}`);
      const command = `put - ${shellWord(remote || '/')} < ${shellWord(source)}`;
      fail(source, remote, error, `to send what it gives, make it stdin: ${command}`);
    }
  }
  return { jobs, dirs, trees };
}
