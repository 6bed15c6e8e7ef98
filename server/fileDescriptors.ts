/**
 * File descriptors as a budget (issue #7): each connection holds one, each open transfer one
 * more. The process's soft limit (RLIMIT_NOFILE) is read once at start; the server keeps
 * DEFAULTS.fdReserve of them free so that it can always accept a connection and answer
 * SERVER_BUSY instead of running out (EMFILE would refuse every new client silently).
 */
import { DEFAULTS } from '../shared/defaults.js';
import { ServerBusyError } from '../shared/errors.js';
import { softFileDescriptorLimit } from '../shared/fileDescriptorLimit.js';

/** A connection refused for want of descriptors: near the limit, or none left to open its home. */
export function outOfDescriptorsRefusal(): ServerBusyError {
  return new ServerBusyError('fileDescriptors', 'server busy: out of file descriptors; try again later');
}

/**
 * The default cap on files open for transfers: DEFAULTS.maxOpenFiles, but no more than half of
 * what the descriptor limit leaves after the reserve (the other half is for connections).
 */
export function defaultMaxOpenFiles(
  configured: number,
  reserve: number,
  limit = softFileDescriptorLimit(),
): number {
  if (limit === undefined) return configured;
  return Math.max(1, Math.min(configured, Math.floor((limit - reserve) / 2)));
}

/**
 * Why the descriptor limit leaves a server no room to work, or undefined. Past the reserve, every
 * connection was refused "out of file descriptors" for as long as the server ran, and it said
 * nothing at start (a helper's pass: `ulimit -n 64`).
 */
export function descriptorLimitShortfall(
  reserve: number,
  limit = softFileDescriptorLimit(),
): string | undefined {
  if (limit === undefined || limit - reserve >= DEFAULTS.minWorkingDescriptors) return undefined;
  return `the open-file limit (ulimit -n ${limit}) leaves ${Math.max(0, limit - reserve)} descriptors for connections and files after the ${reserve} kept in reserve, and a server needs at least ${DEFAULTS.minWorkingDescriptors}: raise it to ${reserve + DEFAULTS.minWorkingDescriptors} or more (ulimit -n 1024)`;
}

/**
 * An explicit cap on open files, held to what the descriptor limit allows (as the default is),
 * and the warning when it had to be: one given above it let transfers fail EMFILE (IO_ERROR,
 * which clients do not retry) where they would have waited SERVER_BUSY (a helper's pass).
 */
export function maxOpenFilesWithinLimit(
  requested: number,
  reserve: number,
  limit = softFileDescriptorLimit(),
): { maxOpenFiles: number; warning?: string } {
  const allowed = defaultMaxOpenFiles(requested, reserve, limit);
  if (allowed >= requested) return { maxOpenFiles: requested };
  return {
    maxOpenFiles: allowed,
    warning: `--max-open-files ${requested} is more than the open-file limit allows (ulimit -n ${limit}: half of what is left after ${reserve} kept in reserve, the other half being for connections); using ${allowed}`,
  };
}
