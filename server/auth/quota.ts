/**
 * A user's storage quota: bytes of files under their home plus bytes reserved by uploads in
 * flight may not exceed the limit. An upload reserves its declared size before it starts, and
 * grows its reservation as bytes arrive when it declared none. Usage is counted by walking the
 * home, once, and again after anything changed it (an upload, delete, rename), so changes made
 * outside muxftp are seen at the next change.
 */
import { MuxftpError } from '../../shared/errors.js';
import type { Storage } from '../../storage/types.js';

export class QuotaTracker {
  readonly limitBytes: number;
  private readonly storage: Storage;
  private used: number | undefined;
  private counting: Promise<number> | undefined;
  private generation = 0;
  private reserved = 0;

  constructor(limitBytes: number, storage: Storage) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) {
      throw new TypeError(`quota must be a positive integer of bytes, got ${String(limitBytes)}`);
    }
    this.limitBytes = limitBytes;
    this.storage = storage;
  }

  /** Bytes reserved by uploads in flight. */
  get reservedBytes(): number {
    return this.reserved;
  }

  /** Reserves `bytes` for an upload about to start; throws QUOTA_EXCEEDED when they do not fit. */
  async reserve(bytes: number): Promise<void> {
    const used = await this.usedBytes();
    if (used + this.reserved + bytes > this.limitBytes) throw this.exceeded(bytes, used);
    this.reserved += bytes;
  }

  /** More bytes for an upload in flight (after reserve()); throws QUOTA_EXCEEDED when they do not fit. */
  grow(bytes: number): void {
    const used = this.used ?? 0;
    if (used + this.reserved + bytes > this.limitBytes) throw this.exceeded(bytes, used);
    this.reserved += bytes;
  }

  release(bytes: number): void {
    this.reserved = Math.max(0, this.reserved - bytes);
  }

  /** The home changed: count again before the next reservation. */
  invalidate(): void {
    this.generation++;
    this.used = undefined;
    this.counting = undefined;
  }

  /** Bytes of files under the home now. */
  usedBytes(): Promise<number> {
    if (this.used !== undefined) return Promise.resolve(this.used);
    if (this.counting === undefined) {
      const generation = this.generation;
      const counting = countBytes(this.storage).then((bytes) => {
        // A change while counting makes this count stale: keep it for no one but its waiters.
        if (generation === this.generation) this.used = bytes;
        if (this.counting === counting) this.counting = undefined;
        return bytes;
      });
      this.counting = counting;
    }
    return this.counting;
  }

  private exceeded(bytes: number, used: number): MuxftpError {
    const free = Math.max(0, this.limitBytes - used - this.reserved);
    return new MuxftpError(
      'QUOTA_EXCEEDED',
      `quota exceeded: ${bytes} more bytes do not fit (${free} of ${this.limitBytes} free)`,
    );
  }
}

/** Sum of file sizes under the storage's root, directory by directory. */
async function countBytes(storage: Storage): Promise<number> {
  let total = 0;
  const pending = [''];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    const entries = await storage.list(dir).catch(() => []);
    for (const entry of entries) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.type === 'dir') pending.push(path);
      else if (entry.type === 'file') total += entry.size;
    }
  }
  return total;
}
