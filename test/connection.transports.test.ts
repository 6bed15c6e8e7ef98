/**
 * Connection logic over both transports: an in-memory duplex pair (no port) and TCP on
 * 127.0.0.1. Timeouts run on fake timers: the tests move the clock instead of waiting for it.
 */

import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../client/client.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeHello, encodeOpen, encodeWindow } from '../shared/protocol/encoder.js';
import { holdUploads } from './helpers/heldUploads.js';
import type { RawPeer } from './helpers/rawPeer.js';
import { duplexPair, type ServerOver, serveOver, TRANSPORTS } from './helpers/transports.js';

const MiB = 1024 * 1024;
const _sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const xxh128Hex = (data: Uint8Array): string => contentDigest('xxh128', data).toString('hex');
/** One real turn of the event loop, so bytes written so far are delivered (setImmediate is not faked). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

let env: ServerOver | undefined;
let listener: Server | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await env?.stop();
  env = undefined;
  await new Promise<void>((resolve) => (listener ? listener.close(() => resolve()) : resolve()));
  listener = undefined;
});

/**
 * The timers and the clock the timeouts use (the handshake counts from performance.now() at
 * accept); sockets, setImmediate and Date stay real.
 */
const useFakeTimeouts = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });

/** Lets real I/O run a few turns, then says whether `peer` was closed with an ERROR on stream 0. */
async function closedWithError(peer: RawPeer): Promise<string | undefined> {
  for (let i = 0; i < 5; i++) await settle();
  const error = peer.frames.find((f) => f.type === FrameType.ERROR && f.streamId === 0);
  return error === undefined ? undefined : (JSON.parse(error.payload.toString()) as { code: string }).code;
}

