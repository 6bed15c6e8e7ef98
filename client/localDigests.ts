/**
 * Digests of local files under the connection's algorithm, to be compared with the server's before
 * a byte is reused or skipped: a partial file's whole blocks (get -c, put -c), a whole file
 * (--skip-identical); and what identifies a version of a local file for a resumable put.
 */
import { createHash } from 'node:crypto';
import { type BigIntStats, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { MuxftpError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../shared/integrity/blockHash.js';
import { ContentDigester, type FileDigest } from '../shared/integrity/contentDigest.js';
import { LocalFile, localError, localFileCalls } from './sources.js';

const READ_BYTES = 1024 * 1024;

/**
 * Feeds `digester` the bytes of `path` up to `end(stats)` (the file as opened), and gives the
 * size; undefined when it is missing or not a regular file (nothing was fed). A file that shrank
 * meanwhile feeds what it has; an abort stops the reading there.
 */
async function digestLocalFile(
  path: string,
  digester: ContentDigester,
  end: (stats: BigIntStats) => number,
  signal?: AbortSignal,
): Promise<{ size: number } | undefined> {
  // On the loop while file calls are fast (LocalFile): --skip-identical of many small files made
  // four threadpool hand-offs a file (open, fstat, read, close), most of the client's time.
  let file: LocalFile | undefined;
  try {
    // Not a FIFO's open, which would wait for a writer: in a tree `get -r -c` replaces one.
    file = await LocalFile.openRegular(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw localError(err, path);
  }
  if (file === undefined) return undefined;
  try {
    const stats = file.statsAtOpen ?? (await file.stat());
    const stop = end(stats);
    const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(1, stop)));
    for (let position = 0; position < stop && signal?.aborted !== true; ) {
      const bytesRead = await file.readAt(buffer, 0, Math.min(buffer.length, stop - position), position);
      if (bytesRead === 0) break;
      digester.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return { size: Number(stats.size) };
  } catch (err) {
    throw localError(err, path);
  } finally {
    await file.close().catch(() => {});
  }
}

/**
 * The block digests one transfer computed of local files, for its next try: a try the server
 * refused SERVER_BUSY comes back to the same partial file, which need not be read again (a kept
 * partial of gigabytes, hashed anew at each of a minute's refusals). A file is known by what
 * localSourceIdentity knows it by, device, inode, size and modification time (ns): a kept partial
 * that a refused try put back under its name is the same file; one written meanwhile is read. A
 * put's file is known by its change time too (localBlockDigests' `opened`).
 */
export class LocalDigestMemo {
  readonly #known = new Map<string, { maxBlocks: number; digests: Buffer[] }>();

  /** The digests of up to `maxBlocks` first blocks, if this file's were kept for as many. @internal */
  recall(identity: string, maxBlocks: number): Buffer[] | undefined {
    const known = this.#known.get(identity);
    return known !== undefined && known.maxBlocks >= maxBlocks
      ? known.digests.slice(0, maxBlocks)
      : undefined;
  }

  /** The digests of the first min(maxBlocks, whole blocks) blocks of this file, just read. @internal */
  keep(identity: string, maxBlocks: number, digests: Buffer[]): void {
    this.#known.set(identity, { maxBlocks, digests });
  }
}

/**
 * d_0 … of the first min(maxBlocks, whole blocks) blocks of `path`; [] when it is missing or not a
 * file. With `memo`, those an earlier call gave for this same file are given again, unread.
 * `signal` aborting stops the reading (gigabytes of a partial file after Ctrl-C): CANCELLED.
 * `opened` is told the file's stats when it is opened, the version whose blocks these are (a
 * put's: the file it then sends the rest of); its change time then names that version in `memo`
 * too, so that an edit in place that put the modification time back (`touch -r`) between two
 * tries is read again, not vouched for by the old version's digests. Not for get's, whose kept
 * partial is renamed back and forth between tries (its change time with it) and whose prefix is
 * hashed again as it is copied.
 */
export async function localBlockDigests(
  path: string,
  algorithm: IntegrityAlgorithm,
  maxBlocks: number,
  memo?: LocalDigestMemo,
  signal?: AbortSignal,
  opened?: (stats: BigIntStats) => void,
): Promise<Buffer[]> {
  await prepareBlockHashes();
  const digester = new ContentDigester(algorithm);
  let identity: string | undefined;
  let recalled: Buffer[] | undefined;
  try {
    const wholeBlocks = (stats: BigIntStats) => {
      opened?.(stats);
      if (memo !== undefined) {
        identity = `${algorithm}:${versionOf(stats)}${opened === undefined ? '' : `:${stats.ctimeNs}`}`;
        recalled = memo.recall(identity, maxBlocks);
        if (recalled !== undefined) return 0;
      }
      return (
        Math.min(maxBlocks, Math.floor(Number(stats.size) / INTEGRITY_BLOCK_BYTES)) * INTEGRITY_BLOCK_BYTES
      );
    };
    if ((await digestLocalFile(path, digester, wholeBlocks, signal)) === undefined) return [];
    if (signal?.aborted === true) throw new MuxftpError('CANCELLED', 'cancelled', { cause: signal.reason });
    if (recalled !== undefined) return recalled;
    // Only the blocks read in full count (a file that shrank meanwhile has fewer).
    const digests = [...digester.blockDigests];
    if (memo !== undefined && identity !== undefined) memo.keep(identity, maxBlocks, digests);
    return digests;
  } finally {
    digester.release();
  }
}

/** A version of a file: its device, inode, size and modification time (ns). */
function versionOf(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}`;
}

/**
 * D of the whole of `path`, with its size; undefined when it is missing or not a file, or when
 * `signal` aborted before all of it was read (a big file is not hashed to the end after Ctrl-C).
 */
export async function localFileDigest(
  path: string,
  algorithm: IntegrityAlgorithm,
  signal?: AbortSignal,
): Promise<{ size: number; digest: FileDigest } | undefined> {
  await prepareBlockHashes();
  const digester = new ContentDigester(algorithm);
  try {
    const read = await digestLocalFile(path, digester, (stats) => Number(stats.size), signal);
    if (read === undefined || digester.bytes !== read.size) return undefined;
    return { size: read.size, digest: digester.result() };
  } finally {
    digester.release();
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
    // On the loop while file calls are fast (localFileCalls): through the threadpool this one stat
    // cost put -r of 5,000 small files ~0.4 s of the client's loop.
    stats = await localFileCalls.run(
      () => statSync(path, { bigint: true }),
      () => stat(path, { bigint: true }),
    );
  } catch (err) {
    throw localError(err, path);
  }
  const source = createHash('sha256').update(versionOf(stats)).digest('hex').slice(0, 32);
  return { size: Number(stats.size), source };
}
