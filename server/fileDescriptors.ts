/**
 * File descriptors as a budget (issue #7): each connection holds one, each open transfer one
 * more. The process's soft limit (RLIMIT_NOFILE) is read once at start, and what the process
 * holds already (node's own, stdio, the listener, a log file: some 22 for `muxftp serve`) counted
 * once as the server starts listening; the server keeps DEFAULTS.fdReserve of the rest free so
 * that it can always accept a connection and answer SERVER_BUSY instead of running out (EMFILE
 * would refuse every new client silently, and fail the requests that needed one).
 */
import { DEFAULTS } from '../shared/defaults.js';
import { ServerBusyError } from '../shared/errors.js';
import { descriptorsInUse, softFileDescriptorLimit } from '../shared/fileDescriptorLimit.js';

/**
 * A connection refused for want of descriptors: near the limit, or none left to open its home; or
 * a transfer's file, with when to try again (`retryAfterMs`).
 */
export function outOfDescriptorsRefusal(retryAfterMs?: number): ServerBusyError {
  return new ServerBusyError(
    'fileDescriptors',
    'server busy: out of file descriptors; try again later',
    retryAfterMs,
  );
}

/**
 * The default cap on files open for transfers: DEFAULTS.maxOpenFiles, but no more than half of
 * what the descriptor limit leaves after the reserve and the descriptors the process holds
 * (`held`); the other half is for connections.
 */
export function defaultMaxOpenFiles(
  configured: number,
  reserve: number,
  limit = softFileDescriptorLimit(),
  held = descriptorsInUse(),
): number {
  if (limit === undefined) return configured;
  return Math.max(1, Math.min(configured, Math.floor((limit - reserve - held) / 2)));
}

/**
 * Whether a new connection would take a descriptor the budget has not got: the connections and
 * sockets not yet known (`connections`), the room kept for files (the open-file cap, held to half
 * of what is left, as defaultMaxOpenFiles; or the files open, if more), the reserve and what the
 * process held at start (`held`) together reach the limit. Counting the files open alone, a
 * flood's connections took the files' half, their transfers then overdrew the reserve and failed
 * EMFILE: 39 to 75 requests of 120 clients under `ulimit -n 150`.
 */
export function connectionOverBudget(
  connections: number,
  openFiles: number,
  budget: { limit: number; reserve: number; held: number; maxOpenFiles: number },
): boolean {
  const { limit, reserve, held, maxOpenFiles } = budget;
  const keptForFiles = Math.max(openFiles, defaultMaxOpenFiles(maxOpenFiles, reserve, limit, held));
  return connections + keptForFiles + reserve + held >= limit;
}

/**
 * How many files for transfers the descriptor budget has room for now: what the limit leaves past
 * the connections, the reserve and what the process held at start (`held`). The default cap on
 * files keeps them within it; a larger one given to the library (`maxOpenFiles`) took files past
 * the files' half out of the reserve, until EMFILE: a listing then found none, and a newcomer was
 * closed unanswered (a review, ulimit -n 256). The open-file slots take it as their cap when it is
 * the lower, shares included (server/openFileSlots.ts).
 */
export function filesWithinBudget(
  connections: number,
  budget: { limit: number; reserve: number; held: number },
): number {
  return budget.limit - budget.reserve - budget.held - connections;
}

/**
 * Why the descriptor limit leaves a server no room to work, or undefined. Past the reserve and
 * what the process holds (`held`), every connection was refused "out of file descriptors" for as
 * long as the server ran, and it said nothing at start (a helper's pass: `ulimit -n 64`).
 */
export function descriptorLimitShortfall(
  reserve: number,
  limit = softFileDescriptorLimit(),
  held = descriptorsInUse(),
): string | undefined {
  if (limit === undefined || limit - reserve - held >= DEFAULTS.minWorkingDescriptors) return undefined;
  return `the open-file limit (ulimit -n ${limit}) leaves ${Math.max(0, limit - reserve - held)} descriptors for connections and files after the ${reserve} kept in reserve and the ${held} the process holds, and a server needs at least ${DEFAULTS.minWorkingDescriptors}: raise it to ${reserve + held + DEFAULTS.minWorkingDescriptors} or more (ulimit -n 1024)`;
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
  held = descriptorsInUse(),
): { maxOpenFiles: number; warning?: string } {
  const allowed = defaultMaxOpenFiles(requested, reserve, limit, held);
  if (allowed >= requested) return { maxOpenFiles: requested };
  return {
    maxOpenFiles: allowed,
    warning: `--max-open-files ${requested} is more than the open-file limit allows (ulimit -n ${limit}: half of what is left after ${reserve} kept in reserve and the ${held} the process holds, the other half being for connections); using ${allowed}`,
  };
}
