/** The shared waits of test/helpers/waits.ts: bounded, named in their failure, real under fake timers. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { delay, until, valueWhen } from './helpers/waits.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('until', () => {
  it('resolves once the check holds, asking again between looks', async () => {
    let looks = 0;
    await until(() => ++looks === 3, 'the third look', { everyMs: 1 });
    expect(looks).toBe(3);
  });

  it('fails after its time, naming what it waited for, having looked no more than fit in it', async () => {
    let looks = 0;
    const started = performance.now();
    await expect(
      until(
        () => {
          looks++;
          return false;
        },
        'the impossible',
        { timeoutMs: 100, everyMs: 20 },
      ),
    ).rejects.toThrow('timed out after 100 ms waiting for the impossible');
    expect(performance.now() - started).toBeGreaterThanOrEqual(99);
    expect(looks).toBeGreaterThanOrEqual(2);
    // 100 / 20 + 1, and one more: a timer counts from the loop's cached time, which can lag the
    // clock, so each wait may end a little short of 20 ms by it (7 looks seen on a loaded machine).
    expect(looks).toBeLessThanOrEqual(7);
  });

  it('fails by its time when each look is slow, not after as many looks as fit at its pace', async () => {
    let looks = 0;
    const started = performance.now();
    await expect(
      until(
        async () => {
          looks++;
          await delay(40);
          return false;
        },
        'a slow check',
        { timeoutMs: 100, everyMs: 1 },
      ),
    ).rejects.toThrow('timed out after 100 ms waiting for a slow check');
    // 101 looks would fit at 1 ms each: ~4 s of 40 ms checks. By its time: three looks, ~120 ms
    // (a loaded machine's timers may make it more).
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(looks).toBeLessThanOrEqual(40);
  });

  it('waits in real time while a test fakes timers', { timeout: 2_000 }, async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const started = Date.now();
    await delay(30);
    await expect(until(() => false, 'nothing', { timeoutMs: 50 })).rejects.toThrow('waiting for nothing');
    expect(Date.now() - started).toBeGreaterThanOrEqual(70);
  });
});

describe('valueWhen', () => {
  it('returns the first value that is not undefined', async () => {
    const values = [undefined, undefined, 0];
    expect(await valueWhen(() => values.shift(), 'a value', { everyMs: 1 })).toBe(0);
  });
});
