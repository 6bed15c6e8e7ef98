/**
 * The users file (`muxftp serve --users FILE`): one JSON object, written by `muxftp user add`.
 *
 *   {
 *     "version": 1,
 *     "users": {
 *       "alice": {
 *         "password": "scrypt$16384$8$1$<salt>$<key>",
 *         "home": "alice",
 *         "permissions": ["list", "read", "write", "delete", "rename", "mkdir"],
 *         "quota": 1073741824,
 *         "maxRate": 10485760
 *       }
 *     }
 *   }
 *
 * `home` is a directory relative to the served root ("" is the root itself): the user's root,
 * nothing outside it is reachable. `quota` (bytes stored under home) and `maxRate` (bytes/s,
 * each direction, all the user's connections together) are optional. The file is rewritten
 * atomically with mode 0600: it holds password hashes.
 */
import { randomBytes } from 'node:crypto';
import { link, lstat, open, readdir, readlink, realpath, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../../shared/defaults.js';
import { errnoReason } from '../../shared/errnoReasons.js';
import { MuxftpError } from '../../shared/errors.js';
import { hostTag, processRuns, processRunTag } from '../../shared/hostTag.js';
import { ANONYMOUS_USER } from '../../shared/protocol/messages.js';
import type { Permission } from '../../shared/protocol/operations.js';
import { readFileAtMost } from '../../shared/readAtMost.js';
import { normalizeClientPath } from '../../storage/paths.js';
import { parsePasswordHash } from './passwords.js';

/**
 * What a user may do, in the spirit of pyftpdlib's perm string; the operation table
 * (shared/protocol/operations.ts) names the one each operation needs.
 */
export const PERMISSIONS: readonly Permission[] = ['list', 'read', 'write', 'delete', 'rename', 'mkdir'];
/** One of {@link PERMISSIONS}. */
export type { Permission };
/** What `--read-only` and anonymous access without `--anonymous-write` allow. */
export const READ_ONLY_PERMISSIONS: readonly Permission[] = ['list', 'read'];

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** One user in the users file. */
export interface UserEntry {
  /** scrypt hash (server/auth/passwords.ts), never the password. */
  password: string;
  /** The user's root, relative to the served root. */
  home: string;
  /** What the user may do, each of {@link PERMISSIONS} at most once, in its order. */
  permissions: Permission[];
  /** Bytes the user may store under home. Optional. */
  quota?: number;
  /** Bytes per second for all the user's connections together, each direction. Optional. */
  maxRate?: number;
}

/** The users file's content. */
export interface UsersFile {
  /** The format's version; 1 is the only one. */
  version: 1;
  /** The entries, by user name. */
  users: Record<string, UserEntry>;
}

/** A users file with nobody in it. */
export function emptyUsersFile(): UsersFile {
  return { version: 1, users: {} };
}

/** Throws a TypeError saying why `name` cannot be a user's (`user add`/`del` refuse it as a usage error). */
export function checkUserName(name: string): void {
  if (typeof name !== 'string' || !USER_NAME.test(name)) {
    throw new TypeError(
      `invalid user name ${JSON.stringify(name)}: 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)`,
    );
  }
  if (name === ANONYMOUS_USER) throw new TypeError(`"${ANONYMOUS_USER}" is reserved for --anonymous`);
}

/** "list,read,write" or an array: each known, no repeats, in the canonical order. */
export function parsePermissions(value: string | readonly string[]): Permission[] {
  const names =
    typeof value === 'string'
      ? value
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean)
      : value;
  if (!Array.isArray(names)) throw new TypeError('permissions must be a list');
  for (const name of names) {
    if (!(PERMISSIONS as readonly string[]).includes(name)) {
      throw new TypeError(`unknown permission ${JSON.stringify(name)}: use ${PERMISSIONS.join(', ')}`);
    }
  }
  return PERMISSIONS.filter((p) => names.includes(p));
}

function isByteCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/** Validates a parsed users file; throws a TypeError that names the user and field. */
function validateUsersFile(
  value: unknown,
  { anyScryptCost = false }: { anyScryptCost?: boolean } = {},
): UsersFile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError('users file must be a JSON object');
  }
  const file = value as Record<string, unknown>;
  if (file.version !== 1) throw new TypeError('users file: "version" must be 1');
  const users = file.users;
  if (typeof users !== 'object' || users === null || Array.isArray(users)) {
    throw new TypeError('users file: "users" must be an object of name -> entry');
  }
  const result = emptyUsersFile();
  for (const [name, raw] of Object.entries(users)) {
    const where = `users file: user ${JSON.stringify(name)}`;
    try {
      checkUserName(name);
      if (typeof raw !== 'object' || raw === null) throw new TypeError('entry must be an object');
      const entry = raw as Record<string, unknown>;
      if (typeof entry.password !== 'string') throw new TypeError('"password" must be a hash string');
      parsePasswordHash(entry.password, { anyCost: anyScryptCost });
      if (typeof entry.home !== 'string') throw new TypeError('"home" must be a string');
      const home = normalizeClientPath(entry.home);
      if (!Array.isArray(entry.permissions)) throw new TypeError('"permissions" must be an array');
      const permissions = parsePermissions(entry.permissions as string[]);
      if (entry.quota !== undefined && !isByteCount(entry.quota))
        throw new TypeError('"quota" must be a positive integer of bytes');
      if (entry.maxRate !== undefined && !isByteCount(entry.maxRate))
        throw new TypeError('"maxRate" must be a positive integer of bytes per second');
      result.users[name] = {
        password: entry.password,
        home,
        permissions,
        ...(entry.quota !== undefined ? { quota: entry.quota as number } : {}),
        ...(entry.maxRate !== undefined ? { maxRate: entry.maxRate as number } : {}),
      };
    } catch (error) {
      throw new TypeError(`${where}: ${(error as Error).message}`, { cause: error });
    }
  }
  return result;
}

/**
 * Reads and validates a users file; with `missingIsEmpty`, a file that does not exist yet, or is
 * empty (made first with its mode: `install -m 600 /dev/null users.json`), has no users. With
 * `anyScryptCost`, a hash too costly to check is read as it is: for an edit, which can replace it.
 * With `regularOnly` (a server reading it again on SIGHUP), what is not a regular file (a FIFO, a
 * device) is refused without waiting to open or read it.
 */
