/**
 * Remembers the content digests of each file version, one per integrity algorithm computed (with
 * its block digests), so a download sends the digest the upload (or an earlier download) computed
 * instead of hashing the file again on the server's one thread, and a resumed upload can check a
 * prefix block by block. The client still hashes every byte it receives, so a stale or wrong entry
 * can only ever surface as an INTEGRITY_ERROR, never as silently accepted bytes.
 *
 * A version is (device, inode) plus size, mtime and ctime: any write or rename changes ctime, and
 * nothing a user can run sets it back.
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

  /** Adds `digest` to what is known of this version; another version's digests are dropped. */
  set(file: FileVersion, digest: FileDigest): void {
    const key = identity(file);
    const current = this.entries.get(key);
    const digests =
      current !== undefined && current.version === version(file)
        ? current.digests
        : new Map<IntegrityAlgorithm, FileDigest>();
    digests.set(digest.algorithm, digest);
    this.entries.delete(key); // re-insert: the Map's order is the eviction order
    this.entries.set(key, { version: version(file), digests });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}

const identity = (f: FileVersion) => `${f.dev}:${f.ino}`;
const version = (f: FileVersion) => `${f.size}:${f.mtimeMs}:${f.ctimeMs}`;
