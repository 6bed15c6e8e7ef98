/**
 * `muxftp get`: downloads remote files, to stdout (-), or whole remote directories (-r), several
 * at a time over one connection. Each file is written beside its target and renamed into place
 * only once its size and content digest check out, so a failed download never leaves anything
 * under the target's name; it keeps its whole blocks in a hidden file beside it, which `get -c`
 * continues.
 */

import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Client, TransferOptions, WireEntry } from '../../client/client.js';
import { isSpecialFile } from '../../client/sinks.js';
import { LocalPartialRefusedError } from '../../client/streams.js';
import { characterProblem } from '../../shared/clientPaths.js';
import type { ConcurrencyLimit } from '../../shared/concurrencyLimit.js';
import { MuxftpError } from '../../shared/errors.js';
import { formatBytes } from '../../shared/humanUnits.js';
import { planningLimit } from '../concurrency.js';
import { CrowdedDirectories } from '../crowdedDirectories.js';
import { keepLocalDirectoryTimes } from '../directoryTimes.js';
import {
  compileExcludes,
  type Excludes,
  refuseOrWarnOfExcludedSources,
  warnOfUnmatchedExcludes,
} from '../excludes.js';
import { EXIT_STATUS } from '../exitStatus.js';
import { globalOptionsOf } from '../globalOptions.js';
import { cannotLook } from '../listPermission.js';
import { waitedOn } from '../localCallsWaiting.js';
import { inspectLocalIfExists, makeLocalDir } from '../localFiles.js';
import { LocalRoomRefusedError, LocalRooms } from '../localRoom.js';
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
import { type ReconnectingClient, withReconnectingClient } from '../reconnect.js';
import { isRemotePattern, remoteArgumentNaming, remoteArgumentsNamedBy } from '../remoteGlob.js';
import {
  hostPathWarning,
  isPlainName,
  joinRemote,
  normalRemote,
  remoteBaseName,
  remotePathFromArgument,
} from '../remotePath.js';
import { walkRemoteTree } from '../remoteTree.js';
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

export interface GetOptions extends TransferCommandOptions {
  continue?: boolean;
}

/** Where the arguments say the downloads go. */
type GetTarget =
  /** Each source goes inside `dir`: --to DIR (checked first), or the working directory. */
  | { kind: 'into'; dir: string; argument: string | undefined }
  /** One source and a local name; if that names an existing directory, the source goes inside. */
  | { kind: 'named'; local: string }
  | { kind: 'stdout' };

type ResolvedGetTarget = { kind: 'into'; dir: string } | { kind: 'as'; local: string } | { kind: 'stdout' };

/** The action of `muxftp get`, loaded only when it runs (cli/commands/get.ts registers it). */
export async function runGet(
  args: string[],
  options: GetOptions,
  command: Command,
  output: Output,
): Promise<void> {
  const global = globalOptionsOf(command);
  output.configure(global);
  checkTransferOptions(options, command);
  const { remotes, target } = getTargetFromArguments(args, options, command, global.json);
  for (const remote of remotes) {
    const hostPath = hostPathWarning(remote);
    if (hostPath !== undefined) output.warning(hostPath);
  }
  output.setJsonFailureShape((error) =>
    remotes.map((remote) =>
      failedOutcome(intendedLocal(remote, target), remotePathFromArgument(remote), error),
    ),
  );
  const outcomes = await withReconnectingClient(global, output, options, (connection) =>
    get(connection, remotes, target, options, output),
  );
  if (output.json) output.printJson(outcomes);
}

function getTargetFromArguments(
  args: string[],
  options: GetOptions,
  command: Command,
  json: boolean,
): { /** As given. */ remotes: string[]; target: GetTarget } {
  const usage = (message: string): never =>
    command.error(`error: ${message}`, { exitCode: EXIT_STATUS.usage });
  if (options.to !== undefined) {
    return {
      remotes: args,
      target: { kind: 'into', dir: options.to, argument: options.to },
    };
  }
  if (args.length > 2) usage(severalWithoutTo('get', args));
  const [remote, local] = args as [string, string | undefined];
  const remotes = [remote];
  if (local === undefined) return { remotes, target: { kind: 'into', dir: '.', argument: undefined } };
  if (local === '-') {
    if (json) usage('--json cannot share stdout with the downloaded bytes');
    // Nothing on stdout can be read back: no partial file to continue, no copy to compare.
    if (options.continue === true)
      usage("-c/--continue does not apply to stdout ('-'): there is no local file to continue");
    if (options.skipIdentical === true || options.skipUnchanged === true)
      usage(
        `${options.skipIdentical === true ? '--skip-identical' : '--skip-unchanged'} does not apply to stdout ('-'): there is no local copy to compare`,
      );
    if (options.ignoreExisting === true)
      usage("--ignore-existing does not apply to stdout ('-'): it is no file that could exist already");
    return { remotes, target: { kind: 'stdout' } };
  }
  return { remotes, target: { kind: 'named', local } };
}

