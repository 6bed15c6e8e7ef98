/**
 * `serve`'s access settings: the users file and anonymous access, the TLS certificate, and the
 * warnings printed at start when the server is reachable from other machines without TLS or
 * without accounts, or when the files it was given are open to every local user or out of date.
 */
import { X509Certificate } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, lstat, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { createSecureContext } from 'node:tls';
import { Accounts, type AnonymousAccess } from '../server/auth/accounts.js';
import { readUsersFile } from '../server/auth/usersFile.js';
import type { ServerOptions } from '../server/options.js';
import { DEFAULTS } from '../shared/defaults.js';
import { errnoReason } from '../shared/errnoReasons.js';
import { type ReadAtMostOptions, readFileAtMost } from '../shared/readAtMost.js';

export interface AccessFlags {
  users?: string;
  anonymous?: boolean;
  anonymousWrite?: boolean;
  anonymousHome: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsOnly?: boolean;
}

/** What is wrong with how the flags go together (a usage error), or undefined. */
export function accessFlagsMisuse(
  flags: Pick<AccessFlags, 'users' | 'anonymous' | 'anonymousWrite' | 'tlsCert' | 'tlsKey' | 'tlsOnly'>,
): string | undefined {
  if (flags.users === undefined && (flags.anonymous || flags.anonymousWrite)) {
    const flag = flags.anonymousWrite ? '--anonymous-write' : '--anonymous';
    return `${flag} needs --users: without a users file everyone has full access already`;
  }
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined))
    return '--tls-cert and --tls-key go together';
  if (flags.tlsOnly && flags.tlsCert === undefined) return '--tls-only needs --tls-cert and --tls-key';
  return undefined;
}

/** The server options the flags stand for; throws an Error with a plain reason. */
export async function loadAccess(
  flags: AccessFlags,
): Promise<Pick<ServerOptions, 'accounts' | 'tls' | 'tlsOnly'>> {
  const misuse = accessFlagsMisuse(flags);
  if (misuse !== undefined) throw new Error(misuse);
  const accounts = await loadAccounts(flags);
  const tls = flags.tlsCert === undefined ? undefined : await loadTls(flags.tlsCert, flags.tlsKey!);
  return { accounts, ...(tls !== undefined ? { tls, tlsOnly: flags.tlsOnly === true } : {}) };
}

/**
 * A PEM file (`--tls-cert`, `--tls-key`, `--ca`), at most DEFAULTS.maxPemFileBytes; with
 * `options.regularOnly`, a regular file only (read again while serving: readFileAtMost).
 */
export function readPem(path: string, options: ReadAtMostOptions = {}): Promise<Buffer> {
  return readFileAtMost(path, DEFAULTS.maxPemFileBytes, 'a PEM file', options);
}

/**
 * The certificate chain and key from their files, checked to load together (read again on SIGHUP,
 * `options.regularOnly` then: a FIFO there is refused, not waited on for ever).
 */
export async function loadTls(
  certFile: string,
  keyFile: string,
  options: ReadAtMostOptions = {},
): Promise<{ cert: Buffer; key: Buffer }> {
  const tls = {
    cert: await readPem(certFile, options).catch((e: Error) => {
      throw new Error(`cannot read --tls-cert ${certFile}: ${errnoReason(e)}`, { cause: e });
    }),
    key: await readPem(keyFile, options).catch((e: Error) => {
      throw new Error(`cannot read --tls-key ${keyFile}: ${errnoReason(e)}`, { cause: e });
    }),
  };
  checkCertificateAndKey(tls, certFile, keyFile);
  return tls;
}

/** A passphrase-protected PEM key: PKCS #8's own label, or the traditional one's header (RFC 1421). */
const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED\r?$/m;

/**
 * Files that read but are no PEM certificate and key, or a key that is not the certificate's: said
 * here in one line, where the server's construction would throw OpenSSL's error as a bug's.
 */
function checkCertificateAndKey(tls: { cert: Buffer; key: Buffer }, certFile: string, keyFile: string): void {
  try {
    createSecureContext(tls);
  } catch (error) {
    // OpenSSL says only "bad decrypt", which reads as a broken or wrong file.
    if (ENCRYPTED_PEM.test(tls.key.toString('latin1')))
      throw new Error(
        `--tls-key ${keyFile} is encrypted with a passphrase, which serve cannot be given: decrypt it (openssl pkey -in ${keyFile} -out plain.key) and keep the copy mode 600`,
        { cause: error },
      );
    // OpenSSL's `error:0480006C:PEM routines::no start line`: the words after its code.
    const reason = (error as Error).message.replace(/^error:[0-9A-Fa-f]+:/, '');
    throw new Error(
      `--tls-cert ${certFile} and --tls-key ${keyFile} are not a PEM certificate chain and its private key (${reason})`,
      { cause: error },
    );
  }
}

