/** Entries as text: the `ls` table and the `stat` record. */
import type { WireEntry } from '../client/client.js';
import { formatBytes } from '../shared/humanUnits.js';
import { printable } from '../shared/printable.js';

/** Local time, to the second: `2025-11-23 13:22:05`. */
export function formatMtime(ms: number): string {
  const at = new Date(ms);
  if (Number.isNaN(at.getTime())) return '-';
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

/**
 * One line per entry: type, size (in bytes, or with `human` in B, KiB, MiB…; - for directories),
 * mtime, name (directories end in /).
 */
export function formatListing(entries: readonly WireEntry[], options: { human?: boolean } = {}): string[] {
  // One field, as ls -h prints it (1.21KiB): the columns stay split by blanks.
  const sizeOf = options.human === true ? (size: number) => formatBytes(size).replace(' ', '') : String;
  const sizes = entries.map((entry) => (entry.type === 'dir' ? '-' : sizeOf(entry.size)));
  const width = Math.max(1, ...sizes.map((size) => size.length));
  return entries.map((entry, index) => {
    const name = printable(entry.name) + (entry.type === 'dir' ? '/' : '');
    return `${entry.type.padEnd(5)} ${sizes[index]!.padStart(width)}  ${formatMtime(entry.mtime)}  ${name}`;
  });
}

export function formatEntryDetails(path: string, entry: WireEntry): string[] {
  const size = entry.type === 'dir' ? '-' : `${entry.size} (${formatBytes(entry.size)})`;
  const at = new Date(entry.mtime);
  const utc = Number.isNaN(at.getTime()) ? '' : ` (${at.toISOString()})`;
  return [
    `path   ${printable(path === '' ? '/' : path)}`,
    `type   ${entry.type}`,
    `size   ${size}`,
    `mtime  ${formatMtime(entry.mtime)}${utc}`,
  ];
}
