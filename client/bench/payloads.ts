/**
 * Benchmark payloads: one random buffer per size, made once and shared with every worker thread
 * (SharedArrayBuffer, no copies), with its SHA-256 computed once. Uploads send these bytes with
 * their known digest, so the load generator does not spend its CPU hashing what it sends.
 */
import { createHash, randomFillSync } from 'node:crypto';

export interface Payload {
  bytes: number;
  /** The content, shared between threads. */
  shared: SharedArrayBuffer;
  sha256: string;
}

export function makePayloads(sizes: readonly number[]): Payload[] {
  return [...new Set(sizes)].map((bytes) => {
    const shared = new SharedArrayBuffer(Math.max(1, bytes));
    const view = new Uint8Array(shared, 0, bytes);
    // randomFillSync caps one call at 2^31-1 bytes.
    for (let offset = 0; offset < bytes; offset += 1 << 30) {
      randomFillSync(view, offset, Math.min(1 << 30, bytes - offset));
    }
    return { bytes, shared, sha256: createHash('sha256').update(view).digest('hex') };
  });
}

export function payloadBuffer(payload: Payload): Buffer {
  return Buffer.from(payload.shared, 0, payload.bytes);
}

/** Remote name of the file downloads of this size read. */
export const seedName = (dir: string, bytes: number) => `${dir}/seed-${bytes}.bin`;
