/**
 * One `muxftp serve` per root: a lock file in the served directory naming the process that
 * serves it (as PostgreSQL's postmaster.pid), so a second server started on the same root is
 * refused instead of running beside the first.
 *
 * Why: a server's start-up sweep removes its own crashed uploads' temporary files, and on a
 * shared root those were the first server's uploads in flight (they failed); two servers also
 * keep separate locks and could both continue one kept partial upload. A lock left by a process
 * that is gone (killed, the machine restarted, its pid reused since) is taken over; one naming a
 * process on another host cannot be checked from here and is honoured, with the way out said.
 *
 * Heartbeat: the holder touches its lock every `heartbeatMs` and says so in it. A pid means a
 * process here only on this host, in this pid namespace and since this boot: containers sharing
 * a hostname (Docker --uts=host, Kubernetes hostNetwork) each have their own pids, and cloned VMs
 * one name, so a live server's pid looked dead from there and its lock was taken over (review K,
 * K3). Such a lock is watched for a few heartbeats instead: one that did not change is stale. Its
 * content and mtime are compared with themselves over time, never with this machine's clock (an
 * NFS server's may be off). A lock without `heartbeatMs` (an older muxftp) is judged as before.
 *
 * The file is written whole before it takes the name (a hard link: atomic and exclusive), so a
 * reader never sees half of one. The name is reserved (`.muxftp-`): clients neither see nor touch it.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  unlinkSync,
} from 'node:fs';
import {
  type FileHandle,
  link,
  lstat,
  lutimes,
  open,
  readdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../shared/defaults.js';
import { machineTag } from '../shared/hostTag.js';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';

export { SERVED_ROOT_LOCK_NAME };

/** Who holds a root: what the lock file says. */
export interface ServedRootHolder {
  pid: number;
  host: string;
  /** When it started serving (ISO 8601). */
  since: string;
  /** The kernel's boot id when it was written (Linux): a lock from before a reboot is stale. */
  bootId?: string;
  /** The process's start time in clock ticks since boot (Linux): tells a reused pid apart. */
  startTicks?: string;
  /** Its pid namespace (Linux, `pid:[…]`): a pid means a process here only within it. */
  pidNamespace?: string;
  /**
   * Its machine (shared/hostTag.ts machineTag: a hash of its machine id), where it has one: another
   * machine of this hostname, told from this one restarted (another boot id either way).
   */
  machine?: string;
  /** It touches the lock this often (ms): a lock that stops changing is stale, wherever it was written. */
  heartbeatMs?: number;
}

/** The root is served by a live process (or one on another host, which cannot be checked). */
export class RootInUseError extends Error {
  readonly holder: ServedRootHolder;
  readonly lockPath: string;
  /** The holder's root is the one asked for (false: a directory above it). */
  readonly sameRoot: boolean;

  constructor(root: string, lockPath: string, holder: ServedRootHolder, sameRoot: boolean) {
    const who = pidIsOurs(holder)
      ? `pid ${holder.pid}, since ${holder.since}`
      : holder.heartbeatMs !== undefined
        ? `pid ${holder.pid} on host ${holder.host}${holder.host === hostname() ? ' (another container or machine of this name)' : ''}, since ${holder.since}: its lock is kept fresh`
        : `pid ${holder.pid} on host ${holder.host}, since ${holder.since}: it cannot be checked from here`;
    const what = sameRoot ? root : `${dirname(lockPath)}, which holds ${root}`;
    super(
      `${what} is already served by muxftp (${who}); stop that server first, or remove ${lockPath} if it is not running`,
    );
    this.name = 'RootInUseError';
    this.holder = holder;
    this.lockPath = lockPath;
    this.sameRoot = sameRoot;
  }
}

/** What a lock's holder is told about its heartbeat; neither stops the server. */
export interface HeartbeatListeners {
  /** A refresh failed (an I/O error): tried again at the next beat. */
  onRefreshFailed?: (error: Error) => void;
  /** The lock is no longer this process's (taken over by another): no more refreshes. */
  onLost?: () => void;
  /** The lock was removed while this process serves (by hand, say): made again, beats go on. */
  onRecreated?: () => void;
}

/** A root this process holds; release() once the server has stopped. */
export class ServedRootLock {
  readonly path: string;
  readonly #content: string;
  readonly #heartbeatMs: number;
  readonly #listeners: HeartbeatListeners;
  #released = false;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> = Promise.resolve();
  readonly #onExit = (): void => this.releaseSync();