/** --dry-run: a missing directory is looked at, not made. */
async function ensureLocalDir(dir: string, creation: DestinationCreation, dryRun: boolean): Promise<void> {
  // Without its trailing slash, as the remote side normalizes --to: a file there is NOT_A_DIRECTORY
  // for get as for put, not the ENOTDIR of looking inside it.
  const bare = path.normalize(dir).replace(/(.)[\\/]+$/, '$1');
  const existing = await inspectLocalIfExists(bare);
  if (existing === undefined) {
    if (creation === 'none') throw new MuxftpError('NOT_FOUND', `no such local directory: ${dir}`);
    if (creation === 'itself' && (await inspectLocalIfExists(path.dirname(bare))) === undefined)
      throw new MuxftpError('NOT_FOUND', `no such local directory: ${path.dirname(bare)}`);
    if (!dryRun) await makeLocalDir(dir);
  } else if (existing.kind !== 'dir') {
    throw new MuxftpError('NOT_A_DIRECTORY', `not a directory: ${dir}`);
  }
}

async function resolveGetTarget(
  target: GetTarget,
  creation: DestinationCreation,
  dryRun: boolean,
): Promise<ResolvedGetTarget> {
  if (target.kind === 'stdout') return target;
  if ((target.kind === 'named' ? target.local : target.argument) === '') throw emptyPathError('local');
  if (target.kind === 'into') {
    if (target.argument !== undefined) await ensureLocalDir(target.dir, creation, dryRun);
    return { kind: 'into', dir: target.dir };
  }
  if (target.local.endsWith('/') || target.local.endsWith(path.sep)) {
    await ensureLocalDir(target.local, creation, dryRun);
    return { kind: 'into', dir: target.local };
  }
  const existing = await inspectLocalIfExists(target.local);
  if (existing?.kind === 'dir') return { kind: 'into', dir: target.local };
  // As for --to: a directory to download into must exist, or -p creates it.
  await ensureLocalDir(path.dirname(target.local), creation === 'with-parents' ? creation : 'none', dryRun);
  return { kind: 'as', local: target.local };
}

/**
 * `get -r REMOTE LOCAL` that made the tree as LOCAL (missing then): run again, the same get puts
 * it inside LOCAL. Undefined when REMOTE names its contents already (`/`, `d/.`), which go into
 * LOCAL either way. `remote` is the path `argument` named (a pattern's one match).
 */
function treeMadeAsLocal(argument: string, remote: string, local: string): TreeMadeAsDestination | undefined {
  const name = remoteBaseName(remote);
  if (name === '' || name === '.') return undefined;
  const named = isRemotePattern(argument)
    ? `${argument.startsWith('/') ? '/' : ''}${remoteArgumentNaming(remote)}`
    : argument.replace(/\/+$/, '');
  return { source: argument, contents: shellWord(`${named}/.`), destination: local };
}

/** Where `remote` was meant to go, for the outcome of a download that failed before it was planned. */
function intendedLocal(remote: string, target: GetTarget): string {
  if (target.kind !== 'into') return targetLabel(target);
  return path.join(target.dir, remoteBaseName(remote));
}

function targetLabel(target: GetTarget): string {
  return target.kind === 'stdout' ? '-' : target.kind === 'named' ? target.local : (target.argument ?? '.');
}

