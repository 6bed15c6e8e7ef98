/**
 * The order `ls` prints entries in, as ls(1) sorts them: by name (the default), newest first
 * (-t) or largest first (-S), each reversed by --reverse. A recursive listing is sorted within
 * each directory, every directory's entries still right after it.
 */
import type { WireEntry } from '../client/client.js';

export type ListingSortKey = 'name' | 'time' | 'size';

export interface ListingOrder {
  by: ListingSortKey;
  /** Reverses the whole order, ties included (ls -r; ours is --reverse, -r is recursive). */
  reverse: boolean;
}

/** Code-unit order, as the server sorts its listings (storage/fsStorage.ts compareNames). */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A directory has no size `ls` shows ('-'), and what it would be differs by backend (4096 on a
 * disk, 0 in memory): it sorts as 0.
 */
const sortedSize = (entry: WireEntry): number => (entry.type === 'dir' ? 0 : entry.size);

/** Ties (the same time, the same size) go by name, as ls(1) breaks them. */
function comparatorFor(order: ListingOrder, nameOf: (entry: WireEntry) => string) {
  const byKey = (a: WireEntry, b: WireEntry): number => {
    if (order.by === 'time' && a.mtime !== b.mtime) return b.mtime - a.mtime;
    if (order.by === 'size' && sortedSize(a) !== sortedSize(b)) return sortedSize(b) - sortedSize(a);
    return compareNames(nameOf(a), nameOf(b));
  };
  return order.reverse ? (a: WireEntry, b: WireEntry) => byKey(b, a) : byKey;
}

/** Entries of one directory (or a pattern's matches, named by path) in `order`. */
export function sortEntries<T extends WireEntry>(entries: readonly T[], order: ListingOrder): T[] {
  return sortByEntry(entries, order, (entry) => entry);
}

/** Things that each stand for an entry (the directories given to `ls`, by their entries) in `order`. */
export function sortByEntry<T>(
  items: readonly T[],
  order: ListingOrder,
  entryOf: (item: T) => WireEntry,
): T[] {
  const compare = comparatorFor(order, (entry) => entry.name);
  return [...items].sort((a, b) => compare(entryOf(a), entryOf(b)));
}

/**
 * A tree's entries (`relative`: its path below the listed directory, '/'-separated) in `order`
 * within each directory, each directory followed at once by its own entries, sorted the same way.
 */
export function sortTree<T extends { relative: string; entry: WireEntry }>(
  entries: readonly T[],
  order: ListingOrder,
): T[] {
  const parentOf = (relative: string): string => relative.slice(0, Math.max(0, relative.lastIndexOf('/')));
  const children = new Map<string, T[]>();
  for (const item of entries) {
    const parent = parentOf(item.relative);
    const siblings = children.get(parent);
    if (siblings === undefined) children.set(parent, [item]);
    else siblings.push(item);
  }
  const compare = comparatorFor(order, (entry) => entry.name);
  const sorted: T[] = [];
  const visit = (directory: string): void => {
    const here = children.get(directory);
    if (here === undefined) return;
    children.delete(directory);
    for (const item of here.sort((a, b) => compare(a.entry, b.entry))) {
      sorted.push(item);
      if (item.entry.type === 'dir') visit(item.relative);
    }
  };
  visit('');
  // None is left unless a listing named a path whose directory it did not list: kept, at the end.
  for (const rest of children.values()) sorted.push(...rest);
  return sorted;
}
