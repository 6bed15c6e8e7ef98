/**
 * get -c: the digests of a partial local file's whole blocks, under the connection's algorithm,
 * for the server's REPLY to be checked against before a byte of it is reused.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import { localError } from './sources.js';

const READ_BYTES = 1024 * 1024;

/** d_0 … of the first min(maxBlocks, whole blocks) blocks of `path`; [] when it is missing or not a file. */
export async function localBlockDigests(
  path: string,
  algorithm: IntegrityAlgorithm,
  maxBlocks: number,
): Promise<Buffer[]> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw localError(err, path);
  }
  const digester = new ContentDigester(algorithm);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return [];
    const blocks = Math.min(maxBlocks, Math.floor(stats.size / INTEGRITY_BLOCK_BYTES));
    const end = blocks * INTEGRITY_BLOCK_BYTES;
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    for (let position = 0; position < end; ) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(READ_BYTES, end - position), position);
      if (bytesRead === 0) break; // it shrank meanwhile: only the blocks read in full count
      digester.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return [...digester.blockDigests];
  } catch (err) {
    throw localError(err, path);
  } finally {
    digester.release();
    await handle.close().catch(() => {});
  }
}

/**
 * What identifies this version of a local file for a resumable put (issue #8), without reading
 * it: a hash of its device, inode, size and modification time (ns). A file rewritten in place
 * gets a new identity; should two versions ever share one, the block digests still differ and the
 * server's data is not extended.
 */
export async function localSourceIdentity(path: string): Promise<{ size: number; source: string }> {
  let stats: BigIntStats;
  try {
    stats = await stat(path, { bigint: true });
  } catch (err) {
    throw localError(err, path);
  }
  const source = createHash('sha256')
    .update(`${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}`)
    .digest('hex')
    .slice(0, 32);
  return { size: Number(stats.size), source };
}
