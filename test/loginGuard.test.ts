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

  it('forgets failures older than the window', () => {
    const now = { t: 0 };
    const g = guard(now);
    for (let i = 0; i < 4; i++) g.recordFailure('10.0.0.1');
    now.t += 60_001;
    expect(g.recordFailure('10.0.0.1')).toBe(500);
    expect(g.refusedForMs('10.0.0.1')).toBe(0);
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
  });
});
