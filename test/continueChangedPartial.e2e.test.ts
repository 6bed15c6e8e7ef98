/**
 * get -c hashes the local partial file's blocks before it asks, and copies them once the server
 * has answered: a partial file rewritten in between must not end up, as copied, in a download
 * that checks out. Real server on 127.0.0.1 behind a frame proxy that rewrites the partial file
 * just before the client sees the REPLY.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { type FrameProxy, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-continue-changed-');
afterEach(async () => {
  proxy = env = await stopProxyAndServer(proxy, env);
  await tempDirs.removeAll();
});

it('get -c never passes off a partial file rewritten after it was hashed as the server file', async () => {
  env = await startServer();
  const content = randomBytes(2 * INTEGRITY_BLOCK_BYTES + 1000);
  const seeder = await env.connect();
  await seeder.put('big.bin', content);
  await seeder.close();
  const dir = await tempDirs.make();
  const target = join(dir, 'big.bin');
  const partial = content.subarray(0, INTEGRITY_BLOCK_BYTES + 10);
  await writeFile(target, partial);

  let rewritten = false;
  proxy = await startFrameProxy(env.port, {
    fromServer: (frame) => {
      if (frame.type === FrameType.REPLY && frame.streamId !== 0 && !rewritten) {
        // Another program writes the partial file in place: same size, other bytes.
        writeFileSync(target, Buffer.alloc(partial.length, 0x61));
        rewritten = true;
      }
      return frame;
    },
  });
  const client = await env.connect({ port: proxy.port });
  const outcome = await client.get('big.bin', target, { continue: true }).then(
    () => 'done',
    (error: unknown) => (error as { code?: string }).code,
  );
  await client.close();
  expect(rewritten).toBe(true);
  // Not a download that checks out, with the rewritten bytes as its first block.
  expect(outcome).toBe('LOCAL_IO_ERROR');
  expect((await readFile(target)).equals(Buffer.alloc(partial.length, 0x61))).toBe(true);
  expect(readdirSync(dir)).toEqual(['big.bin']);
});
