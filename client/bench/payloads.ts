/**
 * Benchmark payloads: one random buffer per size, made once and shared with every worker thread
 * (SharedArrayBuffer, no copies), with its content digest under every integrity algorithm computed
 * once. Uploads send these bytes with their known digests, so the load generator does not spend
 * its CPU hashing what it sends; results are checked under whichever algorithm was negotiated.
 */
import { randomFillSync } from 'node:crypto';
import { INTEGRITY_ALGORITHMS, type IntegrityAlgorithm } from '../../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../../shared/integrity/blockHash.js';
import { contentDigest } from '../../shared/integrity/contentDigest.js';
import type { KnownDigest } from '../streams.js';

export interface Payload {
  bytes: number;
  /** The content, shared between threads. */
  shared: SharedArrayBuffer;
  /** Hex content digest per algorithm. */
  digests: Record<IntegrityAlgorithm, string>;
}

export async function makePayloads(sizes: readonly number[]): Promise<Payload[]> {
  await prepareBlockHashes();
  return [...new Set(sizes)].map((bytes) => {
    const shared = new SharedArrayBuffer(Math.max(1, bytes));
    const view = new Uint8Array(shared, 0, bytes);
    // randomFillSync caps one call at 2^31-1 bytes, and its offset too: each call is given a view
    // of its part (an offset past 2 GiB threw RangeError).
    for (let offset = 0; offset < bytes; offset += 1 << 30) {
      randomFillSync(new Uint8Array(shared, offset, Math.min(1 << 30, bytes - offset)));
    }
    const digests = Object.fromEntries(
      INTEGRITY_ALGORITHMS.map((algorithm) => [algorithm, contentDigest(algorithm, view).toString('hex')]),
    ) as Record<IntegrityAlgorithm, string>;
    return { bytes, shared, digests };
  });
}

/** The payload's digests as put() takes them. */
export function knownDigests(payload: Payload): KnownDigest[] {
  return INTEGRITY_ALGORITHMS.map((algorithm) => ({
    algorithm,
    digest: Buffer.from(payload.digests[algorithm], 'hex'),
  }));
}

export function payloadBuffer(payload: Payload): Buffer {
  return Buffer.from(payload.shared, 0, payload.bytes);
}

/** Remote name of the file downloads of this size read. */
export const seedName = (dir: string, bytes: number) => `${dir}/seed-${bytes}.bin`;
