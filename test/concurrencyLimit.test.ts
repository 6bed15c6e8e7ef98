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
});
