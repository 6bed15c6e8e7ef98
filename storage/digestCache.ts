/**
 * Remembers the content digests of each file version, one per integrity algorithm computed (with
 * its block digests), so a download sends the digest the upload (or an earlier download) computed
 * instead of hashing the file again on the server's one thread, and a resumed upload can check a
 * prefix block by block. The client still hashes every byte it receives, so a stale or wrong entry
 * can only ever surface as an INTEGRITY_ERROR, never as silently accepted bytes.
 *
 * A version is (device, inode) plus size, mtime and ctime: any write or rename changes ctime, and
 * nothing a user can run sets it back. But a file system stamps times from a coarse clock (a few
 * milliseconds on Linux, seconds on some), so a write in the same tick as the version a reader saw
 * leaves the version unchanged. A digest read from a file whose ctime is that recent is therefore
 * not remembered ("racily clean", as git calls it): a later reader hashes the file again. Without
 * this, one such write made every later download of the file fail its check until it changed again.
 *
 * Short of a whole digest, a version's leading block digests are kept too, as far as a reader
 * hashed them (a resumed download hashes the prefix its client already has before answering):
 * else a client repeating `get` with an offset, and hanging up after each answer, made the server
 * read and hash that prefix again every time. Memory: at most maxEntries versions and maxBytes of
 * them as estimated below (each with its block digests: one per 4 MiB of the file; leading ones at
 * most maxLeadingBlocks), the least recently set or served going first; a file storage removes
 * or replaces is forgotten at once.
 */
