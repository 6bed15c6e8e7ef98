/**
 * The content digest of protocol version 2: the bytes are cut into fixed blocks, d_i = H(block_i),
 * and the file digest is D = H(d_0 ‖ … ‖ d_n−1). An empty file has no blocks, so its D is H of the
 * empty string, exactly as Dropbox's content_hash defines it (sha256: e3b0c442…b855).
 *
 * ContentDigester is fed the chunks that already flow through a transfer, of any size (a chunk may
 * straddle a block boundary); it copies nothing and allocates only per block, never per chunk.
 */
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from './algorithms.js';
import { type BlockHash, createBlockHash, prepareBlockHashes } from './blockHash.js';

/** A file's digest under one algorithm, with the block digests it was computed from. */
export interface FileDigest {
  /** The algorithm D and the block digests are under. */
  readonly algorithm: IntegrityAlgorithm;
  /** D. */
  readonly digest: Buffer;
  /** d_0 … d_n−1, one per started block (none for an empty file). */
  readonly blockDigests: readonly Buffer[];
}

/** D from the block digests, in order. */
function combineBlockDigests(algorithm: IntegrityAlgorithm, blockDigests: readonly Uint8Array[]): Buffer {
  const hash = createBlockHash(algorithm);
  for (const blockDigest of blockDigests) hash.update(blockDigest);
  const digest = hash.digest();
  hash.release();
  return digest;
}

export class ContentDigester {
  readonly algorithm: IntegrityAlgorithm;
  /** d_0 … of the blocks completed so far (the resume of a partial upload checks a prefix with them). */
  readonly blockDigests: Buffer[] = [];
  private readonly hash: BlockHash;
  private bytesInBlock = 0;
  private total = 0;
  private finished: Buffer | undefined;

  constructor(algorithm: IntegrityAlgorithm) {
    this.algorithm = algorithm;
    this.hash = createBlockHash(algorithm);
  }

  /**
   * A digester that has, in effect, been fed the whole blocks whose digests are `leading` (known
   * from an earlier read of the same file version), so hashing goes on from the block after them.
   */
  static continuing(algorithm: IntegrityAlgorithm, leading: readonly Buffer[]): ContentDigester {
    const digester = new ContentDigester(algorithm);
    digester.blockDigests.push(...leading);
    digester.total = leading.length * INTEGRITY_BLOCK_BYTES;
    return digester;
  }

  /** Bytes fed so far. */
  get bytes(): number {
    return this.total;
  }

  update(chunk: Uint8Array): void {
    if (this.finished !== undefined) throw new Error('ContentDigester: update() after digest()');
    this.total += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(INTEGRITY_BLOCK_BYTES - this.bytesInBlock, chunk.length - offset);
      this.hash.update(take === chunk.length ? chunk : chunk.subarray(offset, offset + take));
      offset += take;
      this.bytesInBlock += take;
      if (this.bytesInBlock === INTEGRITY_BLOCK_BYTES) {
        this.blockDigests.push(this.hash.digest());
        this.bytesInBlock = 0;
      }
    }
  }

  /** D over everything fed; the digester is finished afterwards (calling again returns the same D). */
  digest(): Buffer {
    if (this.finished === undefined) {
      if (this.bytesInBlock > 0) this.blockDigests.push(this.hash.digest());
      this.bytesInBlock = 0;
      this.hash.release();
      this.finished = combineBlockDigests(this.algorithm, this.blockDigests);
    }
    return this.finished;
  }

  /** D with the block digests; finishes the digester like digest(). */
  result(): FileDigest {
    return { algorithm: this.algorithm, digest: this.digest(), blockDigests: this.blockDigests };
  }

  /** Gives the hash back without a digest (a cancelled or failed transfer). Safe after digest(). */
  release(): void {
    if (this.finished === undefined) this.hash.release();
  }
}

/** D of bytes held in memory, in one call. */
export function contentDigest(algorithm: IntegrityAlgorithm, data: Uint8Array): Buffer {
  const digester = new ContentDigester(algorithm);
  digester.update(data);
  return digester.digest();
}

/**
 * The content digest of bytes in memory, as a transfer of them reports it (the package's
 * `contentDigest`): contentDigest for a caller that may come before any transfer has loaded
 * XXH3-128's WebAssembly, which it loads first if need be.
 *
 * It resolves to the raw bytes, a Buffer, where `PutResult.digest`, `GetResult.digest` and
 * `DigestResult.digest` are hex: compare with `.toString('hex')`
 * (`(await contentDigest('xxh128', bytes)).toString('hex') === putResult.digest`). A put's
 * `knownDigests` takes the Buffer as it is.
 */
export async function loadedContentDigest(algorithm: IntegrityAlgorithm, data: Uint8Array): Promise<Buffer> {
  await prepareBlockHashes();
  return contentDigest(algorithm, data);
}
