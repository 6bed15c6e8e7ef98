/**
 * --skip-identical: is the copy already at the destination the same bytes as the source? Sizes are
 * compared first (a stat each side, nothing read); only when they match are the content digests,
 * the server's (from its digest cache, or computed there) and the local file's, computed at once
 * and compared. Times are never trusted: a copy with the same size and time but other bytes is sent.
 *
 * --skip-unchanged: rsync's quick check instead, for trees copied with their times kept (put and
 * get keep them): the same size and modification time, and nothing is read. With both, the quick
 * check first, the content when it does not settle it.
 *
 * --ignore-existing: rsync's, any file at the destination is left as it is, whatever its size,
 * time or bytes; nothing is read, and it keeps its own time and bits. A directory (or anything
 * else not a file) where a file goes is no copy of it: that transfer goes ahead and fails as it
 * would without the flag, or --delete replaces what is in the way first, dry run or not alike.
 * A file it cannot look for (a stat refused) fails unsent (TransferRun.neverReplace).
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { Client, WireEntry } from '../client/client.js';
import { removeLeftBehind } from '../client/downloadsLeftBehind.js';
import { localFileDigest } from '../client/localDigests.js';
import { keptPartialPath, removeStaleKeptPartial } from '../client/sinks.js';
import { lessUmask, PERMISSION_BITS, processUmask, SERVER_OWN_FILE_BITS } from '../shared/fileModes.js';
import { fileTime } from '../shared/fileTimes.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { isUnknownOperation } from '../shared/protocol/operations.js';
import { CrowdedDirectories } from './crowdedDirectories.js';
import { inspectLocalIfExists, statLocal } from './localFiles.js';
import { isNoSuchPath } from './remoteGlob.js';
import type { SkippedDone, TransferDone, TransferJob, TransferRun } from './transferRunner.js';

/**
 * put: the remote file `job.remote` holds the bytes of the local `job.local`. Keeping times: then
 * it gets the local file's time too, as rsync -t does, when it has another (else it differs by
 * its time for ever, and every --skip-unchanged run hashes it again; setting one that is equal
 * would move the file's ctime, and the server's digest cache would hash it again instead). The
 * time is the one seen before hashing: a file changed meanwhile must not lend its new time to
 * the old bytes. Keeping modes: its bits too (keepRemoteBits).
 */
async function remoteCopyIsIdentical(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
  keep: { times?: boolean; modes?: boolean; partials?: boolean },
  destinations: RemoteDestinations,
  kept: KeptUploads,
): Promise<TransferDone | undefined> {
  const [remote, local] = await Promise.all([destinations.entry(client, job.remote), statLocal(job.local)]);
  if (remote?.type !== 'file' || remote.size !== job.size) return undefined;
  const same = await sameDigests(job, client, signal);
  if (same === undefined) return undefined;
  if (keep.partials !== true) await dropKeptUpload(job, client, signal, kept);
  // Only onto the file compared: one another run put there since keeps its own time and bits.
  let compared: WireEntry | undefined = remote;
  if (keep.times === true && !sameTime(remote.mtime, local.mtimeMs))
    compared = await client
      .setModifiedTime(job.remote, local.mtimeMs, { ifUnchanged: { size: remote.size, mtime: remote.mtime } })
      .then(
        // Not given the time: it is another file now.
        (entry) => (sameTime(entry.mtime, local.mtimeMs) ? entry : undefined),
        () => remote, // a server from before utime
      );
  if (keep.modes === true && compared !== undefined) await keepRemoteBits(client, job, compared, local.mode);
  return same;
}

/**
 * put: the remote copy is whole, so what the server kept of an interrupted upload of this file
 * (put -c would continue it) is stale, and dropped, as a put that succeeds drops it (get's skip
 * removes what a failed get kept, likewise): else it held the server's disk and the account's
 * quota until its retention ran out. Only this file version's (its key), never what an upload
 * writes now; best effort: a server from before the request keeps it, a refusal changes nothing.
 */
async function dropKeptUpload(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
  kept: KeptUploads,
): Promise<void> {
  // A file under one block never has anything kept: no stat of it for a tree of small files.
  if (job.size !== undefined && job.size < INTEGRITY_BLOCK_BYTES) return;
  if (!(await kept.mayHold(client, signal))) return;
  await client.dropPartial(job.remote, job.local, { signal }).catch(() => {});
}

/**
 * put: whether the account's home may hold kept uploads for a skip to drop, asked once per
 * connection (`space`: its `keptBytes`). Most of the time none is kept, and a tree of many large
 * files skipped (`put -r --skip-unchanged`, which otherwise only lists) made one round trip each
 * for nothing. A server that does not say (no `keptBytes`, `space` refused) is asked per file.
 */