export async function readUsersFile(
  path: string,
  options: { missingIsEmpty?: boolean; anyScryptCost?: boolean; regularOnly?: boolean } = {},
): Promise<UsersFile> {
  let text: string;
  try {
    const bytes = await readFileAtMost(path, DEFAULTS.maxUsersFileBytes, 'a users file', {
      regularOnly: options.regularOnly === true,
    });
    text = bytes.toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && options.missingIsEmpty) return emptyUsersFile();
    // In words (`no such file or directory`), not Node's `ENOENT: …, open '<path>'` that repeats the path.
    throw new Error(`cannot read users file ${path}: ${errnoReason(error)}`, { cause: error });
  }
  if (options.missingIsEmpty && text.trim() === '') return emptyUsersFile();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`users file ${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return validateUsersFile(parsed, options);
}

/** Symbolic links followed at most to the users file, as Linux's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;

/**
 * The file a write of `path` must replace: through symbolic links to the file the last one names
 * (which need not exist yet). The rename that publishes a write replaced the link itself with a
 * regular file, so the link's target (/etc/muxftp/users.json -> /srv/conf/users.json) kept the
 * old users, and later edits of it were no longer seen through the link.
 */
async function usersFileTarget(path: string): Promise<string> {
  let current = path;
  for (let links = 0; links <= MAX_SYMLINKS; links++) {
    let link: string;
    try {
      link = await readlink(current);
    } catch (error) {
      // EINVAL: not a link; ENOENT: nothing there yet (written as a new file).
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return current;
      throw error;
    }
    // Relative to the link's real directory, as the kernel resolves it ('..' after a linked directory).
    current = resolve(await realpath(dirname(current)), link);
  }
  throw Object.assign(new Error(`too many levels of symbolic links: ${path}`), { code: 'ELOOP' });
}

/**
 * Writes the file atomically (temporary file, fsync, rename) with mode 0600 (0640 where the file
 * replaced was readable by its group, and that group is kept); a symbolic link is
 * written through, to the file it names. A file replaced keeps its owner and group where the
 * writer may set them (root may): `sudo muxftp user add` must not leave a file the server's own
 * account can no longer read at its next SIGHUP.
 */
export async function writeUsersFile(path: string, file: UsersFile): Promise<void> {
  return writeUsersFileAt(await usersFileTarget(path), file);
}

/**
 * This process's run: one started later under the same pid is another; every thread of this one
 * (and another copy of muxftp in it) has it, so their writes are not taken for a gone run's.
 */
const WRITER_RUN = processRunTag();

/**
 * The temporary file a write of the users file goes to, beside it: named for its writer (host tag,
 * pid, run) and a random part, so that what an edit killed outright left (the hashes in it, 0600) is
 * told from one being written, and removed by a later edit (removeLeftTemporaries).
 */
function temporaryUsersPath(path: string): string {
  return join(
    dirname(path),
    `.${randomBytes(4).toString('hex')}.${hostTag()}-${process.pid}-${WRITER_RUN}.users.tmp`,
  );
}

const LEFT_TEMPORARY = /^\.[0-9a-f]{8}\.([0-9a-f]{16})-(\d{1,10})-([0-9a-f]{8})\.users\.tmp$/;

/**
 * Removes from `target`'s directory the users files' temporary files edits killed outright left: of
 * this host tag (shared/hostTag.ts: its pids are this pid namespace's), whose process is gone (or
 * is this pid's earlier run), this user's regular files with one name (root's: or the users file's
 * owner's, as its edit chowns them). One being written, another
 * host's, container's or namespace's, another user's, and an older build's (`.<16 hex>.users.tmp`,
 * which names no writer) are left alone. One readdir per edit, under the edit's lock.
 */
async function removeLeftTemporaries(target: string): Promise<void> {
  const directory = dirname(target);
  const names = await readdir(directory).catch(() => [] as string[]);
  const uid = process.getuid?.();
  // Root's edit hands its temporary file to the users file's owner as it writes it (chown in
  // writeUsersFileAt): killed then, it left that owner's file.
  const owner = uid === 0 ? (await stat(target).catch(() => undefined))?.uid : undefined;
  for (const name of names) {
    const match = LEFT_TEMPORARY.exec(name);
    if (match === null || match[1] !== hostTag() || processRuns(Number(match[2]), match[3]!)) continue;
    const path = join(directory, name);
    const info = await lstat(path).catch(() => undefined);
    if (
      info === undefined ||
      !info.isFile() ||
      info.nlink !== 1 ||
      (uid !== undefined && info.uid !== uid && info.uid !== owner)
    )
      continue;
    // Not this edit's to fail for: its own write says what is wrong with the directory.
    await rm(path, { force: true }).catch(() => {});
  }
}

/** {@link writeUsersFile} to `path`, a name that is not a symbolic link. */
async function writeUsersFileAt(path: string, file: UsersFile): Promise<void> {
  const previous = await stat(path).catch(() => undefined);
  const temporary = temporaryUsersPath(path);
  const handle = await open(temporary, 'wx', 0o600);
  let groupRead = 0;
  try {
    await handle.writeFile(`${JSON.stringify(validateUsersFile(file), null, 2)}\n`);
    if (
      previous !== undefined &&
      (previous.uid !== process.getuid?.() || previous.gid !== process.getgid?.())
    ) {
      // EPERM for anyone but root: then the file is the writer's, as any file it writes.
      await handle.chown(previous.uid, previous.gid).catch(() => {});
    }
    // Its group's read stays only with that group: not handed to the writer's own (a chown refused).
    if (previous !== undefined && (await handle.stat()).gid === previous.gid)
      groupRead = previous.mode & 0o040;
    // Its group's read stays: root:muxftp 0640 is how a server running in that group reads it. Set
    // on the open file, not by its name: in a directory others write, the name may be another's.
    await handle.chmod(0o600 | groupRead);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, path);
  } catch (error) {
    // Not left beside the file with the hashes in it: a rename onto a file bind-mounted in place
    // (a container's) fails EBUSY at each edit.
    await rm(temporary, { force: true });
    throw error;
  }
}

/** How long {@link updateUsersFile} waits by default for another edit's lock before giving up. */
const DEFAULT_LOCK_WAIT_MS = 10_000;
const USERS_FILE_LOCK_RETRY_MS = 20;

/**
 * What a users-file lock holds: the holder's pid, hostname and host tag (shared/hostTag.ts: its
 * machine and pid namespace), `PID HOST TAG`.
 */
function lockHolderText(): string {
  return `${process.pid} ${hostname()} ${hostTag()}\n`;
}

/**
 * The pid a lock names when that process is gone: it is of this host tag (a lock on a shared file
 * system may be another machine's, one on a volume another container's of this hostname, whose
 * pids are not this namespace's) and signal 0 finds no such process. Undefined otherwise, and for
 * a lock in an older form (a pid alone, or `PID HOST` without a tag: another container of this
 * hostname may hold it; it is removed by hand).
 */
function deadLockHolder(text: string): number | undefined {
  const match = /^(\d+) \S+ ([0-9a-f]{16})\n?$/.exec(text);
  if (match === null || match[2] !== hostTag()) return undefined;
  const pid = Number(match[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  return processRuns(pid) ? undefined : pid;
}

/**
 * Removes `lock` when the edit holding it was killed (its process gone); returns that pid, or
 * undefined when the lock is not stale or another edit is taking it over. One edit at a time
 * takes over, holding `LOCK.takeover`, and reads the lock again under it: two edits that found
 * the same stale lock would otherwise both remove it, the second removing the first's new one.
 */
async function removeStaleLock(lock: string): Promise<number | undefined> {
  // A regular file only, at most its cap: a FIFO under the lock's name held the edit in its open
  // for ever (never RESOURCE_BUSY), and a large file was read whole at each retry (every 20 ms).
  const holder = async () => deadLockHolder(await lockText(lock));
  if ((await holder()) === undefined) return undefined;
  const takeover = `${lock}.takeover`;
  const handle = await open(takeover, 'wx', 0o600).catch(() => undefined);
  if (handle === undefined) {
    await removeStaleTakeover(takeover);
    return undefined;
  }
  try {
    // Its holder named, as the lock's: an edit killed holding it (one read of the lock) left it,
    // and every later take-over of a stale lock failed for good.
    await handle.writeFile(lockHolderText());
    const pid = await holder();
    if (pid !== undefined) await rm(lock, { force: true });
    return pid;
  } finally {
    await handle.close();
    await rm(takeover, { force: true });
  }
}

/**
 * Removes `takeover` when the edit that held it is gone (deadLockHolder: of this host tag, its
 * process not running); the next try takes it. Moved aside first, then judged by what was moved:
 * removed by its name after a check, the mark was the one another edit made in between (a third
 * edit having removed the dead one: several `user add` at once) and two edits took over at once.
 * A live mark so moved is given back (linked, never over a newer one).
 */
async function removeStaleTakeover(takeover: string): Promise<void> {
  if (deadLockHolder(await lockText(takeover)) === undefined) return;
  const aside = `${takeover}.${randomBytes(6).toString('hex')}`;
  if (
    !(await rename(takeover, aside).then(
      () => true,
      () => false,
    ))
  )
    return;
  try {
    if (deadLockHolder(await lockText(aside)) === undefined) await link(aside, takeover).catch(() => {});
  } finally {
    await rm(aside, { force: true });
  }
}

/** What a lock or take-over mark names (`PID HOST TAG`); '' when unreadable or not a regular file. */
function lockText(path: string): Promise<string> {
  return readFileAtMost(path, DEFAULTS.maxUsersFileLockBytes, 'a users file lock', {
    regularOnly: true,
  }).then(
    (bytes) => bytes.toString('utf8'),
    () => '',
  );
}

/**
 * Reads the file, applies `change` and writes the result, holding `FILE.lock` (made with O_EXCL)
 * throughout, so two edits at once (two admins, a provisioning script running `user add` in
 * parallel) each see the other's: without it, each wrote its own read of the file and all but the
 * last edit were lost. The lock is held only for the read, the change and the write (never while
 * a password is typed), and removed after. It names its holder's pid and host: one left by a
 * killed edit (that pid no longer running on this host) is taken over, and `onStaleLock` told;
 * any other lock held past `lockWaitMs` is named in the error (RESOURCE_BUSY).
 */
export async function updateUsersFile(
  path: string,
  change: (file: UsersFile) => UsersFile,
  options: {
    missingIsEmpty?: boolean;
    lockWaitMs?: number;
    /** Told when a lock left by a killed edit was removed: the lock file and its holder's pid. */
    onStaleLock?: (lock: string, pid: number) => void;
  } = {},
): Promise<UsersFile> {
  // Locked and written beside the file a symbolic link names: an edit through the link and one of
  // the file itself take the same lock.
  const target = await usersFileTarget(path).catch((error: unknown) => {
    throw new Error(`cannot write users file ${path}: ${errnoReason(error)}`, { cause: error });
  });
  const lock = `${target}.lock`;
  const deadline = performance.now() + (options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS);
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      // Made but not written (a full disk, a file size limit): removed, else every later edit
      // would wait for it and blame "another edit".
      await handle
        .writeFile(lockHolderText())
        .finally(() => handle.close())
        .catch(async (error: unknown) => {
          await rm(lock, { force: true });
          throw error;
        });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`cannot write users file ${path}: ${errnoReason(error)}`, { cause: error });
      }
      const stale = await removeStaleLock(lock);
      if (stale !== undefined) {
        options.onStaleLock?.(lock, stale);
        continue;
      }
      if (performance.now() >= deadline) {
        // Busy, not broken: a script may try again (the CLI's --json says RESOURCE_BUSY).
        throw new MuxftpError(
          'RESOURCE_BUSY',
          (await lstat(`${lock}.takeover`).then(
            () => true,
            () => false,
          ))
            ? `users file ${path} is locked by another edit (${lock}, and ${lock}.takeover); if no muxftp user command is running, remove both`
            : `users file ${path} is locked by another edit (${lock}); if no muxftp user command is running, remove ${lock}`,
        );
      }
      await sleep(USERS_FILE_LOCK_RETRY_MS);
    }
  }
  try {
    // What an edit killed outright while writing left beside the file (its hashes) goes now.
    await removeLeftTemporaries(target);
    // The file is checked as a whole when written: a costly hash another edit left stays refused
    // there, but `user add NAME --replace` and `user del NAME` of its user mend the file.
    const updated = change(await readUsersFile(path, { ...options, anyScryptCost: true }));
    await writeUsersFileAt(target, updated).catch((error: unknown) => {
      // Named for the file, not the temporary file it was being written to.
      const mounted =
        (error as NodeJS.ErrnoException).code === 'EBUSY'
          ? ' (a mount point, as a file bind-mounted into a container, is never replaced: edit the file mounted there)'
          : '';
      throw new Error(`cannot write users file ${path}: ${errnoReason(error)}${mounted}`, { cause: error });
    });
    return updated;
  } finally {
    await rm(lock, { force: true });
  }
}

/** A user to add with {@link addUser}; the password is already hashed ({@link hashPassword}). */
export interface NewUser {
  /** 1 to 64 of A-Z a-z 0-9 . _ - (not starting with . _ -); `anonymous` is reserved. */
  name: string;
  /** The scrypt hash {@link hashPassword} made, never the password. */
  passwordHash: string;
  /** Default: the user's name, a directory under the served root. */
  home?: string;
  /** What the user may do (of {@link PERMISSIONS}; stored in that order). */
  permissions: Permission[];
  /** Bytes the user may store under home. Default: no quota. */
  quota?: number;
  /**
   * Bytes per second for all the user's connections together, each direction. Default: the
   * server's `maxUserRateBytesPerSecond`.
   */
  maxRate?: number;
}

/**
 * Throws what {@link addUser} would for `name` (a bad name, a user who exists, another user's hash
 * too costly to check), before the password is asked.
 */
export function checkCanAdd(file: UsersFile, name: string, options: { replace?: boolean } = {}): void {
  checkUserName(name);
  if (Object.hasOwn(file.users, name) && !options.replace) {
    throw new MuxftpError('ALREADY_EXISTS', `user ${name} exists already (use --replace to change it)`);
  }
  // A file read for an edit passes a hash too costly to check (its user's edit mends it); the
  // write refuses any other user's: said here, before `user add` asks for the password, as it says.
  for (const [other, entry] of Object.entries(file.users)) {
    if (other === name) continue;
    try {
      parsePasswordHash(entry.password);
    } catch (error) {
      throw new TypeError(`users file: user ${JSON.stringify(other)}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

