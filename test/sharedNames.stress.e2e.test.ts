/**
 * Several clients at once on the same few names: put, get, rm, mv, mkdir -p, rm -r, chmod, stat
 * and list, with cancels and dropped connections mixed in (seeded, so a failure replays). Then the
 * invariants: the server still serves, every file under a real name is one whole version some
 * client put, every get that succeeded got one, errors carry stable codes, nothing temporary is
 * left, and the quota's usage is the bytes on disk.
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { TEMP_PREFIX } from '../shared/temporaryNames.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

const RECOUNT_MS = 300;

let users: UsersFile;
beforeAll(async () => {
  users = emptyUsersFile();
  for (const [name, home] of [
    ['q', undefined],
    ['outer', 'shared'],
    ['inner', 'shared/in'],
  ] as const) {
    users = addUser(users, {
      name,
      passwordHash: await hashPassword(`${name}-secret`),
      permissions: [...PERMISSIONS],
      quota: 1 << 30,
      ...(home === undefined ? {} : { home }),
    });
  }
});

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DIRS = ['a', 'b', 'a/d', 'b/d'];
const FILES = ['f', 'g', 'a/f', 'a/g', 'b/f', 'a/d/f', 'b/d/f'];
/** Codes a racing call may fail with: each says what happened in words the user can act on. */
const EXPECTED = new Set([
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'NOT_A_DIRECTORY',
  'IS_A_DIRECTORY',
  'DIRECTORY_NOT_EMPTY',
  'RESOURCE_BUSY',
  'CANCELLED',
  'CONNECTION_LOST',
  'SERVER_BUSY',
  'INVALID_PATH',
]);

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function removeTree(client: Client, path: string): Promise<void> {
  for (const entry of await client.list(path)) {
    const child = `${path}/${entry.name}`;
    if (entry.type === 'dir') await removeTree(client, child);
    else await client.delete(child);
  }
  await client.rmdir(path);
}

async function walk(client: Client, path: string, files: Map<string, number>): Promise<void> {
  for (const entry of await client.list(path)) {
    const child = path === '' ? entry.name : `${path}/${entry.name}`;
    expect(entry.name.startsWith(TEMP_PREFIX), child).toBe(false);
    if (entry.type === 'dir') await walk(client, child, files);
    else files.set(child, entry.size);
  }
}

async function hostFiles(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await hostFiles(path, out);
    else out.push(path);
  }
  return out;
}

