/**
 * Client paths: the one place they are checked (after pyftpdlib's AbstractedFS.validpath).
 * A client path is relative to the storage root, uses '/' between names, and is normalized
 * here before any backend sees it; '' is the root itself.
 */

import { randomBytes } from 'node:crypto';
import { DEFAULTS } from '../shared/defaults.js';
import { StorageError } from '../shared/errors.js';

/** Names starting with this (in any letter case) belong to uploads in progress. */
export const TEMP_PREFIX = '.muxftp-';

const TEMP_SUFFIX = '.part';

// ASCII C0 controls and DEL; NUL gets its own message below.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTER = /[\u0001-\u001f\u007f]/;
// With the u flag a surrogate range matches only unpaired halves, which UTF-8 cannot encode.
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/**
 * True for names reserved for temporary upload files. Case-insensitive so that a client cannot
 * reach one through a case-insensitive filesystem by changing the case.
 */
export function isTemporaryName(name: string): boolean {
  return name.slice(0, TEMP_PREFIX.length).toLowerCase() === TEMP_PREFIX;
}

/** A fresh name for an upload's temporary file, e.g. `.muxftp-3f9c…e1.part`. */
export function newTemporaryName(): string {
  return `${TEMP_PREFIX}${randomBytes(16).toString('hex')}${TEMP_SUFFIX}`;
}

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
  if (Buffer.byteLength(path, 'utf8') > DEFAULTS.maxPathBytes) {
    refuse(`longer than ${DEFAULTS.maxPathBytes} bytes`);
  }
  if (path.includes('\0')) refuse('contains a NUL byte');
  if (CONTROL_CHARACTER.test(path)) refuse('contains a control character');
  if (LONE_SURROGATE.test(path)) refuse('is not valid Unicode');
  // A backslash is a separator on Windows hosts; refusing it keeps names portable and safe.
  if (path.includes('\\')) refuse('contains a backslash');
  if (path.startsWith('/')) refuse('must be relative to the root (no leading /)');

  const names: string[] = [];
  for (const name of path.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..') refuse("contains a '..' segment");
    if (Buffer.byteLength(name, 'utf8') > DEFAULTS.maxNameBytes) {
      refuse(`a name is longer than ${DEFAULTS.maxNameBytes} bytes`);
    }
    if (isTemporaryName(name)) refuse(`names starting with ${TEMP_PREFIX} are reserved`);
    names.push(name);
  }
  return names.join('/');
}

/** The last name of a normalized client path ('' for the root). */
export function baseName(clientPath: string): string {
  return clientPath.slice(clientPath.lastIndexOf('/') + 1);
}

/** The parent of a normalized client path ('' for a name directly under the root). */
export function parentPath(clientPath: string): string {
  const slash = clientPath.lastIndexOf('/');
  return slash === -1 ? '' : clientPath.slice(0, slash);
}
