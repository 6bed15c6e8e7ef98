/**
 * How long this thread has waited, runnable, for a CPU (Linux's per-thread schedstat, its second
 * field): what tells a file call that was slow because the disk made it wait from one that was
 * slow because other processes had the core. Only the former is the disk's doing, and on a loaded
 * machine the latter are most of the slow calls (shared/inlineFileCalls.ts). A VM's vCPU taken by
 * its host is not in it (nor in the guest's steal time on every hypervisor).
 *
 * One `pread` of a file kept open (a few µs). Elsewhere (no /proc, another OS) there is no reading.
 */

import { openSync, readSync } from 'node:fs';

/** undefined: not opened yet; null: this system has no such file. */
let schedstat: number | null | undefined;
const text = Buffer.alloc(96);

/**
 * Milliseconds this thread has spent waiting on a run queue since it started, or undefined where
 * the system does not say. Opened on first use, from the thread that asks: `/proc/thread-self`
 * names the calling thread, so each worker thread (its own copy of this module) reads its own.
 */
export function threadRunQueueWaitMs(): number | undefined {
  if (schedstat === undefined) {
    try {
      schedstat = openSync('/proc/thread-self/schedstat', 'r');
    } catch {
      schedstat = null;
    }
  }
  if (schedstat === null) return undefined;
  try {
    // "<ns on a CPU> <ns waiting on a run queue> <time slices>\n"
    const length = readSync(schedstat, text, 0, text.length, 0);
    const waitedNs = Number(text.toString('latin1', 0, length).split(' ')[1]);
    return Number.isFinite(waitedNs) ? waitedNs / 1e6 : undefined;
  } catch {
    return undefined;
  }
}
