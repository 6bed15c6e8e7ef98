// npm run bench:integrity -- [--size-mib 1024] [--rounds 3]
// The integrity algorithms of protocol v2 on this machine, on one thread: the content digest
// (4 MiB blocks, D over the block digests) fed in 256 KiB and 1 MiB updates as a transfer feeds it,
// hash-wasm's SHA-256 beside node:crypto's, and whether hashing whole 4 MiB blocks on worker
// threads pays in sha256 mode (main-thread busy time from event-loop utilisation, wall time).
import { createHash, randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createSHA256 } from 'hash-wasm';
import { ContentDigester, INTEGRITY_BLOCK_BYTES, prepareBlockHashes } from '#dist/shared/integrity/index.js';
import { numberOption } from './options.mjs';

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '1024' }, rounds: { type: 'string', default: '3' } },
});
const totalBytes = Math.round(numberOption('bench:integrity', 'size-mib', values['size-mib']) * 1024 * 1024);
const rounds = numberOption('bench:integrity', 'rounds', values.rounds, { integer: true });
const source = randomFillSync(Buffer.allocUnsafe(16 * 1024 * 1024));
await prepareBlockHashes(); // ContentDigester hashes XXH3-128 once it is loaded
/** @param {number} seconds */
const gbps = (seconds) => (totalBytes / seconds / 1e9).toFixed(2);

/**
 * @param {() => void} run
 * @returns {number} the fastest of `rounds` runs, in seconds
 */
function best(run) {
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    run();
    fastest = Math.min(fastest, (performance.now() - start) / 1000);
  }
  return fastest;
}

/**
 * @param {number} chunkBytes
 * @param {(chunk: Buffer) => void} update
 */
function feedChunks(chunkBytes, update) {
  for (let done = 0; done < totalBytes; done += chunkBytes) {
    const offset = done % source.length;
    // The last update is what is left: a size not a multiple of the updates hashed more than it counted.
    update(source.subarray(offset, offset + Math.min(chunkBytes, totalBytes - done)));
  }
}

/** @type {Array<[what: string, how: string, value: string]>} */
const rows = [];
for (const chunkBytes of [256 * 1024, 1024 * 1024]) {
  const label = `${chunkBytes / 1024} KiB updates`;
  for (const algorithm of /** @type {const} */ (['xxh128', 'sha256'])) {
    const seconds = best(() => {
      const digester = new ContentDigester(algorithm);
      feedChunks(chunkBytes, (chunk) => digester.update(chunk));
      digester.digest();
    });
    rows.push([
      `${algorithm} content digest (${algorithm === 'xxh128' ? 'hash-wasm' : 'node:crypto'})`,
      label,
      gbps(seconds),
    ]);
  }
  const wasmSha = await createSHA256();
  rows.push([
    'sha256 plain stream, hash-wasm',
    label,
    gbps(
      best(() => {
        wasmSha.init();
        feedChunks(chunkBytes, (chunk) => wasmSha.update(chunk));
        wasmSha.digest();
      }),
    ),
  ]);
  rows.push([
    'sha256 plain stream, node:crypto',
    label,
    gbps(
      best(() => {
        const hash = createHash('sha256');
        feedChunks(chunkBytes, (chunk) => hash.update(chunk));
        hash.digest();
      }),
    ),
  ]);
}

// sha256 blocks on worker threads: each 4 MiB block is posted (copied) to one of N workers, which
// hashes it and posts d_i back (the copy is counted). What matters to a server is the main thread's busy time per GiB.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ i, block }) => parentPort.postMessage({ i, digest: createHash('sha256').update(block).digest() }));
`;
/** @typedef {{ seconds: number, busySeconds: number }} WorkerFigures */

/**
 * @param {number} workerCount
 * @returns {Promise<WorkerFigures>} the fastest of `rounds` runs
 */
async function workerRun(workerCount) {
  const workers = Array.from({ length: workerCount }, () => new Worker(WORKER_SOURCE, { eval: true }));
  // The last block is what is left: a size not a multiple of a block (--size-mib 1) threw
  // RangeError: Invalid array length.
  const blocks = Math.ceil(totalBytes / INTEGRITY_BLOCK_BYTES);
  const measure = async () => {
    const elu0 = performance.eventLoopUtilization();
    const start = performance.now();
    /** @type {Buffer[]} */
    const digests = new Array(blocks);
    await /** @type {Promise<void>} */ (
      new Promise((resolve) => {
        let done = 0;
        let next = 0;
        const inFlightPerWorker = 2;
        /** @param {Worker} worker */
        const send = (worker) => {
          if (next >= blocks) return;
          const i = next++;
          const offset = (i * INTEGRITY_BLOCK_BYTES) % source.length;
          const length = Math.min(INTEGRITY_BLOCK_BYTES, totalBytes - i * INTEGRITY_BLOCK_BYTES);
          // One copy into a block of its own, then transferred: a transfer's chunks are still in use
          // (written to storage), and cloning a view would copy its whole backing buffer.
          const block = new Uint8Array(length);
          block.set(source.subarray(offset, offset + length));
          worker.postMessage({ i, block }, [block.buffer]);
        };
        for (const worker of workers) {
          worker.removeAllListeners('message');
          worker.on('message', ({ i, digest }) => {
            digests[i] = digest;
            if (++done === blocks) resolve();
            else send(worker);
          });
          for (let k = 0; k < inFlightPerWorker; k++) send(worker);
        }
      })
    );
    createHash('sha256').update(Buffer.concat(digests)).digest();
    const seconds = (performance.now() - start) / 1000;
    const elu = performance.eventLoopUtilization(elu0);
    return { seconds, busySeconds: elu.active / 1000 };
  };
  let fastest = await measure();
  for (let i = 1; i < rounds; i++) {
    const r = await measure();
    if (r.seconds < fastest.seconds) fastest = r;
  }
  await Promise.all(workers.map((w) => w.terminate()));
  return fastest;
}
const inlineSeconds = best(() => {
  const digester = new ContentDigester('sha256');
  feedChunks(256 * 1024, (chunk) => digester.update(chunk));
  digester.digest();
});
rows.push([
  'sha256 on the main thread',
  'main thread busy s/GiB',
  (inlineSeconds / (totalBytes / 2 ** 30)).toFixed(3),
]);
for (const n of [1, 2]) {
  const r = await workerRun(n);
  rows.push([`sha256 blocks on ${n} worker thread(s)`, 'wall GB/s', gbps(r.seconds)]);
  rows.push([
    `sha256 blocks on ${n} worker thread(s)`,
    'main thread busy s/GiB',
    (r.busySeconds / (totalBytes / 2 ** 30)).toFixed(3),
  ]);
}

console.log(`${totalBytes / 2 ** 20} MiB per run, best of ${rounds}, Node ${process.version}`);
for (const [what, how, value] of rows) console.log(`${what.padEnd(44)} ${how.padEnd(24)} ${value}`);