async function run(
  backend: 'memory' | 'disk',
  seed: number,
  ops: number,
  clientCount: number,
  nested = false,
) {
  env = await startServer({ backend, accounts: new Accounts({ users }), quotaRecountIntervalMs: RECOUNT_MS });
  const server = env;
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  // Nested: even slots log in as `outer`, whose home holds `inner`'s as `in`, which it moves.
  const userOf = (slot: number) => (nested ? (slot % 2 === 0 ? 'outer' : 'inner') : 'q');
  const login = (slot: number) => ({ user: userOf(slot), password: `${userOf(slot)}-secret` });
  const namesOf = (slot: number, names: readonly string[]) =>
    userOf(slot) === 'outer' ? [...names, 'in', 'in/f', 'in/a', 'in/a/f'] : names;
  const clients: Client[] = [];
  const dropped = new Set<Client>();
  for (let i = 0; i < clientCount; i++) clients.push(await server.connect(login(i)));
  const versions = new Set<string>();
  const unexpected: string[] = [];
  const tally = new Map<string, number>();
  const failed = (what: string) => (error: unknown) => {
    const code = (error as { code?: string }).code;
    const key = `${what.split(' ')[0]} ${code}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    if (code === undefined || !EXPECTED.has(code)) unexpected.push(`${what}: ${code} ${String(error)}`);
  };

  const op = async (slot: number): Promise<void> => {
    const client = clients[slot] as Client;
    const controller = new AbortController();
    if (random() < 0.1 && !process.env.MUXFTP_STRESS_NOCANCEL)
      setTimeout(
        () => controller.abort(),
        Math.floor(random() * Number(process.env.MUXFTP_STRESS_CANCEL_MS ?? 5)),
      );
    const signal = controller.signal;
    const kind = random();
    if (kind < 0.25) {
      const path = pick(namesOf(slot, FILES));
      const big = Number(process.env.MUXFTP_STRESS_BIG ?? 300_000);
      const size = random() < 0.3 ? 0 : Math.floor(random() * (random() < 0.2 ? big : 300_000));
      const bytes = Buffer.alloc(size, Math.floor(random() * 256));
      if (size > 0) bytes.writeUInt32LE(Math.floor(random() * 2 ** 32), 0);
      versions.add(digest(bytes));
      await client
        .put(path, bytes, { signal })
        .then(() => tally.set('put ok', (tally.get('put ok') ?? 0) + 1), failed(`put ${path}`));
    } else if (kind < 0.45) {
      const path = pick(namesOf(slot, FILES));
      await client.getBuffer(path, { signal }).then(
        (got) => {
          tally.set('get ok', (tally.get('get ok') ?? 0) + 1);
          if (!versions.has(digest(got))) unexpected.push(`get ${path}: ${got.length} bytes no client put`);
        },
        failed(`get ${path}`),
      );
    } else if (kind < 0.55) {
      const path = pick(namesOf(slot, FILES));
      await client.delete(path, { signal }).catch(failed(`rm ${path}`));
    } else if (kind < 0.67) {
      const from = pick(namesOf(slot, [...FILES, ...DIRS]));
      const to = pick(namesOf(slot, [...FILES, ...DIRS]));
      await client.rename(from, to, { signal }).catch(failed(`mv ${from} ${to}`));
    } else if (kind < 0.8) {
      const path = pick(namesOf(slot, DIRS));
      await client.mkdir(path, { parents: true, signal }).catch(failed(`mkdir -p ${path}`));
    } else if (kind < 0.83) {
      const path = pick(namesOf(slot, DIRS));
      await removeTree(client, path).catch(failed(`rm -r ${path}`));
    } else if (kind < 0.85) {
      const path = pick(namesOf(slot, [...FILES, ...DIRS]));
      const mode = pick([0o644, 0o600, 0o755, 0o700]);
      await client.setPermissions(path, mode, { signal }).catch(failed(`chmod ${path}`));
    } else if (kind < 0.93) {
      const path = pick(namesOf(slot, [...FILES, ...DIRS]));
      await client.stat(path, { signal }).catch(failed(`stat ${path}`));
    } else if (kind < 0.97) {
      const path = pick(namesOf(slot, ['', ...DIRS]));
      await client.list(path, { signal }).catch(failed(`ls ${path}`));
    } else if (process.env.MUXFTP_STRESS_NODROP) {
      await client.stat('').catch(() => {});
    } else {
      // A dropped connection, whatever it had in flight; the slot logs in again.
      void client.destroy();
      dropped.add(client);
      // Refused while inner's home is not a directory (outer moved it, or put a file there): the
      // slot stays dropped, its calls fail CONNECTION_LOST, until a later turn logs in.
      clients[slot] = await server.connect(login(slot)).catch((error: unknown) => {
        const code = (error as { code?: string }).code;
        if (userOf(slot) !== 'inner' || code !== 'IO_ERROR') failed('login')(error);
        return client;
      });
    }
  };

  const lanes = Array.from(
    { length: process.env.MUXFTP_STRESS_SERIAL ? 0 : clientCount },
    async (_, slot) => {
      for (let i = 0; i < ops / clientCount; i++) {
        // Two calls at a time per client: one may be in flight when its connection drops.
        const first = op(slot);
        if (random() < 0.5) await Promise.all([first, op(slot)]);
        else await first;
      }
    },
  );
  if (process.env.MUXFTP_STRESS_SERIAL) {
    for (let i = 0; i < ops; i++) await op(Math.floor(random() * clientCount));
  }
  await Promise.all(lanes);
  if (process.env.MUXFTP_STRESS_TALLY) console.log(backend, seed, [...tally].sort().join('\n'));
  expect(unexpected).toEqual([]);

  // Every client still served; every file one whole version some client put.
  // Every connection still served (stats: inner's home may be gone, moved away by outer), once
  // the server has finished what cancelled calls left it doing (a put cancelled after its END
  // still commits): only the stats request itself is open.
  const probe = await server.connect(login(0));
  await until(async () => (await probe.stats()).streams === 1, 'the server idle');
  await probe.close();
  for (const client of clients) if (!dropped.has(client)) await client.stats();
  let listed = 0;
  const checkers: Client[] = [];
  for (const user of nested ? ['outer', 'inner'] : ['q']) {
    const checker = await server.connect({ user, password: `${user}-secret` });
    checkers.push(checker);
    if (user === 'outer') {
      // Inner's home made a directory again, for its checker to log in.
      if ((await checker.stat('in').catch(() => undefined))?.type === 'file') await checker.delete('in');
      await checker.mkdir('in', { parents: true });
    }
    const files = new Map<string, number>();
    await walk(checker, '', files);
    let bytes = 0;
    for (const [path, size] of files) {
      const got = await checker.getBuffer(path);
      expect(got.length, path).toBe(size);
      expect(versions.has(digest(got)), path).toBe(true);
      bytes += size;
    }
    // A walk that overlapped commits counts the highest usage it allows (quota.ts walkDone):
    // never less than is there, and exact at the first walk once the recount interval is over.
    expect((await checker.space()).quota?.usedBytes, user).toBeGreaterThanOrEqual(bytes);
    await delay(RECOUNT_MS);
    expect((await checker.space()).quota?.usedBytes, user).toBe(bytes);
    if (user !== 'inner') listed = bytes;
  }
  if (backend === 'disk') {
    const root = server.root as string;
    const onDisk = await hostFiles(root);
    const sizes = await Promise.all(onDisk.map(async (p) => (await stat(p)).size));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(listed);
    await Promise.all(clients.map((c) => c.destroy()));
    await Promise.all(checkers.map((c) => c.close()));
    await server.server.close(0);
    const left = (await hostFiles(root)).filter((p) => p.includes(TEMP_PREFIX));
    expect(left).toEqual([]);
  }
}

describe('clients racing on the same names', () => {
  for (const backend of ['memory', 'disk'] as const) {
    it(`keeps whole versions, stable codes and exact quota (${backend})`, async () => {
      const seed = Number(process.env.MUXFTP_STRESS_SEED ?? 50);
      await run(
        backend,
        seed,
        Number(process.env.MUXFTP_STRESS_OPS ?? 200),
        Number(process.env.MUXFTP_STRESS_CLIENTS ?? 4),
      );
    }, 30_000);
    it(`keeps them with nested homes, the inner one moved about (${backend})`, async () => {
      const seed = Number(process.env.MUXFTP_STRESS_SEED ?? 50);
      await run(
        backend,
        seed,
        Number(process.env.MUXFTP_STRESS_OPS ?? 200),
        Number(process.env.MUXFTP_STRESS_CLIENTS ?? 4),
        true,
      );
    }, 30_000);
  }
});
