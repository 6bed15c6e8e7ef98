/**
 * Remembers the SHA-256 of each file version, so a download can send the digest the upload (or an
 * earlier download) computed instead of hashing the file again on the server's one thread. The
 * client still hashes every byte it receives, so a stale or wrong entry can only ever surface as
 * an INTEGRITY_ERROR, never as silently accepted bytes.
 *
 * A version is (device, inode) plus size, mtime and ctime: any write or rename changes ctime, and
 * nothing a user can run sets it back.
 */
export interface FileVersion {
  readonly dev: number | bigint;
  readonly ino: number | bigint;
  readonly size: number | bigint;
  readonly mtimeMs: number | bigint;
  readonly ctimeMs: number | bigint;
}

export class DigestCache {
  private readonly maxEntries: number;
  private readonly entries = new Map<string, { version: string; sha256: Buffer }>();

  constructor(maxEntries = 100_000) {
    this.maxEntries = maxEntries;
  }

  get(file: FileVersion): Buffer | undefined {
    const entry = this.entries.get(identity(file));
    return entry !== undefined && entry.version === version(file) ? entry.sha256 : undefined;
  }

  set(file: FileVersion, sha256: Buffer): void {
    const key = identity(file);
    this.entries.delete(key); // re-insert: the Map's order is the eviction order
    this.entries.set(key, { version: version(file), sha256 });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}

const identity = (f: FileVersion) => `${f.dev}:${f.ino}`;
const version = (f: FileVersion) => `${f.size}:${f.mtimeMs}:${f.ctimeMs}`;
