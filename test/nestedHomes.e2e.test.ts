/**
 * Two accounts whose homes nest (`a` and `a/b`): a directory move through one home must see the
 * uploads in flight through the other, exactly as it sees its own (issue #7: moving a directory
 * above an upload's temporary file would strand it). Real sockets, real files.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Volume } from 'memfs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { memfsApi } from '../storage/memory.js';
import { TEMP_PREFIX } from '../storage/paths.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let users: UsersFile;

beforeAll(async () => {
  const add = async (file: UsersFile, name: string, home: string) =>
    addUser(file, {
      name,
      passwordHash: await hashPassword(`${name}-secret`),
      permissions: [...PERMISSIONS],
      home,
    });
  users = await add(await add(emptyUsersFile(), 'outer', 'a'), 'inner', 'a/b');
});

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** Waits (at most 5 s) until an upload's temporary file exists in host directory `dir`. */
async function uploadUnderWay(dir: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const names = await readdir(dir).catch(() => []);
    if (names.some((name) => name.startsWith(TEMP_PREFIX))) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no upload under way in ${dir}`);
}

/** Every name under a host directory, recursively, relative to it. */
async function treeOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

async function start() {
  server = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
  const outer = await server.connect({ user: 'outer', password: 'outer-secret' });
  const inner = await server.connect({ user: 'inner', password: 'inner-secret' });
  return { s: server, outer, inner };
}

describe('homes nested in each other', () => {
  it('a move in the outer home is refused while the inner home has an upload in flight under it', async () => {
    const { s, outer, inner } = await start();
    const source = new PassThrough();
    source.write('first half, ');
    const upload = inner.put('f.txt', source);
    upload.catch(() => {}); // awaited below; a failure before that must not go unhandled
    await uploadUnderWay(join(s.root!, 'a', 'b'));

    await expect(outer.rename('b', 'moved')).rejects.toMatchObject({ code: 'RESOURCE_BUSY' });

    source.end('second half');
    await upload;
    await outer.rename('b', 'moved');
    expect((await outer.getBuffer('moved/f.txt')).toString()).toBe('first half, second half');
    // Nothing hidden stranded anywhere.
    expect(await treeOf(join(s.root!, 'a'))).toEqual(['moved', join('moved', 'f.txt')]);
  });

  it('a move in the inner home is refused while the outer home has an upload in flight under it', async () => {
    const { s, outer, inner } = await start();
    await inner.mkdir('d');
    const source = new PassThrough();
    source.write('from outside, ');
    const upload = outer.put('b/d/f.txt', source);
    upload.catch(() => {});
    await uploadUnderWay(join(s.root!, 'a', 'b', 'd'));

    await expect(inner.rename('d', 'e')).rejects.toMatchObject({ code: 'RESOURCE_BUSY' });

    source.end('done');
    await upload;
    await inner.rename('d', 'e');
    expect((await inner.getBuffer('e/f.txt')).toString()).toBe('from outside, done');
    expect(await treeOf(join(s.root!, 'a', 'b'))).toEqual(['e', join('e', 'f.txt')]);
  });
});

describe('homes nested in each other, at the storage boundary', () => {
  it('an upload claimed through one view but not yet resolved already holds off a move through another', async () => {
    const volume = new Volume();
    // The inner upload's path resolution is held: its claim exists, its resolved host path not yet.
    let releaseResolve = () => {};
    const resolveHeld = new Promise<void>((resolve) => {
      releaseResolve = resolve;
    });
    // Held where resolving looks at the last name (an lstat: realpath is asked of the parent only).
    const memory = memfsApi(volume);
    let held = 0;
    const holding: FsPromises = {
      ...memory,
      lstatIfExists: async (p) => {
        if (p === '/a/b/f') {
          held++;
          await resolveHeld;
        }
        return memory.lstatIfExists!(p);
      },
    };
    const storage = new FsStorage({ fs: holding, root: '/', durable: false });
    const outer = await storage.subtree('a');
    const inner = await storage.subtree('a/b');
    const starting = inner.createUpload('f');
    await expect(outer.rename('b', 'moved')).rejects.toMatchObject({ code: 'RESOURCE_BUSY' });
    expect(held).toBeGreaterThan(0); // the move was refused while the upload's resolution was held
    releaseResolve();
    const upload = await starting;
    await upload.write([Buffer.from('kept in place')]);
    await upload.commit();
    await outer.rename('b', 'moved');
    expect(volume.readFileSync('/a/moved/f', 'utf8')).toBe('kept in place');
    expect(volume.readdirSync('/a/moved')).toEqual(['f']);
    await storage.close();
  });
});
