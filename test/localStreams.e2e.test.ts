/**
 * A library caller's own streams: a Writable given to get() that fails or is closed early, and a
 * Readable given to put() that is destroyed before its end. The call rejects LOCAL_IO_ERROR at
 * once, its remote stream is cancelled, and the connection goes on serving other calls.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import type { KnownDigest } from '../client/streams.js';
import { MuxftpError } from '../shared/errors.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;

let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-local-streams-');

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/** What `call` settled with, or 'pending' when it has not within `ms`. */
async function settledWithin<T>(call: Promise<T>, ms: number): Promise<T | Error | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([call.catch((error: Error) => error), pending]);
  } finally {
    clearTimeout(timer);
  }
}

/** The connection still serves: a download of `path` is whole, and the server holds no stream but stats'. */
async function expectConnectionUsable(client: Client, path: string, bytes: number): Promise<void> {
  expect((await client.getBuffer(path)).length).toBe(bytes);
  await expect.poll(async () => (await client.stats()).streams).toBe(1);
  expect(client.isOpen).toBe(true);
}

/**
 * A get of 8 MiB into a Writable whose first write never calls back (it waits on a peer that goes
 * away), once that write has come.
 */
async function stuckInItsFirstWrite(): Promise<{
  client: Client;
  sink: Writable;
  download: Promise<unknown>;
}> {
  env = await startServer({ streamWindowBytes: 64 * 1024 });
  const client = await env.connect({ streamWindowBytes: 64 * 1024 });
  await client.put('big.bin', Buffer.alloc(8 * MiB, 7));
  let writes = 0;
  const sink = new Writable({
    write() {
      writes++;
    },
  });
  const download = client.get('big.bin', sink);
  await expect.poll(() => writes).toBe(1);
  return { client, sink, download };
}

describe('get into a Writable of the caller', () => {
  it("that fails ('error', a directory missing) rejects with the stream's own error as cause", async () => {
    env = await startServer({ streamWindowBytes: 64 * 1024 });
    const client = await env.connect({ streamWindowBytes: 64 * 1024 });
    await client.put('f.bin', Buffer.alloc(4 * MiB, 7));
    const missing = join(await tempDirs.make(), 'no-such-dir', 'f.bin');
    const error = await settledWithin(client.get('f.bin', createWriteStream(missing)), 5000);
    expect(error).toBeInstanceOf(MuxftpError);
    expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect(((error as MuxftpError).cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    await expectConnectionUsable(client, 'f.bin', 4 * MiB);
  });

  it('whose write calls back with an error rejects with that error as cause', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('f.bin', Buffer.alloc(1 * MiB, 7));
    const failure = new Error('disk on fire');
    const sink = new Writable({
      write(_chunk, _encoding, callback) {
        callback(failure);
      },
    });
    const error = await settledWithin(client.get('f.bin', sink), 5000);
    expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((error as MuxftpError).cause).toBe(failure);
    await expectConnectionUsable(client, 'f.bin', 1 * MiB);
  });

  it('destroyed while a write is in flight (its callback never comes) rejects at once', async () => {
    const { client, sink, download } = await stuckInItsFirstWrite();
    sink.on('error', () => {});
    sink.destroy();
    const error = await settledWithin(download, 2000);
    expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((error as MuxftpError).message).toMatch(/closed before/);
    await expectConnectionUsable(client, 'big.bin', 8 * MiB);
    expect(await settledWithin(client.close(), 2000)).toBeUndefined();
  });

  it('destroyed with an error while a write is in flight rejects with that error as cause', async () => {
    const { client, sink, download } = await stuckInItsFirstWrite();
    const gone = new Error('peer went away');
    sink.destroy(gone);
    const error = await settledWithin(download, 2000);
    expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((error as MuxftpError).cause).toBe(gone);
    await expectConnectionUsable(client, 'big.bin', 8 * MiB);
  });

  it('closed before it was given rejects before asking the server, a file of 0 bytes too', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('empty.bin', Buffer.alloc(0));
    await client.put('f.bin', Buffer.alloc(1024, 1));
    for (const path of ['empty.bin', 'f.bin']) {
      const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
      sink.destroy();
      await once(sink, 'close'); // long gone: its 'close' came before the get
      const sentBefore = env.server.stats().filesOut;
      const error = await settledWithin(client.get(path, sink), 2000);
      // Before: the empty file resolved as got (and was sent), nothing written anywhere.
      expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
      expect((error as MuxftpError).message).toMatch(/closed before/);
      expect(env.server.stats().filesOut).toBe(sentBefore);
    }
    await expectConnectionUsable(client, 'f.bin', 1024);
  });
});

