/**
 * The data an interrupted upload left behind (issue #8), hashed from what is on disk — never from
 * digests remembered when it was written, so a partial that changed on disk (a flipped byte) shows
 * as block digests the client's file does not have, and is not extended.
 */
import { StorageError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../shared/integrity/blockHash.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import type { ReadWatch } from './fileDigest.js';
import { hashReadBuffers } from './hashReadBuffers.js';
import type { PartialKey, PartialRead, Storage } from './types.js';

/**
 * Feeds the first `bytes` of the data kept for `path` under `key` to `digester`; resolves to how
 * many it fed: `bytes`, or with `upTo` the kept whole blocks up to `bytes`. Without `upTo`, data
 * shorter than `bytes` is NOT_FOUND. Once `watch.signal` is aborted (the request is over) nothing
 * more is read or fed: it rejects with its reason.
 */
export async function hashPartial(
  storage: Storage,
  path: string,
  key: PartialKey,
  bytes: number,
  digester: ContentDigester,
  upTo = false,
  watch: ReadWatch = {},
): Promise<number> {
  const partial = await storage.openPartial?.(path, key);
  if (partial === undefined) {
    if (upTo || bytes === 0) return 0;
    throw missingPartial(path, bytes);
  }
  try {
    return await hashKept(partial, path, bytes, digester, upTo, watch);
  } finally {
    await partial.close().catch(() => {});
  }
}

/** hashPartial() over kept data already open: a resumed upload's own file, which it then continues. */
export async function hashKept(
  kept: Pick<PartialRead, 'size' | 'read'>,
  path: string,
  bytes: number,
  digester: ContentDigester,
  upTo = false,
  { signal, onRead, onWaitingForMemory, owner }: ReadWatch = {},
): Promise<number> {
  const whole = Math.floor(kept.size / INTEGRITY_BLOCK_BYTES) * INTEGRITY_BLOCK_BYTES;
  const end = upTo ? Math.min(whole, bytes) : bytes;
  if (end > kept.size) throw missingPartial(path, bytes);
  if (end === 0) return 0;
  const { buffer, release } = await hashReadBuffers.borrow(end, {
    signal,
    onWaiting: onWaitingForMemory,
    owner,
  });
  try {
    for (let position = 0; position < end; ) {
      signal?.throwIfAborted();
      const length = Math.min(buffer.length, end - position);
      const read = await kept.read(buffer, 0, length, position);
      if (read !== length) throw missingPartial(path, bytes);
      onRead?.();
      // Checked again after the read: the digester is not ours to feed once the request is over.
      signal?.throwIfAborted();
      digester.update(buffer.subarray(0, length));
      position += length;
    }
  } finally {
    release();
  }
  return end;
}

function missingPartial(path: string, bytes: number): StorageError {
  return new StorageError('NOT_FOUND', `no partial upload of ${bytes} bytes: ${path}`, path);
}

/** What the server holds for a `partial` query: whole blocks, at most `maxBlocks`, and their digests. */
export async function heldPartial(
  storage: Storage,
  path: string,
  key: PartialKey,
  maxBlocks: number,
  watch: ReadWatch = {},
): Promise<{ offset: number; blocks: string[]; inUse?: true }> {
  await prepareBlockHashes();
  const digester = new ContentDigester(key.algorithm);
  try {
    const bytes = maxBlocks * INTEGRITY_BLOCK_BYTES;
    const offset = await hashPartial(storage, path, key, bytes, digester, true, watch);
    // Kept, but another upload writes it now: none offered, and the client told why.
    if (offset === 0 && (await storage.partialInUse?.(path, key)) === true)
      return { offset: 0, blocks: [], inUse: true };
    return { offset, blocks: digester.blockDigests.map((d) => d.toString('hex')) };
  } finally {
    digester.release();
  }
}
