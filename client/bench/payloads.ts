/**
 * Benchmark payloads: one random buffer per size, made once and shared with every worker thread
 * (SharedArrayBuffer, no copies), with its content digest under every integrity algorithm computed
 * once. Uploads send these bytes with their known digests, so the load generator does not spend
 * its CPU hashing what it sends; results are checked under whichever algorithm was negotiated.
 */
import { randomFillSync } from 'node:crypto';
import { INTEGRITY_ALGORITHMS, type IntegrityAlgorithm } from '../../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../../shared/integrity/blockHash.js';
import { ContentDigester } from '../../shared/integrity/contentDigest.js';
import type { KnownDigest } from '../streams.js';

export interface Payload {
  bytes: number;
  /** The content, shared between threads. */
  shared: SharedArrayBuffer;
  /** Hex content digest per algorithm. */
  digests: Record<IntegrityAlgorithm, string>;
}

/**
 * Bytes filled and hashed between two turns of the event loop: a 1 GiB payload took ~8 s in one
 * (4 GiB, ~30 s), deaf to Ctrl-C, a second one too.
 */
const PAYLOAD_SLICE_BYTES = 64 * 1024 * 1024;

/** One payload per distinct size; once `signal` is aborted, rejects with its reason within a slice. */
export async function makePayloads(sizes: readonly number[], signal?: AbortSignal): Promise<Payload[]> {
  await prepareBlockHashes();
  const payloads: Payload[] = [];
  for (const bytes of new Set(sizes)) {
    const shared = new SharedArrayBuffer(Math.max(1, bytes));
    const digesters = INTEGRITY_ALGORITHMS.map((algorithm) => new ContentDigester(algorithm));
    try {
      // randomFillSync caps one call at 2^31-1 bytes, and its offset too: each call is given a
      // view of its part (an offset past 2 GiB threw RangeError).
      for (let offset = 0; offset < bytes; offset += PAYLOAD_SLICE_BYTES) {
        const slice = new Uint8Array(shared, offset, Math.min(PAYLOAD_SLICE_BYTES, bytes - offset));
        randomFillSync(slice);
        for (const digester of digesters) digester.update(slice);
        await new Promise<void>((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
      }
    } catch (error) {
      for (const digester of digesters) digester.release();
      throw error;
    }
    const digests = Object.fromEntries(
      digesters.map((digester) => [digester.algorithm, digester.digest().toString('hex')]),
    ) as Record<IntegrityAlgorithm, string>;
    payloads.push({ bytes, shared, digests });
  }
  return payloads;
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
