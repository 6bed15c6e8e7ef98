/**
 * A library caller's callback that throws (onProgress, onNothingKept, busyRetries) fails the one
 * call it was given to, as LOCAL_IO_ERROR with the thrown value as cause, and cancels its stream;
 * the connection, the other calls on it and the process go on.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { MuxftpError } from '../shared/errors.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;

let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-callbacks-');

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

const bug = new TypeError('bug in my progress bar');
const throwing = (): never => {
  throw bug;
};

function expectCallerThrew(error: unknown, name: string): void {
  expect(error).toBeInstanceOf(MuxftpError);
  expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
  expect((error as MuxftpError).message).toBe(`${name} threw: bug in my progress bar`);
  expect((error as MuxftpError).cause).toBe(bug);
}

describe('a callback that throws', () => {
  it('onProgress of a get fails that get alone: the other gets on the connection finish', async () => {
    env = await startServer({ streamWindowBytes: 64 * 1024 });
    const client = await env.connect({ streamWindowBytes: 64 * 1024 });
    const bytes = Buffer.alloc(4 * MiB, 3);
    await client.put('f.bin', bytes);
    const others = [1, 2].map(() => client.getBuffer('f.bin'));
    const error = await client.getBuffer('f.bin', { onProgress: throwing }).catch((e: unknown) => e);
    expectCallerThrew(error, 'onProgress');
    for (const other of await Promise.all(others)) expect(other.equals(bytes)).toBe(true);
    await expect.poll(async () => (await client.stats()).streams).toBe(1);
    expect(client.isOpen).toBe(true);
  });

  it('onProgress of a put fails that put alone, and nothing is stored', async () => {
    env = await startServer({ streamWindowBytes: 64 * 1024 });
    const client = await env.connect({ streamWindowBytes: 64 * 1024 });
    const other = client.put('other.bin', Buffer.alloc(2 * MiB, 1));
    const error = await client
      .put('f.bin', Buffer.alloc(2 * MiB, 2), { onProgress: throwing })
      .catch((e: unknown) => e);
    expectCallerThrew(error, 'onProgress');
    expect((await other).entry.size).toBe(2 * MiB);
    await expect.poll(async () => (await client.stats()).streams).toBe(1);
    await expect(client.stat('f.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(client.isOpen).toBe(true);
  });

  it('onProgress of a put throwing when told the last byte went: the upload is not stored', async () => {
    env = await startServer();
    const client = await env.connect();
    const size = 300_000;
    // The last call, made as END goes (the one before it reported the last DATA frame).
    let toldWhole = 0;
    const onProgress = (done: number): void => {
      if (done === size && ++toldWhole === 2) throwing();
    };
    const error = await client.put('f.bin', Buffer.alloc(size, 2), { onProgress }).catch((e: unknown) => e);
    expectCallerThrew(error, 'onProgress');
    // Once the server is done with it (a committed upload would be there by then).
    await expect.poll(async () => (await client.stats()).streams).toBe(1);
    await expect(client.stat('f.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await client.put('f.bin', Buffer.alloc(size, 2))).entry.size).toBe(size);
  });

  it('onNothingKept of a put -c fails that put, which sends nothing', async () => {
    env = await startServer();
    const client = await env.connect();
    const local = join(await tempDirs.make(), 'big.bin');
    await writeFile(local, Buffer.alloc(5 * MiB, 4));
    const error = await client
      .put('big.bin', local, { continue: true, onNothingKept: throwing })
      .catch((e: unknown) => e);
    expectCallerThrew(error, 'onNothingKept');
    await expect(client.stat('big.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await client.put('big.bin', local, { continue: true })).entry.size).toBe(5 * MiB);
  });

  it("busyRetries' policy fails the request refused SERVER_BUSY alone", async () => {
    env = await startServer({ maxOpenFiles: 1, streamWindowBytes: 64 * 1024 });
    const holder = await env.connect({ streamWindowBytes: 64 * 1024 });
    await holder.put('f.bin', Buffer.alloc(8 * MiB, 5));
    // A download whose writes never call back holds the server's one open file.
    let writes = 0;
    const held = new Writable({
      write() {
        writes++;
      },
    });
    const download = holder.get('f.bin', held).catch((e: unknown) => e);
    await expect.poll(() => writes).toBe(1);
    const client = await env.connect({ busyRetries: () => ({ next: throwing }) });
    const error = await client.digest('f.bin').catch((e: unknown) => e);
    expectCallerThrew(error, 'busyRetries');
    expect(client.isOpen).toBe(true);
    held.destroy();
    await download;
  });
});
