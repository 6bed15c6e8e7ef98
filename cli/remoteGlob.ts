/**
 * Wildcards in the remote paths of `get`, `rm`, `mv` and `ls` (`get 'logs/*.log'`), expanded by the
 * client as sftp's and lftp's mget do: the protocol has no pattern operation, so each path
 * component with a wildcard is matched against a listing of the directory before it.
 *
 * `*`, `?`, `[…]` (`[!…]` too) and `{a,b}` mean what they mean to a shell (picomatch, with extglobs
 * and `!` negation off, and what else it reads otherwise escaped (shellGlob: `(`, `)`, `|`, `+`,
 * `"`, `$`), so a name like `@(draft)` or `IMG(1).jpg` is only a name); `*` and `?` do not match a
 * leading dot,
 * and a name that is the pattern itself, as typed, names that file alone (`report[1].pdf` is
 * that file, not also report1.pdf).
 * A backslash before one of `*?[]{}\` makes it literal (`get 'odd\*name'`): the server refuses
 * backslashes in names, so the escape takes no real path away.
 */
import picomatch from 'picomatch';
import type { Client, WireEntry } from '../client/client.js';
import { characterProblem } from '../shared/clientPaths.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';
import { planningLimit } from './concurrency.js';
import { isOneName, joinRemote, remotePathFromArgument } from './remotePath.js';
import { shellGlob } from './shellGlobs.js';

/** How a remote pattern that matches nothing is said, before the pattern. */
export const NO_REMOTE_MATCH = 'no remote path matches ';

const WILDCARD = new Set(['*', '?', '[', '{']);
const ESCAPABLE = /\\([*?[\]{}\\])/g;

/** True if `text` has one of `wildcards` not escaped with a backslash. */
function hasWildcard(text: string, wildcards: ReadonlySet<string> = WILDCARD): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && i + 1 < text.length) i++;
    else if (wildcards.has(text[i]!)) return true;
  }
  return false;
}

/** The wildcards that are always meant as such: a real name seldom holds them. */
const ALWAYS_WILDCARDS: ReadonlySet<string> = new Set(['*', '?']);

/** True if the remote path argument is a pattern to expand. */
export function isRemotePattern(argument: string): boolean {
  return hasWildcard(argument);
}

/**
 * True if the pattern may name itself: it has `[…]` or `{…}` but no `*` or `?`, so a name that is
 * the pattern as typed is what it names (matchRemotePattern).
 */
export function mayNameItself(argument: string): boolean {
  return isRemotePattern(argument) && !hasWildcard(argument, ALWAYS_WILDCARDS);
}

/**
 * The argument that names `path` as it is, never as a pattern: its wildcards escaped
 * (literalRemoteArgument undoes it).
 */
export function remoteArgumentNaming(path: string): string {
  return path.replace(/[*?[\]{}\\]/g, '\\$&');
}

/** The path a remote argument without wildcards names: its escapes removed. */
export function literalRemoteArgument(argument: string): string {
  return argument.replace(ESCAPABLE, '$1');
}

/** A path a pattern matched: as an argument would be typed, and its entry in the listing. */
export interface RemoteMatch {
  argument: string;
  entry: WireEntry;
}

/** What a remote argument names: a pattern's matches (matchRemotePattern), else its one literal path. */
export async function remotePathsNamedBy(client: Client, argument: string): Promise<string[]> {
  return (await remoteArgumentsNamedBy(client, argument)).map((named) => named.argument);
}

/** As remotePathsNamedBy, with each pattern match's entry as its directory listed it (a literal path has none). */
export async function remoteArgumentsNamedBy(
  client: Client,
  argument: string,
): Promise<Array<{ argument: string; entry?: WireEntry }>> {
  return isRemotePattern(argument)
    ? matchRemotePattern(client, argument)
    : [{ argument: literalRemoteArgument(argument) }];
}

/**
 * The remote paths `pattern` matches, sorted, each as an argument would be typed (ending in '/'
 * when the pattern does, which matches directories only), with its entry as its directory listed
 * it. NOT_FOUND when nothing matches, or when a directory before the first wildcard does not exist.
 */
