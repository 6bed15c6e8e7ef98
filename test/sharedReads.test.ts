/**
 * Reads into one shared buffer (SharedBufferReads) and the copies that make them safe: the decoder
 * on input that is overwritten as soon as push returns, ReceivedBytes' blocks going round, a real
 * TCP socket reading into the shared buffer, and transfers over TCP whose bytes on disk must be
 * exactly what was sent (a copy skipped or a block reused too early would corrupt them, while the
 * digest, computed as the bytes arrive, would still match).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { FrameType } from '../shared/protocol/constants.js';
import { FrameDecoder } from '../shared/protocol/decoder.js';
import { encodeFrame, encodeJsonFrame } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { BlockPool, ReceivedBytes } from '../shared/transport/receivedBytes.js';
import { SharedBufferReads } from '../shared/transport/sharedReadBuffer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { makeTestCerts, opensslAvailable, type TestCerts } from './helpers/testCerts.js';
import { startServer, type TestServer } from './helpers/testServer.js';

describe('FrameDecoder on borrowed input', () => {
  it('delivers the same frames when each input is overwritten as soon as push returns, split anywhere', () => {
    const open = encodeJsonFrame(FrameType.OPEN, 1, { op: 'put', path: 'a/b.bin', size: 70_000 });
    const data = randomBytes(70_000);
    const wire = Buffer.concat([open, encodeFrame(FrameType.DATA, 0, 1, data), open]);
    for (const step of [1, 5, 12, 13, 4096, 65_536]) {
      const seen: Array<{ type: number; payload: Buffer; borrowed: boolean | undefined }> = [];
      const decoder = new FrameDecoder(
        { maxFramePayloadBytes: 1 << 20, maxControlPayloadBytes: 1 << 16 },
        (frame: Frame) => {
          // DATA is copied here, while it is valid; control payloads are kept as delivered.
          const payload = frame.borrowed ? Buffer.from(frame.payload) : frame.payload;
          seen.push({ type: frame.type, payload, borrowed: frame.borrowed });
        },
      );
      const input = Buffer.alloc(step);
      for (let at = 0; at < wire.length; at += step) {
        const n = wire.copy(input, 0, at, Math.min(at + step, wire.length));
        decoder.push(input.subarray(0, n), true);
        input.fill(0xee); // the shared buffer's next read
      }
      const opens = seen.filter((f) => f.type === FrameType.OPEN);
      expect(opens.map((f) => f.payload.equals(open.subarray(12)))).toEqual([true, true]);
      const pieces = seen.filter((f) => f.type === FrameType.DATA);
      expect(pieces.every((f) => f.borrowed === true)).toBe(true);
      expect(Buffer.concat(pieces.map((f) => f.payload)).equals(data)).toBe(true);
      expect(decoder.midFrame).toBe(false);
    }
  });
});

describe('ReceivedBytes', () => {
  it('copies borrowed bytes, keeps its own as they are, and gives them back in order', () => {
    const received = new ReceivedBytes(new BlockPool(16, 64));
    const borrowed = Buffer.from('0123456789abcdefghij'); // 20 bytes: spans two blocks
    const own = Buffer.from('KLMNO');
    received.append(borrowed, true);
    borrowed.fill(0);
    received.append(own, false);
    expect(received.byteLength).toBe(25);
    const taken = received.take();
    expect(Buffer.concat(taken.chunks).toString()).toBe('0123456789abcdefghijKLMNO');
    expect(taken.chunks.at(-1)).toBe(own); // not copied
    expect(received.byteLength).toBe(0);
  });

  it('returns a block to the pool only when every write that took from it is over', () => {
    const pool = new BlockPool(16, 1024);
    const received = new ReceivedBytes(pool);
    received.append(Buffer.alloc(10, 1), true);
    received.append(Buffer.alloc(10, 2), true); // block 1 bytes 10..16, block 2 bytes 0..4
    const first = received.take(); // blocks 1 and 2 in flight; block 2 is filled no more
    expect(first.chunks.map((c) => c.length)).toEqual([16, 4]);
    received.append(Buffer.alloc(8, 3), true); // block 3
    const second = received.take();
    expect(pool.freeCount).toBe(0);
    first.release();
    expect(pool.freeCount).toBe(2); // blocks 1 and 2 back
    const reused = pool.acquire();
    reused.fill(9); // whoever gets block 1 now may overwrite it
    expect(Buffer.concat(second.chunks).equals(Buffer.alloc(8, 3))).toBe(true);
    received.dispose();
    expect(pool.freeCount).toBe(1); // block 3 is still in the second write
    second.release();
    expect(pool.freeCount).toBe(2);
  });

  it('holds nothing once its bytes are written, and reports every change in what it holds', () => {
    const pool = new BlockPool(1024, 1024 * 1024);
    let reported = 0;
    const received = new ReceivedBytes(pool, (delta) => {
      reported += delta;
    });
    // A few bytes go into a buffer of their own, not a block.
    received.append(Buffer.from('x'), true);
    expect([received.heldBytes, reported]).toEqual([1, 1]);
    // A quarter block gathered: from here on they fill blocks.
    received.append(Buffer.alloc(300, 1), true);
    expect([received.heldBytes, reported]).toEqual([1 + 1024, 1 + 1024]);
    const taken = received.take();
    expect(taken.bytes).toBe(301);
    taken.release();
    // Before, the block being filled stayed with the stream for as long as it lived.
    expect([received.heldBytes, reported]).toEqual([0, 0]);
    expect(pool.freeCount).toBe(1);
    received.append(Buffer.alloc(5), false); // its own: kept as it is, counted by its length
    expect(received.heldBytes).toBe(5);
    received.dispose();
    expect([received.heldBytes, reported]).toEqual([0, 0]);
  });
});

describe('BlockPool and ReceivedBytes at their edges', () => {
  it('takes only a positive whole block size, and keeps no more free blocks than its bound', () => {
    for (const bad of [0, -16, 1.5, Number.NaN]) expect(() => new BlockPool(bad, 64)).toThrow(RangeError);
    const pool = new BlockPool(16, 64); // four blocks
    const blocks = Array.from({ length: 5 }, () => pool.acquire());
    for (const block of blocks) pool.release(block);
    expect(pool.freeCount).toBe(4);
  });

  it('keeps nothing of an empty payload, and a take of nothing has no chunks', () => {
    const received = new ReceivedBytes(new BlockPool(16, 64));
    received.append(Buffer.alloc(0), true);
    received.append(Buffer.alloc(0), false);
    expect(received.heldBytes).toBe(0);
    const taken = received.take();
    expect([taken.chunks, taken.bytes]).toEqual([[], 0]);
  });

  it('copies into a block once exactly a quarter block has gathered', () => {
    const received = new ReceivedBytes(new BlockPool(16, 64));
    received.append(Buffer.from('abcd'), true);
    expect(received.heldBytes).toBe(16);
    received.dispose();
  });

  it('gives what a take held back once, however often its write says it is over', () => {
    const pool = new BlockPool(16, 64);
    let reported = 0;
    const received = new ReceivedBytes(pool, (delta) => {
      reported += delta;
    });
    received.append(Buffer.from('x'), true); // a buffer of its own
    received.append(Buffer.alloc(10, 1), true); // a block
    const taken = received.take();
    taken.release();
    taken.release();
    expect([received.heldBytes, reported, pool.freeCount]).toEqual([0, 0, 1]);
  });
});

describe('ReceivedBytes with the real block size', () => {
  it("copies a TLS socket's 16 KiB pieces into one block, not each into a fresh buffer", () => {
    const pool = new BlockPool(DEFAULTS.receivedBlockBytes, 4 * DEFAULTS.receivedBlockBytes);
    const received = new ReceivedBytes(pool);
    received.append(Buffer.alloc(16 * 1024, 1), true);
    received.append(Buffer.alloc(16 * 1024, 2), true);
    expect(received.heldBytes).toBe(DEFAULTS.receivedBlockBytes);
    const taken = received.take();
    expect(taken.chunks.map((chunk) => chunk.length)).toEqual([32 * 1024]);
    expect(
      Buffer.concat(taken.chunks).equals(
        Buffer.concat([Buffer.alloc(16 * 1024, 1), Buffer.alloc(16 * 1024, 2)]),
      ),
    ).toBe(true);
    taken.release();
    expect(pool.freeCount).toBe(1);
    // A few bytes still go into a buffer of their own.
    received.append(Buffer.from('abc'), true);
    expect(received.heldBytes).toBe(3);
    received.dispose();
  });
});

describe('SharedBufferReads on a TCP socket', () => {
  it('makes an accepted socket read into one shared buffer, in order, with pauses honoured', async () => {
    const sent = randomBytes(3 * 1024 * 1024);
    const chunks: Buffer[] = [];
    const memories = new Set<ArrayBufferLike>();
    let adopted: SharedBufferReads | undefined;
    const done = new Promise<void>((resolve, reject) => {
      const server = createServer((socket: Socket) => {
        adopted = SharedBufferReads.adopt(socket);
        if (adopted === undefined)
          return reject(new Error('this Node does not let sockets read into a shared buffer'));
        let paused = false;
        adopted.deliverTo((chunk) => {
          memories.add(chunk.buffer);
          chunks.push(Buffer.from(chunk));
          // Pausing must stop the reads (Socket.pause), and resuming start them again.
          if (!paused && chunks.length === 3) {
            paused = true;
            socket.pause();
            setTimeout(() => socket.resume(), 20);
          }
        });
        socket.on('end', () => {
          server.close();
          resolve();
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const client = connect((server.address() as AddressInfo).port, '127.0.0.1', () => client.end(sent));
      });
    });
    await done;
    expect(Buffer.concat(chunks).equals(sent)).toBe(true);
    expect(chunks.length).toBeGreaterThan(3);
    expect(memories.size).toBe(1); // every read landed in the same memory
  });
});

describe('the size of a read', () => {
  it("a client's TCP socket reads up to clientReadBufferBytes, a server's 256 KiB", async () => {
    const onread = vi.spyOn(SharedBufferReads.prototype, 'onread', 'get');
    const env = await startServer({ backend: 'memory' });
    try {
      const client = await env.connect();
      await client.close();
      // One read takes off the socket what the buffer holds: the client's, fewer and larger
      // reads of a download (bench/README.md); the server's, what its bounds on a read say.
      const sizes = onread.mock.results.map((r) => (r.value as { buffer: Buffer }).buffer.length);
      expect(sizes.sort((a, b) => a - b)).toEqual([256 * 1024, DEFAULTS.clientReadBufferBytes]);
      expect(DEFAULTS.clientReadBufferBytes).toBe(1024 * 1024);
    } finally {
      onread.mockRestore();
      await env.stop();
    }
  });
});

describe('transfers over TCP with shared read buffers on both sides', () => {
  let env: TestServer | undefined;
  const tempDirs = new TempDirs('muxftp-shared-reads-');
  afterEach(async () => {
    await env?.stop();
    env = undefined;
    await tempDirs.removeAll();
  });

  let certs: TestCerts | undefined;
  beforeAll(async () => {
    if (opensslAvailable) certs = await makeTestCerts();
  });
  afterAll(async () => {
    await certs?.remove();
  });

  it.for(['tcp', 'tls'] as const)(
    'store and fetch every byte intact, many at once, to disk and to files (%s)',
    async (transport, { skip }) => {
      // Reported as skipped, not passed: without openssl there are no certificates to test with.
      if (transport === 'tls' && certs === undefined) skip('no openssl to make test certificates');
      const adopt = vi.spyOn(SharedBufferReads, 'adopt');
      env = await startServer({
        backend: 'disk',
        ...(transport === 'tls' ? { tls: { cert: certs!.cert, key: certs!.key } } : {}),
      });
      const client = await env.connect(transport === 'tls' ? { tls: { ca: certs!.ca } } : {});
      // Both ends read into the shared buffer: the server's accepted socket, and the client's
      // (over TCP through net.connect's own onread option).
      const adopted = adopt.mock.results.filter((r) => r.type === 'return' && r.value !== undefined);
      expect(adopted.length).toBe(transport === 'tls' ? 2 : 1);
      adopt.mockRestore();
      const local = await tempDirs.make();
      // Sizes off every block boundary, so runs split blocks and writes overlap blocks being filled.
      const contents = Array.from({ length: 12 }, (_, i) => randomBytes(1_234_567 + i * 99_991));
      await Promise.all(contents.map((content, i) => client.put(`f${i}.bin`, content)));
      for (const [i, content] of contents.entries()) {
        expect((await readFile(join(env.root!, `f${i}.bin`))).equals(content)).toBe(true);
      }
      await Promise.all(contents.map((_, i) => client.get(`f${i}.bin`, join(local, `f${i}.bin`))));
      for (const [i, content] of contents.entries()) {
        expect((await readFile(join(local, `f${i}.bin`))).equals(content)).toBe(true);
      }
      // And into memory (a sink that keeps what it is given), while files are written.
      const back = await Promise.all(contents.map((_, i) => client.getBuffer(`f${i}.bin`)));
      expect(back.map((b, i) => b.equals(contents[i]!))).toEqual(contents.map(() => true));
    },
  );
});
