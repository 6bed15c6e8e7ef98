// npm run bench:throughput -- [--size-mib 1024] [--runs 1]
// One large upload and download over loopback to a muxftp server (in-memory storage, its own
// process), next to the raw loopback limit measured in the same run. Every transfer is verified
// end to end (size + content digest), exactly as in normal use.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '#dist/client/client.js';
import { prepareBlockHashes } from '#dist/shared/integrity/blockHash.js';
import { contentDigest } from '#dist/shared/integrity/contentDigest.js';
import { measureLoopback } from './loopback.mjs';
import { numberOption } from './options.mjs';

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '1024' }, runs: { type: 'string', default: '1' } },
});
const sizeBytes = Math.round(numberOption('bench:throughput', 'size-mib', values['size-mib']) * 1024 * 1024);
const runs = numberOption('bench:throughput', 'runs', values.runs, { integer: true });

/** @param {number} bytesPerSecond */
const mb = (bytesPerSecond) => (bytesPerSecond / 1e6).toFixed(0);

async function startServer() {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./serverProcess.mjs', import.meta.url))], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const [line] = await once(child.stdout, 'data');
  const port = Number(String(line).trim());
  return {
    port,
    async stop() {
      child.stdin.end();
      await once(child, 'exit');
      return JSON.parse(stderr.trim().split('\n').pop() || '{}');
    },
  };
}

/** One core's SHA-256 rate, and the rate at which the kernel hands out fresh memory (page faults). */
function measureCeilings() {
  const block = Buffer.alloc(1 << 20, 7);
  const hash = createHash('sha256');
  let t = performance.now();
  for (let i = 0; i < 512; i++) hash.update(block);
  hash.digest();
  const sha256 = (512 * block.length) / ((performance.now() - t) / 1000);
  t = performance.now();
  Buffer.allocUnsafe(512 << 20).fill(1);
  const freshMemory = (512 << 20) / ((performance.now() - t) / 1000);
  return { sha256, freshMemory };
}

const payload = Buffer.allocUnsafe(sizeBytes);
randomFillSync(payload);
await prepareBlockHashes(); // this script digests the payload itself, before any transfer loads the hash
const expected = contentDigest('xxh128', payload).toString('hex');

console.log(`muxftp throughput: ${values['size-mib']} MiB, ${runs} run(s), node ${process.version}`);
const rows = [];
for (let run = 0; run < runs; run++) {
  const loopback = await measureLoopback(sizeBytes);
  const ceilings = measureCeilings();
  const server = await startServer();
  const client = await Client.connect({ port: server.port });
  const cpu0 = process.cpuUsage();

  let t = performance.now();
  const put = await client.put('big.bin', payload);
  const upSeconds = (performance.now() - t) / 1000;
  if (put.algorithm !== 'xxh128' || put.digest !== expected) throw new Error('upload digest mismatch');

  // A discarding sink: the client hashes every byte, checks END and keeps nothing.
  t = performance.now();
  const got = await client.verify('big.bin');
  const downSeconds = (performance.now() - t) / 1000;
  if (got.digest !== expected || got.size !== sizeBytes) throw new Error('download verification failed');

  const cpu = process.cpuUsage(cpu0);
  await client.close();
  const serverCpu = await server.stop();
  rows.push({
    loopback,
    ...ceilings,
    up: sizeBytes / upSeconds,
    down: sizeBytes / downSeconds,
    cpu,
    serverCpu,
  });
}

console.log('');
console.log('ceilings, one core:  run  sha256 MB/s  fresh-memory fill MB/s');
for (const [i, r] of rows.entries()) {
  console.log(
    `${' '.repeat(21)}${String(i + 1).padEnd(4)} ${mb(r.sha256).padStart(11)}  ${mb(r.freshMemory).padStart(22)}`,
  );
}
console.log('');
console.log('run  raw loopback MB/s  upload MB/s (ratio)  download MB/s (ratio)  client cpu s  server cpu s');
for (const [i, r] of rows.entries()) {
  console.log(
    `${String(i + 1).padEnd(4)} ${mb(r.loopback).padStart(17)}  ${mb(r.up).padStart(11)} (${(r.up / r.loopback).toFixed(2)})  ${mb(r.down).padStart(13)} (${(r.down / r.loopback).toFixed(2)})  ${((r.cpu.user + r.cpu.system) / 1e6).toFixed(2).padStart(12)}  ${(r.serverCpu.serverCpuUserS + r.serverCpu.serverCpuSystemS).toFixed(2).padStart(12)}`,
  );
}
