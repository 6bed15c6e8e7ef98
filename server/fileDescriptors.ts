/**
 * File descriptors as a budget (issue #7): each connection holds one, each open transfer one
 * more. The process's soft limit (RLIMIT_NOFILE) is read once at start; the server keeps
 * DEFAULTS.fdReserve of them free so that it can always accept a connection and answer
 * SERVER_BUSY instead of running out (EMFILE would refuse every new client silently).
 */
import { softFileDescriptorLimit } from '../shared/fileDescriptorLimit.js';

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
