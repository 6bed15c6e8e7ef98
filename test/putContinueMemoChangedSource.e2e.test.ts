/**
 * A put's tries share what they hashed of the local file (LocalDigestMemo: a retry after
 * SERVER_BUSY or a lost connection does not read gigabytes again). A file rewritten in place
 * between two tries, its modification time put back (`touch -r`, as a tool that keeps times does),
 * keeps its size and time, so the server still offers the blocks it kept of the old version: the
 * digests recalled are the old version's, and must not vouch for the new one. Real server on
 * 127.0.0.1, real files.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { LocalDigestMemo, localBlockDigests } from '../client/localDigests.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;
let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-put-continue-memo-');
afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/** A file of 3 blocks and a bit, and the first 2 blocks of it kept on the server by an upload cut. */
async function keptUpload(server: TestServer): Promise<{ source: string; content: Buffer }> {
  const content = randomBytes(3 * BLOCK + 10);
  const source = join(await tempDirs.make(), 'source.bin');
  await writeFile(source, content);
  const cut = await server.connect();
  const upload = cut.put('big.bin', source, {
    resumable: true,
    onProgress: (done) => {
      if (done >= 2 * BLOCK + BLOCK / 2) void cut.destroy();
    },
  });
  await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
  await until(async () => {
    const names = (await readdir(server.root!)).filter((name) => name.startsWith('.muxftp-'));
    return names.length === 1 && (await stat(join(server.root!, names[0]!))).size % BLOCK === 0;
  }, 'the kept blocks');
  return { source, content };
}

it("put -c never recalls an earlier try's digests of a file rewritten since with its time put back", async () => {
  env = await startServer({
    backend: 'disk',
    streamWindowBytes: 256 * 1024,
    streamWindowMaxBytes: 256 * 1024,
  });
  const { source, content } = await keptUpload(env);
  const client = await env.connect();
  // An earlier try of the run hashed the file as it was.
  const memo = new LocalDigestMemo();
  await localBlockDigests(source, client.integrity, 2, memo, undefined, () => {}); // as put's plan
  // Then it is rewritten in place, same size, and its modification time put back.
  // touch -r: to the nanosecond (fs.utimes takes seconds in a double, which loses some).
  const times = `${source}.times`;
  execFileSync('touch', ['-r', source, times]);
  const rewritten = Buffer.alloc(content.length, 0x61);
  await writeFile(source, rewritten, { flag: 'r+' });
  execFileSync('touch', ['-r', times, source]);
  const outcome = await client.put('big.bin', source, { continue: true, localDigests: memo }).then(
    (result) => `done from ${result.continuedFrom ?? 0}`,
    (error: unknown) => (error as { code?: string }).code,
  );
  await client.close();
  const stored = await readFile(join(env.root!, 'big.bin')).catch(() => undefined);
  // Before: done from 8 MiB, the old first blocks stored with the new rest (END's D checked out).
  if (stored !== undefined) expect(stored.equals(rewritten)).toBe(true);
  expect(outcome === 'done from 0' || outcome === 'LOCAL_IO_ERROR').toBe(true);
});

it("put -c of a file not changed since an earlier try recalls that try's digests, and continues", async () => {
  env = await startServer({
    backend: 'disk',
    streamWindowBytes: 256 * 1024,
    streamWindowMaxBytes: 256 * 1024,
  });
  const { source, content } = await keptUpload(env);
  const client = await env.connect();
  const memo = new LocalDigestMemo();
  await localBlockDigests(source, client.integrity, 2, memo, undefined, () => {}); // as put's plan
  const recall = vi.spyOn(memo, 'recall');
  const result = await client.put('big.bin', source, { continue: true, localDigests: memo });
  await client.close();
  expect(recall.mock.results.map((called) => called.value !== undefined)).toEqual([true]);
  expect(result.continuedFrom).toBe(2 * BLOCK);
  expect((await readFile(join(env.root!, 'big.bin'))).equals(content)).toBe(true);
});
