/** The failed-login policy on a fake clock: growing delays, the per-address refusal, forgetting. */
import { describe, expect, it } from 'vitest';
import { LoginGuard } from '../server/auth/loginGuard.js';

function guard(now: { t: number }) {
  return new LoginGuard({
    failureDelayMs: 500,
    maxFailureDelayMs: 3_000,
    failuresPerAddress: 5,
    failureWindowMs: 60_000,
    blockMs: 10_000,
    now: () => now.t,
  });
}

describe('LoginGuard', () => {
  it('doubles the delay with each recent failure from an address, up to the ceiling', () => {
    const now = { t: 0 };
    const g = guard(now);
    expect([1, 2, 3, 4].map(() => g.recordFailure('10.0.0.1'))).toEqual([500, 1000, 2000, 3000]);
    // Another address starts from the bottom.
    expect(g.recordFailure('10.0.0.2')).toBe(500);
  });

  it('refuses an address at the limit for blockMs, then lets it in again', () => {
    const now = { t: 0 };
    const g = guard(now);
    for (let i = 0; i < 4; i++) g.recordFailure('10.0.0.1');
    expect(g.refusedForMs('10.0.0.1')).toBe(0);
    g.recordFailure('10.0.0.1');
    expect(g.refusedForMs('10.0.0.1')).toBe(10_000);
    expect(g.refusedForMs('10.0.0.2')).toBe(0);
    now.t += 9_999;
    expect(g.refusedForMs('10.0.0.1')).toBe(1);
    now.t += 1;
    expect(g.refusedForMs('10.0.0.1')).toBe(0);
  });

  it('counts a failure exactly failureWindowMs old, and forgets it a millisecond later', () => {
    const now = { t: 0 };
    const g = guard(now);
    for (let i = 0; i < 4; i++) g.recordFailure('10.0.0.1');
    now.t = 60_000;
    expect(g.recordFailure('10.0.0.1')).toBe(3_000); // the fifth within the window: refused
    expect(g.refusedForMs('10.0.0.1')).toBe(10_000);
    const h = guard(now);
    now.t = 0;
    for (let i = 0; i < 4; i++) h.recordFailure('10.0.0.1');
    now.t = 60_001;
    expect(h.recordFailure('10.0.0.1')).toBe(500);
  });

  it('forgets failures older than the window', () => {
    const now = { t: 0 };
    const g = guard(now);
    for (let i = 0; i < 4; i++) g.recordFailure('10.0.0.1');
    now.t += 60_001;
    expect(g.recordFailure('10.0.0.1')).toBe(500);
    expect(g.refusedForMs('10.0.0.1')).toBe(0);
  });

  it('gives an address fresh tries once its refusal is over: the failures that earned it are spent', () => {
    const now = { t: 0 };
    const g = guard(now);
    for (let i = 0; i < 5; i++) g.recordFailure('10.0.0.1');
    now.t += 10_000; // refused until now, still inside the failure window
    expect(g.refusedForMs('10.0.0.1')).toBe(0);
    expect(g.recordFailure('10.0.0.1')).toBe(500);
    expect(g.refusedForMs('10.0.0.1')).toBe(0);
  });

  it('remembers at most 100,000 addresses, forgetting the one that failed least recently', () => {
    const now = { t: 0 };
    const g = guard(now);
    for (let i = 0; i < 5; i++) g.recordFailure('first'); // refused
    g.recordFailure('second');
    for (let i = 0; i < 99_998; i++) g.recordFailure(`flood-${i}`);
    expect(g.size).toBe(100_000);
    g.recordFailure('first'); // failed again: now the most recent
    g.recordFailure('one more');
    expect(g.size).toBe(100_000);
    expect(g.refusedForMs('first')).toBe(10_000);
    // 'second' went: its next failure starts from the bottom again.
    expect(g.recordFailure('second')).toBe(500);
  });

  it('validates its options', () => {
    expect(
      () =>
        new LoginGuard({
          failureDelayMs: -1,
          maxFailureDelayMs: 0,
          failuresPerAddress: 1,
          failureWindowMs: 0,
          blockMs: 0,
        }),
    ).toThrow(/failureDelayMs/);
    expect(
      () =>
        new LoginGuard({
          failureDelayMs: 0,
          maxFailureDelayMs: 0,
          failuresPerAddress: 0,
          failureWindowMs: 0,
          blockMs: 0,
        }),
    ).toThrow(/failuresPerAddress must be at least 1/);
    // Each option, and not only negative numbers: a fraction, NaN or Infinity (a refusal of NaN ms
    // would never end, nor begin) is refused as well.
    const valid = {
      failureDelayMs: 1,
      maxFailureDelayMs: 1,
      failuresPerAddress: 1,
      failureWindowMs: 1,
      blockMs: 1,
    };
    for (const key of Object.keys(valid) as (keyof typeof valid)[]) {
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => new LoginGuard({ ...valid, [key]: bad }), `${key} ${bad}`).toThrow(
          `LoginGuard: ${key} must be a non-negative integer, got ${bad}`,
        );
      }
    }
    // One failure refusing at once is a choice, not an error.
    const strict = new LoginGuard({
      failureDelayMs: 0,
      maxFailureDelayMs: 0,
      failuresPerAddress: 1,
      failureWindowMs: 1_000,
      blockMs: 1_000,
      now: () => 0,
    });
    strict.recordFailure('10.0.0.1');
    expect(strict.refusedForMs('10.0.0.1')).toBe(1_000);
  });
});
