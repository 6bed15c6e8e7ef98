/** This process's open file descriptors, counted in /proc/self/fd (Linux): a leak shows as a count that grows. */
import { existsSync, readdirSync } from 'node:fs';

/** Whether /proc/self/fd is there to count (and to name what a descriptor is: Linux). */
export const hasProcSelfFd = existsSync('/proc/self/fd');

/** Whether {@link openDescriptors} can count here (tests that need it skip otherwise). */
export const canCountDescriptors = hasProcSelfFd;

export function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}
