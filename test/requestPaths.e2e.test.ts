/**
 * Paths a request cannot carry: the client refuses them itself, INVALID_PATH, as the server would.
 * Sent, a path past the server's request frame (32 KiB; a rename of two paths of control
 * characters, escaped six bytes each, too) was FRAME_TOO_LARGE: the server ended the connection,
 * and every transfer on it failed with that message.
 */
import { afterEach, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
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
