/**
 * get -c copies the user's partial file into its hidden temporary file through the handle it
 * opened, never by the temporary file's name: in a directory others may write, a link swapped in
 * for that name would have the copy written wherever it leads. Real server on 127.0.0.1 behind a
 * frame proxy that swaps the temporary file for a link just before the client sees the REPLY.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, symlinkSync, unlinkSync } from 'node:fs';
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
const tempDirs = new TempDirs('muxftp-continue-copy-');
afterEach(async () => {
  proxy = env = await stopProxyAndServer(proxy, env);
  await tempDirs.removeAll();
});

it('get -c never writes the partial file through a link swapped in for its temporary file', async () => {
  env = await startServer();
  const content = randomBytes(2 * INTEGRITY_BLOCK_BYTES + 1000);
  const seeder = await env.connect();
  await seeder.put('big.bin', content);
  await seeder.close();
  const dir = await tempDirs.make();
  const target = join(dir, 'big.bin');
  await writeFile(target, content.subarray(0, INTEGRITY_BLOCK_BYTES + 10));
  const victim = join(dir, 'victim.txt');
  await writeFile(victim, 'precious');

  let swapped = false;
  proxy = await startFrameProxy(env.port, {
    fromServer: (frame) => {
      if (frame.type === FrameType.REPLY && frame.streamId !== 0 && !swapped) {
        const temporary = readdirSync(dir).find((name) => name.startsWith('.muxftp-'));
        if (temporary !== undefined) {
          unlinkSync(join(dir, temporary));
          symlinkSync(victim, join(dir, temporary));
          swapped = true;
        }
      }
      return frame;
    },
  });
  const client = await env.connect({ port: proxy.port });
  await client.get('big.bin', target, { continue: true }).catch(() => {});
  await client.close();
  expect(swapped).toBe(true);
  expect(await readFile(victim, 'utf8')).toBe('precious');
});
