/**
 * A path ending in '/' names a directory (namesDirectory, shared/clientPaths.ts), as POSIX reads
 * `f/` and the CLI does (`rm f/` of a file fails NOT_A_DIRECTORY). Storage is given paths
 * normalized, slash dropped; before an op runs, the server looks at what such a path names, so
 * that every client and every Storage gets the rule: a library's `delete('f/')` does not delete
 * the file f. One stat, for such a path only. The entry may change between that look and the op
 * (as between any two requests); the op then acts on what is there, as it did without the rule.
 */
import { namesDirectory } from '../shared/clientPaths.js';
import { MuxftpError, StorageError } from '../shared/errors.js';
import type { Request } from '../shared/protocol/messages.js';
import type { EntryInfo, Storage } from '../storage/types.js';

/** Ops on a file only (read it, make it, remove it): no path naming a directory suits them. */
const FILE_OPERATIONS: ReadonlySet<Request['op']> = new Set(['get', 'put', 'partial', 'delete', 'digest']);

/** Ops that make the entry at their path: a path naming nothing yet is no refusal of theirs. */
const MAKING_OPERATIONS: ReadonlySet<Request['op']> = new Set(['mkdir', 'put', 'partial']);

/**
 * A refusal of `request` if a path of it ends in '/' and names a file (NOT_A_DIRECTORY, as
 * ENOTDIR), or a file op is given one (IS_A_DIRECTORY for a directory or a file it would make, as
 * Linux's open(2) says; a missing file to read or remove stays NOT_FOUND). Undefined for a
 * request with no such path, so that the others wait for nothing.
 */
export function checkDirectoryPaths(storage: Storage, request: Request): Promise<void> | undefined {
  // list and rmdir refuse anything but a directory themselves.
  if (request.op === 'list' || request.op === 'rmdir') return undefined;
  if (request.op === 'rename') {
    const { from, to } = request;
    if (!namesDirectory(from) && !namesDirectory(to)) return undefined;
    return (async () => {
      // A missing `from` is left to rename's NOT_FOUND, whatever `to` names (rename(2)'s ENOENT).
      const moved = await entryAt(storage, from, true);
      if (moved === undefined) return;
      if (namesDirectory(from) && moved.type !== 'dir') throw notADirectory(from);
      if (!namesDirectory(to)) return;
      const replaced = await entryAt(storage, to, true);
      if (replaced !== undefined && replaced.type !== 'dir') throw notADirectory(to);
      // What is moved takes the name `to/`: it must be a directory.
      if (moved.type !== 'dir') throw notADirectory(to);
    })();
  }
  if (!('path' in request) || !namesDirectory(request.path)) return undefined;
  const { op, path } = request;
  return (async () => {
    const entry = await entryAt(storage, path, MAKING_OPERATIONS.has(op));
    if (entry !== undefined && entry.type !== 'dir') throw notADirectory(path);
    if (!FILE_OPERATIONS.has(op)) return;
    if (entry === undefined) {
      throw new StorageError(
        'IS_A_DIRECTORY',
        `${path} names a directory (it ends in '/'): a put makes a file`,
        path,
      );
    }
    throw new StorageError('IS_A_DIRECTORY', `is a directory: ${path}`, path);
  })();
}

/** The entry at `path`, or undefined for none when `missingIsAnswer` (else stat's NOT_FOUND). */
async function entryAt(
  storage: Storage,
  path: string,
  missingIsAnswer: boolean,
): Promise<EntryInfo | undefined> {
  try {
    return await storage.stat(path);
  } catch (error) {
    if (missingIsAnswer && error instanceof MuxftpError && error.code === 'NOT_FOUND') return undefined;
    throw error;
  }
}

function notADirectory(path: string): StorageError {
  // Worded as the CLI's and storage's own NOT_A_DIRECTORY: the path shown ends in '/' already.
  return new StorageError('NOT_A_DIRECTORY', `not a directory: ${path}`, path);
}
