/**
 * get -c: the digests of a partial local file's whole blocks, under the connection's algorithm,
 * for the server's REPLY to be checked against before a byte of it is reused.
 */
import { open } from 'node:fs/promises';
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

/** The whole local file's content digest (with its block digests) and size: a resumable put declares D up front. */
export async function localFileDigest(
  path: string,
  algorithm: IntegrityAlgorithm,
): Promise<{ size: number; digest: Buffer; blockDigests: Buffer[] }> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  const digester = new ContentDigester(algorithm);
  try {
    handle = await open(path, 'r');
    const stats = await handle.stat();
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, size);
      if (bytesRead === 0) break;
      digester.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    if (size !== stats.size) throw new Error('the file changed while being hashed');
    const digest = digester.digest();
    return { size, digest, blockDigests: [...digester.blockDigests] };
  } catch (err) {
    digester.release();
    throw localError(err, path);
  } finally {
    await handle?.close().catch(() => {});
  }
}