class KeptUploads {
  readonly #answers = new WeakMap<Client, Promise<boolean>>();

  mayHold(client: Client, signal: AbortSignal): Promise<boolean> {
    // A server that takes no drop is not asked at all (dropPartial sends nothing to it either).
    // Nor for an account that may not write: dropPartial does not ask it (no space asked either).
    const may = client.permissions;
    if (client.serverInfo.partialDrop !== true || (may !== undefined && !may.includes('write')))
      return Promise.resolve(false);
    let answer = this.#answers.get(client);
    if (answer === undefined) {
      // `space` needs the list permission: an account without it is not refused (and logged).
      const lists = may?.includes('list') ?? true;
      answer = !lists
        ? Promise.resolve(true)
        : client.space({ signal }).then(
            (report) => report.disk?.keptBytes !== 0,
            () => true,
          );
      this.#answers.set(client, answer);
    }
    return answer;
  }
}

/**
 * put: a skipped remote copy gets the local file's bits when an upload would have given it
 * others: the server says its umask in WELCOME (one that does not is left be, as is one from
 * before chmod). Setting equal bits would be a request in vain.
 */
async function keepRemoteBits(client: Client, job: TransferJob, remote: WireEntry, localMode: number) {
  const umask = client.serverInfo.umask;
  if (umask === undefined || remote.mode === undefined || cannotSetBits.has(client)) return;
  const bits = localMode & PERMISSION_BITS;
  if (remote.mode === (lessUmask(bits, umask) | SERVER_OWN_FILE_BITS)) return;
  const ifUnchanged = { size: remote.size, mtime: remote.mtime };
  await client.setPermissions(job.remote, bits, { ifUnchanged }).catch((error: unknown) => {
    // A server from before chmod: not asked again on this connection (one refusal of a path, a
    // link there say, is that path's alone).
    if (isUnknownOperation(error)) cannotSetBits.add(client);
  });
}

/** Connections whose server does not know chmod. */
const cannotSetBits = new WeakSet<Client>();

/**
 * get: the local file `job.local` holds the bytes of the remote `job.remote`. Then what a failed
 * get kept of it for get -c (or a killed one left) is stale, and removed, as a download that
 * succeeds removes it; keeping
 * times, it gets the remote time when it has another (as for put), keeping modes the remote bits
 * (localBitsToSet) — not through a symbolic link, whose target may be anywhere.
 */
async function localCopyIsIdentical(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
  keep: { times?: boolean; modes?: boolean; partials?: boolean; unsized?: boolean } = {},
): Promise<TransferDone | undefined> {
  const local = await statLocal(job.local);
  if (!local.isFile()) return undefined;
  // A size unknown (an account without list: no look before the get) is the digests' to compare.
  if (job.size === undefined ? keep.unsized !== true : local.size !== job.size) return undefined;
  const same = await sameDigests(job, client, signal);
  if (same === undefined) return undefined;
  if (keep.partials !== true) {
    await removeStaleKeptPartial(keptPartialPath(job.local));
    // And what a killed get of it left (get -c, which now asks this first, took and removed it).
    await removeLeftBehind(keptPartialPath(job.local));
  }
  const remoteMtime = job.remoteMtime;
  const retime = keep.times === true && remoteMtime !== undefined && !sameTime(local.mtimeMs, remoteMtime);
  const mode = keep.modes === true ? localBitsToSet(job, local.mode) : undefined;
  if (retime || mode !== undefined)
    await changeLocalCopy(job.local, local, { mode, mtimeMs: retime ? remoteMtime : undefined });
  return same;
}

/**
 * get: the bits a skipped local copy is given, as a download would give them (the remote file's
 * less the umask); undefined when it has them, or the server lists none.
 */
function localBitsToSet(job: TransferJob, localMode: number): number | undefined {
  if (job.remoteMode === undefined) return undefined;
  const wanted = lessUmask(job.remoteMode, processUmask() ?? 0o022);
  return (localMode & PERMISSION_BITS) === wanted ? undefined : wanted;
}

/**
 * Gives a skipped local copy the remote bits or time, best effort: through a descriptor opened
 * without following a last-name link (whose target may be anywhere) nor waiting on a FIFO, and
 * only while it is the file that was compared (the same device and inode: a link swapped in
 * since is not followed).
 */
async function changeLocalCopy(
  path: string,
  compared: Stats,
  change: { mode?: number | undefined; mtimeMs?: number | undefined },
): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const now = await handle.stat();
    if (now.dev !== compared.dev || now.ino !== compared.ino) return;
    if (change.mode !== undefined) await handle.chmod(change.mode);
    if (change.mtimeMs !== undefined) await handle.utimes(new Date(), fileTime(change.mtimeMs));
  } catch {
    // A link, gone, or refused: it keeps what it has.
  } finally {
    await handle?.close().catch(() => {});
  }
}

