/**
 * A stored file's content digest under one algorithm: the one storage remembers for this version
 * of the file, else computed by reading the file through any Storage and then remembered (a read
 * stopped short leaves the digests of the whole blocks it hashed, and the next one goes on from there).
 * Reads are large (1 MiB, into buffers shared by all readers: hashReadBuffers.ts) and asynchronous; hashing runs on the loop between them, a read at a time,
 * so other connections keep being served (bench/README.md: a worker pool did not pay on this machine).
 */
import { StorageError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../shared/integrity/blockHash.js';
import { ContentDigester, type FileDigest } from '../shared/integrity/contentDigest.js';
import { hashReadBuffers } from './hashReadBuffers.js';
import type { EntryInfo, Storage } from './types.js';

/** How a caller follows a reader that hashes a file: what stops it, and what hears it move. */
export interface ReadWatch {
  /** Once aborted (the request is over) no further read starts: the reader rejects with its reason. */
  signal?: AbortSignal;
  /**
   * After each read: the stream asking is moving data, so the idle timer does not fail it
   * (hashing a large file can take longer than the idle timeout, a slow disk's far longer).
   */
  onRead?: () => void;
  /** Told when the reader waits for a read buffer others hold (hashReadBuffers), and when it goes on. */
  onWaitingForMemory?: (waiting: boolean) => void;
  /** Whom it reads for (a connection): each holds a few of the shared read buffers at most. */
  owner?: object;
}

/** The file's entry and its digest under `algorithm`, from the cache or by reading the file once. */
export async function fileDigest(
  storage: Storage,
  path: string,
  algorithm: IntegrityAlgorithm,
  { signal, onRead, onWaitingForMemory, owner }: ReadWatch = {},
): Promise<{ entry: EntryInfo; digest: FileDigest }> {
  await prepareBlockHashes();
  const entry = await storage.stat(path);
  const handle = await storage.openRead(path);
  try {
    const known = handle.knownDigest(algorithm);
    if (known !== undefined) return { entry, digest: known };
    // From the whole blocks of this version already hashed (by a reader stopped short), if any.
    const leading = handle
      .knownLeadingBlocks(algorithm)
      .slice(0, Math.floor(handle.size / INTEGRITY_BLOCK_BYTES));
    const digester = ContentDigester.continuing(algorithm, leading);
    let lease: { buffer: Buffer; release: () => void } | undefined;
    try {
      lease = await hashReadBuffers.borrow(handle.size - digester.bytes, {
        signal,
        onWaiting: onWaitingForMemory,
        owner,
      });
      const buffer = lease.buffer;
      for (let position = digester.bytes; position < handle.size; ) {
        signal?.throwIfAborted();
        const bytesRead = await handle.read(
          buffer,
          0,
          Math.min(buffer.length, handle.size - position),
          position,
        );
        if (bytesRead === 0)
          throw new StorageError('IO_ERROR', `file changed while being read: ${path}`, path);
        onRead?.();
        digester.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
      // Written in place by another program meanwhile: the bytes hashed are no version of the
      // file, so no digest is answered (a download fails the same way).
      if (await handle.changedSinceOpen())
        throw new StorageError('IO_ERROR', `file changed while being read: ${path}`, path);
      const digest = digester.result();
      handle.rememberDigest(digest);
      return { entry, digest };
    } catch (error) {
      // Stopped short (cancelled, a read failed): the whole blocks hashed spare the next reader them.
      handle.rememberLeadingBlocks(algorithm, digester.blockDigests);
      throw error;
    } finally {
      lease?.release();
      digester.release();
    }
  } finally {
    await handle.close();
  }
}
