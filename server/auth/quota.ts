/**
 * A user's storage quota: bytes of files under their home, plus the kept partial uploads there
 * (issue #8), plus bytes reserved by uploads in flight may not exceed the limit. An upload
 * reserves what its commit will add before it starts (its declared size, less the file it
 * replaces: claimCredit), and grows its reservation as bytes arrive when it declared none; a resumable one reserves that (its declared size less the file it replaces) in the turn it takes over the
 * data kept for it, which leaves usage then (counted once), and what it keeps when cut short
 * enters usage in the turn its reservation goes.
 *
 * Usage is counted by walking the home once, at the first reservation; after that every change
 * muxftp makes under the home (through any account: AccountResourceTable.recordChange) is
 * applied by its exact byte delta, from what storage reports it replaced or removed. A change
 * whose delta cannot be told exactly (a symbolic link or special file was involved, a directory
 * moved across the home's edge) makes the next reservation walk again. So that changes made
 * outside muxftp (on the host) are seen too, a reservation walks again once the last walk is
 * `recountIntervalMs` old: never more often, unless a delta was unknown.
 */
import { MuxftpError } from '../../shared/errors.js';
import { LinkBudget } from '../../shared/linkBudget.js';
import { normalizeClientPath } from '../../storage/paths.js';
import type { CommittedEntry, EntryInfo, RenamedEntries, Storage } from '../../storage/types.js';

export interface QuotaOptions {
  /** Bytes of files the home may hold, uploads in flight included. */
  limitBytes: number;
  /** A reservation walks the home again once the last walk is this old (ms). */
  recountIntervalMs: number;
  /**
   * A quota of the same home that stays in use beside this one: the one this replaces (the users
   * file read again), which sessions from before keep using, or another account's with that home.
   * Both fill that home, so the uploads in flight of each count against the other (one shared
   * count of reserved bytes).
   */
  replaces?: QuotaTracker;
}

/** A change muxftp made under the home, as storage reported it. */
export type UsageChange =
  | { op: 'put'; committed: CommittedEntry }
  | { op: 'delete'; removed: EntryInfo }
  | { op: 'rename'; renamed: RenamedEntries }
  | { op: 'rmdir' }
  /** A rename from inside the home to outside it (through a home that holds both)... */
  | { op: 'moveOut'; moved: EntryInfo }
  /** ...or from outside into it. */
  | { op: 'moveIn'; moved: EntryInfo; replaced: EntryInfo | undefined }
  /** Kept partial uploads grew (kept) or shrank (taken over by an upload, or removed) by `bytes`. */
  | { op: 'partial'; bytes: number }
  /** Something changed, but what cannot be told: count again. */
  | { op: 'unknown' };

/**
 * A change as the connection that made it saw it: storage's report, and the client paths it was
 * made at, relative to that connection's home.
 */
export type LocatedChange =
  | { op: 'put'; path: string; committed: CommittedEntry }
  | { op: 'delete'; path: string; removed: EntryInfo }
  | { op: 'rename'; from: string; to: string; renamed: RenamedEntries }
  | { op: 'rmdir'; path: string }
  /** Kept partial uploads (issue #8) in the directory `dir` changed by `bytes`. */
  | { op: 'partial'; dir: string; bytes: number };

/**
 * The change made through the home `changeHome`, as the quota of the home `quotaHome` sees it
 * (both paths under the served root), or undefined when it happened outside that home. Homes
 * that nest, or are one, count each other's changes; they are compared by their paths under the
 * served root (a home reached through a symbolic link sees the other's changes at its next walk).
 */
export function changeSeenFrom(
  quotaHome: string,
  changeHome: string,
  change: LocatedChange,
): UsageChange | undefined {
  const inside = (path: string) => isWithinHome(quotaHome, underRoot(changeHome, path));
  try {
    switch (change.op) {
      case 'put':
        return inside(change.path) ? { op: 'put', committed: change.committed } : undefined;
      case 'delete':
        return inside(change.path) ? { op: 'delete', removed: change.removed } : undefined;
      case 'rmdir':
        return inside(change.path) ? { op: 'rmdir' } : undefined;
      case 'partial':
        return inside(change.dir) ? { op: 'partial', bytes: change.bytes } : undefined;
      case 'rename': {
        const from = inside(change.from);
        const to = inside(change.to);
        const { moved, replaced } = change.renamed;
        if (from && to) return { op: 'rename', renamed: change.renamed };
        if (from) return { op: 'moveOut', moved };
        if (to) return { op: 'moveIn', moved, replaced };
        return undefined;
      }
    }
  } catch {
    // Storage took these paths, so they normalize; should one not, count again.
    return { op: 'unknown' };
  }
}

