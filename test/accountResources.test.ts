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
});
