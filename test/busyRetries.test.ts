/** When the CLI tries again a transfer refused SERVER_BUSY (cli/busyRetries.ts), on a fake clock. */
import { describe, expect, it } from 'vitest';
import { BusyRetries } from '../cli/busyRetries.js';
import { DEFAULTS } from '../shared/defaults.js';
import { RemoteError } from '../shared/errors.js';

const refusal = (retryAfterMs?: number) =>
  new RemoteError('SERVER_BUSY', 'server busy', {
    limit: 'openFiles',
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

describe('BusyRetries', () => {
  it("waits the server's hint plus up to half of it, until the time from the first refusal is up", () => {
    const time = clock();
    let random = 0;
    const retries = new BusyRetries({ limitMs: 2000, now: time.now, random: () => random });
    expect(retries.next(refusal(500))).toBe(500);
    time.advance(500);
    random = 0.999;
    expect(retries.next(refusal(500))).toBe(750);
    time.advance(750);
    random = 0;
    expect(retries.next(refusal(500))).toBe(500); // starts at 1750 ms of 2000
    time.advance(500);
    expect(retries.next(refusal(500))).toBeUndefined(); // would start at 2250 ms
    expect(retries.tries).toBe(3);
  });

  it('no hint (a server from before them): the reconnect backoff, 1 s doubling, within the same time', () => {
    const time = clock();
    const retries = new BusyRetries({ limitMs: 10_000, now: time.now, random: () => 0 });
    const waits: Array<number | undefined> = [];
    for (let i = 0; i < 5; i++) {
      const wait = retries.next(refusal());
      waits.push(wait);
      time.advance(wait ?? 0);
    }
    expect(waits).toEqual([500, 1000, 2000, 4000, undefined]);
  });

  it('a hint of 0 is taken at once the first time only, then at least the minimum apart', () => {
    const time = clock();
    const retries = new BusyRetries({ now: time.now, random: () => 0 });
    expect(retries.next(refusal(0))).toBe(0);
    expect(retries.next(refusal(0))).toBe(DEFAULTS.serverBusyRetryMinDelayMs);
  });

  it('a hint beyond the time left is not waited for: the transfer fails now', () => {
    const retries = new BusyRetries({ limitMs: 60_000, now: clock().now, random: () => 0 });
    expect(retries.next(refusal(3_600_000))).toBeUndefined();
  });

  it('refuses a negative limit', () => {
    expect(() => new BusyRetries({ limitMs: -1 })).toThrow(RangeError);
  });
});
