/** How a file's stats become the EntryInfo clients see. */

import type { FsStats } from './fsApi.js';
import type { EntryInfo, EntryType } from './types.js';

function entryType(stats: FsStats): EntryType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  return 'other';
}

export function entryInfo(name: string, stats: FsStats): EntryInfo {
  const type = entryType(stats);
  return { name, type, size: type === 'file' ? Number(stats.size) : 0, mtimeMs: toMs(stats.mtimeMs) };
}

/** Whole milliseconds: node reports fractions, which clients have no use for. */
export function toMs(mtimeMs: number | bigint): number {
  return Math.floor(Number(mtimeMs));
}
