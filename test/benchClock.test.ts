/**
 * The bench's workers wait for the run's start by the wall clock: a timer that fires early by it
 * (its own clock is another) must not end the wait, or the first transfer starts before
 * `measureFrom` and is not counted.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { sleepUntil } from '../client/bench/load.js';

afterEach(() => {
  vi.useRealTimers();
});

it('sleepUntil resolves only once Date.now() has reached the time, though the timer fires early', async () => {
  vi.useFakeTimers();
  const timersNow = Date.now;
  let lag = 0;
  vi.spyOn(Date, 'now').mockImplementation(() => timersNow() - lag);
  const until = Date.now() + 10;
  let resolvedAt: number | undefined;
  void sleepUntil(until).then(() => {
    resolvedAt = Date.now();
  });
  // Once the timer is set, the wall clock falls a millisecond behind the timers' clock: the
  // timer set for 10 ms fires at 9 by it.
  lag = 1;
  await vi.advanceTimersByTimeAsync(50);
  expect(resolvedAt).toBeGreaterThanOrEqual(until);
});