/**
 * Who may log in, from the users file (read again on SIGHUP, `options.regularOnly` then) and the
 * anonymous flags.
 */
export async function loadAccounts(
  flags: Pick<AccessFlags, 'users' | 'anonymous' | 'anonymousWrite' | 'anonymousHome'>,
  options: ReadAtMostOptions = {},
): Promise<Accounts> {
  const anonymous: AnonymousAccess = flags.anonymousWrite ? 'write' : flags.anonymous ? 'read' : 'off';
  const misuse = accessFlagsMisuse(flags);
  if (misuse !== undefined) throw new Error(misuse);
  const users = flags.users === undefined ? undefined : await readUsersFile(flags.users, options);
  return new Accounts({
    ...(users !== undefined ? { users } : {}),
    anonymous,
    // '/public' or 'public': a leading / means the served root, as for every remote path.
    anonymousHome: flags.anonymousHome.replace(/^\/+/, ''),
  });
}

/**
 * Warnings about the homes of `accounts` under the disk root `root` that no login can use: one
 * that is not a directory, leads outside the root, or that this server may not enter (mode 000,
 * another account's 700) fails its user's login (IO_ERROR), and said only then, in a line per
 * attempt. One missing is fine: it is made at first login. At most `limit` homes are looked at
 * (a few stat calls each, 8 at once); the rest are checked at each login only, said in a line.
 * The first `named` unusable homes have a line each; the others are counted in one.
 */
export async function homeWarnings(
  accounts: Accounts,
  root: string,
  limit: number = DEFAULTS.maxHomesCheckedAtStart,
  named: number = DEFAULTS.maxHomeWarningsNamed,
): Promise<string[]> {
  const realRoot = await realpath(root).catch(() => undefined);
  if (realRoot === undefined) return [];
  const homes = [...accounts.homes()].filter(([home]) => home !== '');
  const checked = homes.slice(0, limit);
  const found: Array<string | undefined> = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < checked.length) {
      const index = next++;
      const [home, names] = checked[index]!;
      const problem = await homeProblem(realRoot, home);
      if (problem === undefined) continue;
      const whose =
        names.length <= 3
          ? names.join(', ')
          : `${names.slice(0, 3).join(', ')} and ${names.length - 3} others`;
      found[index] =
        `home /${home} of ${whose} cannot be used (${problem}): ${names.length === 1 ? 'its login fails' : 'their logins fail'} (IO_ERROR) until it is fixed`;
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, checked.length) }, worker));
  const problems = found.filter((warning): warning is string => warning !== undefined);
  // A line each, up to `named`: a read-only root with thousands of users yet to log in (homes
  // it may not make) would say so at every start and SIGHUP, a line per user.
  const warnings = problems.slice(0, named);
  const unnamed = problems.length - named;
  if (unnamed > 0)
    warnings.push(
      `${unnamed} more ${unnamed === 1 ? 'home' : 'homes'} cannot be used (not named here): their logins fail (IO_ERROR)`,
    );
  if (homes.length > checked.length)
    warnings.push(
      `checked the first ${checked.length} of ${homes.length} homes; the others are checked at each login only`,
    );
  return warnings;
}

/**
 * homeWarnings, for each SIGHUP: a check that has not finished within `waitMs` (a home under a
 * hung mount: NFS, FUSE, whose stat never returns) is left to finish on its own, its warnings
 * dropped, and a warning says so; while one so left still runs, the next is not started (each
 * would hold another of libuv's few threadpool threads, which every disk call shares, for good).
 * Before, the reload waited on it for ever, every later SIGHUP (the users file, the certificate)
 * queued behind it, and the stop too.
 */
