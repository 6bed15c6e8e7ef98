/** This process's open file descriptors, counted in /proc/self/fd (Linux): a leak shows as a count that grows. */
import { existsSync, readdirSync } from 'node:fs';

/** Whether {@link openDescriptors} can count here (tests that need it skip otherwise). */
export const canCountDescriptors = existsSync('/proc/self/fd');

export function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}
