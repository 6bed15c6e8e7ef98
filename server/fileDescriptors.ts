/**
 * File descriptors as a budget (issue #7): each connection holds one, each open transfer one
 * more. The process's soft limit (RLIMIT_NOFILE) is read once at start; the server keeps
 * DEFAULTS.fdReserve of them free so that it can always accept a connection and answer
 * SERVER_BUSY instead of running out (EMFILE would refuse every new client silently).
 */
import { readFileSync } from 'node:fs';

/** The soft limit on open files, on Linux from /proc/self/limits; undefined when unknown. */
export function softFileDescriptorLimit(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    // Read once, synchronously, while the server is constructed: before any client is served.
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (match === null || match[1] === 'unlimited') return undefined;
    return Number(match[1]);
  } catch {
    return undefined;
  }
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