/**
 * Both digests, compared. Ctrl-C cancels both at once (the server stops hashing its copy, the
 * local file is not read to its end); the transfer then fails as cancelled.
 */
async function sameDigests(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
): Promise<TransferDone | undefined> {
  // A refused digest (no read permission, say) also stops the local hashing: it would be in vain.
  // One controller for both causes, its listener on the command's signal removed after: an
  // AbortSignal.any per file stays tied to that long-lived signal (node keeps its dependents).
  const stopLocal = new AbortController();
  const onCommandAbort = (): void => stopLocal.abort(signal.reason);
  if (signal.aborted) onCommandAbort();
  else signal.addEventListener('abort', onCommandAbort, { once: true });
  let theirs: Awaited<ReturnType<Client['digest']>>;
  let mine: Awaited<ReturnType<typeof localFileDigest>>;
  try {
    [theirs, mine] = await Promise.all([
      client.digest(job.remote, client.integrity, { signal }).catch((error: unknown) => {
        stopLocal.abort();
        throw error;
      }),
      localFileDigest(job.local, client.integrity, stopLocal.signal),
    ]);
  } finally {
    signal.removeEventListener('abort', onCommandAbort);
  }
  if (mine === undefined || mine.size !== theirs.entry.size) return undefined;
  const digest = mine.digest.digest.toString('hex');
  if (theirs.algorithm !== mine.digest.algorithm || theirs.digest !== digest) return undefined;
  return { bytes: mine.size, algorithm: theirs.algorithm, digest };
}

/**
 * Modification times equal to the millisecond the protocol carries: a server rounds to it, and a
 * tool that set a time from a JavaScript Date (or `touch -d` with milliseconds) cut it, so the two
 * sides of one time may be a millisecond apart.
 */
const sameTime = (a: number, b: number): boolean => Math.abs(a - b) <= 1;

/**
 * put --skip-unchanged: the remote file has the local one's size and modification time. With
 * `keepModes` it gets the local bits when it has others, as an identical copy does.
 */
async function remoteCopyIsUnchanged(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
  keepModes: boolean,
  keepPartials: boolean,
  destinations: RemoteDestinations,
  kept: KeptUploads,
): Promise<SkippedDone | undefined> {
  const [remote, local] = await Promise.all([destinations.entry(client, job.remote), statLocal(job.local)]);
  if (remote?.type !== 'file' || !local.isFile() || remote.size !== local.size) return undefined;
  if (!sameTime(remote.mtime, local.mtimeMs)) return undefined;
  // As for an identical copy: what an interrupted put of it kept on the server is stale.
  if (!keepPartials) await dropKeptUpload(job, client, signal, kept);
  if (keepModes) await keepRemoteBits(client, job, remote, local.mode);
  return { bytes: local.size };
}

/**
 * get --skip-unchanged: the local file has the remote one's size and time, as listed. With
 * `keepModes` it gets the remote bits when it has others, as an identical copy does.
 */
async function localCopyIsUnchanged(
  job: TransferJob,
  keepModes = false,
  keepPartials = false,
): Promise<SkippedDone | undefined> {
  const local = await statLocal(job.local);
  if (!local.isFile() || local.size !== job.size || job.remoteMtime === undefined) return undefined;
  if (!sameTime(local.mtimeMs, job.remoteMtime)) return undefined;
  // As for an identical copy: what a failed get kept of it, or a killed one left, is stale.
  if (!keepPartials) {
    await removeStaleKeptPartial(keptPartialPath(job.local));
    await removeLeftBehind(keptPartialPath(job.local));
  }
  const mode = keepModes ? localBitsToSet(job, local.mode) : undefined;
  if (mode !== undefined) await changeLocalCopy(job.local, local, { mode });
  return { bytes: local.size };
}

/** put --ignore-existing: the remote copy, from its directory's listing when one is asked. */
async function remoteCopyExists(
  job: TransferJob,
  client: Client,
  destinations: RemoteDestinations,
): Promise<SkippedDone | undefined> {
  const remote = await destinations.entry(client, job.remote);
  return remote?.type === 'file' ? { bytes: remote.size } : undefined;
}

/**
 * get --ignore-existing: the local copy (or a link to one). A file where a directory of its path
 * goes holds none (a dry run's look: --delete removes it before a real run's).
 */
