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
 */
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

export class DigestCache {
  private readonly maxEntries: number;
  private readonly entries = new Map<
    string,
    { version: string; digests: Map<IntegrityAlgorithm, FileDigest> }
  >();

  constructor(maxEntries = 100_000) {
    this.maxEntries = maxEntries;
  }

  get(file: FileVersion, algorithm: IntegrityAlgorithm): FileDigest | undefined {
    const entry = this.entries.get(identity(file));
    return entry !== undefined && entry.version === version(file) ? entry.digests.get(algorithm) : undefined;
  }

  /**
   * Adds `digest` to what is known of this version; another version's digests are dropped.
   * `observedAtMs`: when `file` was stat'ed before its bytes were read and hashed. The digest is
   * kept only if no write after that moment could have left the version as it was (see above),
   * or if this version's entry is already vouched for: a same-tick write would have made that one
   * wrong as well. Without `observedAtMs` the caller vouches for the bytes (an upload's commit:
   * storage wrote them itself).
   */
  set(file: FileVersion, digest: FileDigest, observedAtMs?: number): void {
    const key = identity(file);
    const current = this.entries.get(key);
    const known = current !== undefined && current.version === version(file);
    const racy = observedAtMs !== undefined && Number(file.ctimeMs) > observedAtMs - RACY_WINDOW_MS;
    if (racy && !known) return;
    const digests = known ? current.digests : new Map<IntegrityAlgorithm, FileDigest>();
    digests.set(digest.algorithm, digest);
    this.entries.delete(key); // re-insert: the Map's order is the eviction order
    this.entries.set(key, { version: version(file), digests });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}

const identity = (f: FileVersion) => `${f.dev}:${f.ino}`;
const version = (f: FileVersion) => `${f.size}:${f.mtimeMs}:${f.ctimeMs}`;
