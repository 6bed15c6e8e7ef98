/**
 * What all connections of one account share: its bandwidth buckets (one per direction) and its
 * quota. Created at the account's first login and kept for the server's life: accounts come
 * from the users file, so there are few of them. When the users file gives an account another
 * rate, quota or home (read again on SIGHUP), its next login gets new ones.
 */
import { RateLimiter } from '../../shared/transport/rateLimiter.js';
import type { Storage } from '../../storage/types.js';
import type { Account } from './accounts.js';
import { changeSeenFrom, type LocatedChange, QuotaTracker } from './quota.js';

export interface AccountResources {
  uploadLimiter: RateLimiter | undefined;
  downloadLimiter: RateLimiter | undefined;
  quota: QuotaTracker | undefined;
}

interface Entry extends AccountResources {
  /** Rate, quota and home: another value (the users file read again) makes new resources. */
  settings: string;
  home: string;
}

export interface AccountResourceOptions {
  /** Bytes/s per account when the users file sets none; 0 for no limit. */
  defaultRateBytesPerSecond: number;
  /** How old a quota's last walk of the home may be before a reservation walks again (ms). */
  quotaRecountIntervalMs: number;
}

export class AccountResourceTable {
  private readonly byName = new Map<string, Entry>();
  /**
   * Quotas the users file has replaced, with their homes: connections that logged in before
   * still reserve against them, so they must go on seeing every change, or they would let those
   * connections past the limit. Held weakly: gone once their last connection is.
   */
  private readonly replacedQuotas = new Set<{ quota: WeakRef<QuotaTracker>; home: string }>();
  private readonly options: AccountResourceOptions;

  constructor(options: AccountResourceOptions) {
    this.options = { ...options };
  }

  /** The account's shared resources; `home` is a view of its home, used to count quota usage. */
  for(account: Account, home: Storage): AccountResources {
    const rate = account.maxRateBytesPerSecond ?? this.options.defaultRateBytesPerSecond;
    const settings = JSON.stringify([rate, account.quotaBytes ?? null, account.home]);
    let resources = this.byName.get(account.name);
    if (resources === undefined || resources.settings !== settings) {
      if (resources?.quota !== undefined) {
        this.replacedQuotas.add({ quota: new WeakRef(resources.quota), home: resources.home });
      }
      resources = {
        settings,
        home: account.home,
        uploadLimiter: rate > 0 ? new RateLimiter({ bytesPerSecond: rate }) : undefined,
        downloadLimiter: rate > 0 ? new RateLimiter({ bytesPerSecond: rate }) : undefined,
        quota:
          account.quotaBytes !== undefined
            ? new QuotaTracker(home, {
                limitBytes: account.quotaBytes,
                recountIntervalMs: this.options.quotaRecountIntervalMs,
                // Same home (this account's before a reload, or another account's): the uploads in
                // flight of each fill that one directory, so they count against both.
                ...sharing(this.quotaOfHome(account.home)),
              })
            : undefined,
      };
      this.byName.set(account.name, resources);
    }
    return resources;
  }

  /** A quota in force for the home `home` (any account's, replaced or not), or undefined. */
  private quotaOfHome(home: string): QuotaTracker | undefined {
    for (const resources of this.byName.values()) {
      if (resources.quota !== undefined && resources.home === home) return resources.quota;
    }
    for (const replaced of this.replacedQuotas) {
      const quota = replaced.home === home ? replaced.quota.deref() : undefined;
      if (quota !== undefined) return quota;
    }
    return undefined;
  }

  /**
   * A change made through the home `home` (a path under the served root): every quota whose home
   * holds it applies it, so accounts whose homes nest or are one count each other's uploads,
   * deletes and renames. `own` is the connection's own quota, applied even if the users file has
   * replaced it since.
   */
  recordChange(home: string, change: LocatedChange, own: QuotaTracker | undefined): void {
    const homes = new Map<QuotaTracker, string>();
    if (own !== undefined) homes.set(own, home);
    for (const resources of this.byName.values()) {
      if (resources.quota !== undefined) homes.set(resources.quota, resources.home);
    }
    for (const replaced of this.replacedQuotas) {
      const quota = replaced.quota.deref();
      if (quota === undefined) this.replacedQuotas.delete(replaced);
      else homes.set(quota, replaced.home);
    }
    for (const [quota, quotaHome] of homes) {
      const seen = changeSeenFrom(quotaHome, home, change);
      if (seen !== undefined) quota.record(seen);
    }
  }
}

function sharing(quota: QuotaTracker | undefined): { replaces?: QuotaTracker } {
  return quota === undefined ? {} : { replaces: quota };
}