async function localCopyExists(job: TransferJob): Promise<SkippedDone | undefined> {
  const local = await inspectLocalIfExists(job.local, 'loop').catch((error: unknown) => {
    if ((error as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOTDIR') return undefined;
    throw error;
  });
  return local?.kind === 'file' ? { bytes: local.size } : undefined;
}

/**
 * put: what is at each job's remote path, from a listing of a directory many of the jobs go into
 * (cli/crowdedDirectories.ts), else from a stat, each asked once a run: with both skip flags,
 * both checks look.
 */
class RemoteDestinations {
  readonly #crowded: CrowdedDirectories;
  readonly #stats = new Map<string, Promise<WireEntry | undefined>>();

  constructor(jobs: readonly TransferJob[]) {
    this.#crowded = new CrowdedDirectories(
      jobs.filter((job) => !job.standardStream).map((job) => job.remote),
    );
  }

  /**
   * The entry at `remote`; undefined when there is none. Asked with stat, rejects as stat does (a
   * link out of the root, say); a listing shows that one as `other`.
   */
  async entry(client: Client, remote: string): Promise<WireEntry | undefined> {
    const listed = await this.#crowded.lookUp(client, remote);
    if (listed !== undefined) return listed ?? undefined;
    let answer = this.#stats.get(remote);
    if (answer === undefined) {
      answer = client.stat(remote).catch((error: unknown) => {
        // Nor where a file stands in its path (a dry run's look: --delete removes that file
        // before a real run's): --ignore-existing said it could not tell, and failed the file.
        if (isNoSuchPath(error)) return undefined;
        // Not kept: asked again (on a new connection, say), it may answer.
        this.#stats.delete(remote);
        throw error;
      });
      this.#stats.set(remote, answer);
    }
    return answer;
  }
}

interface SkipFlags {
  skipIdentical?: boolean;
  skipUnchanged?: boolean;
  ignoreExisting?: boolean;
  times?: boolean;
  perms?: boolean;
  dryRun?: boolean;
  /**
   * get: a file whose size is not known (an account without list) is compared by its digests
   * still; not for -c alone, whose check is not to make the server hash a whole file first.
   */
  compareUnsized?: boolean;
}

/**
 * What runTransfers asks of each file's destination before sending it, as put and get pass it on:
 * nothing without the flags; with --ignore-existing, a file whose destination cannot be looked at
 * fails, never replacing one. `jobs`: put's, whose destinations it looks up a directory at a time.
 */
export function destinationSkips(
  command: 'put' | 'get',
  options: SkipFlags,
  jobs: readonly TransferJob[] = [],
): Pick<TransferRun, 'identicalAtDestination' | 'neverReplace'> {
  const check = destinationCheck(command, options, jobs);
  return check === undefined
    ? {}
    : { identicalAtDestination: check, neverReplace: options.ignoreExisting === true };
}

type DestinationCheck = (
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
) => Promise<SkippedDone | undefined>;

/**
 * The check --skip-unchanged, --skip-identical or --ignore-existing ask for (undefined: none);
 * put or get's. With --dry-run it only looks: a skipped copy keeps its time and bits, and what a
 * failed get kept. --ignore-existing comes alone: checkTransferOptions refuses it with the other
 * flags, and put -c's content check is left out, so a file there is not read (-c then continues
 * only what is not there).
 */
function destinationCheck(
  command: 'put' | 'get',
  options: SkipFlags,
  jobs: readonly TransferJob[],
): DestinationCheck | undefined {
  const looksOnly = options.dryRun === true;
  const destinations = new RemoteDestinations(command === 'put' ? jobs : []);
  const kept = new KeptUploads();
  if (options.ignoreExisting === true)
    return command === 'put'
      ? (job, client) => remoteCopyExists(job, client, destinations)
      : (job) => localCopyExists(job);
  const modes = options.perms === true && !looksOnly;
  const quick: DestinationCheck | undefined =
    options.skipUnchanged !== true
      ? undefined
      : command === 'put'
        ? (job, client, signal) =>
            remoteCopyIsUnchanged(job, client, signal, modes, looksOnly, destinations, kept)
        : (job) => localCopyIsUnchanged(job, modes, looksOnly);
  const keep = {
    times: options.times === true && !looksOnly,
    modes,
    partials: looksOnly,
    unsized: options.compareUnsized === true,
  };
  const content: DestinationCheck | undefined =
    options.skipIdentical !== true
      ? undefined
      : command === 'put'
        ? (job, client, signal) => remoteCopyIsIdentical(job, client, signal, keep, destinations, kept)
        : (job, client, signal) => localCopyIsIdentical(job, client, signal, keep);
  if (quick === undefined || content === undefined) return quick ?? content;
  return async (job, client, signal) => (await quick(job, client, signal)) ?? content(job, client, signal);
}
