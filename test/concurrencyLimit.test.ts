/** The shared cap on operations in flight (shared/concurrencyLimit.ts): order, and leaving the line. */
import { describe, expect, it } from 'vitest';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';

describe('ConcurrencyLimit', () => {
  it('a task whose signal aborts while it waits leaves the line at once and never runs', async () => {
    const limit = new ConcurrencyLimit(1);
    let finish = () => {};
    const first = limit.run(
      () =>
        new Promise<void>((resolve) => {
          finish = resolve;
        }),
    );
    const gaveUp = new AbortController();
    let ran = false;
    const waiting = limit.run(async () => {
      ran = true;
    }, gaveUp.signal);
    const after = limit.run(async () => 'after');
    expect([limit.runningCount, limit.waitingCount]).toEqual([1, 2]);
    gaveUp.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    expect(limit.waitingCount).toBe(1); // before: it stood there until its turn
    finish();
    await first;
    expect(await after).toBe('after');
    expect(ran).toBe(false);
    expect(limit.runningCount).toBe(0);
    // Only a wait is given up: with a slot free, it runs whatever its signal says.
    await expect(limit.run(async () => 1, gaveUp.signal)).resolves.toBe(1);
  });

  it('takes the groups of waiting tasks in turn, each group in arrival order, and a group that leaves gives its turn up', async () => {
    const limit = new ConcurrencyLimit(1);
    const order: string[] = [];
    let finish = () => {};
    const first = limit.run(
      () =>
        new Promise<void>((resolve) => {
          finish = resolve;
        }),
    );
    const task = (name: string) => async () => {
      order.push(name);
    };
    const gaveUp = new AbortController();
    const runs = [
      limit.run(task('a1'), undefined, 'a'),
      limit.run(task('a2'), undefined, 'a'),
      limit.run(task('a3'), undefined, 'a'),
      limit.run(task('b1'), undefined, 'b'),
      limit.run(task('c1'), gaveUp.signal, 'c'),
      limit.run(task('b2'), undefined, 'b'),
      limit.run(task('d1'), undefined, 'd'),
    ];
    expect(limit.waitingCount).toBe(7);
    gaveUp.abort(new Error('gave up'));
    await expect(runs[4]).rejects.toThrow('gave up');
    expect(limit.waitingCount).toBe(6);
    finish();
    await first;
    await Promise.allSettled(runs);
    expect(order).toEqual(['a1', 'b1', 'd1', 'a2', 'b2', 'a3']);
    expect([limit.runningCount, limit.waitingCount]).toEqual([0, 0]);
  });

  it('map gives every result in order, and holds no more calls in line than it may run', async () => {
    const limit = new ConcurrencyLimit(4);
    let running = 0;
    let mostRunning = 0;
    let mostWaiting = 0;
    const results = await limit.map(
      Array.from({ length: 300 }, (_, index) => index),
      async (item) => {
        running++;
        mostRunning = Math.max(mostRunning, running);
        mostWaiting = Math.max(mostWaiting, limit.waitingCount);
        await new Promise((resolve) => setImmediate(resolve));
        running--;
        return item * 2;
      },
    );
    expect(results).toEqual(Array.from({ length: 300 }, (_, index) => index * 2));
    expect(mostRunning).toBe(4);
    // Promise.all(items.map(run)) had 296 waiting here: a call held per file of a large tree.
    expect(mostWaiting).toBeLessThanOrEqual(4);
    expect([limit.runningCount, limit.waitingCount]).toEqual([0, 0]);
  });

  it('map starts no item after one has failed, and rejects with that failure', async () => {
    const limit = new ConcurrencyLimit(2);
    const started: number[] = [];
    const mapped = limit.map([0, 1, 2, 3, 4, 5], async (item) => {
      started.push(item);
      await new Promise((resolve) => setImmediate(resolve));
      if (item === 1) throw new Error('item 1 failed');
      return item;
    });
    await expect(mapped).rejects.toThrow('item 1 failed');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(started.length).toBeLessThan(6);
  });
});
