/**
 * Who may log in (server/auth/accounts.ts), as the library builds it: the checks of its options,
 * the anonymous account each access gives, and the count of users the server logs at start and SIGHUP.
 */
import { describe, expect, it } from 'vitest';
import { Accounts, type AnonymousAccess } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';

const HASH = await hashPassword('pw');
const twoUsers: UsersFile = ['ann', 'bo'].reduce(
  (file, name) => addUser(file, { name, passwordHash: HASH, permissions: ['list'] }),
  emptyUsersFile(),
);

describe('Accounts options', () => {
  it('refuses an anonymous access other than off, read or write (it would open read access)', () => {
    for (const access of ['yes', 'Read', '', 'true']) {
      expect(() => new Accounts({ users: twoUsers, anonymous: access as AnonymousAccess })).toThrow(
        new TypeError(`accounts: anonymous must be off, read or write, got ${access}`),
      );
    }
  });

  it('refuses anonymous access without a users file (without one all is open already)', () => {
    for (const anonymous of ['read', 'write'] as const) {
      expect(() => new Accounts({ anonymous })).toThrow(/only a choice with a users file/);
    }
    expect(new Accounts({ anonymous: 'off' }).loginRequired).toBe(false);
  });

  it('gives anonymous list and read, or every permission with write, in public or its home', () => {
    expect(new Accounts({ users: twoUsers }).anonymous).toBeUndefined();
    expect(new Accounts({ users: twoUsers, anonymous: 'off' }).anonymous).toBeUndefined();
    const read = new Accounts({ users: twoUsers, anonymous: 'read' }).anonymous!;
    expect({ ...read, permissions: [...read.permissions] }).toEqual({
      name: 'anonymous',
      home: 'public',
      permissions: ['list', 'read'],
    });
    const write = new Accounts({ users: twoUsers, anonymous: 'write', anonymousHome: './drop//box/' })
      .anonymous!;
    expect({ ...write, permissions: [...write.permissions] }).toEqual({
      name: 'anonymous',
      home: 'drop/box',
      permissions: [...PERMISSIONS],
    });
  });

  it('counts the users file entries, and none without a file', () => {
    expect(new Accounts().userCount).toBe(0);
    expect(new Accounts({ users: emptyUsersFile() }).userCount).toBe(0);
    expect(new Accounts({ users: twoUsers }).userCount).toBe(2);
  });
});