export async function matchRemotePattern(client: Client, pattern: string): Promise<RemoteMatch[]> {
  // Directories of one level are listed side by side, as many at once as a command plans with.
  const limit = planningLimit(DEFAULTS.parallel, client);
  const namesDirectory = pattern.endsWith('/');
  const components = remotePathFromArgument(pattern)
    .split('/')
    .filter((component) => component !== '');
  let reached: Array<{ path: string; entry?: WireEntry }> = [{ path: '' }];
  // The first name the pattern matched that no path can hold, left out, and why.
  let unnameable: { path: string; why: string } | undefined;
  for (const [index, component] of components.entries()) {
    if (!hasWildcard(component)) {
      const name = literalRemoteArgument(component);
      reached = reached.map(({ path }) => ({ path: joinRemote(path, name) }));
      continue;
    }
    const last = index === components.length - 1;
    const glob = picomatch(shellGlob(component), { dot: false, noextglob: true, nonegate: true });
    // A class first matches no leading dot either, as in a shell (picomatch's `[^a]` does one).
    const matches = (name: string): boolean =>
      glob(name) && !(component.startsWith('[') && name.startsWith('.'));
    const only = reached.length === 1;
    const listings = await Promise.all(
      reached.map(({ path }) => limit.run(() => listForPattern(client, path, only))),
    );
    // Only directories lead further, or end a pattern that names a directory.
    const fits = (entry: WireEntry): boolean => (last && !namesDirectory) || entry.type === 'dir';
    // A name that is the component itself, as typed, is what it names in its directory: alone, so
    // `rm 'report[1].pdf'` never removes report1.pdf beside it (the pattern matched both). Only
    // for `[…]` and `{…}`, common in real names: `*` or `?` is meant as a wildcard (a file named
    // `*` does not turn `rm 'x/*'` into the removal of that one file).
    const literal = hasWildcard(component, ALWAYS_WILDCARDS) ? undefined : literalRemoteArgument(component);
    const next: typeof reached = [];
    for (const [i, entries] of listings.entries()) {
      const itself = entries.find((entry) => entry.name === literal && fits(entry) && entry.notUtf8 !== true);
      const candidates = itself === undefined ? entries : [itself];
      for (const entry of candidates) {
        if (!isOneName(entry.name) || (entry !== itself && !matches(entry.name))) continue;
        if (!fits(entry)) continue;
        // A name no path can hold cannot be acted on. Matched by the last part, one with a
        // character no path may hold (a backslash, a control character) is kept, to fail that one
        // path loudly (left out, `rm -r 'w/*'` exited 0 with it still there); a directory the
        // pattern goes through is left out (its listing failed the whole pattern, `rm
        // 'odd/*/in.log'` removing nothing), as is a name not UTF-8 on the server: each named
        // should it be all the pattern matched.
        const badCharacter = last ? undefined : characterProblem(entry.name);
        if (entry.notUtf8 === true || badCharacter !== undefined) {
          unnameable ??= {
            path: joinRemote(reached[i]!.path, entry.name),
            why:
              badCharacter === undefined
                ? 'that is not UTF-8 (muxftp names files in UTF-8 only)'
                : `muxftp cannot name (the name ${badCharacter})`,
          };
          continue;
        }
        next.push({ path: joinRemote(reached[i]!.path, entry.name), entry });
      }
    }
    reached = next;
  }
  // A literal component after the last wildcard (`*/app.log`) names what no listing showed:
  // only the paths that exist match.
  const known = await Promise.all(
    reached.map(({ path, entry }) => entry ?? limit.run(() => statIfThere(client, path))),
  );
  const found: RemoteMatch[] = [];
  for (const [i, entry] of known.entries()) {
    if (entry === undefined || (namesDirectory && entry.type !== 'dir')) continue;
    const { path } = reached[i]!;
    found.push({ argument: namesDirectory ? `${path}/` : path, entry });
  }
  if (found.length === 0 && unnameable !== undefined) {
    throw new MuxftpError(
      'INVALID_PATH',
      `${pattern} matches only a name on the server ${unnameable.why}: ${unnameable.path}`,
    );
  }
  if (found.length === 0) throw new MuxftpError('NOT_FOUND', `${NO_REMOTE_MATCH}${pattern}`);
  return found.sort((a, b) => (a.argument < b.argument ? -1 : a.argument > b.argument ? 1 : 0));
}

/** No entry there, or a file where the path needs a directory: the path names nothing. */
export const isNoSuchPath = (error: unknown): boolean =>
  error instanceof MuxftpError && (error.code === 'NOT_FOUND' || error.code === 'NOT_A_DIRECTORY');

async function statIfThere(client: Client, path: string): Promise<WireEntry | undefined> {
  try {
    return await client.stat(path);
  } catch (error) {
    if (isNoSuchPath(error)) return undefined;
    throw error;
  }
}

/**
 * A directory's entries. Its failure is the command's when it is the only directory the pattern
 * reached (`logs/*.log` with no logs/); among several, one that went away or is not a directory
 * meanwhile just matches nothing.
 */
async function listForPattern(client: Client, dir: string, only: boolean) {
  try {
    return await client.list(dir);
  } catch (error) {
    if (only || !isNoSuchPath(error)) throw error;
    return [];
  }
}