/** The file with `user` added; an existing user of that name is an error (ALREADY_EXISTS) unless `replace`. */
export function addUser(file: UsersFile, user: NewUser, options: { replace?: boolean } = {}): UsersFile {
  checkCanAdd(file, user.name, options);
  const entry: UserEntry = {
    password: user.passwordHash,
    home: normalizeClientPath(user.home ?? user.name),
    permissions: parsePermissions(user.permissions),
    ...(user.quota !== undefined ? { quota: user.quota } : {}),
    ...(user.maxRate !== undefined ? { maxRate: user.maxRate } : {}),
  };
  return validateUsersFile({ version: 1, users: { ...file.users, [user.name]: entry } });
}

/** The file without user `name`; throws NOT_FOUND when there is none. */
export function removeUser(file: UsersFile, name: string): UsersFile {
  if (!Object.hasOwn(file.users, name)) throw new MuxftpError('NOT_FOUND', `no user ${name}`);
  const users = { ...file.users };
  delete users[name];
  return { version: 1, users };
}

/** Users by name, without their hashes. */
export function listUsers(file: UsersFile): Array<Omit<UserEntry, 'password'> & { name: string }> {
  return Object.keys(file.users)
    .sort()
    .map((name) => {
      const { password: _hash, ...rest } = file.users[name]!;
      return { name, ...rest };
    });
}