describe.each(TRANSPORTS)('a connection over %s', (transport) => {
  it('completes the handshake and runs every operation', async () => {
    env = await serveOver(transport);
    const client = await env.connect();
    const bytes = randomBytes(3 * MiB + 1);
    await client.mkdir('d/e', { parents: true });
    expect((await client.put('d/e/f.bin', bytes)).digest).toBe(xxh128Hex(bytes));
    expect((await client.list('d/e')).map((e) => [e.name, e.size])).toEqual([['f.bin', bytes.length]]);
    expect(await client.stat('d/e/f.bin')).toMatchObject({ type: 'file', size: bytes.length });
    expect((await client.getBuffer('d/e/f.bin')).equals(bytes)).toBe(true);
    await client.rename('d/e/f.bin', 'd/g.bin');
    await client.delete('d/g.bin');
    await client.rmdir('d/e');
    expect(await client.list('d')).toEqual([]);
    expect(await client.stats()).toMatchObject({ connections: 1, filesIn: 1, filesOut: 1 });
  });

  it('carries 20 uploads at once, their frames interleaved', async () => {
    env = await serveOver(transport, { streamWindowBytes: 64 * 1024 });
    const client = await env.connect({ chunkBytes: 16 * 1024 });
    const files = Array.from({ length: 20 }, (_, i) => ({ path: `s${i}`, bytes: randomBytes(MiB) }));
    const started = new Set<string>();
    let startedWhenFirstDone = 0;
    await Promise.all(
      files.map((f) =>
        client.put(f.path, f.bytes, { onProgress: (done) => done > 0 && started.add(f.path) }).then((r) => {
          startedWhenFirstDone ||= started.size;
          expect(r.digest).toBe(xxh128Hex(f.bytes));
        }),
      ),
    );
    // With 64 KiB windows a 1 MiB file needs many round trips: one after another, the first
    // would finish before the others sent a byte.
    expect(startedWhenFirstDone).toBe(20);
    const back = await Promise.all(files.map((f) => client.getBuffer(f.path)));
    for (const [i, got] of back.entries()) expect(got.equals(files[i]!.bytes)).toBe(true);
  });

  it('a protocol violation closes that connection only, with one ERROR on stream 0', async () => {
    env = await serveOver(transport);
    const bystander = await env.connect();
    const peer = await env.rawOpen();
    peer.write(encodeData(7, Buffer.from('x')));
    expect((await peer.connectionError()).code).toBe('UNKNOWN_STREAM');
    await peer.closed;
    expect(peer.frames.filter((f) => f.type === FrameType.ERROR)).toHaveLength(1);
    await bystander.put('still.bin', Buffer.from('served'));
    expect((await bystander.getBuffer('still.bin')).toString()).toBe('served');
  });

  it('a transfer cut off by the server shutting down fails with the reason it gave, SHUTTING_DOWN', async () => {
    env = await serveOver(transport);
    const held = holdUploads(env.storage, MiB);
    const client = await env.connect();
    const upload = client.put('cut.bin', randomBytes(4 * MiB));
    upload.catch(() => {}); // awaited below
    await held.holding;
    await env.server.close(0); // no grace: connections are cut at once, told why
    // Before: CONNECTION_LOST, "connection closed", as for a crash.
    await expect(upload).rejects.toMatchObject({
      code: 'SHUTTING_DOWN',
      message: 'the server shut down before its transfers ended (0 s of grace)',
    });
    await expect(client.list('')).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    held.release();
  });

  it('closes a connection idle for exactly its idle timeout; a finished stream or any frame restarts the count', async () => {
    const idleTimeoutMs = 60_000;
    useFakeTimeouts();
    env = await serveOver(transport, { idleTimeoutMs });
    const peer = await env.rawOpen();
    vi.advanceTimersByTime(idleTimeoutMs - 1);
    expect(await closedWithError(peer)).toBeUndefined();
    // A stream that finishes restarts the count...
    peer.write(encodeOpen(1, { op: 'list', path: '' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    vi.advanceTimersByTime(idleTimeoutMs - 1);
    expect(await closedWithError(peer)).toBeUndefined();
    // ...and so does any frame, even one the server ignores (credit for that finished stream).
    peer.write(encodeWindow(1, 1024));
    await settle();
    vi.advanceTimersByTime(idleTimeoutMs - 1);
    expect(await closedWithError(peer)).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(await closedWithError(peer)).toBe('IDLE_TIMEOUT');
    await peer.closed;
  });

  it('fails a stream that moves no data for the idle timeout (STREAM_TIMEOUT), then the idle connection', async () => {
    const idleTimeoutMs = 60_000;
    useFakeTimeouts();
    env = await serveOver(transport, { idleTimeoutMs });
    const peer = await env.rawOpen();
    // An upload that sends nothing after OPEN (issue #7: it used to hold its file forever).
    peer.write(encodeOpen(1, { op: 'put', path: 'slow.bin' }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    vi.advanceTimersByTime(idleTimeoutMs - 1);
    await settle();
    expect(peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 1)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await closedWithError(peer)).toBeUndefined(); // the stream fails, not the connection
    expect((await peer.streamError(1)).code).toBe('STREAM_TIMEOUT');
    // With no stream left, the connection's own idle count runs.
    vi.advanceTimersByTime(idleTimeoutMs);
    expect(await closedWithError(peer)).toBe('IDLE_TIMEOUT');
  });

  it('closes a connection that sends no HELLO within the handshake timeout', async () => {
    const handshakeTimeoutMs = 10_000;
    useFakeTimeouts();
    env = await serveOver(transport, { handshakeTimeoutMs, idleTimeoutMs: 1_000 });
    const peer = await env.rawConnect();
    await settle();
    vi.advanceTimersByTime(handshakeTimeoutMs - 1);
    expect(await closedWithError(peer)).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(await closedWithError(peer)).toBe('IDLE_TIMEOUT');
    expect((await peer.connectionError()).message).toBe('no HELLO received in time');
    await peer.closed;
  });

  it('a HELLO in time ends the handshake timer: the idle timeout applies from then', async () => {
    useFakeTimeouts();
    env = await serveOver(transport, { handshakeTimeoutMs: 1_000, idleTimeoutMs: 60_000 });
    const peer = await env.rawConnect();
    vi.advanceTimersByTime(999);
    peer.write(
      encodeHello({ protocol: 'muxftp', versions: [2], maxFramePayload: 65536, integrity: ['xxh128'] }),
    );
    await peer.waitFor((f) => f.type === FrameType.WELCOME);
    vi.advanceTimersByTime(59_999);
    expect(await closedWithError(peer)).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(await closedWithError(peer)).toBe('IDLE_TIMEOUT');
  });

  it('the client gives up with CONNECT_FAILED when the server never answers HELLO', async () => {
    useFakeTimeouts();
    let socket: Duplex;
    if (transport === 'pipe') {
      const [mute, clientEnd] = duplexPair();
      mute.resume(); // reads and discards: a server that says nothing
      socket = clientEnd;
    } else {
      listener = createServer((s) => s.resume());
      await new Promise<void>((resolve) => listener!.listen(0, '127.0.0.1', resolve));
      const { port } = listener.address() as { port: number };
      socket = connect({ host: '127.0.0.1', port });
    }
    let outcome: unknown;
    const connecting = Client.over(socket, { connectTimeoutMs: 5_000 }).then(
      () => {
        outcome = 'connected';
      },
      (error: unknown) => {
        outcome = error;
      },
    );
    await settle();
    vi.advanceTimersByTime(4_999);
    await settle();
    expect(outcome).toBeUndefined();
    vi.advanceTimersByTime(1);
    await connecting;
    expect(outcome).toMatchObject({
      code: 'CONNECT_FAILED',
      // A connection made that nothing answers on is said so: something else's port, or a server stopped.
      message: expect.stringMatching(
        transport === 'pipe'
          ? /: no answer within 5 s$/
          : /: connected, but no muxftp server answered within 5 s$/,
      ),
    });
  });
});