  constructor(path: string, content: string, heartbeatMs: number, listeners: HeartbeatListeners = {}) {
    this.path = path;
    this.#content = content;
    this.#heartbeatMs = heartbeatMs;
    this.#listeners = listeners;
    // An exit that skips release() (a second signal: exit now) still gives the root back.
    process.once('exit', this.#onExit);
    this.#schedule();
  }

  /** The next beat, once this one is done: a refresh hung on a slow NFS server never piles up. */
  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#refreshing = this.#refresh();
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  async #refresh(): Promise<void> {
    try {
      // Read anew (on NFS an open revalidates): only a lock still ours is touched.
      const now = await readOwnLock(this.path);
      if (now !== this.#content) return this.#lost();
      const at = new Date();
      // Never through a link: one swapped in after the read (a host user who may write the root)
      // had the server set the time of any file its account may change.
      await lutimes(this.path, at, at);
    } catch (error) {
      if (this.#released) return;
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#listeners.onRefreshFailed?.(error as Error);
      // Removed while this server runs (someone took it for a dead server's): made again, as it
      // was first, so a second server is still refused; unless another took its place meanwhile.
      else if (await this.#recreate()) this.#listeners.onRecreated?.();
      else return this.#lost();
    }
    if (!this.#released) this.#schedule();
  }

  /** The lock written again, exclusively (as lockServedRoot first wrote it); false if another's is there. */
  async #recreate(): Promise<boolean> {
    const staging = stagingPath(this.path);
    try {
      await writeStaging(staging, this.#content);
      await link(staging, this.path);
      return !this.#released;
    } catch {
      return false;
    } finally {
      await unlink(staging).catch(() => {});
    }
  }

  #lost(): void {
    if (!this.#released) this.#listeners.onLost?.();
  }

  #stopHeartbeat(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    process.off('exit', this.#onExit);
    this.#stopHeartbeat();
    await this.#refreshing;
    // Only while it is still ours: an operator may have removed it and started another server.
    const now = await readOwnLock(this.path).catch(() => undefined);
    if (now === this.#content) await unlink(this.path).catch(() => {});
  }

  releaseSync(): void {
    if (this.#released) return;
    this.#released = true;
    process.off('exit', this.#onExit);
    this.#stopHeartbeat();
    try {
      // Synchronous: an 'exit' handler's promises never settle.
      if (readOwnLockSync(this.path) === this.#content) unlinkSync(this.path);
    } catch {
      // Gone already, or never readable: nothing of ours to remove.
    }
  }
}

/** How the holder opens its lock: never through a link, never waiting for a FIFO's writer. */
const LOCK_READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * The holder's lock as text, undefined when it is no regular file. Opened without following a
 * link and without waiting for a FIFO's writer: a host user who may write the root swapped a FIFO
 * in for the lock, and the next beat's read waited in its open for ever, release() behind it (the
 * server never stopped), and the exit handler's read held the process.
 */
async function readOwnLock(path: string): Promise<string | undefined> {
  const handle = await open(path, LOCK_READ_FLAGS);
  try {
    return (await handle.stat()).isFile() ? await readLockHandle(handle) : undefined;
  } finally {
    await handle.close();
  }
}

/**
 * At most DEFAULTS.maxServedRootLockBytes and one byte of an open lock, as text. A 1.2 GB file a
 * host user who may write the root renamed over the lock was read whole at every beat (1.1 GB of
 * memory every 2 s, each failing "Invalid string length"); cut, it is no lock: it neither parses
 * nor equals one.
 */
async function readLockHandle(handle: FileHandle): Promise<string> {
  const buffer = Buffer.alloc(DEFAULTS.maxServedRootLockBytes + 1);
  let total = 0;
  while (total < buffer.length) {
    const { bytesRead } = await handle.read(buffer, total, buffer.length - total, total);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  return buffer.toString('utf8', 0, total);
}

/** readLockHandle, for an 'exit' handler. */
function readLockFdSync(fd: number): string {
  const buffer = Buffer.alloc(DEFAULTS.maxServedRootLockBytes + 1);
  let total = 0;
  while (total < buffer.length) {
    const bytesRead = readSync(fd, buffer, total, buffer.length - total, total);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  return buffer.toString('utf8', 0, total);
}

/**
 * How a starting server opens a lock (or a takeover mark) it finds: never waiting for a FIFO's
 * writer, which held `serve` at start for ever, and never through a link (no server's lock is
 * one): a host user who may write the root had the server open any file it may, a device too
 * (as root, /dev/watchdog is armed by its open).
 */
const START_READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The open refused a link under the name (O_NOFOLLOW: ELOOP; EMLINK on the BSDs). */
function isLink(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ELOOP' || code === 'EMLINK';
}

/**
 * The text of a lock or mark a starting server finds, undefined when it cannot be read (gone
 * meanwhile); '' for what is no regular file (a FIFO, a device or a link planted under the
 * name): no server's lock, so stale.
 */
async function readLockText(path: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, START_READ_FLAGS);
  } catch (error) {
    return isLink(error) ? '' : undefined;
  }
  try {
    return (await handle.stat()).isFile() ? await readLockHandle(handle) : '';
  } catch {
    return undefined;
  } finally {
    await handle.close().catch(() => {});
  }
}

/** readOwnLock, for an 'exit' handler. */
function readOwnLockSync(path: string): string | undefined {
  const fd = openSync(path, LOCK_READ_FLAGS);
  try {
    return fstatSync(fd).isFile() ? readLockFdSync(fd) : undefined;
  } finally {
    closeSync(fd);
  }
}

export interface LockServedRootOptions extends HeartbeatListeners {
  /** Ms after which a takeover mark is taken for a dead server's (default DEFAULTS.servedRootTakeoverMarkStaleMs). */
  takeoverMarkStaleMs?: number;
  /** Ms between the lock's refreshes (default DEFAULTS.servedRootLockHeartbeatMs; at most DEFAULTS.servedRootLockHeartbeatMaxMs). */
  heartbeatMs?: number;
  /** Called before a lock that cannot be checked from here is watched for `ms` to see whether it is alive. */
  onWait?: (holder: ServedRootHolder, ms: number) => void;
  /**
   * Called once the root is this process's after it removed a lock it judged stale: what that
   * lock said (undefined: it could not be read as one).
   */
  onTakeOver?: (holder: ServedRootHolder | undefined) => void;
}

/**
 * Takes `root` (a real path, no symlinks) for this process. Throws RootInUseError when a live
 * server holds it; returns undefined, with the reason, when no lock can be written there (a
 * read-only root: nothing can be uploaded or swept there either).
 */
export async function lockServedRoot(
  root: string,
  options: LockServedRootOptions = {},
): Promise<{ lock: ServedRootLock } | { lock: undefined; reason: string }> {
  const {
    takeoverMarkStaleMs = DEFAULTS.servedRootTakeoverMarkStaleMs,
    heartbeatMs = DEFAULTS.servedRootLockHeartbeatMs,
  } = options;
  if (!validHeartbeat(heartbeatMs)) {
    throw new RangeError(
      `heartbeatMs must be a whole number of ms from 1 to ${DEFAULTS.servedRootLockHeartbeatMaxMs}, not ${heartbeatMs}`,
    );
  }
  // Rounds enough to outwait a mark left by a server that died holding it.
  const attempts = Math.ceil((takeoverMarkStaleMs * 1.5) / TAKEOVER_WAIT_MS);
  const lockPath = join(root, SERVED_ROOT_LOCK_NAME);
  const holder: ServedRootHolder = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
  };
  const { bootId, startTicks } = processIdentity(process.pid);
  if (bootId !== undefined) holder.bootId = bootId;
  if (startTicks !== undefined) holder.startTicks = startTicks;
  const pidNamespace = ownPidNamespace();
  if (pidNamespace !== undefined) holder.pidNamespace = pidNamespace;
  const machine = machineTag();
  if (machine !== undefined) holder.machine = machine;
  holder.heartbeatMs = heartbeatMs;
  const content = `${JSON.stringify(holder)}\n`;
  // Written whole under a name of its own first (stagingPath), then linked as the lock.
  const staging = stagingPath(lockPath);
  try {
    await writeStaging(staging, content);
  } catch (error) {
    // No lock of its own can be written (a full disk, a read-only root), but a live server's lock
    // still refuses this one: its uploads in flight are not to be swept.
    await unlink(staging).catch(() => {});
    const text = await readLockText(lockPath);
    const existing = text === undefined ? undefined : parseHolder(text);
    if (
      existing !== undefined &&
      (await judge(lockPath, text as string, existing, options)).verdict === 'held'
    ) {
      throw new RootInUseError(root, lockPath, existing, true);
    }
    return { lock: undefined, reason: failureReason(error) };
  }
  try {
    // Rounds: a stale lock removed here may be taken by another server starting meanwhile, and
    // one server at a time removes a stale lock (removeStale): the others wait their turn.
    let staged = true;
    // The stale lock this process removed, if any: said once the root is taken.
    let tookOver: { holder: ServedRootHolder | undefined } | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        if (!staged) await writeStaging(staging, content);
        staged = true;
        await link(staging, lockPath);
        // Its heartbeat first: listing a root of many names (NFS) took seconds before the first
        // beat, which a start on another host, watching the new lock for 2.5 beats, took for dead.
        const lock = new ServedRootLock(lockPath, content, heartbeatMs, options);
        // Its own copy goes before the listing: a signal there exits with only the lock to release.
        await unlink(staging).catch(() => {});
        await removeLeftStagings(root, staging, takeoverMarkStaleMs);
        if (tookOver !== undefined) options.onTakeOver?.(tookOver.holder);
        return { lock };
      } catch (error) {
        // Our staging copy gone before its link: another server's start took it for one a killed
        // server left (removeLeftStagings: its writer on another host, judged by an mtime that
        // host's clock skews). Written again, not served without the lock (ENOENT) beside that one.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && staged && !(await exists(staging))) {
          staged = false;
          continue;
        }
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          return { lock: undefined, reason: failureReason(error) };
      }
      const text = await readLockText(lockPath);
      if (text === undefined) continue; // removed meanwhile: link again
      const existing = parseHolder(text);
      // A judgment may watch the lock for seconds: no staging copy is left in the root meanwhile
      // (a Ctrl-C during the wait left it there for good; no sweep takes its name).
      await unlink(staging).catch(() => {});
      staged = false;
      const judged: Judged =
        existing === undefined ? { verdict: 'stale' } : await judge(lockPath, text, existing, options);
      if (judged.verdict === 'held')
        throw new RootInUseError(root, lockPath, existing as ServedRootHolder, true);
      if (judged.verdict === 'gone') continue; // removed or rewritten while watched: look again
      let removed: boolean;
      try {
        removed = await removeStale(lockPath, text, content, takeoverMarkStaleMs, judged.stamp, () => {
          tookOver = { holder: existing };
        });
      } catch (error) {
        // No room for the takeover's mark beside the new lock's staging copy (one inode or block
        // was left): served without the lock, as on a full disk, where serve died of it before.
        return { lock: undefined, reason: failureReason(error) };
      }
      if (!removed) await sleep(TAKEOVER_WAIT_MS);
    }
    const existing = await readHolder(lockPath);
    throw new RootInUseError(root, lockPath, existing ?? { pid: 0, host: '?', since: '?' }, true);
  } finally {
    await unlink(staging).catch(() => {});
  }
}

/**
 * Where the lock is written whole before it is linked as the lock; its name is no upload's, so no
 * sweep takes it. Random, not only the pid: a server on another host (a container's pid 1 on a
 * shared volume) has this pid too, and under one name each removed or rewrote the other's; nor
 * can a host user who may write the root plant a link there ahead of it.
 */
function stagingPath(lockPath: string): string {
  return `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}.new`;
}

/** A staging copy's name (stagingPath), whichever process wrote it. */
const STAGING_NAME = new RegExp(
  `^${SERVED_ROOT_LOCK_NAME.replaceAll('.', '\\.')}\\.\\d{1,10}\\.[0-9a-f]{12}\\.new$`,
);

/**
 * Staging copies other servers left in `root`, removed once this one holds the lock. A server
 * killed outright (SIGKILL, the OOM killer) between writing its copy and removing it left it for
 * good: no sweep takes its name, so a crash-looping server added one per crash (the chaos run: 1
 * in 20 kills in its first half second). Judged as a takeover mark is (its content is a holder
 * too): one whose writer may still run (a server starting beside this one: it removes its own)
 * is left. Best effort: an unreadable root leaves them.
 */
async function removeLeftStagings(root: string, own: string, staleMs: number): Promise<void> {
  const names = await readdir(root).catch((): string[] => []);
  for (const name of names) {
    const path = join(root, name);
    if (path === own || !STAGING_NAME.test(name)) continue;
    if (await takeoverMarkIsStale(path, staleMs).catch(() => false)) await unlink(path).catch(() => {});
  }
}

/** False only when nothing is at `path` (ENOENT). */
function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
  );
}

