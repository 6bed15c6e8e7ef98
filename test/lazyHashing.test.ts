/**
 * XXH3-128's WebAssembly is loaded by what hashes, not when a module is imported: a command that
 * moves no file content (ls, stat, --version) does not pay for compiling it, and each way into
 * the library loads it on its own before it hashes. Each is checked as the first thing a fresh
 * node process does with the built library (dist/, npm run build), against a real server on
 * 127.0.0.1: this test process has the hashes loaded already (test/setup/blockHashes.ts), and in
 * one process whatever loads them first would hide a path that forgot to.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const DIST = join(import.meta.dirname, '..', 'dist');
const BYTES = Buffer.alloc(5 << 20, 7);

// One step, the first of a fresh process; prints what it saw, and how many wasm instances the
// process's pool holds (0: never loaded).
const SCRIPT = `
const { Client, contentDigest } = await import(process.env.DIST + '/client/index.js');
const { idleXxh128Instances } = await import(process.env.DIST + '/shared/integrity/blockHash.js');
const { localFileDigest } = await import(process.env.DIST + '/client/localDigests.js');
const bytes = Buffer.alloc(5 << 20, 7);
const seen = { imported: idleXxh128Instances() };
const connect = () => Client.connect({ host: '127.0.0.1', port: Number(process.env.PORT) });
switch (process.env.FIRST) {
  case 'list': { const c = await connect(); await c.list(''); await c.close(); break; }
  case 'put': { const c = await connect(); seen.digest = (await c.put('lazy.bin', bytes)).digest; await c.close(); break; }
  case 'getBuffer': { const c = await connect(); seen.same = (await c.getBuffer('seed.bin')).equals(bytes); await c.close(); break; }
  case 'localFileDigest': seen.digest = (await localFileDigest(process.env.FILE, 'xxh128'))?.digest.digest.toString('hex'); break;
  case 'contentDigest': seen.digest = (await contentDigest('xxh128', bytes)).toString('hex'); break;
}
seen.instances = idleXxh128Instances();
console.log(JSON.stringify(seen));
`;

let env: TestServer | undefined;
let scratch: string | undefined;
const children = new Set<ChildProcess>();
afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  await env?.stop();
  env = undefined;
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  scratch = undefined;
});

async function firstStep(first: string, extra: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    env: { ...process.env, DIST, PORT: String(env?.port ?? 0), FIRST: first, ...extra },
    timeout: 20_000,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('hashing loads when first needed, by each way in', () => {
  const xxh128 = contentDigest('xxh128', BYTES).toString('hex');

  it('importing the library and listing load nothing', async () => {
    env = await startServer();
    expect(await firstStep('list')).toEqual({ imported: 0, instances: 0 });
  });

  it.each(['put', 'getBuffer', 'localFileDigest', 'contentDigest'])(
    '%s, first in a fresh process, loads it and hashes right',
    async (first) => {
      env = await startServer();
      scratch = await mkdtemp(join(tmpdir(), 'muxftp-lazy-hash-'));
      const file = join(scratch, 'local.bin');
      await writeFile(file, BYTES);
      await (await env.connect()).put('seed.bin', BYTES);
      const seen = await firstStep(first, { FILE: file });
      expect(seen.imported).toBe(0);
      expect(seen.instances).toBeGreaterThan(0);
      if (first === 'getBuffer') expect(seen.same).toBe(true);
      else expect(seen.digest).toBe(xxh128);
    },
  );

  it('a server handed sockets with accept(), never listen(), loads it before its first transfer', async () => {
    // The server alone in a fresh process, behind a net.Server of its own; the client is this one.
    const server = `
      const { createServer } = await import('node:net');
      const { MuxServer, MemoryStorage } = await import(process.env.DIST + '/server/index.js');
      const mux = new MuxServer({ storage: new MemoryStorage(), log: () => {} });
      const front = createServer((socket) => mux.accept(socket)).listen(0, '127.0.0.1', () =>
        console.log(front.address().port));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', server], {
      env: { ...process.env, DIST },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const client = await Client.connect({ host: '127.0.0.1', port: Number(String(line).trim()) });
    // Before: INTERNAL_ERROR, the whole connection closed (the server's hash was never loaded).
    const put = await client.put('handed.bin', BYTES);
    expect(put.digest).toBe(xxh128);
    expect((await client.getBuffer('handed.bin')).equals(BYTES)).toBe(true);
    await client.close();
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
