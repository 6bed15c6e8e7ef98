/** The shared read buffers stored files are hashed through (storage/hashReadBuffers.ts). */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { HashReadBuffers } from '../storage/hashReadBuffers.js';

const BIG = DEFAULTS.hashReadUnsharedBytes + 1;

describe('HashReadBuffers', () => {
  it('lends at most `max` at once, reused; the next readers wait in order and are told so', async () => {
    const buffers = new HashReadBuffers(2, 1024);
    const a = await buffers.borrow(BIG);
    const b = await buffers.borrow(BIG);
    expect(buffers.lent).toBe(2);
    const told: string[] = [];
    const order: string[] = [];
    const c = buffers.borrow(BIG, { onWaiting: (waiting) => told.push(`c ${waiting}`) }).then((lease) => {
      order.push('c');
      return lease;
    });
    const d = buffers.borrow(BIG).then((lease) => {
      order.push('d');
      return lease;
    });
    expect(buffers.waitingCount).toBe(2);
    a.release();
    a.release(); // once only
    const third = await c;
    expect(third.buffer).toBe(a.buffer); // the same memory, again
    expect(order).toEqual(['c']);
    b.release();
    await d;
    expect(order).toEqual(['c', 'd']);
    expect(told).toEqual(['c true', 'c false']);
    expect(buffers.lent).toBe(2);
  });

  it('a wait aborted leaves the line and is told it ended', async () => {
    const buffers = new HashReadBuffers(1, 1024);
    const held = await buffers.borrow(BIG);
    const stop = new AbortController();
    const told: boolean[] = [];
    const waiting = buffers.borrow(BIG, { signal: stop.signal, onWaiting: (w) => told.push(w) });
    stop.abort(new Error('over'));
    await expect(waiting).rejects.toThrow('over');
    expect([buffers.waitingCount, told]).toEqual([0, [true, false]]);
    held.release();
    expect(buffers.lent).toBe(0);
  });

  it('a small file is read through a buffer of its own, never waiting', async () => {
    const buffers = new HashReadBuffers(1, 1024);
    await buffers.borrow(BIG);
    const small = await buffers.borrow(100);
    expect(small.buffer.length).toBe(100);
    expect(buffers.lent).toBe(1);
  });

  it("a reader's stream over while it holds one (its read maybe hung) frees the slot at once, with a fresh buffer", async () => {
    const buffers = new HashReadBuffers(1, 1024);
    const over = new AbortController();
    const hung = await buffers.borrow(BIG, { signal: over.signal });
    const next = buffers.borrow(BIG);
    over.abort(new Error('stream over'));
    const lease = await next;
    // The late read may still write into the hung one's: never lent again.
    expect(lease.buffer).not.toBe(hung.buffer);
    hung.release();
    lease.release();
    const again = await buffers.borrow(BIG);
    expect(again.buffer).toBe(lease.buffer);
    expect(buffers.lent).toBe(1);
  });

  it('one owner holds at most its share: the next free buffer goes to another owner waiting behind it', async () => {
    const buffers = new HashReadBuffers(3, 1024, 2);
    const greedy = {};
    const other = {};
    const first = await buffers.borrow(BIG, { owner: greedy });
    await buffers.borrow(BIG, { owner: greedy });
    // Past its share with a buffer free: it waits; another owner does not.
    let third = false;
    const waiting = buffers.borrow(BIG, { owner: greedy }).then((lease) => {
      third = true;
      return lease;
    });
    const others = await buffers.borrow(BIG, { owner: other });
    expect([buffers.lent, buffers.waitingCount, third]).toEqual([3, 1, false]);
    // One of the owner's own comes back: its waiting reader goes on.
    first.release();
    await waiting;
    expect(third).toBe(true);
    others.release();
    expect(buffers.lent).toBe(2);
  });
});