/** Made exclusively ('wx' never follows a link): 'w' wrote through a link planted under the name. */
function writeStaging(staging: string, content: string): Promise<void> {
  return writeFile(staging, content, { flag: 'wx', mode: 0o644 });
}

/** Why a file could not be written, as `serve` says it and tells a full disk by: its errno code. */
function failureReason(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

/** How long one waits for another server's takeover (the mark's usual life is a millisecond). */
const TAKEOVER_WAIT_MS = 20;

function validHeartbeat(ms: unknown): ms is number {
  return (
    Number.isSafeInteger(ms) && (ms as number) >= 1 && (ms as number) <= DEFAULTS.servedRootLockHeartbeatMaxMs
  );
}

/** What to do about a lock read as `text`: refuse, take it over (`stamp`: as last seen), or look again. */
type Judged = { verdict: 'held' } | { verdict: 'stale'; stamp?: string } | { verdict: 'gone' };

/**
 * A holder whose pid can be checked here is judged by it, at once (a crash-restart on one host is
 * taken over without a wait). Else a lock that declares a heartbeat is watched for 2.5 of them:
 * unchanged, it is stale; one that declares none (an older muxftp) is honoured, as before.
 */
async function judge(
  lockPath: string,
  text: string,
  holder: ServedRootHolder,
  options: LockServedRootOptions,
): Promise<Judged> {
  if (!holderMayBeAlive(holder)) return { verdict: 'stale' };
  if (holder.heartbeatMs === undefined || pidIsOurs(holder)) return { verdict: 'held' };
  const waitMs = Math.ceil(holder.heartbeatMs * 2.5);
  options.onWait?.(holder, waitMs);
  const first = await lookAt(lockPath);
  if (first === 'unreadable') return { verdict: 'held' };
  if (first === undefined || first.text !== text) return { verdict: 'gone' };
  // Measured on this machine's monotonic clock only; the file's times are only compared with themselves.
  const until = performance.now() + waitMs;
  const every = Math.max(5, Math.floor(holder.heartbeatMs / 4));
  while (performance.now() < until) {
    await sleep(Math.min(every, Math.max(1, until - performance.now())));
    const now = await lookAt(lockPath);
    if (now === 'unreadable') return { verdict: 'held' };
    if (now === undefined || now.text !== text) return { verdict: 'gone' };
    if (now.stamp !== first.stamp) return { verdict: 'held' };
  }
  return { verdict: 'stale', stamp: first.stamp };
}

/**
 * The lock's content and mtime (ns, as a string), read through one open: on NFS an open
 * revalidates the file's attributes (close-to-open), where a bare stat may answer from a cache
 * seconds old. Undefined when it is gone; 'unreadable' when it cannot be read (then it is honoured).
 */
async function lookAt(lockPath: string): Promise<{ text: string; stamp: string } | undefined | 'unreadable'> {
  let handle: FileHandle;
  try {
    handle = await open(lockPath, START_READ_FLAGS);
  } catch (error) {
    // A link is no server's lock, as what is no regular file: its text ''.
    if (isLink(error)) return { text: '', stamp: '' };
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : 'unreadable';
  }
  try {
    const stats = await handle.stat({ bigint: true });
    // No regular file (a FIFO, a device planted under the name) is no server's lock: its text ''.
    const text = stats.isFile() ? await readLockHandle(handle) : '';
    return { text, stamp: String(stats.mtimeNs) };
  } catch {
    return 'unreadable';
  } finally {
    await handle.close().catch(() => {});
  }
}

/**
 * Removes the lock at `lockPath` if it still says `stale`, while holding the takeover mark (a
 * file created exclusively beside it): false when another server holds the mark. Without it, two
 * servers starting together on a stale lock could each remove it, the second removing the lock
 * the first had just made in its place (both then served the root). Under the mark the lock can
 * change only by being removed (a new one cannot take the name while it is there), so the lock
 * read again here is the one removed.
 */
async function removeStale(
  lockPath: string,
  stale: string,
  content: string,
  markStaleMs: number,
  stamp: string | undefined,
  onRemoved: () => void,
): Promise<boolean> {
  const mark = `${lockPath}.takeover`;
  let handle: FileHandle;
  try {
    handle = await open(mark, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (await takeoverMarkIsStale(mark, markStaleMs)) await unlink(mark).catch(() => {});
    return false;
  }
  try {
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
  } catch (error) {
    // Made but not written or not closed (a disk with an inode and no block left): ours to
    // remove, else every later start waits for the mark to go stale.
    await unlink(mark).catch(() => {});
    throw error;
  }
  try {
    // A watched lock must also not have been touched since: its heartbeat came back meanwhile.
    const now = await lookAt(lockPath);
    if (typeof now === 'object' && now.text === stale && (stamp === undefined || now.stamp === stamp)) {
      await unlink(lockPath).then(onRemoved, () => {});
    }
    return true;
  } finally {
    await unlink(mark).catch(() => {});
  }
}

/**
 * A mark is stale when the server that wrote it is gone, never while it is known to run on this
 * host (its pid and start time both match), and otherwise when it is older than
 * `staleMs` either way (its writer unreadable, as just after it is created, on
 * another host, or a pid that cannot be told from a reused one where there is no /proc; a mark
 * dated in the future, the clock stepped back since, would otherwise never age): a takeover
 * holds it for a millisecond.
 */
async function takeoverMarkIsStale(mark: string, staleMs: number): Promise<boolean> {
  const text = await readLockText(mark);
  if (text === undefined) return false; // removed meanwhile
  const holder = parseHolder(text);
  if (holder !== undefined && !holderMayBeAlive(holder)) return true;
  // Its writer is alive here, mid-takeover: removing its mark would let a second takeover in.
  if (holder !== undefined && holderIsKnownAlive(holder)) return false;
  const age = await stat(mark).then(
    (stats) => Date.now() - stats.mtimeMs,
    () => 0,
  );
  return Math.abs(age) > staleMs;
}

/**
 * How the checks of a root nested in another judge a lock: they cannot watch its heartbeat (a
 * start would wait, a sweep too), so another boot under this host's name is this machine
 * restarted, as before heartbeats, unless the lock names another machine (its machine tag).
 * Taken for live, a dead server's lock from before a reboot kept the nested root from ever being
 * swept (review N); another machine of this hostname with no machine id, or a cloned VM that kept
 * its machine id, on a shared NFS root is the rarer case this misjudges.
 */
const NESTED = { bootIsRestart: true };

/**
 * The live server whose root holds `root` (a directory above it with a lock), if any: such a
 * server's uploads may be in flight in this tree, so a start-up sweep here must leave them.
 */
export async function servedAbove(
  root: string,
): Promise<{ directory: string; holder: ServedRootHolder } | undefined> {
  for (let directory = dirname(root); ; directory = dirname(directory)) {
    const holder = await readHolder(join(directory, SERVED_ROOT_LOCK_NAME));
    // Not this process's own lock; a server elsewhere may well have this pid (pid 1 in a container).
    if (holder !== undefined && !isOwn(holder) && holderMayBeAlive(holder, NESTED)) {
      return { directory, holder };
    }
    if (dirname(directory) === directory) return undefined;
  }
}

/** True when `directory` holds the lock of a live server other than this process. */
export async function servedByAnother(directory: string): Promise<boolean> {
  const holder = await readHolder(join(directory, SERVED_ROOT_LOCK_NAME));
  return holder !== undefined && !isOwn(holder) && holderMayBeAlive(holder, NESTED);
}

/** This very process's lock: its pid, where that pid means this process. */
function isOwn(holder: ServedRootHolder): boolean {
  return holder.pid === process.pid && pidIsOurs(holder);
}

async function readHolder(lockPath: string): Promise<ServedRootHolder | undefined> {
  const text = await readLockText(lockPath);
  return text === undefined ? undefined : parseHolder(text);
}

function parseHolder(text: string): ServedRootHolder | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<ServedRootHolder>;
    if (!Number.isSafeInteger(parsed.pid) || (parsed.pid as number) <= 0 || typeof parsed.host !== 'string') {
      return undefined;
    }
    return {
      pid: parsed.pid as number,
      host: parsed.host,
      since: typeof parsed.since === 'string' ? parsed.since : '?',
      ...(typeof parsed.bootId === 'string' ? { bootId: parsed.bootId } : {}),
      ...(typeof parsed.startTicks === 'string' ? { startTicks: parsed.startTicks } : {}),
      ...(typeof parsed.pidNamespace === 'string' ? { pidNamespace: parsed.pidNamespace } : {}),
      ...(typeof parsed.machine === 'string' ? { machine: parsed.machine } : {}),
      // One out of bounds (a day) would hold every start that long: judged as an older muxftp's.
      ...(validHeartbeat(parsed.heartbeatMs) ? { heartbeatMs: parsed.heartbeatMs } : {}),
    };
  } catch {
    // Not a lock we wrote (ours are written whole): nothing it says can be relied on.
    return undefined;
  }
}

