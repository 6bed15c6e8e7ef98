/**
 * put -c hashes the local file's first blocks, compares them with what the server kept, and only
 * then opens the file to send the rest: a file rewritten in place between its hashing and that
 * open must not end up as the server's kept prefix (the old bytes) with the new file's tail, in an
 * upload that checks out (D is computed from the earlier digests). Real server on 127.0.0.1,
 * real files; the rewrite is made right after the client hashed the blocks.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

/** Runs once the client has hashed a local file's blocks, before it goes on. */
const afterHashing = vi.hoisted(() => ({ hook: undefined as (() => Promise<void>) | undefined }));
vi.mock('../client/localDigests.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../client/localDigests.js')>();
  return {
    ...original,
    localBlockDigests: async (...args: Parameters<typeof original.localBlockDigests>) => {
      const digests = await original.localBlockDigests(...args);
      const hook = afterHashing.hook;
      afterHashing.hook = undefined;
      await hook?.();
      return digests;
    },
  };
});

const BLOCK = INTEGRITY_BLOCK_BYTES;
let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-put-continue-changed-');
afterEach(async () => {
  afterHashing.hook = undefined;
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

it('put -c never stores the kept prefix with the tail of a local file rewritten after its blocks were hashed', async () => {
  env = await startServer({
    backend: 'disk',
    streamWindowBytes: 256 * 1024,
    streamWindowMaxBytes: 256 * 1024,
  });
  const content = randomBytes(3 * BLOCK + 10);
  const source = join(await tempDirs.make(), 'source.bin');
  await writeFile(source, content);
  // An interrupted resumable upload keeps the first whole blocks on the server.
  const cut = await env.connect();
  const upload = cut.put('big.bin', source, {
    resumable: true,
    onProgress: (done) => {
      if (done >= 2 * BLOCK + BLOCK / 2) void cut.destroy();
    },
  });
  await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
  await until(async () => {
    const names = (await readdir(env!.root!)).filter((name) => name.startsWith('.muxftp-'));
    return names.length === 1 && (await stat(join(env!.root!, names[0]!))).size % BLOCK === 0;
  }, 'the kept blocks');

  // Another program rewrites the file in place, same size, once put -c has hashed its blocks.
  const rewritten = Buffer.alloc(content.length, 0x61);
  afterHashing.hook = async () => {
    await writeFile(source, rewritten, { flag: 'r+' });
  };
  const client = await env.connect();
  const outcome = await client.put('big.bin', source, { continue: true }).then(
    () => 'done',
    (error: unknown) => (error as { code?: string }).code,
  );
  await client.close();
  expect(afterHashing.hook).toBeUndefined(); // the rewrite was made
  const stored = await readFile(join(env.root!, 'big.bin')).catch(() => undefined);
  // Refused as a file changed while read: stored before, the old first blocks with the new rest.
  expect(outcome).toBe('LOCAL_IO_ERROR');
  expect(stored).toBeUndefined();
  // What the server kept stays, for a put -c of the file as it was.
  expect((await readdir(env.root!)).filter((name) => name.startsWith('.muxftp-'))).toHaveLength(1);
});
