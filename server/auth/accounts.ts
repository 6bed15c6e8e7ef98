/**
 * Who may log in and as what (pyftpdlib's authorizer): the users file's entries, the optional
 * anonymous account, and the check of a name and password. Every check costs one scrypt, for
 * users that exist and for those that do not, so the answer's timing says nothing about names.
 */
import { DEFAULTS } from '../../shared/defaults.js';
import { ANONYMOUS_USER } from '../../shared/protocol/messages.js';
import { normalizeClientPath } from '../../storage/paths.js';
import { dummyPasswordHash, parsePasswordHash, verifyPassword } from './passwords.js';
import { PERMISSIONS, type Permission, READ_ONLY_PERMISSIONS, type UsersFile } from './usersFile.js';

/** A logged-in identity: what the connection may do and where. */
export interface Account {
  /** The login name, or `anonymous`: anonymous access, and everyone on a server without a users file. */
  name: string;
  /** The account's root, a directory relative to the served root ('' is the root). */
  home: string;
  /** What the account may do (see {@link PERMISSIONS}). */
  permissions: ReadonlySet<Permission>;
  /** Bytes the account may store under home. */
  quotaBytes?: number;
  /** Bytes/s for all the account's connections together, each direction. */
  maxRateBytesPerSecond?: number;
}

/** `--anonymous`: none, read-only (list, read), or with every permission (`--anonymous-write`). */
export type AnonymousAccess = 'off' | 'read' | 'write';

/** What {@link Accounts} is built from. */
export interface AccountsOptions {
  /** The users file's content; without it nobody logs in and everyone has the whole root (loopback default). */
  users?: UsersFile;
  /** With a users file: whether a client may log in as `anonymous` without a password. Default off. */
  anonymous?: AnonymousAccess;
  /** The anonymous account's root, relative to the served root. Default `public`. */
  anonymousHome?: string;
}

/** Everyone, everything, the whole root: a server without a users file (today's behaviour). */
export const OPEN_ACCESS_ACCOUNT: Account = Object.freeze({
  name: ANONYMOUS_USER,
  home: '',
  permissions: new Set(PERMISSIONS),
});

/** The accounts a server accepts: the users file's, and optionally anonymous. */
export class Accounts {
  /** There is a users file: a client logs in (AUTH) before it may open a stream. */
  readonly loginRequired: boolean;
  /** The account `anonymous` logs in as without a password; undefined when anonymous access is off. */
  readonly anonymous: Account | undefined;
  private readonly users: UsersFile | undefined;

  /** Throws a TypeError for an unknown `anonymous` access, or anonymous access without a users file. */
  constructor(options: AccountsOptions = {}) {
    const access = options.anonymous ?? 'off';
    if (!['off', 'read', 'write'].includes(access)) {
      throw new TypeError(`accounts: anonymous must be off, read or write, got ${String(access)}`);
    }
    this.users = options.users;
    this.loginRequired = options.users !== undefined;
    if (!this.loginRequired && access !== 'off') {
      throw new TypeError(
        'accounts: anonymous access is only a choice with a users file (without one, all is open)',
      );
    }
    this.anonymous =
      access === 'off'
        ? undefined
        : {
            name: ANONYMOUS_USER,
            home: normalizeClientPath(options.anonymousHome ?? DEFAULTS.anonymousHome),
            permissions: new Set(access === 'write' ? PERMISSIONS : READ_ONLY_PERMISSIONS),
          };
    // Start deriving the dummy hash now, so the first unknown name does not pay for it.
    if (this.loginRequired) void dummyPasswordHash();
  }

  /** @internal Whether `name` has the same entry here as in `other` (password, home, permissions, limits). */
  sameEntry(other: Accounts, name: string): boolean {
    const entry = (accounts: Accounts) =>
      accounts.users !== undefined && Object.hasOwn(accounts.users.users, name)
        ? accounts.users.users[name]
        : undefined;
    return JSON.stringify(entry(this)) === JSON.stringify(entry(other));
  }

  /**
   * @internal Each home the accounts log in to (anonymous's too, '' for the served root), with the
   * names of the accounts whose home it is.
   */
  homes(): Map<string, string[]> {
    const homes = new Map<string, string[]>();
    const add = (home: string, name: string) => {
      const names = homes.get(home);
      if (names === undefined) homes.set(home, [name]);
      else names.push(name);
    };
    for (const [name, entry] of Object.entries(this.users?.users ?? {})) add(entry.home, name);
    if (this.anonymous !== undefined) add(this.anonymous.home, this.anonymous.name);
    return homes;
  }

  /** Entries in the users file. */
  get userCount(): number {
    return this.users === undefined ? 0 : Object.keys(this.users.users).length;
  }

  /** The account for `name` and `password`, or undefined; always costs one scrypt. */
  async verify(name: string, password: string): Promise<Account | undefined> {
    const entry =
      this.users !== undefined && Object.hasOwn(this.users.users, name) ? this.users.users[name] : undefined;
    const hash = entry === undefined ? await dummyPasswordHash() : parsePasswordHash(entry.password);
    const matches = await verifyPassword(password, hash);
    if (!matches || entry === undefined) return undefined;
    return {
      name,
      home: entry.home,
      permissions: new Set(entry.permissions),
      ...(entry.quota !== undefined ? { quotaBytes: entry.quota } : {}),
      ...(entry.maxRate !== undefined ? { maxRateBytesPerSecond: entry.maxRate } : {}),
    };
  }
}
