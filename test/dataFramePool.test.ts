/**
 * DATA frame buffers are reused once the socket has written them: on their own, and over TCP,
 * where reusing one a moment too early would corrupt what the peer receives.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, HEADER_BYTES } from '../shared/protocol/constants.js';
import { DataFramePool } from '../shared/transport/dataFramePool.js';
import { startServer, type TestServer } from './helpers/testServer.js';

describe('DataFramePool', () => {
  it('writes the header and hands the same memory out again once it is recycled', () => {
    const pool = new DataFramePool(1024, 4 * 1036);
    const first = pool.frame(7, 1000);
    expect(first.length).toBe(HEADER_BYTES + 1000);
    expect([first[0], first.readUInt32BE(4), first.readUInt32BE(8)]).toEqual([FrameType.DATA, 7, 1000]);
    const other = pool.frame(8, 1024);
    expect(other.buffer).not.toBe(first.buffer);
    pool.recycle(first);
    const again = pool.frame(9, 900);
    expect(again.buffer).toBe(first.buffer);
    expect([again.readUInt32BE(4), again.readUInt32BE(8), again.length]).toEqual([
      9,
      900,
      HEADER_BYTES + 900,
    ]);
  });

  it('keeps at most its bound, and ignores buffers that are not its own', () => {
    const pool = new DataFramePool(1024, 2 * 1036);
    const frames = Array.from({ length: 5 }, (_, i) => pool.frame(i + 1, 1024));
    for (const frame of frames) pool.recycle(frame);
    expect(pool.freeCount).toBe(2);
    pool.recycle(Buffer.alloc(HEADER_BYTES + 1024));
    expect(pool.freeCount).toBe(2);
    const taken = pool.frame(1, 1000);
    expect(pool.freeCount).toBe(1);
    pool.recycle(taken.subarray(5)); // not a frame as it was handed out
    expect(pool.freeCount).toBe(1);
    // Larger than a pooled buffer: allocated on its own, never kept.
    const big = pool.frame(1, 4096);
    expect(big.length).toBe(HEADER_BYTES + 4096);
    pool.recycle(big);
    expect(pool.freeCount).toBe(1);
  });

  it('puts a frame in a buffer at most twice its size, so what a queue counts is what it holds', () => {
    const pool = new DataFramePool(1024 * 1024, 64 * 1024 * 1024);
    for (const payload of [1, 100, 4000, 20_000, 40_000, 65_000, 100_000, 300_000, 600_000, 1024 * 1024]) {
      const frame = pool.frame(1, payload);
      expect(frame.length).toBe(HEADER_BYTES + payload);
      // Before, every frame up to 1 MiB took a whole 1 MiB buffer: 1 byte counted, 1 MiB held.
      // (A tiny one is allocated on its own, in Node's shared 8 KiB slab.)
      expect(frame.buffer.byteLength).toBeLessThanOrEqual(Math.max(2 * frame.length, Buffer.poolSize));
      pool.recycle(frame);
    }
    // A small frame reuses a small buffer, not a large one that is free.
    const small = pool.frame(2, 60_000);
    expect(small.buffer.byteLength).toBeLessThan(2 * 60_012);
  });
});

describe('reused frames over TCP', () => {
  let env: TestServer | undefined;
  afterEach(async () => {
    await env?.stop();
    env = undefined;
  });

  it('carry every byte intact, many transfers at once, both ways', async () => {
    const chunkBytes = 64 * 1024;
    env = await startServer({ chunkBytes });
    const client = await env.connect({ chunkBytes });
    const contents = Array.from({ length: 6 }, () => randomBytes(3 * 1024 * 1024 + 123));
    await Promise.all(contents.map((content, i) => client.put(`f${i}.bin`, content)));
    const back = await Promise.all(contents.map((_, i) => client.getBuffer(`f${i}.bin`)));
    expect(back.map((bytes, i) => bytes.equals(contents[i]!))).toEqual(contents.map(() => true));
    // (The puts would have failed too: the server checks each upload's digest against END's.)
    // The upload's frames did come round again.
    expect(client.queue.pooledFrames).toBeGreaterThan(0);
  });
});