/**
 * Whether the holder's pid names a process this one can probe: the same host, the same machine and
 * pid namespace (each when both are known), and, for a lock with a heartbeat, the same boot.
 * Another boot under this host's name and machine (or with no machine tag) is this machine
 * restarted, or another machine of this name (a cloned VM on an NFS root): only a lock with a
 * heartbeat can tell them apart, so only it is watched.
 */
function pidIsOurs(holder: ServedRootHolder, { bootIsRestart = false } = {}): boolean {
  if (holder.host !== hostname()) return false;
  // Another machine of this hostname, whatever its boot: never this one restarted.
  const machine = machineTag();
  if (holder.machine !== undefined && machine !== undefined && holder.machine !== machine) return false;
  const namespace = ownPidNamespace();
  if (holder.pidNamespace !== undefined && namespace !== undefined && holder.pidNamespace !== namespace)
    return false;
  if (!bootIsRestart && holder.heartbeatMs !== undefined && holder.bootId !== undefined) {
    const bootId = processIdentity(process.pid).bootId;
    if (bootId !== undefined && bootId !== holder.bootId) return false;
  }
  return true;
}

/**
 * False only when the holder is surely gone: its pid is ours to probe (pidIsOurs), and it is not
 * running, or runs another process than the one that wrote the lock, or the machine has
 * restarted since (a lock without a heartbeat).
 */
