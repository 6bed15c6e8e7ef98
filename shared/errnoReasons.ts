/**
 * Plain words for the errno codes that local file work meets ('permission denied' for EACCES), so
 * that a message reads `<reason>: <path>` like the server's, not Node's `EACCES: permission denied,
 * open '<some temporary name>'`.
 */
const REASON_BY_ERRNO: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EFBIG: 'file too large',
  EMFILE: 'too many open files',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error',
  EBUSY: 'device or resource busy',
  ENAMETOOLONG: 'name too long for this filesystem',
};

/** The reason in words for a known errno code, else the error's own message. */
export function errnoReason(error: unknown): string {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const known = typeof errno === 'string' ? REASON_BY_ERRNO[errno] : undefined;
  return known ?? (error instanceof Error ? error.message : String(error));
}

/** A call on a file already closed, as the system's EBADF: its descriptor may name another file by now. */
export function closedFileError(): Error {
  return Object.assign(new Error('EBADF: file already closed'), { code: 'EBADF' });
}