/** The local path for `remote`, or an error when its name cannot be a local file name. */
function localPathFor(target: ResolvedGetTarget, remote: string): string | MuxftpError {
  if (target.kind === 'stdout') return '-';
  if (target.kind === 'as') return target.local;
  const name = remoteBaseName(remote);
  // The root and `.` (also `dir/.`) are no name of their own: as with `cp -r` and `scp -r`, what
  // is in them goes into the directory itself (`get -r / --to backup`).
  if (name === '' || name === '.') return target.dir;
  // A backslash (a name put there on the host) is no name a request can send, whatever the
  // local path: said as the get itself would fail, not as a want of a local name.
  const problem = characterProblem(name);
  if (problem !== undefined) return new MuxftpError('INVALID_PATH', `invalid path: ${problem}`);
  if (!isPlainName(name))
    return new MuxftpError('INVALID_PATH', `no local name for ${remote || '/'}; give a local path`);
  return path.join(target.dir, name);
}

async function get(
  connection: ReconnectingClient,
  /** The remote paths as given. */
  requested: string[],
  target: GetTarget,
  options: GetOptions,
  output: Output,
): Promise<TransferOutcome[]> {
  // Planning (stat, mkdir, listing) reconnects as the transfers do.
  const planning = new CommandPlanning(connection, 'get', options.retries, output);
  const { client } = planning;
  const parents = options.parents === true;
  const dryRun = options.dryRun === true;
  /** The destination, made when `make` (-p, --to), else looked at only; a failure is said, and returned. */
  const resolveTarget = async (make: boolean): Promise<ResolvedGetTarget | { failed: unknown }> => {
    try {
      return await resolveGetTarget(target, destinationCreation(options), !make);
    } catch (error) {
      const missing = error instanceof MuxftpError && error.code === 'NOT_FOUND';
      output.failure(
        `get ${shownArgument(targetLabel(target))}`,
        error,
        missing && !parents ? ADD_PARENTS_HINT : undefined,
      );
      return { failed: error };
    }
  };
  // Looked at first, made once there is something to put in it: a get that finds nothing to
  // download leaves no new directories behind (-p made them, then failed NOT_FOUND).
  const looked = await resolveTarget(false);
  if ('failed' in looked)
    return requested.map((remote) =>
      failedOutcome(targetLabel(target), remotePathFromArgument(remote), looked.failed),
    );
  const resolved = looked;

  const failures: TransferOutcome[] = [];
  const fail = (local: string, remote: string, error: unknown, hint?: string): void => {
    // Given up with the server away: one line for all (planning.end()), a result each.
    if (!planning.tookAway(error)) output.failure(`get ${remote || '/'}`, error, hint);
    failures.push(failedOutcome(local, remote, error));
  };
  // Of those, directories (not listed, not made): the summary counts files, these apart.
  let failedDirectories = 0;
  const failDirectory: FailPlanned = (...failed) => {
    failedDirectories++;
    fail(...failed);
  };
  const remotes: string[] = [];
  // What a pattern's listings said of each file they matched: no stat of its own before it goes.
  const listed = new Map<string, WireEntry>();
  // Given as `DIR/` (or `DIR/.`): a directory, as in POSIX; a file there fails NOT_A_DIRECTORY, as
  // `cp f/ x` does (a file's `f/.`, which the server reads as `f`, was downloaded onto `.`: EBUSY).
  const namedAsDirectory = new Set<string>();
  for (const argument of requested) {
    if (argument === '') {
      output.failure("get ''", emptyPathError('remote'));
      failures.push(failedOutcome('', '', emptyPathError('remote')));
      continue;
    }
    let named: string[];
    try {
      const matches = await remoteArgumentsNamedBy(client, argument);
      named = matches.map((match) => match.argument);
      for (const { argument: path, entry } of matches)
        if (entry !== undefined) listed.set(remotePathFromArgument(path), entry);
    } catch (error) {
      fail(targetLabel(target), remotePathFromArgument(argument), error);
      continue;
    }
    // One local name (or stdout) takes one file: several matches need a directory.
    if (resolved.kind !== 'into' && named.length > 1) {
      const error = new MuxftpError('INVALID_PATH', `${argument} matches ${named.length} remote paths`);
      fail(targetLabel(target), remotePathFromArgument(argument), error, 'download them with --to LOCAL_DIR');
      continue;
    }
    for (const name of named) {
      remotes.push(remotePathFromArgument(name));
      if (name.endsWith('/') || name.endsWith('/.')) namedAsDirectory.add(remotePathFromArgument(name));
    }
  }
  // Entries of a tree with nothing to fetch (a FIFO): said, given as results, not failures.
  const passedOver: TransferOutcome[] = [];
  const passOver = (local: string, remote: string, reason: string): void => {
    output.notice(`muxftp: get ${remote}: ${reason}, skipped`);
    passedOver.push(passedOverOutcome(local, remote, reason));
  };
  const parallel = Math.min(options.parallel, client.serverInfo.limits.maxStreams);
  // get -c also leaves a file already whole locally (the same size and digest, as put -c leaves
  // one whole on the server): a get -r -c after Ctrl-C fetched every finished file under a block
  // (4 MiB) again whole, and each larger one's bytes past its last whole block.
  const skipIdentical = options.skipIdentical === true || options.continue === true;
  const skip = destinationSkips('get', {
    ...options,
    skipIdentical,
    compareUnsized: options.skipIdentical === true,
  });
  const excluded = compileExcludes(options.filters);
  const { jobs, localDirs, trees } = await planDownloads(
    client,
    remotes,
    resolved,
    options.recursive === true,
    {
      limit: planningLimit(parallel, client),
      fail,
      failDirectory,
      passOver,
      namedAsDirectory,
      excluded,
      listed,
      deleting: options.delete === true,
      warn: (message) => output.warning(message),
    },
  );
  planning.end();
  const treeMadeAs =
    resolved.kind === 'as' && target.kind === 'named' && trees.length > 0
      ? treeMadeAsLocal(requested[0]!, remotes[0]!, target.local)
      : undefined;
  const distinct = withoutSharedDestinations(
    jobs,
    (job) => path.resolve(job.local),
    (job, first) =>
      fail(
        job.local,
        job.remote,
        new MuxftpError('ALREADY_EXISTS', `${job.local} is where ${first.remote} goes too`),
        'get them into different directories',
      ),
    (job) => normalRemote(job.remote),
  );

  // --delete: what stands where the tree has something of another kind goes first.
  const mirror: MirrorRun = {
    command: 'get',
    trees: options.delete === true ? trees : [],
    excluded,
    output,
    dryRun,
    ignoreExisting: options.ignoreExisting === true,
  };
  const prepared = await prepareMirror(mirror, distinct, failures);
  warnOfUnmatchedExcludes(excluded, remotes, (message) => output.warning(message));
  if ('refused' in prepared) return [...passedOver, ...prepared.refused];
  const { replaced } = prepared;
  // Made once the run is not refused either: a refused --delete run leaves nothing new behind.
  if (!dryRun && (jobs.length > 0 || localDirs.length > 0)) {
    const made = await resolveTarget(true);
    // What planning failed or passed over stays as it was said (a skipped FIFO's line had its
    // result missing); what it planned fails with the destination.
    if ('failed' in made) {
      const unfetched = distinct.map((job) => failedOutcome(job.local, job.remote, made.failed));
      return [...passedOver, ...failures, ...replaced, ...unfetched];
    }
  }

  // In order: each directory after its parent. What is inside one that could not be made fails
  // with it, in the JSON results and the count, without a line of its own for each.
  const unmade: Array<{ dir: string; error: unknown }> = [];
  const made: LocalDir[] = [];
  const unmadeAbove = (local: string) => unmade.find(({ dir }) => local.startsWith(dir + path.sep));
  // A dry run makes none, and looks for what the real run would refuse: links, and files where
  // directories go (with --delete, what it would have replaced by now is not refused). It said
  // "would get" of a tree whose directory stood as a local file, and the run then failed.
  const looksForRefusals = !(dryRun && options.delete === true);
  for (const dir of looksForRefusals ? localDirs : []) {
    const above = unmadeAbove(dir.local);
    if (above !== undefined) {
      failedDirectories++;
      failures.push(failedOutcome(dir.local, dir.remote, above.error));
      continue;
    }
    await (dir.withinTree ? refuseLocalLink(dir.local) : Promise.resolve())
      .then(() =>
        dryRun
          ? refuseFileInTheWay(dir.local)
          : makeLocalDir(dir.local, options.perms ? dir.mode : undefined),
      )
      .then(
        () => made.push(dir),
        (error: unknown) => {
          failDirectory(dir.local, dir.remote, error);
          unmade.push({ dir: dir.local, error });
        },
      );
  }
  const runnable: TransferJob[] = [];
  for (const job of distinct) {
    const above = unmadeAbove(job.local);
    if (above === undefined) runnable.push(job);
    else failures.push(failedOutcome(job.local, job.remote, above.error));
  }

  if (dryRun) {
    const transfers = {
      command: 'get' as const,
      jobs: runnable,
      parallel,
      output,
      connection,
      retries: options.retries,
      ...skip,
    };
    return previewRun(mirror, transfers, { passedOver, failures, replaced });
  }

  const localRooms = new LocalRooms();
  const alone =
    remotes.length === 1 &&
    options.recursive !== true &&
    target.kind === 'into' &&
    target.argument === undefined;
  // Ctrl-C: the directories are not given their times either, as put's are not (half filled).
  let interrupted = false;
  // A closed pipe (`| head`) on stdout ends the process quietly (main.ts).
  const outcomes = await runTransfers({
    command: 'get',
    jobs: runnable,
    parallel,
    output,
    connection,
    startedAt: connection.startedAt,
    retries: options.retries,
    failedBeforeStart: failures.length - failedDirectories,
    failedDirectoriesBeforeStart: failedDirectories,
    onInterrupted: () => {
      interrupted = true;
    },
    ...(treeMadeAs !== undefined ? { treeMadeAs } : {}),
    ...skip,
    // get -c refused the local file (it differs from the server's, or is larger): left as it was.
    // Not for a download that failed its final check: there may be no local file at all (what
    // was continued was a kept partial, or nothing), and without -c it would fail the same way.
    failureHint: (error, job) =>
      error instanceof LocalPartialRefusedError
        ? 'remove the local file, or get without -c to replace it'
        : error instanceof LocalRoomRefusedError && error.leftBytes > 0
          ? `an earlier download of it left ${formatBytes(error.leftBytes)} beside it: get -c continues from there`
          : isLocalDirectoryInTheWay(error)
            ? directoryInTheWayHint('get', job.local, alone)
            : undefined,
    // Only a target the user named: a FIFO, device or link to one that a tree walk meets is
    // replaced, as rsync replaces it, not waited on or written through out of the tree.
    writesInPlace: (job) => (job.inTree === true ? Promise.resolve(false) : isSpecialFile(job.local)),
    perform: async (job, client, transferOptions) => {
      // A fresh download into a file needs its whole size beside the old file until the rename;
      // one that continues what is there (-c, a retry) needs less, and is not held to it.
      const fresh =
        !job.standardStream &&
        job.size !== undefined &&
        options.continue !== true &&
        transferOptions.resumeKept !== true &&
        transferOptions.writesInPlace !== true;
      const room = fresh ? await localRooms.admit(job.local, job.size!) : undefined;
      let counted = 0;
      const onProgress: TransferOptions['onProgress'] =
        room === undefined
          ? transferOptions.onProgress
          : (bytesDone, bytesTotal) => {
              room.wrote(bytesDone - counted);
              counted = bytesDone;
              transferOptions.onProgress?.(bytesDone, bytesTotal);
            };
      const result = await client
        .get(job.remote, job.standardStream ? process.stdout : job.local, {
          ...transferOptions,
          ...(onProgress === undefined ? {} : { onProgress }),
          continue: options.continue === true,
          // A sync continued after an interruption (`get -r -c`): a file that changed on the server
          // since is downloaded afresh, not refused; a file the user named is left to them.
          replaceDiffering: job.inTree === true,
          keepTimes: options.times,
          keepModes: options.perms,
        })
        .finally(() => room?.release());
      const { size: bytes, algorithm, digest, continuedFrom } = result;
      return { bytes, algorithm, digest, ...(continuedFrom === undefined ? {} : { continuedFrom }) };
    },
  });
  // Before the directories' times: removing from a directory changes its time.
  const failed = [...failures, ...replaced, ...outcomes].filter((outcome) => !outcome.ok).length;
  // Ended from here on (Ctrl-C during --delete's removals or the directories' times), --json
  // says what was done, not every file failed.
  const done = [...passedOver, ...failures, ...replaced, ...outcomes];
  const removed: TransferOutcome[] = [];
  output.setJsonFailureShape(() => [...done, ...removed]);
  await removeExtraneous({ ...mirror, failed, interrupted }, removed);
  if (options.times && !interrupted) await keepLocalDirectoryTimes(made);
  return [...done, ...removed];
}

