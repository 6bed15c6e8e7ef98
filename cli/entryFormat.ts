/** Entries as text: the `ls` table, the `stat` record and `df`'s table. */
import type { SpaceReport, WireEntry } from '../client/client.js';
import { unnamableReason } from '../shared/clientPaths.js';
import { formatBytes } from '../shared/humanUnits.js';
import { printable } from '../shared/printable.js';

/** Local time, to the second: `2025-11-23 13:22:05`. */
function formatMtime(ms: number): string {
  const at = new Date(ms);
  if (Number.isNaN(at.getTime())) return '-';
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
}

/**
 * One line per entry: type, with `long` its permission bits as ls -l shows them (? where the
 * server lists none), size (in bytes, or with `human` in B, KiB, MiB…; - for directories), mtime,
 * name (directories end in /).
 */
export function formatListing(
  entries: readonly WireEntry[],
  options: { human?: boolean; long?: boolean } = {},
): string[] {
  // One field, as ls -h prints it (1.21KiB): the columns stay split by blanks.
  const sizeOf = options.human === true ? (size: number) => formatBytes(size).replace(' ', '') : String;
  const sizes = entries.map((entry) => (entry.type === 'dir' ? '-' : sizeOf(entry.size)));
  // A loop, not Math.max(...sizes): spreading an ls -r of 100,000s of entries overflows the stack.
  const width = sizes.reduce((widest, size) => Math.max(widest, size.length), 1);
  return entries.map((entry, index) => {
    const name = printable(entry.name) + (entry.type === 'dir' ? '/' : '') + unnamableNote(entry);
    const bits =
      options.long === true ? `${entry.mode === undefined ? '?'.repeat(9) : modeLetters(entry.mode)} ` : '';
    return `${entry.type.padEnd(5)} ${bits}${sizes[index]!.padStart(width)}  ${formatMtime(entry.mtime)}  ${name}`;
  });
}

/** Why no command can name a listed entry (put there on the host by other means), or ''. */
function unnamableNote(entry: WireEntry): string {
  if (entry.notUtf8 === true) return '  (name not UTF-8 on the server: muxftp cannot name it)';
  const reason = unnamableReason(entry.name);
  return reason === undefined ? '' : `  (muxftp cannot name it: the name ${reason})`;
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
    ...(entry.mode === undefined ? [] : [`mode   ${formatMode(entry.mode)}`]),
  ];
}

/** Permission bits as `stat` prints them: `0755 (rwxr-xr-x)`. */
function formatMode(mode: number): string {
  return `${mode.toString(8).padStart(4, '0')} (${modeLetters(mode)})`;
}

/** `rwxr-xr-x`. */
function modeLetters(mode: number): string {
  return [...'rwxrwxrwx'].map((letter, bit) => (mode & (0o400 >> bit) ? letter : '-')).join('');
}

/**
 * `df`: a header and a line for the quota and for the disk, each when the server reports it:
 * size, used (- where unknown: a disk reports only what is free to write), available. Sizes in
 * bytes, or with `human` as formatListing's.
 */
export function formatSpace(report: SpaceReport, options: { human?: boolean } = {}): string[] {
  const sizeOf = options.human === true ? (size: number) => formatBytes(size).replace(' ', '') : String;
  const rows: string[][] = [['', 'size', 'used', 'available']];
  const { quota, disk } = report;
  if (quota !== undefined) {
    const taken = quota.usedBytes + quota.reservedBytes;
    rows.push([
      'quota',
      sizeOf(quota.limitBytes),
      sizeOf(taken),
      sizeOf(Math.max(0, quota.limitBytes - taken)),
    ]);
  }
  if (disk !== undefined) rows.push(['disk', sizeOf(disk.totalBytes), '-', sizeOf(disk.freeBytes)]);
  if (rows.length === 1) return ['the server reports no quota and no disk (memory storage)'];
  const widths = [0, 1, 2, 3].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[0]!) : cell.padStart(widths[column]!)))
      .join('  '),
  );
  // Hidden from listings: without this line a disk looks full of nothing.
  if (disk?.keptBytes !== undefined && disk.keptBytes > 0) {
    lines.push(
      `${options.human === true ? sizeOf(disk.keptBytes) : `${disk.keptBytes} B`} of the disk's used space is interrupted uploads' kept blocks (put -c continues them; the server removes them once they expire)`,
    );
  }
  return lines;
}
