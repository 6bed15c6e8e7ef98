/**
 * XXH3-128's WebAssembly is loaded by what hashes, not when a module is imported: a command that
 * moves no file content (ls, stat, --version) does not pay for compiling it, and the library
 * loads it on its own before its first transfer. Checked in a fresh node process using the built
 * library (dist/, npm run build) against a real server on 127.0.0.1: this test process has the
 * hashes loaded already (test/setup/blockHashes.ts) and would not notice a path that forgot to.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/testServer.js';

const DIST = join(import.meta.dirname, '..', 'dist');

// Prints, after each step, how many wasm instances the fresh process's pool holds.
const SCRIPT = `
const { Client } = await import(process.env.DIST + '/client/index.js');
const { idleXxh128Instances } = await import(process.env.DIST + '/shared/integrity/blockHash.js');
const { localFileDigest } = await import(process.env.DIST + '/client/localDigests.js');
const { writeFile } = await import('node:fs/promises');
const seen = { imported: idleXxh128Instances() };
const client = await Client.connect({ host: '127.0.0.1', port: Number(process.env.PORT) });
await client.list('');
seen.listed = idleXxh128Instances();
const bytes = Buffer.alloc(5 << 20, 7);
await client.put('lazy.bin', bytes);
seen.put = idleXxh128Instances();
const back = await client.getBuffer('lazy.bin');
seen.gotBack = back.equals(bytes);
await client.close();
const file = process.env.SCRATCH + '/local.bin';
await writeFile(file, bytes);
seen.localDigest = (await localFileDigest(file, 'xxh128'))?.digest.digest.toString('hex');
console.log(JSON.stringify(seen));
`;

let env: TestServer | undefined;
let scratch: string | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  scratch = undefined;
});

describe('hashing loads when first needed', () => {
  it('a fresh process lists without loading it, then puts, gets and hashes a local file once it has', async () => {
    env = await startServer();
    scratch = await mkdtemp(join(tmpdir(), 'muxftp-lazy-hash-'));
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', SCRIPT], {
      env: { ...process.env, DIST, PORT: String(env.port), SCRATCH: scratch },
      timeout: 20_000,
    });
    const seen = JSON.parse(stdout) as Record<string, unknown>;
    expect(seen.imported).toBe(0);
    expect(seen.listed).toBe(0);
    expect(seen.put).toBeGreaterThan(0);
    expect(seen.gotBack).toBe(true);
    const stored = await env.connect();
    expect(seen.localDigest).toBe((await stored.digest('lazy.bin', 'xxh128')).digest);
  });

  // With no top-level await left in the library, node's require() of ES modules (20.19 and later)
  // loads it: it refused with ERR_REQUIRE_ASYNC_MODULE.
  const requiresEsm = (process.features as { require_module?: boolean }).require_module === true;
  it.skipIf(!requiresEsm)('a CommonJS program can require() the client and the server', async () => {
    const script = `const { Client } = require(process.env.DIST + '/client/index.js');
      const { MuxServer, MemoryStorage } = require(process.env.DIST + '/server/index.js');
      console.log(typeof Client.connect, typeof MuxServer, typeof MemoryStorage);`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
      env: { ...process.env, DIST },
      timeout: 20_000,
    });
    expect(stdout.trim()).toBe('function function function');
  });
});
