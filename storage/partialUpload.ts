/**
 * The data an interrupted upload left behind (issue #8), hashed from what is on disk — never from
 * digests remembered when it was written, so a partial that changed on disk (a flipped byte) shows
 * as block digests the client's file does not have, and is not extended.
 */
import { StorageError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import type { PartialKey, Storage } from './types.js';

const READ_BYTES = 1024 * 1024;

/**
 * Feeds the first `bytes` of the data kept for `path` under `key` to `digester`; resolves to how
 * many it fed: `bytes`, or with `upTo` the kept whole blocks up to `bytes`. Without `upTo`, data
 * shorter than `bytes` is NOT_FOUND. `admit`, if given, sees the kept data's size before any of it is
 * read, and may throw to refuse it: a check that fails then costs no hashing. Once `signal` is
 * aborted (the request is over) no further read starts: it rejects with its reason.
 */
export async function hashPartial(
  storage: Storage,
  path: string,
  key: PartialKey,
  bytes: number,
  digester: ContentDigester,
  upTo = false,
  admit?: (keptBytes: number) => void,
  signal?: AbortSignal,
): Promise<number> {
  const missing = () => new StorageError('NOT_FOUND', `no partial upload of ${bytes} bytes: ${path}`, path);
  const partial = await storage.openPartial?.(path, key);
  if (partial === undefined) {
    if (upTo || bytes === 0) return 0;
    throw missing();
  }
  try {
    const whole = Math.floor(partial.size / INTEGRITY_BLOCK_BYTES) * INTEGRITY_BLOCK_BYTES;
    const end = upTo ? Math.min(whole, bytes) : bytes;
    if (end > partial.size) throw missing();
    admit?.(partial.size);
    const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(end, 1)));
    for (let position = 0; position < end; ) {
      signal?.throwIfAborted();
      const length = Math.min(buffer.length, end - position);
      const read = await partial.read(buffer, 0, length, position);
      if (read !== length) throw missing();
      digester.update(buffer.subarray(0, length));
      position += length;
    }
    return end;
  } finally {
    await partial.close().catch(() => {});
  }
}

/** What the server holds for a `partial` query: whole blocks, at most `maxBlocks`, and their digests. */
export async function heldPartial(
  storage: Storage,
  path: string,
  key: PartialKey,
  maxBlocks: number,
  signal?: AbortSignal,
): Promise<{ offset: number; blocks: string[] }> {
  const digester = new ContentDigester(key.algorithm);
  try {
    const bytes = maxBlocks * INTEGRITY_BLOCK_BYTES;
    const offset = await hashPartial(storage, path, key, bytes, digester, true, undefined, signal);
    return { offset, blocks: digester.blockDigests.map((d) => d.toString('hex')) };
  } finally {
    digester.release();
  }
}
