/**
 * One resettable hash per algorithm, fed a block at a time. SHA-256 is node:crypto (measured ~4x
 * faster than hash-wasm's, bench/README.md); XXH3-128 is hash-wasm's WebAssembly build.
 *
 * hash-wasm only creates hashers asynchronously, so wasm instances are created at module load
 * (top-level await) and kept in a pool: taking one is synchronous, and the pool refills in the
 * background. If a burst of streams empties it, a stream shares one overflow instance, saving and
 * restoring its state only when another stream took the instance over (slower, never blocking).
 */
import { createHash, type Hash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { IHasher } from 'hash-wasm';
import type { IntegrityAlgorithm } from './algorithms.js';

// Only hash-wasm's XXH3-128 bundle (20 KB), not its index of every algorithm (270 KB): every
// server and CLI start loads this, and loading the index took ~30 ms more here.
const { createXXHash128 } = createRequire(import.meta.url)('hash-wasm/dist/xxhash128.umd.min.js') as {
  createXXHash128: typeof import('hash-wasm').createXXHash128;
};

export interface BlockHash {
  update(data: Uint8Array): void;
  /** The digest of everything since the previous digest(); the hash starts over. */
  digest(): Buffer;
  /** Gives back what the hash holds; it may not be used afterwards. */
  release(): void;
}

class Sha256BlockHash implements BlockHash {
  private hash: Hash | undefined;

  update(data: Uint8Array): void {
    this.hash ??= createHash('sha256');
    this.hash.update(data);
  }

  digest(): Buffer {
    const digest = (this.hash ?? createHash('sha256')).digest();
    this.hash = undefined;
    return digest;
  }

  release(): void {
    this.hash = undefined;
  }
}

/** Wasm instances kept idle for the next stream; beyond this, released ones are left to GC. */
const MAX_IDLE_INSTANCES = 64;
/** The pool refills in the background while fewer than this many are idle. */
const REFILL_BELOW = 8;

const idleInstances: IHasher[] = await Promise.all(
  Array.from({ length: REFILL_BELOW }, () => createXXHash128()),
);
const overflowInstance: IHasher = await createXXHash128();
/** The shared hash whose state the overflow instance holds now. */
let overflowOwner: SharedXxh128BlockHash | undefined;
let refilling = false;

function refillPool(): void {
  if (refilling || idleInstances.length >= REFILL_BELOW) return;
  refilling = true;
  createXXHash128().then(
    (instance) => {
      refilling = false;
      idleInstances.push(instance);
      refillPool();
    },
    () => {
      refilling = false; // the overflow instance keeps every stream working
    },
  );
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

class PooledXxh128BlockHash implements BlockHash {
  private instance: IHasher | undefined;

  constructor(instance: IHasher) {
    this.instance = instance.init();
  }

  update(data: Uint8Array): void {
    this.instance!.update(data);
  }

  digest(): Buffer {
    const digest = asBuffer(this.instance!.digest('binary'));
    this.instance!.init();
    return digest;
  }

  release(): void {
    if (this.instance !== undefined && idleInstances.length < MAX_IDLE_INSTANCES)
      idleInstances.push(this.instance);
    this.instance = undefined;
  }
}

class SharedXxh128BlockHash implements BlockHash {
  /** This hash's state while another owns the instance; undefined: nothing hashed since digest(). */
  private saved: Uint8Array | undefined;

  private enter(): IHasher {
    if (overflowOwner === this) return overflowInstance;
    if (overflowOwner !== undefined) overflowOwner.saved = overflowInstance.save();
    if (this.saved === undefined) overflowInstance.init();
    else overflowInstance.load(this.saved);
    this.saved = undefined;
    overflowOwner = this;
    return overflowInstance;
  }

  update(data: Uint8Array): void {
    this.enter().update(data);
  }

  digest(): Buffer {
    const digest = asBuffer(this.enter().digest('binary'));
    overflowOwner = undefined;
    return digest;
  }

  release(): void {
    if (overflowOwner === this) overflowOwner = undefined;
    this.saved = undefined;
  }
}

export function createBlockHash(algorithm: IntegrityAlgorithm): BlockHash {
  if (algorithm === 'sha256') return new Sha256BlockHash();
  const instance = idleInstances.pop();
  refillPool();
  return instance === undefined ? new SharedXxh128BlockHash() : new PooledXxh128BlockHash(instance);
}

/** For tests: how many wasm instances wait idle in the pool. */
export function idleXxh128Instances(): number {
  return idleInstances.length;
}
