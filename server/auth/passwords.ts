/**
 * Password hashes for the users file: scrypt from node:crypto with a random salt per user,
 * stored as one self-describing string, `scrypt$N$r$p$<salt base64>$<key base64>`, so the cost
 * can be raised later without breaking existing entries. scrypt runs on libuv's thread pool:
 * verifying never blocks the event loop.
 */
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';
import { DEFAULTS } from '../../shared/defaults.js';

/** RFC 7914 §2 interactive-login parameters: about 16 MiB and some tens of ms per check. */
const COST = { N: 16_384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const PREFIX = 'scrypt';
/** Largest password accepted, so a peer cannot make the server hash megabytes. */
export const MAX_PASSWORD_BYTES = 1024;
/**
 * Most memory one stored hash may make a check take (128·N·r bytes): 8x the cost `user add`
 * writes. A hand-edited N of 2^20 would make every login of that user take 1 GiB, on the same
 * threads as the uploads' fsyncs.
 */
const MAX_SCRYPT_MEMORY_BYTES = 128 * 1024 * 1024;
/** Longest salt and key a stored hash may have (`user add` writes 16 and 32 bytes). */
const MAX_SALT_OR_KEY_BYTES = 64;

interface ParsedHash {
  options: ScryptOptions & { N: number; r: number; p: number };
  salt: Buffer;
  key: Buffer;
}

function scryptAsync(
  password: string,
  salt: Buffer,
  keyBytes: number,
  options: ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyBytes, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** 128·N·r bytes of memory, with room to spare (node's default cap is 32 MiB). */
function withMemory(options: { N: number; r: number; p: number }): ScryptOptions & typeof options {
  return { ...options, maxmem: 256 * options.N * options.r };
}

/** A new hash with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  checkPasswordText(password);
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(password, salt, KEY_BYTES, withMemory(COST));
  return [PREFIX, COST.N, COST.r, COST.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/**
 * Throws a TypeError naming what is wrong with a stored hash string. `anyCost`: one whose check
 * would take too much memory passes (the users-file edits, which check no password, read it so
 * that `user add --replace` or `user del` can mend the file).
 */
export function parsePasswordHash(text: string, { anyCost = false }: { anyCost?: boolean } = {}): ParsedHash {
  const parts = typeof text === 'string' ? text.split('$') : [];
  const [prefix, n, r, p, salt, key] = parts;
  if (parts.length !== 6 || prefix !== PREFIX) {
    throw new TypeError('password hash must look like scrypt$N$r$p$salt$key (written by `muxftp user add`)');
  }
  const N = Number(n);
  const options = { N, r: Number(r), p: Number(p) };
  const powerOfTwo = Number.isSafeInteger(N) && N > 1 && (N & (N - 1)) === 0;
  if (!powerOfTwo || !(options.r >= 1 && options.r <= 64) || !(options.p >= 1 && options.p <= 16)) {
    throw new TypeError('password hash has invalid scrypt parameters');
  }
  if (!anyCost && 128 * N * options.r > MAX_SCRYPT_MEMORY_BYTES) {
    throw new TypeError(
      `password hash asks scrypt for ${(128 * N * options.r) / 2 ** 20} MiB a check, more than ` +
        `${MAX_SCRYPT_MEMORY_BYTES / 2 ** 20} MiB: write it again with \`muxftp user add NAME --replace\``,
    );
  }
  const saltBytes = Buffer.from(salt ?? '', 'base64');
  const keyBytes = Buffer.from(key ?? '', 'base64');
  if (saltBytes.length < 8 || keyBytes.length < 16)
    throw new TypeError('password hash has a short salt or key');
  if (saltBytes.length > MAX_SALT_OR_KEY_BYTES || keyBytes.length > MAX_SALT_OR_KEY_BYTES)
    throw new TypeError(`password hash has a salt or key longer than ${MAX_SALT_OR_KEY_BYTES} bytes`);
  return { options: withMemory(options), salt: saltBytes, key: keyBytes };
}

/** True when `password` matches; compares in constant time. */
export async function verifyPassword(password: string, hash: ParsedHash): Promise<boolean> {
  if (typeof password !== 'string' || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const key = await scryptAsync(password, hash.salt, hash.key.length, hash.options);
  return timingSafeEqual(key, hash.key);
}

export function checkPasswordText(password: string): void {
  if (typeof password !== 'string' || password.length === 0)
    throw new TypeError('password must not be empty');
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
    throw new TypeError(`password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  }
}

/**
 * checkPasswordText, and at least `minChars` characters (code points): for a password being set
 * (`user add`), not one a login gives, which is checked against its hash whatever its length.
 */
export function checkNewPasswordText(
  password: string,
  minChars: number = DEFAULTS.minNewPasswordChars,
): void {
  checkPasswordText(password);
  if ([...password].length < minChars)
    throw new TypeError(`password must be at least ${minChars} characters`);
}

let dummy: Promise<ParsedHash> | undefined;

/**
 * A hash of a random password with the same cost as real ones: an unknown user's attempt is
 * checked against it, so the answer takes as long as for a user who exists.
 */
export function dummyPasswordHash(): Promise<ParsedHash> {
  dummy ??= hashPassword(randomBytes(16).toString('hex')).then(parsePasswordHash);
  return dummy;
}