export function boundedHomeWarnings(
  waitMs: number = DEFAULTS.homeCheckWaitMs,
): (accounts: Accounts, root: string) => Promise<string[]> {
  let running: Promise<unknown> | undefined;
  return async (accounts, root) => {
    if (running !== undefined)
      return [
        `homes not checked: the check of an earlier SIGHUP has not finished (a hung mount under ${root}?)`,
      ];
    const check = homeWarnings(accounts, root);
    const settled = check.then(
      () => {},
      () => {},
    );
    running = settled;
    void settled.then(() => {
      if (running === settled) running = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string[]>((resolve) => {
      timer = setTimeout(
        () =>
          resolve([
            `the homes' check has not finished in ${waitMs / 1000} s (a hung mount under ${root}?): not waited for`,
          ]),
        waitMs,
      );
    });
    try {
      return await Promise.race([check, late]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Why the home `home` (a client path) under `realRoot` cannot be used, or undefined. */
async function homeProblem(realRoot: string, home: string): Promise<string | undefined> {
  let real: string;
  try {
    real = await realpath(join(realRoot, ...home.split('/')));
  } catch (error) {
    // Made at first login, where this server may make it; a file in its path (ENOTDIR), or a
    // directory above it this server may not enter, is not.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return errnoReason(error);
    return missingHomeProblem(realRoot, home);
  }
  if (isOutside(realRoot, real)) return 'it leads outside the served root';
  const info = await stat(real).catch(() => undefined);
  if (info !== undefined && !info.isDirectory()) return 'not a directory';
  const enterable = await access(real, fsConstants.X_OK).then(
    () => true,
    () => false,
  );
  if (!enterable) {
    const uid = process.getuid?.();
    return `this server${uid === undefined ? '' : `, uid ${uid},`} may not enter it`;
  }
  return undefined;
}

/** Whether the real path `real` lies outside `realRoot`. */
function isOutside(realRoot: string, real: string): boolean {
  const below = relative(realRoot, real);
  return below === '..' || below.startsWith(`..${sep}`) || isAbsolute(below);
}

/**
 * Why a missing home cannot be made at its first login: the directory it would be made in (the
 * nearest one there) is not this server's to write (a read-only root, another account's 755), or
 * lies outside the root (a link out above it: INVALID_PATH at login); or a name on its way is a
 * link to nothing (NOT_FOUND at login), which realpath alone took for missing.
 */
async function missingHomeProblem(realRoot: string, home: string): Promise<string | undefined> {
  const names = home.split('/');
  for (let depth = names.length; depth >= 0; depth--) {
    const above = join(realRoot, ...names.slice(0, depth));
    const real = depth === names.length ? undefined : await realpath(above).catch(() => undefined);
    if (real === undefined) {
      // Not there, or a link whose target is not: mkdir cannot make a home through the latter.
      const link = await lstat(above).then(
        (info) => info.isSymbolicLink(),
        () => false,
      );
      if (link) return `/${names.slice(0, depth).join('/')} is a symbolic link to nothing`;
      continue;
    }
    if (isOutside(realRoot, real)) return 'it leads outside the served root';
    const writable = await access(real, fsConstants.W_OK | fsConstants.X_OK).then(
      () => true,
      () => false,
    );
    if (writable) return undefined;
    const uid = process.getuid?.();
    return `missing, and this server${uid === undefined ? '' : `, uid ${uid},`} may not make it in /${names.slice(0, depth).join('/')}`;
  }
  return undefined;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\./.test(host);
}

/** The warnings for a server listening on `host` with these settings (none on loopback). */
export function startWarnings(
  host: string,
  settings: {
    tls: boolean;
    tlsOnly: boolean;
    users: boolean;
    root: string;
    /** With --anonymous-write: anonymous's home, '' for the root. */
    anonymousWriteHome?: string;
  },
): string[] {
  if (isLoopback(host)) return [];
  const warnings: string[] = [];
  if (settings.anonymousWriteHome !== undefined) {
    // vsftpd's anonymous uploads need anon_upload_enable, and deleting anon_other_write_enable.
    warnings.push(
      `listening on ${host} with --anonymous-write: anyone who can reach it may upload, overwrite, rename and delete in /${settings.anonymousWriteHome} without a password or a quota`,
    );
  }
  if (!settings.users) {
    warnings.push(
      `listening on ${host} with no users file: anyone who can reach it may read, write and delete everything in ${settings.root} (use --users FILE)`,
    );
  }
  if (!settings.tls) {
    warnings.push(
      `listening on ${host} without TLS: files${settings.users ? ' and passwords' : ''} cross the network in the clear (use --tls-cert and --tls-key)`,
    );
  } else if (!settings.tlsOnly) {
    warnings.push(
      `listening on ${host}: plain connections are accepted beside TLS (passwords never go over them; anonymous files do) — --tls-only refuses them`,
    );
  }
  return warnings;
}

/** A certificate that expires within this many days is warned about at start. */
const CERTIFICATE_EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

/**
 * Warnings about the files `serve` was given, wherever it listens: the users file (password
 * hashes, open to offline guessing) or the TLS key readable by every user of the machine, as
 * sshd refuses such a key; a certificate clients will refuse (expired, not yet valid) or soon will.
 * Files that cannot be read were refused by loadAccess already; they are skipped here. `served`:
 * the certificate chain as loadTls read it, the one served (`flags.tlsCert` only names it): the
 * file is not read again, where another certificate may be by then (a renewal's deploy, a pipe).
 */
export async function accessFileWarnings(
  flags: AccessFlags,
  served: { cert: string | Buffer } | undefined,
  now = Date.now(),
): Promise<string[]> {
  const warnings: string[] = [];
  const readableByAll = async (path: string, what: string) => {
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || (info.mode & 0o004) === 0) return;
    const mode = (info.mode & 0o777).toString(8).padStart(3, '0');
    warnings.push(
      `${what} ${path} is readable by every user of this machine (mode ${mode}): chmod 600 ${path}`,
    );
  };
  if (flags.users !== undefined) await readableByAll(flags.users, 'users file (password hashes)');
  if (flags.tlsKey !== undefined) await readableByAll(flags.tlsKey, '--tls-key');
  if (flags.tlsCert !== undefined && served !== undefined) {
    let certificate: X509Certificate | undefined;
    try {
      // The first certificate of the chain is the server's own.
      certificate = new X509Certificate(served.cert);
    } catch {
      certificate = undefined;
    }
    if (certificate !== undefined) {
      const from = new Date(certificate.validFrom);
      const to = new Date(certificate.validTo);
      const day = (date: Date) => date.toISOString().slice(0, 10);
      if (to.getTime() <= now) {
        warnings.push(`--tls-cert ${flags.tlsCert} expired on ${day(to)}: clients will refuse it`);
      } else if (from.getTime() > now) {
        warnings.push(`--tls-cert ${flags.tlsCert} is not valid before ${day(from)}: clients will refuse it`);
      } else if (to.getTime() - now < CERTIFICATE_EXPIRY_WARNING_DAYS * DAY_MS) {
        const days = Math.ceil((to.getTime() - now) / DAY_MS);
        warnings.push(
          `--tls-cert ${flags.tlsCert} expires on ${day(to)}, in ${days} day${days === 1 ? '' : 's'}: renew it, then send serve SIGHUP to load it (no restart)`,
        );
      }
    }
  }
  return warnings;
}

/**
 * Warnings about the users file and the TLS key lying in the served root (a disk one): to a
 * client whose home holds it, it is a file like any other, that it can download (the hashes, open
 * to offline guessing; the key) and, with the write permission there, replace — a link to it
 * included, since the server reads what the name holds (the users file at each SIGHUP).
 */
export async function servedRootFileWarnings(
  flags: Pick<AccessFlags, 'users' | 'tlsKey'>,
  root: string,
): Promise<string[]> {
  const realRoot = await realpath(root).catch(() => undefined);
  if (realRoot === undefined) return [];
  const isInside = (path: string) => {
    const below = relative(realRoot, path);
    return below === '' || (below !== '..' && !below.startsWith(`..${sep}`) && !isAbsolute(below));
  };
  const inRoot = async (file: string): Promise<boolean> => {
    // The name (where a client could put a file of its own) and what it leads to.
    const parent = await realpath(dirname(file)).catch(() => dirname(resolve(file)));
    const target = await realpath(file).catch(() => undefined);
    return isInside(join(parent, basename(file))) || (target !== undefined && isInside(target));
  };
  const canBe = 'a user whose home holds it can download it, and one who may write there replace it';
  const warnings: string[] = [];
  if (flags.users !== undefined && (await inRoot(flags.users)))
    warnings.push(
      `users file (password hashes) ${flags.users} is inside the served root ${root}: ${canBe} (and log in as anyone at the next SIGHUP): keep it outside the root`,
    );
  if (flags.tlsKey !== undefined && (await inRoot(flags.tlsKey)))
    warnings.push(
      `--tls-key ${flags.tlsKey} is inside the served root ${root}: ${canBe}: keep it outside the root`,
    );
  return warnings;
}
