/**
 * Slow and idle peers: thousands of connections that never send HELLO, or dribble it a byte at a
 * time, and welcomed ones that dribble a frame that never completes. Real clients are served
 * meanwhile; the handshake timeout (shorter than the idle timeout) closes the first kinds, the
 * idle timeout the last, each with IDLE_TIMEOUT on stream 0.
 */

import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { encodeHello } from '../shared/protocol/encoder.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const xxh128Hex = (data: Uint8Array): string => contentDigest('xxh128', data).toString('hex');

interface Slowpoke {
  socket: Socket;
  received: Buffer[];
  /** Resolves when the server closed it. */
  closed: Promise<void>;
  timer?: NodeJS.Timeout;
}

let env: TestServer | undefined;
const sockets: Slowpoke[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const s of sockets.splice(0)) {
    clearInterval(s.timer);
    s.socket.destroy();
  }
  await env?.stop();
  env = undefined;
});

/** The faked clock, moved by advanceTo() only. */
let fakeNow = 0;

/**
 * Moves the faked clock to `to` ms in steps of 100 ms, 20 ms of real time apart: the peers go on
 * dribbling meanwhile, so their bytes arrive at many moments of the faked clock.
 */
async function advanceTo(to: number): Promise<void> {
  while (fakeNow < to) {
    const step = Math.min(100, to - fakeNow);
    await vi.advanceTimersByTimeAsync(step);
    fakeNow += step;
    await delay(20);
  }
}

function open(port: number): Promise<Slowpoke> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      const slowpoke = { socket, received, closed };
      sockets.push(slowpoke);
      resolve(slowpoke);
    });
  });
}

/** Writes `bytes` one byte every `everyMs`; stops at the end or when the socket closes. */
function dribble(s: Slowpoke, bytes: Buffer, everyMs: number): void {
  let next = 0;
  s.timer = setInterval(() => {
    if (next >= bytes.length || s.socket.destroyed) {
      clearInterval(s.timer);
      return;
    }
    s.socket.write(bytes.subarray(next, next + 1));
    next++;
  }, everyMs);
}

async function openMany(port: number, count: number): Promise<Slowpoke[]> {
  const out: Slowpoke[] = [];
  // In batches, so the listen backlog is never the limit being measured.
  for (let i = 0; i < count; i += 200) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => open(port)))));
  }
  return out;
}

const hello = encodeHello({
  protocol: 'muxftp',
  versions: [2],
  maxFramePayload: 1024 * 1024,
  integrity: ['xxh128'],
});

/**
 * Opens the three kinds of slow peer: `silent` that never send a byte, `dribbling` that send
 * HELLO a byte every `helloEveryMs`, and `welcomed` that sent HELLO and then dribble an OPEN
 * header announcing 64 KiB of request, one byte every 100 ms: a frame that never completes. (Not
 * DATA: its first byte would already be refused, on a stream never opened.)
 */
async function openSlowPeers(
  port: number,
  counts: { silent: number; dribbling: number; welcomed: number },
  helloEveryMs: number,
): Promise<{ silent: Slowpoke[]; dribbling: Slowpoke[]; welcomed: Slowpoke[] }> {
  const silent = await openMany(port, counts.silent);
  const dribbling = await openMany(port, counts.dribbling);
  for (const s of dribbling) dribble(s, hello, helloEveryMs);
  const welcomed = await openMany(port, counts.welcomed);
  for (const s of welcomed) {
    s.socket.write(hello);
    // An OPEN of 16 KiB (within the server's 32 KiB for a request), never finished.
    const header = Buffer.from([0x03, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x40, 0]);
    dribble(s, Buffer.concat([header, Buffer.alloc(64)]), 100);
  }
  return { silent, dribbling, welcomed };
}

describe('slow and idle peers', () => {
  it('never keep a real client from being served: it moves its files while every one of them is held', async () => {
    // Timeouts no run of this test reaches, so every slow peer is still held when the client is
    // done, however long a loaded machine takes. (With 3 s ones, opening 2,300 peers took 4.5 s
    // and the client's transfers 4-5 s more at a load of 14 on 2 cores: most were closed first.)
    env = await startServer({ handshakeTimeoutMs: 60_000, idleTimeoutMs: 60_000 });
    const counts = { silent: 2_000, dribbling: 200, welcomed: 100 };
    await openSlowPeers(env.port, counts, 50);
    // A real client: connects, uploads, downloads, every byte checked...
    const client = await env.connect();
    const content = randomBytes(2 * 1024 * 1024);
    expect((await client.put('real.bin', content)).digest).toBe(xxh128Hex(content));
    expect(sha256(await client.getBuffer('real.bin'))).toBe(sha256(content));
    // ...while all the slow ones were held, and they still are.
    expect(env.server.stats().connections).toBe(counts.silent + counts.dribbling + counts.welcomed + 1);
  }, 30_000);

  it('are timed out, handshakes before idle connections, each told why', async () => {
    const handshakeTimeoutMs = 3_000;
    const idleTimeoutMs = 9_000;
    env = await startServer({ handshakeTimeoutMs, idleTimeoutMs });
    // The server's timers and clock are faked (sockets are real, and so are the peers' dribbling
    // intervals): each timeout is seen to the millisecond, without waiting it out.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    fakeNow = 0;
    // HELLO a byte every 100 ms takes over 8 s of real time: far more than this test takes.
    const { silent, dribbling, welcomed } = await openSlowPeers(
      env.port,
      { silent: 1_000, dribbling: 100, welcomed: 100 },
      100,
    );
    const all = silent.length + dribbling.length + welcomed.length;
    const connections = () => env!.server.stats().connections;
    // Every one accepted (its timer started at the still clock's 0) and every welcomed one welcomed.
    await until(
      () => connections() === all && welcomed.every((s) => s.received.length > 0),
      'every connection open and welcomed',
    );
    const toldWhy = (s: Slowpoke) => Buffer.concat(s.received).toString('latin1').includes('IDLE_TIMEOUT');

    // Nothing closes 1 ms before the handshake timeout, although the dribbling ones sent bytes
    // all along (a timer their bytes restarted would not fire at it either)...
    await advanceTo(handshakeTimeoutMs - 1);
    expect(connections()).toBe(all);
    expect(dribbling.every((s) => s.socket.bytesWritten > 1)).toBe(true);
    // ...and at it, each that has not finished its handshake is told why and closed.
    await advanceTo(handshakeTimeoutMs);
    await until(() => connections() === welcomed.length, 'the slow connections closed');
    await Promise.all([...silent, ...dribbling].map((s) => s.closed));
    expect([...silent, ...dribbling].filter((s) => !toldWhy(s))).toEqual([]);
    expect(welcomed.filter((s) => s.socket.destroyed || toldWhy(s))).toEqual([]);

    // The welcomed ones, whose frame never completes, likewise at the idle timeout.
    await advanceTo(idleTimeoutMs - 1);
    expect(connections()).toBe(welcomed.length);
    await advanceTo(idleTimeoutMs);
    await until(() => connections() === 0, 'no connection left');
    await Promise.all(welcomed.map((s) => s.closed));
    expect(welcomed.filter((s) => !toldWhy(s))).toEqual([]);
  }, 30_000);
});
