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
});
