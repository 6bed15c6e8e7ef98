/**
 * The one place an fs error becomes a StorageError. Messages name the client path only: the
 * host path of the root must never reach a client. The original error stays as `cause` for logs.
 */

import { DEFAULTS } from '../shared/defaults.js';
import { type BusyLimit, type ErrorCode, StorageError } from '../shared/errors.js';

const CODE_BY_ERRNO: Readonly<Record<string, { code: ErrorCode; message: string }>> = {
  ENOENT: { code: 'NOT_FOUND', message: 'no such file or directory' },
  EEXIST: { code: 'ALREADY_EXISTS', message: 'already exists' },
  ENOTDIR: { code: 'NOT_A_DIRECTORY', message: 'not a directory' },
  EISDIR: { code: 'IS_A_DIRECTORY', message: 'is a directory' },
  ENOTEMPTY: { code: 'DIRECTORY_NOT_EMPTY', message: 'directory not empty' },
  EACCES: { code: 'PERMISSION_DENIED', message: 'permission denied' },
  EPERM: { code: 'PERMISSION_DENIED', message: 'operation not permitted' },
  // A root on a read-only mount: as serve's start-up warning says, refused, not a disk failure.
  EROFS: { code: 'PERMISSION_DENIED', message: 'read-only file system' },
  ENOSPC: { code: 'NO_SPACE', message: 'no space left on device' },
  EDQUOT: { code: 'NO_SPACE', message: 'disk quota exceeded' },
  // The client's path is within maxPathBytes, but the root's own path counts against the host's
  // PATH_MAX: the client's to shorten, not a disk failure for the operator (a helper's pass).
  ENAMETOOLONG: { code: 'INVALID_PATH', message: "path too long for the server's filesystem" },
  // A memory storage's file that would grow past the room its process may take (storage/memory.ts).
  ENOMEMROOM: { code: 'NO_SPACE', message: "no room left in the server's memory" },
  // A link loop in the served tree (`a -> b -> a`): a path that leads nowhere, as one leading
  // out of the root is refused, not a disk failure for the operator's log.
  ELOOP: { code: 'INVALID_PATH', message: 'too many levels of symbolic links' },
  // A directory swapped for a link to elsewhere, found on the held-open directory (pinnedDirectories.ts).
  ELEDOUTSIDE: { code: 'INVALID_PATH', message: 'path leads outside the root' },
};

/** The errno string of an fs error (`ENOENT`, ...), or undefined for anything else. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** How a client path appears in messages: the root, '', shows as '/'. */
export function displayPath(clientPath: string): string {
  return clientPath === '' ? '/' : clientPath;
}

/** Maps an fs error about `clientPath` to a StorageError; a StorageError passes through as is. */
export function storageErrorFromFs(error: unknown, clientPath: string): StorageError {
  if (error instanceof StorageError) return error;
  const errno = errnoOf(error);
  const known = errno === undefined ? undefined : CODE_BY_ERRNO[errno];
  // The process out of descriptors (its reserve overdrawn by a flood): the server's state, not the
  // disk's, and it passes as transfers end. SERVER_BUSY, as the connection check near the limit
  // says it, which clients wait out and try again; IO_ERROR failed them for good.
  if (errno === 'EMFILE' || errno === 'ENFILE') {
    return new StorageError(
      'SERVER_BUSY',
      `server busy: out of file descriptors: ${displayPath(clientPath)}`,
      clientPath,
      {
        cause: error,
        details: {
          limit: 'fileDescriptors' satisfies BusyLimit,
          retryAfterMs: DEFAULTS.openFileRetryAfterMs,
        },
      },
    );
  }
  if (known) {
    return new StorageError(known.code, `${known.message}: ${displayPath(clientPath)}`, clientPath, {
      cause: error,
    });
  }
  // The errno alone: node's own message would carry the host path.
  const detail = errno ?? 'unexpected error';
  return new StorageError('IO_ERROR', `I/O error (${detail}): ${displayPath(clientPath)}`, clientPath, {
    cause: error,
  });
}

/** Runs an fs call, turning its failure into a StorageError about `clientPath`. */
export async function fsCall<T>(clientPath: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw storageErrorFromFs(error, clientPath);
  }
}

/** The path (or one of its ancestors) does not exist. */
export function isMissing(error: unknown): boolean {
  const errno = errnoOf(error);
  return errno === 'ENOENT' || errno === 'ENOTDIR';
}
