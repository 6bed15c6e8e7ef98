/**
 * Paths a request cannot carry: the client refuses them itself, INVALID_PATH, as the server would.
 * Sent, a path past the server's request frame (32 KiB; a rename of two paths of control
 * characters, escaped six bytes each, too) was FRAME_TOO_LARGE: the server ended the connection,
 * and every transfer on it failed with that message.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { downloadPartialName } from '../shared/temporaryNames.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-requestPaths-');
let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

it('refuses a path past maxPathBytes, or one no path may hold, alone: the connection and its transfers go on', async () => {
  server = await startServer();
  const client = await server.connect();
  const bytes = Buffer.alloc(1024 * 1024, 7);
  const upload = client.put('big.bin', bytes);
  await expect(client.stat('a'.repeat(40_000))).rejects.toMatchObject({
    code: 'INVALID_PATH',
    message: 'invalid path: longer than 4096 bytes',
  });
  const controls = '\u0001'.repeat(4096);
  await expect(client.rename(controls, `${controls.slice(1)}\u0002`)).rejects.toMatchObject({
    code: 'INVALID_PATH',
    message: 'invalid path: contains a control character',
  });
  await expect(client.getBuffer('b'.repeat(40_000))).rejects.toMatchObject({ code: 'INVALID_PATH' });
  await expect(client.put('c'.repeat(40_000), Buffer.from('x'))).rejects.toMatchObject({
    code: 'INVALID_PATH',
  });
  await expect(upload).resolves.toMatchObject({ entry: { size: bytes.length } });
  expect((await client.stat('big.bin')).size).toBe(bytes.length);
});

it('get -c of a path refused unsent leaves the partial kept for its target, and the file there, as they were', async () => {
  // Refused by the server, the download kept them (keepPartial); refused here, it dropped the
  // kept partial it had taken over to continue.
  server = await startServer();
  const client = await server.connect();
  const dir = await tempDirs.make();
  const kept = randomBytes(2 * INTEGRITY_BLOCK_BYTES);
  const mine = randomBytes(INTEGRITY_BLOCK_BYTES + 10);
  await writeFile(join(dir, downloadPartialName('big.bin')), kept);
  await writeFile(join(dir, 'big.bin'), mine);
  for (const path of ['odd\\name', 'b'.repeat(40_000)]) {
    await expect(client.get(path, join(dir, 'big.bin'), { continue: true })).rejects.toMatchObject({
      code: 'INVALID_PATH',
    });
  }
  expect((await readdir(dir)).sort()).toEqual(['big.bin', downloadPartialName('big.bin')].sort());
  expect((await readFile(join(dir, downloadPartialName('big.bin')))).equals(kept)).toBe(true);
  expect((await readFile(join(dir, 'big.bin'))).equals(mine)).toBe(true);
});
