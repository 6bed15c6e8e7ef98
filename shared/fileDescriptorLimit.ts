/**
 * The process's soft limit on open files (RLIMIT_NOFILE, `ulimit -n`): the server budgets its
 * descriptors by it (server/fileDescriptors.ts), the CLI caps its transfers at once by it.
 */
import { readFileSync } from 'node:fs';

/** The soft limit on open files, on Linux from /proc/self/limits; undefined when unknown. */
export function softFileDescriptorLimit(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    // Synchronous, read once: by the server as it is constructed, by the CLI before its transfers.
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (match === null || match[1] === 'unlimited') return undefined;
    return Number(match[1]);
  } catch {
    return undefined;
  }
}
