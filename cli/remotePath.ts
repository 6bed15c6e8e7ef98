/**
 * Remote paths as the CLI takes them: relative to the server's storage root, '/'-separated.
 * A leading '/' is accepted and means the root, so `ls /` and `--to /backup/` read naturally;
 * a trailing '/' is dropped here (the commands look at the raw argument to see one: it names a
 * directory).
 * Everything else ('..', reserved names, ...) is left to the server, the one place paths are judged.
 */

export function remotePathFromArgument(argument: string): string {
  return argument.replace(/^\/+/, '').replace(/\/+$/, '');
}

export function joinRemote(dir: string, name: string): string {
  const base = dir.replace(/\/+$/, '');
  return base === '' ? name : `${base}/${name}`;
}

/** A remote path as the server takes it: no empty or `.` names (`L/.` is `L`, `/a//b/` is `a/b`). */
export function normalRemote(remote: string): string {
  return remote
    .split('/')
    .filter((name) => name !== '' && name !== '.')
    .join('/');
}

/** The last name of a remote path ('' for the root). */
export function remoteBaseName(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/**
 * True if `name` is one plain path segment, safe to create locally. Names in a listing come from
 * the server; a hostile one ('..', 'a/b') must not steer a download outside its target directory.
 */
export function isPlainName(name: unknown): name is string {
  return isOneName(name) && !name.includes('\\');
}

/**
 * True if `name` is one name of a path, on the server's side ('..' and 'a/b' are not): a
 * backslash may be in it, which no muxftp path holds (a request naming it fails INVALID_PATH).
 */
export function isOneName(name: unknown): name is string {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !/[/\0]/.test(name);
}

/** The directory a remote path is in ('' for a name directly under the root). */
export function remoteParent(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  return slash === -1 ? '' : trimmed.slice(0, slash);
}

/** `items` grouped by how deep their remote paths are, the shallowest first, each in its order. */
export function byDepth<T>(items: readonly T[], remoteOf: (item: T) => string): T[][] {
  const levels = new Map<number, T[]>();
  for (const item of items) {
    const depth = remoteOf(item).split('/').length;
    const level = levels.get(depth);
    if (level === undefined) levels.set(depth, [item]);
    else level.push(item);
  }
  return [...levels].sort(([a], [b]) => a - b).map(([, level]) => level);
}

// [user@]host: with a host name that starts with a letter (`2024-06-01T10:00.log` is a file's
// name, not a host's), a dotted IPv4 address or a bracketed IPv6 one (a colon in the brackets:
// `[2024]:notes` is a name).
const SCP_HOST_PATH =
  /^(?:[^@/:\s]+@)?(?:[A-Za-z][A-Za-z0-9.-]*|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%[^\]]+)?\]):/;

/**
 * A remote path written as scp and rsync take one with its host (`backup:photos`, `host:/data`,
 * `alice@backup:photos`, `10.0.0.5:data`): to muxftp it names a file of that name on the server
 * --server gives, which is rarely what was meant. The warning to print, or undefined.
 */
export function hostPathWarning(argument: string | undefined): string | undefined {
  if (argument === undefined || !SCP_HOST_PATH.test(argument)) return undefined;
  return `${argument} names a path with a colon in it on the server; the server is --server's (or $MUXFTP_SERVER's), not named in the path as scp's host:path is`;
}

/**
 * A remote path that starts with `~`, made with -p (`put -p f '~/docs/'`, `--to=~/docs`, which no
 * shell expands): the server never expands it, so it makes a directory named ~ at the root. The
 * warning to print, or undefined. (Without -p such a path is NOT_FOUND, whose line says so.)
 */
export function tildePathWarning(argument: string | undefined): string | undefined {
  if (argument === undefined || !/^~[\w.-]*\//.test(argument)) return undefined;
  const first = argument.split('/')[0];
  return `${argument} makes a directory named ${first} at the server's root: ~ is not expanded there (remote paths start at its root, your home once logged in)`;
}
