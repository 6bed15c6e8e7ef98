/**
 * The server's memory of failed logins per source address: how long to wait before answering a
 * failure (growing with the source's recent failures) and whether a source that keeps failing
 * is refused for a while. It knows nothing of users, so nothing it does depends on whether a
 * user name exists. The server gives it address groups (../addressGroup.ts: an IPv6 peer's /64).
 */
import { MuxftpError } from '../../shared/errors.js';

export interface LoginGuardOptions {
  /** Delay before answering the first failure (ms); it doubles with each further recent one. */
  failureDelayMs: number;
  /** Ceiling of that delay (ms). */
  maxFailureDelayMs: number;
  /** Failures from one address within `failureWindowMs` after which it is refused. */
  failuresPerAddress: number;
  failureWindowMs: number;
  /** How long a refused address stays refused (ms). */
  blockMs: number;
  /** Clock, for tests. Default performance.now. */
  now?: () => number;
}

interface AddressRecord {
  /** Failure times within the window, oldest first. */
  failures: number[];
  blockedUntil: number;
}

/** Addresses remembered at most; the oldest is forgotten first, so a flood cannot grow memory. */
const MAX_ADDRESSES = 100_000;

export class LoginGuard {
  private readonly options: Required<LoginGuardOptions>;
  private readonly addresses = new Map<string, AddressRecord>();

  constructor(options: LoginGuardOptions) {
    for (const key of [
      'failureDelayMs',
      'maxFailureDelayMs',
      'failuresPerAddress',
      'failureWindowMs',
      'blockMs',
    ] as const) {
      const value = options[key];
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new TypeError(`LoginGuard: ${key} must be a non-negative integer, got ${String(value)}`);
      }
    }
    if (options.failuresPerAddress < 1)
      throw new TypeError('LoginGuard: failuresPerAddress must be at least 1');
    this.options = { now: () => performance.now(), ...options };
  }

  /** Milliseconds the address is still refused for, or 0. */
  refusedForMs(address: string): number {
    const record = this.addresses.get(address);
    if (record === undefined) return 0;
    return Math.max(0, Math.ceil(record.blockedUntil - this.options.now()));
  }

  /** Records a failure; returns how long to wait before answering it (ms). */
  recordFailure(address: string): number {
    const now = this.options.now();
    const record = this.recent(address, now) ?? { failures: [], blockedUntil: 0 };
    record.failures.push(now);
    const exponent = record.failures.length - 1;
    if (record.failures.length >= this.options.failuresPerAddress) {
      record.blockedUntil = now + this.options.blockMs;
      record.failures = [];
    }
    // Re-insert so Map order is least-recently-failed first.
    this.addresses.delete(address);
    this.addresses.set(address, record);
    if (this.addresses.size > MAX_ADDRESSES) {
      this.addresses.delete(this.addresses.keys().next().value as string);
    }
    return Math.min(
      this.options.failureDelayMs * 2 ** Math.min(exponent, 20),
      this.options.maxFailureDelayMs,
    );
  }

  /** Addresses with recent failures or a refusal in force. */
  get size(): number {
    return this.addresses.size;
  }

  /** The address's record with failures older than the window dropped, or undefined. */
  private recent(address: string, now: number): AddressRecord | undefined {
    const record = this.addresses.get(address);
    if (record === undefined) return undefined;
    const since = now - this.options.failureWindowMs;
    while (record.failures.length > 0 && record.failures[0]! < since) record.failures.shift();
    return record;
  }
}

/**
 * The refusal of an address that failed to log in too often, or undefined when it is not refused.
 * Given when it connects and again at each login attempt on a connection opened before.
 */
export function refusalForFailedLogins(guard: LoginGuard, address: string): MuxftpError | undefined {
  const refusedMs = guard.refusedForMs(address);
  if (refusedMs === 0) return undefined;
  return new MuxftpError(
    'TEMPORARILY_REFUSED',
    `too many failed logins from this address: try again in ${Math.ceil(refusedMs / 1000)} s`,
  );
}
