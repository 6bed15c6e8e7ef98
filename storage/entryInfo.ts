/** How a file's stats become the EntryInfo clients see. */

import { PERMISSION_BITS } from '../shared/fileModes.js';
import type { FsStats } from './fsApi.js';
import type { EntryInfo, EntryType } from './types.js';

function entryType(stats: FsStats): EntryType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  return 'other';
}

export function entryInfo(name: string, stats: FsStats): EntryInfo {
  const type = entryType(stats);
  return {
    name,
    type,
    size: type === 'file' ? Number(stats.size) : 0,
    mtimeMs: toMs(stats.mtimeMs),
    mode: Number(stats.mode) & PERMISSION_BITS,
  };
}

/**
 * The nearest whole millisecond: node reports fractions, which clients have no use for, and a time
 * set to a whole millisecond through node's API (a put keeping its source's) reads back a
 * nanosecond short of it: cut down, it came back a millisecond early.
 */
export function toMs(mtimeMs: number | bigint): number {
  return Math.round(Number(mtimeMs));
}

/** A file as a client saw it, its entry's size and time: utime's and chmod's `ifUnchanged`. */
export interface FileAsSeen {
  size: number;
  mtimeMs: number;
}

/** `entry` is still the file the client saw (another client's upload since would differ). */
export function isFileAsSeen(entry: EntryInfo, seen: FileAsSeen): boolean {
  return entry.type === 'file' && entry.size === seen.size && entry.mtimeMs === seen.mtimeMs;
}
