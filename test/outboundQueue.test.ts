/**
 * The outbound queue on its own, over an in-memory writable: producers that always have a frame
 * ready must take turns, and control frames go first; the marks, the frame limit, the budgets it
 * counts against, and ending and closing, each at its edge.
 */
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ControlFrameBudget } from '../shared/transport/controlFrameBudget.js';
import { OutboundBudget } from '../shared/transport/outboundBudget.js';
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

/** A socket stand-in that takes writes and never finishes one, like a peer that reads nothing. */
function stuckSink(): Socket {
  return new Writable({ highWaterMark: 1 << 20, write() {} }) as unknown as Socket;
}

/** A producer with nothing to send, woken through onRoom(). */
function waiter(onRoom: () => void = () => {}): FrameProducer {
  return { pull: () => null, onRoom };
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

describe('OutboundQueue at its edges', () => {
  it('lets reservations fill the connection up to its high-water mark exactly, and no further', () => {
    const queue = new OutboundQueue(stuckSink(), { highWaterBytes: 2000, lowWaterBytes: 500 });
    expect(queue.tryReserve(1500, waiter())).toBe(true);
    expect(queue.tryReserve(500, waiter())).toBe(true);
    expect(queue.tryReserve(1, waiter())).toBe(false);
    expect(queue.bufferedAmount).toBe(2000);
  });

  it('wakes a refused producer only once below the low-water mark, not as soon as below the high', () => {
    const queue = new OutboundQueue(stuckSink(), { highWaterBytes: 2000, lowWaterBytes: 500 });
    let woken = 0;
    expect(queue.tryReserve(1500, undefined)).toBe(true);
    expect(queue.tryReserve(400, undefined)).toBe(true);
    expect(
      queue.tryReserve(
        1000,
        waiter(() => woken++),
      ),
    ).toBe(false);
    queue.release(400); // 1500 held: below the high mark, above the low
    expect(woken).toBe(0);
    queue.release(1100); // 400 held
    expect(woken).toBe(1);
  });

  it('keeps the turns in order when a producer leaves during its own pull (a download sending its last frame)', async () => {
    const written: Buffer[] = [];
    const queue = new OutboundQueue(slowSink(written), { highWaterBytes: 1 << 20, lowWaterBytes: 1 << 10 });
    const leaving: FrameProducer = {
      pull() {
        queue.removeProducer(leaving);
        const frame = Buffer.alloc(600, 1);
        queue.tryReserve(frame.length, undefined);
        return frame;
      },
      onRoom() {},
    };
    queue.addProducer(leaving);
    queue.addProducer(eagerProducer(queue, 2, 3));
    queue.addProducer(eagerProducer(queue, 3, 3));
    await until(() => written.length === 7);
    expect(written.map((frame) => frame[0])).toEqual([1, 2, 3, 2, 3, 2, 3]);
  });

  it('stops while the socket asks for drain, so a control frame sent meanwhile goes ahead of the file data', async () => {
    const written: Buffer[] = [];
    const queue = new OutboundQueue(slowSink(written), { highWaterBytes: 1 << 20, lowWaterBytes: 1 << 10 });
    queue.addProducer(eagerProducer(queue, 1, 10));
    await until(() => written.length >= 1);
    queue.send(Buffer.from([9]));
    await until(() => written.length === 11);
    // Two 600-byte frames fill the sink's 1 KiB buffer; the control frame is the third.
    expect(written.findIndex((frame) => frame[0] === 9)).toBe(2);
  });

  it('reports holding more than maxHeldFrames once, at the first frame past it', async () => {
    const reports: number[] = [];
    const queue = new OutboundQueue(stuckSink(), {
      highWaterBytes: 1 << 20,
      lowWaterBytes: 1 << 10,
      maxHeldFrames: 3,
      onTooManyFrames: (held) => reports.push(held),
    });
    for (let i = 0; i < 3; i++) queue.send(Buffer.from([i]));
    await until(() => queue.heldFrames === 3 && reports.length > 0);
    expect(reports).toEqual([]);
    queue.send(Buffer.from([3]));
    queue.send(Buffer.from([4]));
    await until(() => reports.length > 0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(reports).toEqual([4]);
  });

  it('stops counting a frame once the kernel took it: frames sent one batch after another never reach the limit', async () => {
    const written: Buffer[] = [];
    const reports: number[] = [];
    const queue = new OutboundQueue(slowSink(written), {
      highWaterBytes: 1 << 20,
      lowWaterBytes: 1 << 10,
      maxHeldFrames: 3,
      onTooManyFrames: (held) => reports.push(held),
    });
    for (let batch = 1; batch <= 3; batch++) {
      for (let i = 0; i < 3; i++) queue.send(Buffer.from([i]));
      await until(() => written.length === batch * 3 && queue.heldFrames === 0);
      expect(queue.heldFrames).toBe(0);
    }
    expect(reports).toEqual([]);
  });

  it("counts a reply's room and each control frame against the control budget until the kernel takes it", async () => {
    const written: Buffer[] = [];
    const budget = new ControlFrameBudget(10_000);
    const queue = new OutboundQueue(slowSink(written), {
      highWaterBytes: 1 << 20,
      lowWaterBytes: 1 << 10,
      controlBudget: budget,
    });
    expect(await queue.reserveForReply(100)).toBe(100);
    expect([queue.heldControlBytes, budget.heldBytes]).toEqual([100, 100]);
    queue.send(Buffer.alloc(50, 7));
    expect([queue.heldControlBytes, budget.heldBytes]).toEqual([150, 150]);
    await until(() => written.length === 1 && queue.heldControlBytes === 100);
    expect([queue.heldControlBytes, budget.heldBytes]).toEqual([100, 100]);
    queue.releaseReply(100);
    expect([queue.heldControlBytes, budget.heldBytes]).toEqual([0, 0]);
  });

  it('wakes a connection waiting for control room once it holds none, though others keep the budget past its limit', async () => {
    const written: Buffer[] = [];
    const budget = new ControlFrameBudget(100);
    budget.take(1000); // other connections' frames
    const queue = new OutboundQueue(slowSink(written), {
      highWaterBytes: 1 << 20,
      lowWaterBytes: 1 << 10,
      controlBudget: budget,
    });
    queue.send(Buffer.alloc(10, 7));
    expect(queue.holdsControlPastBudget).toBe(true);
    let woken = false;
    queue.waitForControlRoom(() => {
      woken = true;
    });
    expect(woken).toBe(false);
    await until(() => woken);
    expect(woken).toBe(true);
    expect(budget.heldBytes).toBe(1000);
  });

  it('past the server budget, gives a queue holding nothing a chunk of the trickle when that is all the producer needs', () => {
    const budget = new OutboundBudget(1000, 100);
    budget.take(1000); // other connections hold the whole budget
    const queue = new OutboundQueue(stuckSink(), { highWaterBytes: 1 << 20, lowWaterBytes: 1 << 10, budget });
    expect(queue.reserveChunk(500, waiter(), 101)).toBe(0);
    expect(queue.reserveChunk(500, waiter(), 100)).toBe(100);
    expect(budget.heldBytes).toBe(1100);
  });

  it('closing wakes a reply waiting for room, which then gets none, and settles the replies at once', async () => {
    const queue = new OutboundQueue(stuckSink(), { highWaterBytes: 1000, lowWaterBytes: 500 });
    expect(queue.tryReserve(1000, undefined)).toBe(true);
    const reply = queue.reserveForReply(100);
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.waitingReplies).toBe(1);
    queue.close();
    let settled = false;
    queue.waitForRepliesSettled(() => {
      settled = true;
    });
    expect(settled).toBe(true);
    const outcome = await Promise.race([
      reply,
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 2000).unref()),
    ]);
    expect(outcome).toBe(0);
  });

  it('endWhenFlushed sends what is queued, pulls no more file data, and ends the socket', async () => {
    const written: Buffer[] = [];
    const sink = slowSink(written);
    const queue = new OutboundQueue(sink, { highWaterBytes: 1 << 20, lowWaterBytes: 1 << 10 });
    queue.addProducer(eagerProducer(queue, 1, 5));
    queue.send(Buffer.from([9]));
    queue.endWhenFlushed();
    let finished = false;
    sink.once('finish', () => {
      finished = true;
    });
    await until(() => finished);
    expect(finished).toBe(true);
    expect(written.map((frame) => frame[0])).toEqual([9]);
  });
});
