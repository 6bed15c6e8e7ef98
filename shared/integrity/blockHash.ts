/**
 * One resettable hash per algorithm, fed a block at a time. SHA-256 is node:crypto (measured ~4x
 * faster than hash-wasm's, bench/README.md); XXH3-128 is hash-wasm's WebAssembly build.
 *
 * hash-wasm only creates hashers asynchronously, so wasm instances are created by
 * prepareBlockHashes(), which whatever hashes awaits first (a transfer, a server's listen), and
 * kept in a pool: taking one is synchronous, and the pool refills in the background. If a burst of
 * streams empties it, a stream shares one overflow instance, saving and restoring its state only
 * when another stream took the instance over (slower, never blocking). Not at module load: every
 * CLI command loads this module, and compiling the WebAssembly at import made importing the CLI
 * ~20 ms slower for `ls` and `--version` too (bench/README.md, thirty-seventh pass); with no
 * top-level await, a CommonJS program can require() the library.
 */
import { createHash, type Hash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { IHasher } from 'hash-wasm';
import type { IntegrityAlgorithm } from './algorithms.js';

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

type CreateXxh128 = typeof import('hash-wasm').createXXHash128;

/** Set once prepareBlockHashes() has resolved. */
let createXXHash128: CreateXxh128 | undefined;
const idleInstances: IHasher[] = [];
let overflowInstance: IHasher | undefined;
let preparing: Promise<void> | undefined;
/** The shared hash whose state the overflow instance holds now. */
let overflowOwner: SharedXxh128BlockHash | undefined;
let refilling = false;

/**
 * Loads XXH3-128's WebAssembly and fills the pool, once per process; createBlockHash('xxh128')
 * throws until this has resolved. Cheap to await again.
 */
export function prepareBlockHashes(): Promise<void> {
  preparing ??= (async () => {
    // Only hash-wasm's XXH3-128 bundle (20 KB), not its index of every algorithm (270 KB), which
    // took ~30 ms more to load here.
    const { createXXHash128: create } = createRequire(import.meta.url)(
      'hash-wasm/dist/xxhash128.umd.min.js',
    ) as { createXXHash128: CreateXxh128 };
    const instances = await Promise.all(Array.from({ length: REFILL_BELOW + 1 }, () => create()));
    overflowInstance = instances.pop();
    idleInstances.push(...instances);
    createXXHash128 = create;
  })().catch((error: unknown) => {
    preparing = undefined; // a later call tries again
    throw error;
  });
  return preparing;
}

/** Whether prepareBlockHashes() has resolved: createBlockHash('xxh128') works. */
export function blockHashesPrepared(): boolean {
  return overflowInstance !== undefined;
}

function refillPool(): void {
  if (refilling || idleInstances.length >= REFILL_BELOW || createXXHash128 === undefined) return;
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
    const overflow = overflowInstance!; // createBlockHash made this hash only once it was set
    if (overflowOwner === this) return overflow;
    if (overflowOwner !== undefined) overflowOwner.saved = overflow.save();
    if (this.saved === undefined) overflow.init();
    else overflow.load(this.saved);
    this.saved = undefined;
    overflowOwner = this;
    return overflow;
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
  if (overflowInstance === undefined)
    throw new Error('XXH3-128 is not loaded yet: await prepareBlockHashes() before hashing with it');
  const instance = idleInstances.pop();
  refillPool();
  return instance === undefined ? new SharedXxh128BlockHash() : new PooledXxh128BlockHash(instance);
}

/** For tests: how many wasm instances wait idle in the pool. */
export function idleXxh128Instances(): number {
  return idleInstances.length;
}