describe('put from a Readable of the caller', () => {
  it('destroyed without an error before its end rejects at once, and nothing is stored', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('other.bin', Buffer.alloc(1000, 1));
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(1000, 2));
    const upload = client.put('x.bin', source);
    setTimeout(() => source.destroy(), 50);
    const error = await settledWithin(upload, 2000);
    expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    expect((error as MuxftpError).message).toMatch(/closed before its end/);
    await expect(client.stat('x.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expectConnectionUsable(client, 'other.bin', 1000);
    expect(await settledWithin(client.close(), 2000)).toBeUndefined();
  });

  it("failing the moment it is given, before the upload reads it, rejects with its error, never an unhandled 'error'", async () => {
    env = await startServer();
    const client = await env.connect();
    const source = new Readable({ read() {} });
    expect(source.listenerCount('error')).toBe(0); // the caller listens for none
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const upload = client.put('x.bin', source);
      const reset = new Error('upstream socket reset');
      // Emitted on a later tick, while the put sets up or once it failed of it: the call's either way.
      source.destroy(reset);
      const error = await settledWithin(upload, 2000);
      expect(error).toMatchObject({ code: 'LOCAL_IO_ERROR', cause: reset });
      await new Promise((resolve) => setImmediate(resolve));
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    await expect(client.stat('x.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(client.isOpen).toBe(true);
  });

  it('cancelled, is left as it was for the caller: not destroyed, its unread bytes in it, no listener of the client', async () => {
    env = await startServer();
    const client = await env.connect();
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(1000, 3)); // and no end: the upload waits for more
    const controller = new AbortController();
    const upload = client.put('x.bin', source, { signal: controller.signal });
    await expect.poll(() => source.readableLength).toBe(0); // read and sent
    source.push(Buffer.from('unread'));
    controller.abort();
    expect(await settledWithin(upload, 2000)).toMatchObject({ code: 'CANCELLED' });
    expect(source.destroyed).toBe(false);
    for (const event of ['error', 'readable', 'end', 'close'])
      expect(source.listenerCount(event), event).toBe(0);
    expect(source.read()?.toString()).toBe('unread');
    // The caller's to end or destroy; an 'error' from it now is the caller's to listen for.
    source.destroy();
    await expect(client.stat('x.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('in object mode, giving Uint8Arrays (a web stream: Readable.from(response.body)), is stored byte for byte', async () => {
    env = await startServer();
    const client = await env.connect();
    const bytes = Buffer.alloc(300_000, 'web');
    // A Blob's stream gives Uint8Arrays, not Buffers; Readable.from() passes them on as they are.
    const put = await client.put('web.bin', Readable.from(new Blob([bytes]).stream()));
    expect(put.entry.size).toBe(bytes.length);
    expect((await client.getBuffer('web.bin')).equals(bytes)).toBe(true);
  });

  it('in object mode, an empty chunk is no end: every byte after it is stored, views at their offset', async () => {
    env = await startServer();
    const client = await env.connect();
    // A Uint8Array over part of a larger ArrayBuffer: only its own bytes, taken without a copy.
    const view = new Uint8Array(new TextEncoder().encode('--cd--').buffer, 2, 2);
    const chunks = [Buffer.from('ab'), Buffer.alloc(0), '', new Uint8Array(0), view, Buffer.from('ef')];
    // Before: an empty chunk read as the end, and 'ab' was stored as the whole file, with success.
    const put = await client.put('e.bin', Readable.from(chunks));
    expect(put.entry.size).toBe(6);
    expect((await client.getBuffer('e.bin')).toString()).toBe('abcdef');
  });

  it('in object mode, giving what is no bytes, rejects LOCAL_IO_ERROR saying so, and nothing is stored', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('other.bin', Buffer.alloc(1000, 1));
    const error = await settledWithin(client.put('x.bin', Readable.from([Buffer.from('ab'), 42])), 2000);
    expect(error).toBeInstanceOf(MuxftpError);
    expect(error).toMatchObject({ code: 'LOCAL_IO_ERROR', message: 'input stream gave a number, not bytes' });
    await expect(client.stat('x.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expectConnectionUsable(client, 'other.bin', 1000);
  });

  it('destroyed already when given rejects at once', async () => {
    env = await startServer();
    const client = await env.connect();
    const source = new Readable({ read() {} });
    source.destroy();
    const error = await settledWithin(client.put('x.bin', source), 2000);
    expect((error as MuxftpError).code).toBe('LOCAL_IO_ERROR');
    await expect(client.stat('x.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(client.isOpen).toBe(true);
  });
});

describe('a source or target that is neither a path nor a stream (a JavaScript caller)', () => {
  it('rejects with a TypeError saying what is taken, and the connection goes on', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('f.bin', Buffer.alloc(10, 1));
    await expect(client.put('x.bin', null as unknown as Readable)).rejects.toThrow(
      new TypeError('put: the source must be a local path, bytes or a Readable, got null'),
    );
    await expect(client.get('f.bin', 42 as unknown as Writable)).rejects.toThrow(
      new TypeError('get: the target must be a local path or a Writable, got 42'),
    );
    await expectConnectionUsable(client, 'f.bin', 10);
  });

  it('a knownDigests digest that is no raw digest (hex, the wrong length) rejects that put with a TypeError', async () => {
    env = await startServer();
    const client = await env.connect();
    await client.put('f.bin', Buffer.alloc(10, 1));
    const bytes = Buffer.alloc(100_000, 2);
    const hex = (await contentDigest('xxh128', bytes)).toString('hex');
    // Before: the END's encoder threw it outside any call, and the process ended.
    for (const digest of [hex, Buffer.alloc(15)]) {
      const known = [{ algorithm: 'xxh128', digest }] as unknown as KnownDigest[];
      await expect(client.put('x.bin', bytes, { knownDigests: known })).rejects.toThrow(
        new TypeError('put: knownDigests: an xxh128 digest is its 16 raw bytes, as a Buffer (not hex)'),
      );
    }
    await expect(client.stat('x.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expectConnectionUsable(client, 'f.bin', 10);
  });
});