/** A dry run's look at a directory get would make: what is there must be one (or nothing yet). */
async function refuseFileInTheWay(local: string): Promise<void> {
  const found = await inspectLocalIfExists(local);
  if (found !== undefined && found.kind !== 'dir')
    throw new MuxftpError('LOCAL_IO_ERROR', `not a directory: ${local}`);
}

type FailPlanned = (local: string, remote: string, error: unknown, hint?: string) => void;

/**
 * A symbolic link where the tree has a directory is not written through (nor by rsync without
 * --keep-dirlinks, which replaces it): what the server sends would land wherever it leads,
 * outside the tree. `--delete` replaces it with a directory; without it, what goes there fails.
 */
async function refuseLocalLink(local: string): Promise<void> {
  const entry = await waitedOn(`lstat ${local}`, lstat(local)).catch(() => undefined);
  if (entry?.isSymbolicLink() === true)
    throw new MuxftpError(
      'LOCAL_IO_ERROR',
      `${local} is a symbolic link where the tree has a directory: not written through`,
    );
}

/** A local directory a tree download makes, and its remote one's modification time. */
interface LocalDir {
  local: string;
  remote: string;
  mtime: number;
  /** Its permission bits, from a server that lists them. */
  mode: number | undefined;
  /** Below the tree's root (which the command line named): never written through a link. */
  withinTree?: true;
}

