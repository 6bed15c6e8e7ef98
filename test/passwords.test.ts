/**
 * The users file's password hashes (server/auth/passwords.ts): what a stored hash may ask of
 * scrypt (a hand-edited one is read at every login), and the check of a password against it.
 */
import { describe, expect, it } from 'vitest';
import {
  checkPasswordText,
  dummyPasswordHash,
  hashPassword,
  MAX_PASSWORD_BYTES,
  parsePasswordHash,
  verifyPassword,
} from '../server/auth/passwords.js';

const base64Of = (bytes: number): string => Buffer.alloc(bytes, 5).toString('base64');
const SALT = base64Of(16);
const KEY = base64Of(32);

describe('parsePasswordHash', () => {
  it.each([
    ['another scheme', `bcrypt$16384$8$1$${SALT}$${KEY}`, /must look like scrypt\$N\$r\$p\$salt\$key/],
    ['a part missing', `scrypt$16384$8$1$${SALT}`, /must look like/],
    ['a part more', `scrypt$16384$8$1$${SALT}$${KEY}$x`, /must look like/],
    ['an N not a power of two', `scrypt$16383$8$1$${SALT}$${KEY}`, /invalid scrypt parameters/],
    ['an N of 1', `scrypt$1$8$1$${SALT}$${KEY}`, /invalid scrypt parameters/],
    ['an r of 0', `scrypt$16384$0$1$${SALT}$${KEY}`, /invalid scrypt parameters/],
    ['an r over 64', `scrypt$2$65$1$${SALT}$${KEY}`, /invalid scrypt parameters/],
    ['a p of 0', `scrypt$16384$8$0$${SALT}$${KEY}`, /invalid scrypt parameters/],
    ['a p over 16', `scrypt$16384$8$17$${SALT}$${KEY}`, /invalid scrypt parameters/],
    ['a salt under 8 bytes', `scrypt$16384$8$1$${base64Of(7)}$${KEY}`, /short salt or key/],
    ['a key under 16 bytes', `scrypt$16384$8$1$${SALT}$${base64Of(15)}`, /short salt or key/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parsePasswordHash(text)).toThrow(message);
  });

  it('takes the smallest and largest of each parameter', () => {
    for (const [n, r, p] of [
      [2, 1, 1],
      [2, 64, 16],
      [1024, 64, 1], // 8 MiB a check
    ]) {
      const parsed = parsePasswordHash(`scrypt$${n}$${r}$${p}$${base64Of(8)}$${base64Of(16)}`);
      expect(parsed.options).toMatchObject({ N: n, r, p });
      expect([parsed.salt.length, parsed.key.length]).toEqual([8, 16]);
    }
  });
});

describe('a password checked against its hash', () => {
  it('is written as scrypt$N$r$p$salt$key with a fresh salt, and only the same password matches', async () => {
    const hash = await hashPassword('correct horse');
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(await hashPassword('correct horse')).not.toBe(hash);
    const parsed = parsePasswordHash(hash);
    expect(await verifyPassword('correct horse', parsed)).toBe(true);
    expect(await verifyPassword('correct horsf', parsed)).toBe(false);
    expect(await verifyPassword('', parsed)).toBe(false);
  });

  it(`takes a password of ${MAX_PASSWORD_BYTES} bytes, counted in UTF-8, and refuses one byte more`, async () => {
    const longest = 'é'.repeat(MAX_PASSWORD_BYTES / 2);
    expect(() => checkPasswordText(longest)).not.toThrow();
    expect(() => checkPasswordText(`${longest}x`)).toThrow(`at most ${MAX_PASSWORD_BYTES} bytes`);
    expect(() => checkPasswordText('')).toThrow('must not be empty');
    const parsed = parsePasswordHash(await hashPassword(longest));
    expect(await verifyPassword(longest, parsed)).toBe(true);
    // Never hashed: a peer cannot make the server hash megabytes.
    await expect(hashPassword(`${longest}x`)).rejects.toThrow(`at most ${MAX_PASSWORD_BYTES} bytes`);
    expect(await verifyPassword(`${longest}x`, parsed)).toBe(false);
  });

  it("checks an unknown user's attempt against a dummy hash of a real one's cost, made once", async () => {
    const dummy = await dummyPasswordHash();
    expect(await dummyPasswordHash()).toBe(dummy);
    const real = parsePasswordHash(await hashPassword('x'));
    expect(dummy.options).toEqual(real.options);
    expect([dummy.salt.length, dummy.key.length]).toEqual([real.salt.length, real.key.length]);
    expect(await verifyPassword('x', dummy)).toBe(false);
  });
});
