/**
 * The outbound queue on its own, over an in-memory writable: producers that always have a frame
 * ready must take turns, and control frames go first.
 */
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type FrameProducer, OutboundQueue } from '../shared/transport/outboundQueue.js';

/** A socket stand-in whose writes complete on a later turn, like a real one under load. */
function slowSink(written: Buffer[]): Socket {
  return new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      setImmediate(callback);
    },
  }) as unknown as Socket;
}

/** Always ready: a frame of 600 bytes whose first byte names the producer. */
function eagerProducer(queue: OutboundQueue, tag: number, frames: number): FrameProducer {
  let left = frames;
  return {
    pull() {
      if (left === 0) return null;
      left--;
      const frame = Buffer.alloc(600, tag);
      if (!queue.tryReserve(frame.length, this)) throw new Error('test producers reserve as they pull');
      return frame;
    },
    onRoom() {},
  };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((r) => setImmediate(r));
}

describe('OutboundQueue', () => {
  it('pulls producers that are always ready in turn, one frame each', async () => {
    const written: Buffer[] = [];
    const queue = new OutboundQueue(slowSink(written), { highWaterBytes: 1 << 20, lowWaterBytes: 1 << 10 });
    queue.addProducer(eagerProducer(queue, 1, 20));
    queue.addProducer(eagerProducer(queue, 2, 20));
    queue.addProducer(eagerProducer(queue, 3, 5));
    await until(() => written.length === 45);
    const order = written.map((frame) => frame[0]);
    expect(order.slice(0, 15)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    expect(order.slice(15)).toEqual(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? 1 : 2)));
    await until(() => queue.bufferedAmount === 0);
    expect(queue.bufferedAmount).toBe(0);
  });

  it('sends queued control frames before pulling file data', async () => {
    const written: Buffer[] = [];
    const queue = new OutboundQueue(slowSink(written), { highWaterBytes: 1 << 20, lowWaterBytes: 1 << 10 });
    queue.addProducer(eagerProducer(queue, 1, 3));
    queue.send(Buffer.from([9]));
    queue.send(Buffer.from([8]));
    await until(() => written.length === 5);
    expect(written.map((frame) => frame[0])).toEqual([9, 8, 1, 1, 1]);
  });

  it('refuses reservations above the high-water mark and calls back once below the low-water mark', async () => {
    const written: Buffer[] = [];
    const queue = new OutboundQueue(slowSink(written), { highWaterBytes: 2000, lowWaterBytes: 500 });
    let woken = 0;
    const waiter: FrameProducer = { pull: () => null, onRoom: () => woken++ };
    expect(queue.tryReserve(1500, waiter)).toBe(true);
    expect(queue.tryReserve(1000, waiter)).toBe(false);
    expect(woken).toBe(0);
    queue.release(1500);
    expect(woken).toBe(1);
    expect(queue.bufferedAmount).toBe(0);
  });
});
