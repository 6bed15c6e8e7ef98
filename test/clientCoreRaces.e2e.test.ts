/**
 * Races in the client core found by reading it (review huntC-48): each test shows one that a
 * user could meet, over real sockets and files.
 */
import { constants } from 'node:fs';
import { open, readdir, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../client/client.js';
import { localBlockDigests } from '../client/localDigests.js';
import { LocalFile } from '../client/sources.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeError, encodeReply } from '../shared/protocol/encoder.js';
import { makeFifo } from './helpers/fifo.js';
import { startScriptedServer } from './helpers/scriptedServer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

const dirs = new TempDirs('muxftp-core-races-');
let env: TestServer | undefined;
const fifos: string[] = [];
const stops: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
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

describe('connect with outbound marks the queue refuses', () => {
  it('rejects with a TypeError naming the option, and leaves no socket open to the server', async () => {
    env = await startServer();
    const port = env.port;
    // Only a low-water mark above the default high-water mark: each is valid alone.
    const connecting = Client.connect({ host: '127.0.0.1', port, outboundLowWaterBytes: 8 * 1024 * 1024 });
    const error = await connecting.then(
      () => undefined,
      (e: unknown) => e,
    );
    // Let a socket left connecting reach the server.
    await delay(200);
    expect({ error, connections: env.server.connectionFigures().length }).toEqual({
      error: expect.objectContaining({
        name: 'TypeError',
        message: expect.stringMatching(/outboundLowWaterBytes/),
      }),
      connections: 0,
    });
  });
});

describe('Client.over a byte stream', () => {
  it('that closed before the call rejects CONNECT_FAILED, as connect() to a closed port does', async () => {
    env = await startServer();
    const ours = connect({ host: '127.0.0.1', port: env.port });
    await new Promise((resolve) => ours.once('connect', resolve));
    ours.destroy(); // a tunnel that went before it was handed over
    await new Promise((resolve) => ours.once('close', resolve));
    const outcome = await Promise.race([
      Client.over(ours, { connectTimeoutMs: 500 }).then(
        () => 'connected',
        (error: { code?: string }) => error.code,
      ),
      delay(3_000).then(() => 'still waiting after 3 s'),
    ]);
    expect(outcome).toBe('CONNECT_FAILED');
  });
});

/** A file of `size` bytes with no blocks on disk: read as zeros. */
async function sparseFile(path: string, size: number): Promise<void> {
  await writeFile(path, '');
  await truncate(path, size);
}

describe('get -c of a large partial file', () => {
  it('aborted while the local blocks are hashed rejects CANCELLED without hashing them all', async () => {
    env = await startServer();
    const client = await env.connect({ integrity: ['sha256'] });
    // 2 GiB with no blocks on disk: read as zeros, hashed for seconds on these VMs.
    const target = join(await dirs.make(), 'big.bin');
    await sparseFile(target, 2 * 1024 ** 3);
    const controller = new AbortController();
    const started = performance.now();
    const got = client.get('big.bin', target, { continue: true, signal: controller.signal });
    await delay(100);
    controller.abort();
    const code = await got.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    expect({ code, fast: performance.now() - started < 1_500 }).toEqual({ code: 'CANCELLED', fast: true });
  });
});

describe('put -c to a server refusing its question SERVER_BUSY', () => {
  it('aborted while the question is tried again rejects CANCELLED', async () => {
    // Every OPEN (the `partial` question) refused SERVER_BUSY, and a policy that never gives up.
    const scripted = await startScriptedServer((socket, frame) => {
      if (frame.type === FrameType.OPEN)
        socket.write(encodeError(frame.streamId, { code: 'SERVER_BUSY', status: 302, message: 'busy' }));
    });
    stops.push(() => new Promise<void>((resolve) => scripted.server.close(() => resolve())));
    const client = await Client.connect({
      host: '127.0.0.1',
      port: scripted.port,
      busyRetries: () => ({ next: () => 50 }),
    });
    stops.push(() => client.destroy());
    const source = join(await dirs.make(), 'big.bin');
    await writeFile(source, Buffer.alloc(INTEGRITY_BLOCK_BYTES + 1));
    const controller = new AbortController();
    const put = client.put('big.bin', source, { continue: true, signal: controller.signal });
    await delay(200);
    controller.abort();
    const outcome = await Promise.race([
      put.then(
        () => 'resolved',
        (error: { code?: string }) => error.code,
      ),
      delay(2_000).then(() => 'still trying after 2 s'),
    ]);
    expect(outcome).toBe('CANCELLED');
  });
});

describe('get -c continuing a large partial file', () => {
  it('aborted while the partial file is copied rejects CANCELLED without copying the rest', async () => {
    // 1 GiB of the user's partial file whose blocks the server vouches for: copied into the
    // hidden file before the rest comes (2.4 s here), and a Ctrl-C meanwhile waited for all of it.
    const target = join(await dirs.make(), 'big.bin');
    const size = 1024 ** 3;
    await sparseFile(target, size);
    const blocks = (await localBlockDigests(target, 'xxh128', size / INTEGRITY_BLOCK_BYTES)).map((d) =>
      d.toString('hex'),
    );
    const scripted = await startScriptedServer((socket, frame) => {
      if (frame.type === FrameType.OPEN)
        socket.write(encodeReply(frame.streamId, { size: size + 5, mtime: 0, offset: size, blocks }));
    });
    stops.push(() => new Promise<void>((resolve) => scripted.server.close(() => resolve())));
    const client = await Client.connect({ host: '127.0.0.1', port: scripted.port });
    stops.push(() => client.destroy());
    const controller = new AbortController();
    let abortedAt = 0;
    const got = client.get('big.bin', target, {
      continue: true,
      signal: controller.signal,
      // Told once the server's blocks matched: the copy starts now.
      onContinue: () => {
        setTimeout(() => {
          abortedAt = performance.now();
          controller.abort();
        }, 50);
      },
    });
    const code = await got.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    expect({ code, prompt: performance.now() - abortedAt < 1_000 }).toEqual({
      code: 'CANCELLED',
      prompt: true,
    });
    expect(await readdir(dirname(target))).toEqual(['big.bin']);
  });
});

describe('get -c continuing a large partial file, keeping partials (as the CLI does)', () => {
  it('aborted while the partial file is copied reads no more of it (counted, not timed)', async () => {
    // As above, with keepPartial (every CLI get to a file): the failure keeps nothing of a copy
    // not made yet. Counted in reads of 1 MiB, so a fast disk (a whole copy under the time
    // allowed above) still tells.
    const target = join(await dirs.make(), 'big.bin');
    const size = 1024 ** 3;
    await sparseFile(target, size);
    const blocks = (await localBlockDigests(target, 'xxh128', size / INTEGRITY_BLOCK_BYTES)).map((d) =>
      d.toString('hex'),
    );
    const scripted = await startScriptedServer((socket, frame) => {
      if (frame.type === FrameType.OPEN)
        socket.write(encodeReply(frame.streamId, { size: size + 5, mtime: 0, offset: size, blocks }));
    });
    stops.push(() => new Promise<void>((resolve) => scripted.server.close(() => resolve())));
    const client = await Client.connect({ host: '127.0.0.1', port: scripted.port });
    stops.push(() => client.destroy());
    const reads = { total: 0, atAbort: -1 };
    const readAt = LocalFile.prototype.readAt;
    const spy = vi.spyOn(LocalFile.prototype, 'readAt').mockImplementation(function (
      this: LocalFile,
      ...args
    ) {
      reads.total++;
      return readAt.apply(this, args);
    });
    stops.push(async () => spy.mockRestore());
    const controller = new AbortController();
    const got = client.get('big.bin', target, {
      continue: true,
      keepPartial: true,
      signal: controller.signal,
      onContinue: () => {
        setTimeout(() => {
          reads.atAbort = reads.total;
          controller.abort();
        }, 50);
      },
    });
    const code = await got.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    expect({ code, readsAfterAbort: reads.total - reads.atAbort <= 2 }).toEqual({
      code: 'CANCELLED',
      readsAfterAbort: true,
    });
    expect(await readdir(dirname(target))).toEqual(['big.bin']);
  });
});