/** A client path relative to `home`, as a path under the served root. */
function underRoot(home: string, path: string): string {
  const relative = normalizeClientPath(path);
  return home === '' ? relative : relative === '' ? home : `${home}/${relative}`;
}

function isWithinHome(home: string, path: string): boolean {
  return home === '' || path === home || path.startsWith(`${home}/`);
}

/** What the uploads in flight in a home hold. */
interface InFlight {
  /** Bytes reserved. */
  bytes: number;
  /** Paths whose file an upload in flight counts as freed by its commit (claimCredit). */
  credited: Set<string>;
}

/** A walk of the home under way, and what changes made meanwhile leave uncertain about it. */
interface Walk {
  readonly counted: Promise<number>;
  /** Bytes changes during the walk added, and freed: the walk saw each such change or did not. */
  mayHaveAdded: number;
  mayHaveFreed: number;
  /** A change the walk cannot be squared with happened meanwhile: a move, or an unknown delta. */
  spoiled: boolean;
}

export class QuotaTracker {
  readonly limitBytes: number;
  private readonly recountIntervalMs: number;
  private readonly storage: Storage;
  /** Bytes of files under the home: walked, then kept up to date change by change. */
  private used: number | undefined;
  /** The next reservation walks, whatever the interval: nothing counted yet, or a delta was unknown. */
  private recountDue = true;
  /** performance.now() when the last walk started. */
  private lastWalkAt = Number.NEGATIVE_INFINITY;
  private walk: Walk | undefined;
  /** Uploads in flight in the home, shared with the quotas this one replaces. */
  private readonly inFlight: InFlight;
  private walks = 0;

