/**
 * The process's soft limit on open files (RLIMIT_NOFILE, `ulimit -n`): the server budgets its
 * descriptors by it (server/fileDescriptors.ts), the CLI caps its transfers at once by it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { DEFAULTS } from './defaults.js';

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

/**
 * The descriptors this process holds now, which no budget of the server's counts: node's own
 * (its epoll, eventfds, the threadpool's pipes), stdio, the listener, a log file, whatever an
 * embedding program opened. On Linux the entries of /proc/self/fd (less the one its reading
 * opens); where they cannot be counted, DEFAULTS.heldDescriptorsEstimate.
 */
export function descriptorsInUse(): number {
  if (process.platform !== 'linux') return DEFAULTS.heldDescriptorsEstimate;
  try {
    // Synchronous, read once when a server starts: one entry per descriptor, the kernel's table.
    return Math.max(0, readdirSync('/proc/self/fd').length - 1);
  } catch {
    return DEFAULTS.heldDescriptorsEstimate;
  }
}