function holderMayBeAlive(holder: ServedRootHolder, how: { bootIsRestart?: boolean } = {}): boolean {
  if (!pidIsOurs(holder, how)) return true;
  const now = processIdentity(holder.pid);
  if (holder.bootId !== undefined && now.bootId !== undefined && holder.bootId !== now.bootId) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: it runs, as another user.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (
    holder.startTicks !== undefined &&
    now.startTicks !== undefined &&
    holder.startTicks !== now.startTicks
  ) {
    return false;
  }
  // A zombie (killed, its parent not yet told) still answers kill(pid, 0), but serves nothing.
  return now.state !== 'Z';
}

/** True only when `holder` runs on this host and is told apart from a reused pid by its start time. */
function holderIsKnownAlive(holder: ServedRootHolder): boolean {
  return (
    pidIsOurs(holder) &&
    holder.startTicks !== undefined &&
    processIdentity(holder.pid).startTicks === holder.startTicks &&
    holderMayBeAlive(holder)
  );
}

/** ownPidNamespace's answer; null until asked. */
let pidNamespace: string | undefined | null = null;

/** This process's pid namespace (Linux: `pid:[4026531836]`); undefined where there is none to read. */
function ownPidNamespace(): string | undefined {
  // Read once: a process never changes its own (setns moves only the children it makes next).
  if (pidNamespace === null) {
    try {
      pidNamespace = readlinkSync('/proc/self/ns/pid');
    } catch {
      pidNamespace = undefined;
    }
  }
  return pidNamespace;
}

/** Linux's boot id, the process's start time (clock ticks since boot) and state; empty elsewhere. */
function processIdentity(pid: number): { bootId?: string; startTicks?: string; state?: string } {
  const identity: { bootId?: string; startTicks?: string; state?: string } = {};
  try {
    identity.bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {}
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name's closing parenthesis (the name may hold spaces).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = fields[19];
    if (ticks !== undefined && /^\d+$/.test(ticks)) identity.startTicks = ticks;
    identity.state = fields[0];
  } catch {}
  return identity;
}