  constructor(storage: Storage, options: QuotaOptions) {
    const { limitBytes, recountIntervalMs } = options;
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) {
      throw new TypeError(`quota must be a positive integer of bytes, got ${String(limitBytes)}`);
    }
    if (!Number.isSafeInteger(recountIntervalMs) || recountIntervalMs <= 0) {
      throw new TypeError(
        `quota recount interval must be a positive integer of ms, got ${String(recountIntervalMs)}`,
      );
    }
    this.limitBytes = limitBytes;
    this.recountIntervalMs = recountIntervalMs;
    this.storage = storage;
    this.inFlight = options.replaces?.inFlight ?? { bytes: 0, credited: new Set() };
  }

  /** Bytes reserved by uploads in flight (through this quota or one it replaced or was replaced by). */
  get reservedBytes(): number {
    return this.inFlight.bytes;
  }

  /** Walks of the home so far (for tests and logs). */
  get walkCount(): number {
    return this.walks;
  }

  /** Reserves `bytes` for an upload about to start; throws QUOTA_EXCEEDED when they do not fit. */
  async reserve(bytes: number): Promise<void> {
    const counted = await this.usedBytes();
    // Read again: changes applied while this call waited count too.
    const used = this.used ?? counted;
    if (used + this.inFlight.bytes + bytes > this.limitBytes) throw this.exceeded(bytes, used);
    this.inFlight.bytes += bytes;
  }

  /** More bytes for an upload in flight (after reserve()); throws QUOTA_EXCEEDED when they do not fit. */
  grow(bytes: number): void {
    this.reserveNow(bytes);
  }

  /**
   * Reserves `bytes` against usage as last counted, without walking (usedBytes() came first):
   * a resumable upload reserves so in the turn it takes over its kept data, which leaves usage
   * then, so those bytes count once. Throws QUOTA_EXCEEDED when they do not fit.
   */
  reserveNow(bytes: number): void {
    this.assertRoom(bytes);
    this.inFlight.bytes += bytes;
  }

  /** Throws QUOTA_EXCEEDED, as reserveNow() would, when `bytes` do not fit now; reserves nothing. */
  assertRoom(bytes: number): void {
    if (!this.hasRoom(bytes)) throw this.exceeded(bytes, this.used ?? 0);
  }

  /** Whether `bytes` (maybe fewer than 0) fit now, beside usage and the uploads in flight. */
  hasRoom(bytes: number): boolean {
    return (this.used ?? 0) + this.inFlight.bytes + bytes <= this.limitBytes;
  }

  /**
   * An upload about to replace the file of `bytes` at `path` (a client path under the home) may
   * count those bytes as freed, so it reserves only what it adds: returns them, or 0 when another
   * upload in flight to that path counts them already. Both files exist until the commit, so the
   * home's files and temporary files may together pass the limit for a while, but only by files
   * being replaced, each counted once (at most the usage again); what the quota bounds, what the
   * home holds once uploads are done, never passes it: the upload checks the credit again at its
   * commit (the file may be gone by then) and keeps an interrupted upload's data only within the
   * limit. releaseCredit() when the upload ends.
   */
  claimCredit(path: string, bytes: number): number {
    if (bytes <= 0 || this.inFlight.credited.has(path)) return 0;
    this.inFlight.credited.add(path);
    return bytes;
  }

  releaseCredit(path: string): void {
    this.inFlight.credited.delete(path);
  }

  /**
   * Holds `bytes` that left usage a moment ago whether they fit or not (release() gives them
   * back): kept data an upload took over and was refused, until it is kept again.
   */
  hold(bytes: number): void {
    this.inFlight.bytes += bytes;
  }

  release(bytes: number): void {
    this.inFlight.bytes = Math.max(0, this.inFlight.bytes - bytes);
  }

  /** muxftp changed the home: apply the change's exact delta, or count again when it has none. */
  record(change: UsageChange): void {
    const delta = bytesDelta(change);
    const walk = this.walk;
    if (delta === undefined) {
      this.recountDue = true;
      if (walk !== undefined) walk.spoiled = true;
      return;
    }
    if (walk !== undefined) {
      // A walk under way may list a moved entry twice, or not at all.
      if (change.op === 'rename' || change.op === 'moveOut' || change.op === 'moveIn') walk.spoiled = true;
      else if (delta > 0) walk.mayHaveAdded += delta;
      else walk.mayHaveFreed -= delta;
    }
    if (this.used !== undefined) this.used = Math.max(0, this.used + delta);
  }

  /** Bytes of files under the home, counted again first when a walk is due. */
  usedBytes(): Promise<number> {
    if (this.walk !== undefined) return this.walk.counted;
    const intervalOver = performance.now() - this.lastWalkAt >= this.recountIntervalMs;
    if (this.used !== undefined && !this.recountDue && !intervalOver) return Promise.resolve(this.used);
    return this.startWalk().counted;
  }

  private startWalk(): Walk {
    this.walks++;
    this.lastWalkAt = performance.now();
    this.recountDue = false;
    const walk: Walk = {
      counted: countBytes(this.storage).then(
        ({ bytes, complete }) => this.walkDone(walk, bytes, complete),
        (error: unknown) => {
          this.walk = undefined;
          this.recountDue = true;
          throw error;
        },
      ),
      mayHaveAdded: 0,
      mayHaveFreed: 0,
      spoiled: false,
    };
    this.walk = walk;
    return walk;
  }

  /** Settles usage from a finished walk; resolves its waiters to the usage now. */
  private walkDone(walk: Walk, walked: number, complete: boolean): number {
    this.walk = undefined;
    if (walk.spoiled) {
      // It proves nothing: keep the running count; before the first one, it is the best there is.
      if (this.used === undefined) {
        this.used = walked + walk.mayHaveAdded;
        this.recountDue = true;
      }
      return this.used;
    }
    // Each change made during the walk was seen by it or not, so the usage now lies in
    // [low, high]. The running count is exact for muxftp's own changes: keep it unless the walk
    // proves something else changed the home; then take the highest usage the walk allows, so
    // that not knowing what the walk saw never lets uploads past the limit.
    const low = walked - walk.mayHaveFreed;
    const high = walked + walk.mayHaveAdded;
    // A directory it could not list (a tree moved deeper than a path may go, one the server may
    // not read) hid its files: such a walk counted less than is there, so it may only raise usage.
    if (!complete) {
      this.used = Math.max(this.used ?? 0, high);
      return this.used;
    }
    const consistent = this.used !== undefined && this.used >= low && this.used <= high;
    if (!consistent) this.used = high;
    return this.used!;
  }

  private exceeded(bytes: number, used: number): MuxftpError {
    const free = Math.max(0, this.limitBytes - used - this.inFlight.bytes);
    return new MuxftpError(
      'QUOTA_EXCEEDED',
      `quota exceeded: ${bytes} more bytes do not fit (${free} of ${this.limitBytes} free)`,
    );
  }
}

