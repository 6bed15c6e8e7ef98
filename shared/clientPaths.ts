/**
 * Client paths: the one place they are checked (after pyftpdlib's AbstractedFS.validpath). A
 * client path is relative to the storage root, uses '/' between names, and is normalized here
 * before any backend sees it; '' is the root itself. In shared/ because a client asks too: a
 * name a server lists may be one it refuses in a path (a control character put there on the
 * host), and what a listing says of it is no answer for that path.
 */

import { DEFAULTS } from './defaults.js';
import { StorageError } from './errors.js';
import { isTemporaryName, TEMP_PREFIX } from './temporaryNames.js';

// ASCII C0 controls and DEL; NUL gets its own message below.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTER = /[\u0001-\u001f\u007f]/;
// With the u flag a surrogate range matches only unpaired halves, which UTF-8 cannot encode.
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/**
 * Checks a client path and returns it normalized: relative, '/'-separated, with no empty or '.'
 * segments ('a//b/./c/' -> 'a/b/c'; '', '.' and './' -> ''). Throws INVALID_PATH otherwise.
 */
export function normalizeClientPath(path: string): string {
  if (typeof path !== 'string') {
    throw new StorageError('INVALID_PATH', 'path must be a string');
  }
  const refuse = (reason: string): never => {
    throw new StorageError('INVALID_PATH', `invalid path: ${reason}`, path);
  };
  // Length first, so nothing below runs over an oversized string.
  const tooLong = extentProblem(Buffer.byteLength(path, 'utf8'), 0);
  if (tooLong !== undefined) refuse(tooLong);
  const badCharacter = characterProblem(path);
  if (badCharacter !== undefined) refuse(badCharacter);
  if (path.startsWith('/')) refuse('must be relative to the root (no leading /)');

  const names: string[] = [];
  for (const name of path.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..') refuse("contains a '..' segment");
    const problem = nameProblem(name);
    if (problem !== undefined) refuse(problem);
    names.push(name);
  }
  // Bounded so that no request can make storage walk an arbitrarily deep tree (issue #7).
  const tooDeep = extentProblem(0, names.length);
  if (tooDeep !== undefined) refuse(tooDeep);
  return names.join('/');
}

/**
 * Whether `path` names a directory by its form: it ends in '/' (or '/.') after a name, as POSIX
 * reads `f/` (and the CLI: `rm f/` of a file fails NOT_A_DIRECTORY). normalizeClientPath drops
 * that slash; the server then holds the operation to a directory (server/directoryPaths.ts).
 * The root, however written ('./'), is one anyway.
 */
export function namesDirectory(path: string): boolean {
  return /\/\.?$/.test(path) && path.split('/').some((name) => name !== '' && name !== '.');
}

/** Why `text` (a path, or a name a server lists) holds a character no client path may, or undefined. */
export function characterProblem(text: string): string | undefined {
  if (text.includes('\0')) return 'contains a NUL byte';
  if (CONTROL_CHARACTER.test(text)) return 'contains a control character';
  if (LONE_SURROGATE.test(text)) return 'is not valid Unicode';
  // A backslash is a separator on Windows hosts; refusing it keeps names portable and safe.
  if (text.includes('\\')) return 'contains a backslash';
  return undefined;
}

/**
 * Why no request can name `name`, a name a server lists (put there on the host by other means),
 * or undefined: a character no path may hold, or a rule for a name alone.
 */
export function unnamableReason(name: string): string | undefined {
  return characterProblem(name) ?? nameProblem(name);
}

/** Why `name` can be no name in a path by the rules for a name alone (its length, the reserved prefix), or undefined. */
export function nameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name, 'utf8') > DEFAULTS.maxNameBytes)
    return `a name is longer than ${DEFAULTS.maxNameBytes} bytes`;
  if (isTemporaryName(name)) return `names starting with ${TEMP_PREFIX} are reserved`;
  return undefined;
}

/** Why a path of `bytes` bytes and `depth` names is past the limits every path keeps, or undefined. */
export function extentProblem(bytes: number, depth: number): string | undefined {
  if (bytes > DEFAULTS.maxPathBytes) return `longer than ${DEFAULTS.maxPathBytes} bytes`;
  if (depth > DEFAULTS.maxPathDepth) return `more than ${DEFAULTS.maxPathDepth} names deep`;
  return undefined;
}

/** Whether a server takes `path` (normalizeClientPath does not refuse it). */
export function isValidClientPath(path: string): boolean {
  try {
    normalizeClientPath(path);
    return true;
  } catch {
    return false;
  }
}
