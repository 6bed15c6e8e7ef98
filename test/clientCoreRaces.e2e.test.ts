/**
 * Races in the client core found by reading it (review huntC-48): each test shows one that a
 * user could meet, over real sockets and files.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFifo } from './helpers/fifo.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const dirs = new TempDirs('muxftp-core-races-');
let env: TestServer | undefined;
const fifos: string[] = [];
afterEach(async () => {
  // A FIFO open still waiting for its reader (the bug) holds a threadpool thread: let it through.
  for (const fifo of fifos.splice(0)) {
    const reader = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await reader?.close();
  }
  await env?.stop();
  env = undefined;
  await dirs.removeAll();
});

describe('get into a FIFO', () => {
  it('cancelled while the FIFO is looked at, before its open waits for a reader, rejects CANCELLED', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('data.bin', Buffer.from('hello'));
    const fifo = makeFifo(join(await dirs.make(), 'out'));
    fifos.push(fifo);
    const controller = new AbortController();
    // writesInPlace: the call goes straight to the FIFO's stat; the abort lands during it.
    const got = client.get('data.bin', fifo, { signal: controller.signal, writesInPlace: true });
    controller.abort();
    const outcome = await Promise.race([
      got.then(
        () => 'resolved',
        (error: { code?: string }) => error.code,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 3 s'), 3_000)),
    ]);
    expect(outcome).toBe('CANCELLED');
  });
});