/**
 * Looks up each remote, with a stat or, for many in one directory, one listing of it (which tells
 * files from directories, gives sizes for the total bar, and fails a missing file before anything
 * is created locally), walks directories for -r, and turns it all into downloads and the local
 * directories they need; `fail` gets the rest.
 */
async function planDownloads(
  client: Client,
  remotes: string[],
  target: ResolvedGetTarget,
  recursive: boolean,
  {
    limit,
    fail,
    failDirectory,
    passOver,
    namedAsDirectory,
    excluded,
    listed,
    deleting,
    warn,
  }: {
    limit: ConcurrencyLimit;
    fail: FailPlanned;
    /** `fail` for a directory (not listed, a link to one not followed): the summary counts it apart. */
    failDirectory: FailPlanned;
    /** An entry of a tree with nothing to fetch, and why. */
    passOver: (local: string, remote: string, reason: string) => void;
    namedAsDirectory: ReadonlySet<string>;
    excluded: Excludes | undefined;
    /** Files a listing already described (a pattern's matches): taken as they are, not stat'ed. */
    listed: ReadonlyMap<string, WireEntry>;
    /** --delete: a tree given whose own name a rule leaves out refuses the run (excludes.ts). */
    deleting: boolean;
    warn: (message: string) => void;
  },
): Promise<{ jobs: TransferJob[]; localDirs: LocalDir[]; trees: MirroredTree[] }> {
  const jobs: TransferJob[] = [];
  const localDirs: LocalDir[] = [];
  const trees: MirroredTree[] = [];
  // Each tree walked, by its source and destination.
  const walkedTrees = new Set<string>();
  // Many files named in one directory: one listing of it tells them all (a stat is a request each).
  const crowded = new CrowdedDirectories(remotes.filter((remote) => !listed.has(remote)));
  // At most -j of them wait in line (ConcurrencyLimit.map): a pattern may match thousands.
  const stats = await limit.map(
    remotes,
    async (remote): Promise<{ entry: WireEntry } | { error: unknown } | { unlisted: true }> => {
      const known = listed.get(remote);
      if (known?.type === 'file') return { entry: known };
      try {
        const inListing = await crowded.lookUp(client, remote);
        // What else a listing shows (a name not there, a link leading out) stat says best.
        if (inListing?.type === 'file' || inListing?.type === 'dir') return { entry: inListing };
        return { entry: await client.stat(remote) };
      } catch (error) {
        // An account that may read but not list: the get asks only read, and the server answers
        // it (a missing file, a directory) as it would this look. -r walks, which takes list.
        if (!recursive && !namedAsDirectory.has(remote) && cannotLook(client, error))
          return { unlisted: true };
        return { error };
      }
    },
  );
  // Before a tree is walked: with --delete, a run refused here has done nothing. `g/src/` is
  // copied as `src` (no rsync contents), so named; `g/src/.` (kept in `remote`) is not.
  const given = remotes.flatMap((remote, index) => {
    const result = stats[index]!;
    if (!('entry' in result) || (result.entry.type !== 'file' && result.entry.type !== 'dir')) return [];
    return [{ argument: remote, tree: result.entry.type === 'dir' }];
  });
  refuseOrWarnOfExcludedSources(excluded, given, deleting, warn);
  for (const [index, remote] of remotes.entries()) {
    const result = stats[index]!;
    const local = localPathFor(target, remote);
    const localOrEmpty = typeof local === 'string' ? local : '';
    const isDirectory = (): MuxftpError =>
      new MuxftpError('IS_A_DIRECTORY', `is a directory: ${remote || '/'}`);
    if ('error' in result) {
      fail(localOrEmpty, remote, result.error);
    } else if ('unlisted' in result) {
      if (typeof local !== 'string') fail('', remote, local);
      else jobs.push({ local, remote, size: undefined, standardStream: target.kind === 'stdout' });
    } else if (result.entry.type !== 'dir' && namedAsDirectory.has(remote)) {
      fail(localOrEmpty, remote, new MuxftpError('NOT_A_DIRECTORY', `not a directory: ${remote}`));
    } else if (result.entry.type === 'dir' && !recursive) {
      fail(localOrEmpty, remote, isDirectory(), 'add -r to download directories');
    } else if (result.entry.type === 'dir' && target.kind === 'stdout') {
      fail('-', remote, isDirectory(), 'only a file can go to stdout');
    } else if (typeof local !== 'string') {
      fail('', remote, local);
    } else if (result.entry.type === 'file') {
      jobs.push({
        local,
        remote,
        size: result.entry.size,
        standardStream: target.kind === 'stdout',
        remoteMtime: result.entry.mtime,
        remoteMode: result.entry.mode,
      });
    } else if (result.entry.type === 'dir') {
      // The same tree named twice (`get -r 'a*' 'ab'`, both matching ab) is fetched once, as a
      // file named twice is (withoutSharedDestinations): walked twice, --delete refused the run,
      // saying the two would delete what each other sent.
      const walked = `${normalRemote(remote)}\0${path.resolve(local)}`;
      if (walkedTrees.has(walked)) continue;
      walkedTrees.add(walked);
      const tree = await walkRemoteTree(client, remote, limit, Number.POSITIVE_INFINITY, excluded);
      const localFor = (relative: string): string => path.join(local, ...relative.split('/'));
      localDirs.push({ local, remote, mtime: result.entry.mtime, mode: result.entry.mode });
      const dirEntries = new Map(tree.entries.map(({ relative, entry }) => [relative, entry]));
      for (const dir of tree.dirs) {
        const { mtime, mode } = dirEntries.get(dir)!;
        localDirs.push({
          local: localFor(dir),
          remote: joinRemote(remote, dir),
          mtime,
          mode,
          withinTree: true,
        });
      }
      for (const file of tree.files) {
        jobs.push({
          local: localFor(file.relative),
          remote: file.remote,
          size: file.size,
          standardStream: false,
          remoteMtime: file.mtime,
          remoteMode: file.mode,
          inTree: true,
        });
      }
      for (const problem of tree.problems)
        (problem.directory === true ? failDirectory : fail)(
          problem.relative === undefined ? '' : localFor(problem.relative),
          problem.remote,
          problem.error,
        );
      for (const entry of tree.skipped) passOver(localFor(entry.relative), entry.remote, entry.reason);
      const present = new Map<string, EntryKind>(
        tree.entries.map((listed) => [listed.relative, listed.entry.type]),
      );
      trees.push({ destination: local, present, excludedInSource: tree.excluded });
    } else {
      fail(local, remote, new MuxftpError('UNSUPPORTED', `not a regular file: ${remote}`));
    }
  }
  return { jobs, localDirs, trees };
}

/** A download refused because its local target is a directory (EISDIR): `get f` with a directory ./f. */
function isLocalDirectoryInTheWay(error: unknown): boolean {
  return (
    error instanceof MuxftpError &&
    error.code === 'LOCAL_IO_ERROR' &&
    (error.cause as NodeJS.ErrnoException | undefined)?.code === 'EISDIR'
  );
}