import { DEFAULTS } from '../shared/defaults.js';
import type { IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import type { FileDigest } from '../shared/integrity/contentDigest.js';

export interface FileVersion {
  readonly dev: number | bigint;
  readonly ino: number | bigint;
  readonly size: number | bigint;
  readonly mtimeMs: number | bigint;
  readonly ctimeMs: number | bigint;
}

/** How recent a ctime may be, before the moment its file was looked at, for its digest to be kept. */
export const RACY_WINDOW_MS = 2000;

/**
 * Heap an entry holds, measured on node 20: ~1 KiB for a version (its keys, maps and whole
 * digest; 1,115 B with one block's digest, in a 100,000-file put), and ~190 B of heap per block
 * digest besides its bytes (16 of XXH3-128, 32 of SHA-256) in a Buffer of its own.
 */
const ENTRY_BYTES = 1024;
const BLOCK_DIGEST_OVERHEAD_BYTES = 190;

/** What is known of one file version: whole-file digests, and leading block digests short of one. */
interface VersionEntry {
  version: string;
  /** Its estimated memory (ENTRY_BYTES…), as counted in DigestCache's total. */
  bytes: number;
  digests: Map<IntegrityAlgorithm, FileDigest>;
  /** d_0 … of the version's first whole blocks, per algorithm with no whole-file digest yet (made when first needed). */
  leading?: Map<IntegrityAlgorithm, readonly Buffer[]>;
}

export class DigestCache {
  private readonly maxEntries: number;
  private readonly maxLeadingBlocks: number;
  private readonly maxBytes: number;
  private readonly entries = new Map<string, VersionEntry>();
  /** The entries' estimated memory, together. */
  #bytes = 0;

  /**
   * `maxEntries`: file versions remembered (the least recently set or served go first). `maxLeadingBlocks`:
   * the most leading block digests kept short of a whole digest (only a resumed download uses
   * them, and it starts at most DEFAULTS.maxResumeBlocks in). `maxBytes`: the most memory the
   * entries may hold, as estimated (ENTRY_BYTES…); a version that would hold more alone is not kept.
   */
  constructor(
    maxEntries: number = DEFAULTS.digestCacheMaxEntries,
    maxLeadingBlocks: number = DEFAULTS.maxResumeBlocks,
    maxBytes: number = DEFAULTS.digestCacheMaxBytes,
  ) {
    this.maxEntries = maxEntries;
    this.maxLeadingBlocks = maxLeadingBlocks;
    this.maxBytes = maxBytes;
  }

  /** File versions remembered. */
  get size(): number {
    return this.entries.size;
  }

  /** The memory the remembered versions hold, as estimated (at most maxBytes). */
  get bytes(): number {
    return this.#bytes;
  }

  /** A hit makes the version the most recent: one a server keeps sending stays remembered. */
  get(file: FileVersion, algorithm: IntegrityAlgorithm): FileDigest | undefined {
    const entry = this.current(file);
    const digest = entry?.digests.get(algorithm);
    if (digest !== undefined) {
      const key = identity(file);
      this.entries.delete(key); // re-insert: the Map's order is the eviction order
      this.entries.set(key, entry!);
    }
    return digest;
  }

  /**
   * The digests of this version's first whole blocks (and of a last partial one, when the whole
   * digest is known), as far as they are known under `algorithm`: maybe none.
   */
  leadingBlocks(file: FileVersion, algorithm: IntegrityAlgorithm): readonly Buffer[] {
    const entry = this.current(file);
    return entry?.digests.get(algorithm)?.blockDigests ?? entry?.leading?.get(algorithm) ?? [];
  }

  /**
   * Adds `digest` to what is known of this version (it supersedes leading block digests of its
   * algorithm); another version's digests are dropped.
   * `observedAtMs`: when `file` was stat'ed before its bytes were read and hashed. The digest is
   * kept only if no write after that moment could have left the version as it was (see above),
   * or if this version's entry is already vouched for: a same-tick write would have made that one
   * wrong as well. Without `observedAtMs` the caller vouches for the bytes (an upload's commit:
   * storage wrote them itself).
   */
  set(file: FileVersion, digest: FileDigest, observedAtMs?: number): void {
    const entry = this.entryToUpdate(file, observedAtMs);
    if (entry === undefined) return;
    entry.digests.set(digest.algorithm, digest);
    entry.leading?.delete(digest.algorithm);
    this.#counted(file, entry);
  }

  /**
   * The file is gone from its name (removed, or replaced by a rename or an upload's commit): what
   * was known of it goes too, rather than hold memory until evicted (a tree uploaded again and
   * again left an entry per replaced file, up to maxEntries).
   */
  forget(file: Pick<FileVersion, 'dev' | 'ino'>): void {
    this.#remove(identity(file));
  }

  /**
   * Remembers the digests d_0 … of this version's first whole blocks, hashed by a reader that did
   * not read the whole file (a resumed download's prefix, an interrupted download), under the same
   * rule as set(). Kept only where they say more than what is known already, and at most
   * maxLeadingBlocks of them.
   */
  setLeadingBlocks(
    file: FileVersion,
    algorithm: IntegrityAlgorithm,
    blockDigests: readonly Buffer[],
    observedAtMs: number,
  ): void {
    const count = Math.min(blockDigests.length, this.maxLeadingBlocks);
    if (count <= this.leadingBlocks(file, algorithm).length) return;
    const entry = this.entryToUpdate(file, observedAtMs);
    if (entry === undefined) return;
    entry.leading ??= new Map();
    entry.leading.set(algorithm, blockDigests.slice(0, count));
    this.#counted(file, entry);
  }

  private current(file: FileVersion): VersionEntry | undefined {
    const entry = this.entries.get(identity(file));
    return entry !== undefined && entry.version === version(file) ? entry : undefined;
  }

  /** This version's entry, made the most recent (created if the rule lets it be): undefined if not. */
  private entryToUpdate(file: FileVersion, observedAtMs: number | undefined): VersionEntry | undefined {
    const key = identity(file);
    const known = this.current(file);
    const racy = observedAtMs !== undefined && Number(file.ctimeMs) > observedAtMs - RACY_WINDOW_MS;
    if (racy && known === undefined) return undefined;
    // Another version's entry goes with its bytes; this one's are counted as it changes (#counted).
    if (known === undefined) this.#remove(key);
    const entry = known ?? { version: version(file), bytes: 0, digests: new Map() };
    this.entries.delete(key); // re-insert: the Map's order is the eviction order
    this.entries.set(key, entry);
    return entry;
  }

  /**
   * Counts `entry`'s memory anew after a change, then drops the oldest entries past the bounds; an
   * entry past maxBytes alone goes by itself, rather than take every other with it first.
   */
  #counted(file: FileVersion, entry: VersionEntry): void {
    this.#bytes -= entry.bytes;
    entry.bytes = estimatedBytes(entry);
    this.#bytes += entry.bytes;
    if (entry.bytes > this.maxBytes) this.#remove(identity(file));
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) break;
      this.#remove(key);
    }
  }

  #remove(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

function estimatedBytes(entry: VersionEntry): number {
  let bytes = ENTRY_BYTES;
  const blocks = (digests: readonly Buffer[]) => {
    for (const digest of digests) bytes += BLOCK_DIGEST_OVERHEAD_BYTES + digest.length;
  };
  for (const digest of entry.digests.values()) blocks(digest.blockDigests);
  for (const leading of entry.leading?.values() ?? []) blocks(leading);
  return bytes;
}

const identity = (f: Pick<FileVersion, 'dev' | 'ino'>) => `${f.dev}:${f.ino}`;
const version = (f: FileVersion) => `${f.size}:${f.mtimeMs}:${f.ctimeMs}`;
