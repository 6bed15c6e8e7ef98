/**
 * What an account's connections share (bandwidth buckets, quota) is made once per account, and
 * made anew when the users file, read again, gives the account another rate or quota.
 */
import { describe, expect, it } from 'vitest';
import { AccountResourceTable } from '../server/auth/accountResources.js';
import type { Account } from '../server/auth/accounts.js';
import { MemoryStorage } from '../storage/memory.js';

const account = (extra: Partial<Account> = {}): Account => ({
  name: 'alice',
  home: 'alice',
  permissions: new Set(['list', 'read']),
  ...extra,
});

describe('AccountResourceTable', () => {
  it('shares one set per account, and a new one once its rate, quota or home changed', () => {
    const table = new AccountResourceTable({ defaultRateBytesPerSecond: 0, quotaRecountIntervalMs: 60_000 });
    const home = new MemoryStorage();
    const first = table.for(account({ maxRateBytesPerSecond: 1000 }), home);
    expect(first.uploadLimiter?.bytesPerSecond).toBe(1000);
    expect(table.for(account({ maxRateBytesPerSecond: 1000 }), home)).toBe(first);
    const faster = table.for(account({ maxRateBytesPerSecond: 2000 }), home);
    expect(faster).not.toBe(first);
    const withQuota = table.for(account({ maxRateBytesPerSecond: 2000, quotaBytes: 10 }), home);
    expect(withQuota).not.toBe(faster);
    expect(withQuota.quota?.limitBytes).toBe(10);
    expect(table.for(account({ name: 'bob', maxRateBytesPerSecond: 2000, quotaBytes: 10 }), home)).not.toBe(
      withQuota,
    );
    // A quota counts one home: moved elsewhere, the account gets a new one.
    const moved = table.for(
      account({ maxRateBytesPerSecond: 2000, quotaBytes: 10, home: 'elsewhere' }),
      home,
    );
    expect(moved).not.toBe(withQuota);
  });

  it('a quota made anew for the same home shares its uploads in flight with the one it replaced, and one for another home does not', async () => {
    const table = new AccountResourceTable({ defaultRateBytesPerSecond: 0, quotaRecountIntervalMs: 60_000 });
    const home = new MemoryStorage();
    const before = table.for(account({ quotaBytes: 1000 }), home).quota!;
    await before.reserve(800);
    // The users file read again gives another quota, same home: that upload counts against both.
    const sameHome = table.for(account({ quotaBytes: 1500 }), home).quota!;
    expect(sameHome).not.toBe(before);
    expect(sameHome.reservedBytes).toBe(800);
    // Then another home: what is in flight in the old one does not fill it.
    const moved = table.for(account({ quotaBytes: 1500, home: 'elsewhere' }), new MemoryStorage()).quota!;
    expect(moved.reservedBytes).toBe(0);
    await moved.reserve(1500);
    expect(before.reservedBytes).toBe(800);
  });
});