/**
 * The change in the walk's sum (the sizes of `file` entries), or undefined when it cannot be told
 * exactly: a symbolic link or special file was removed, moved or replaced (a walk counts a link to
 * a file inside the home at its target's size, and follows one to a directory).
 */
function bytesDelta(change: UsageChange): number | undefined {
  const fileBytes = (entry: EntryInfo | undefined): number | undefined =>
    entry === undefined ? 0 : entry.type === 'file' ? entry.size : undefined;
  switch (change.op) {
    case 'put': {
      const replaced = fileBytes(change.committed.replaced);
      return replaced === undefined ? undefined : change.committed.size - replaced;
    }
    case 'delete': {
      const removed = fileBytes(change.removed);
      return removed === undefined ? undefined : -removed;
    }
    case 'rename': {
      const { moved, replaced } = change.renamed;
      const replacedBytes = fileBytes(replaced);
      if (moved.type === 'other' || replacedBytes === undefined) return undefined;
      return -replacedBytes;
    }
    case 'rmdir':
      return 0; // only an empty directory is removed
    case 'partial':
      return change.bytes;
    case 'moveOut':
      // A directory's bytes are not known without a walk.
      return change.moved.type === 'file' ? -change.moved.size : undefined;
    case 'unknown':
      return undefined;
    case 'moveIn': {
      const replacedBytes = fileBytes(change.replaced);
      if (change.moved.type !== 'file' || replacedBytes === undefined) return undefined;
      return change.moved.size - replacedBytes;
    }
  }
}

/**
 * Sum of file sizes under the storage's root, directory by directory, with the kept partial
 * uploads no upload in flight has taken over (issue #8: an upload in flight is counted by its
 * reservation).
 */
async function countBytes(storage: Storage): Promise<{ bytes: number; complete: boolean }> {
  let total = 0;
  let complete = true;
  // Gone or replaced by a file since it was listed: a change the running count has (or will).
  // Reached through a link (one leading out of the root, say): not the home's own files.
  const unlisted =
    (throughLink: boolean) =>
    (error: unknown): [] => {
      const code = (error as { code?: unknown }).code;
      if (!throughLink && code !== 'NOT_FOUND' && code !== 'NOT_A_DIRECTORY') complete = false;
      return [];
    };
  // A link to a directory is followed within a budget: a link loop would be walked without end.
  const links = new LinkBudget();
  const pending = [{ dir: '', linksOnTheWay: 0 }];
  while (pending.length > 0) {
    const { dir, linksOnTheWay } = pending.pop()!;
    const [entries, partials] = await Promise.all([
      storage.list(dir).catch(unlisted(linksOnTheWay > 0)),
      storage.keptPartials?.(dir).catch(unlisted(linksOnTheWay > 0)) ?? [],
    ]);
    for (const partial of partials) total += partial.size;
    for (const entry of entries) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.type === 'file') total += entry.size;
      if (entry.type !== 'dir') continue;
      if (entry.link !== true) {
        pending.push({ dir: path, linksOnTheWay });
      } else if (links.take(linksOnTheWay)) {
        pending.push({ dir: path, linksOnTheWay: linksOnTheWay + 1 });
      }
    }
  }
  return { bytes: total, complete };
}
