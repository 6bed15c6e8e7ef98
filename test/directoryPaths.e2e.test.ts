/**
 * A remote path ending in '/' (or '/.') names a directory, as in POSIX and the CLI (`rm f/` of a
 * file fails NOT_A_DIRECTORY): the server holds every operation to it, so a library caller's
 * `delete('f/')` no longer deletes the file f.
 */
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import { codeOf } from './helpers/codeOf.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-dirpaths-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

const FILE = Buffer.from('the file f\n');

/** A client on a fresh server holding the file f, and the directory d with the file d/x. */
async function tree(backend: 'memory' | 'disk'): Promise<Client> {
  server = await startServer({ backend });
  const client = await server.connect();
  await client.put('f', FILE);
  await client.mkdir('d');
  await client.put('d/x', Buffer.from('x'));
  return client;
}

describe('a trailing / on a symbolic link (disk)', () => {
  it('follows it: a link to a directory is one (delete of it fails IS_A_DIRECTORY, the link stays), a link to a file is not', async () => {
    const client = await tree('disk');
    await symlink('d', join(server!.root!, 'to-d'));
    await symlink('f', join(server!.root!, 'to-f'));
    expect((await client.stat('to-d/')).type).toBe('dir');
    expect(await codeOf(client.delete('to-d/'))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(client.stat('to-f/'))).toBe('NOT_A_DIRECTORY');
    expect(await codeOf(client.delete('to-f/'))).toBe('NOT_A_DIRECTORY');
    expect((await client.list('')).map((e) => e.name)).toEqual(['d', 'f', 'to-d', 'to-f']);
    // Without the slash a delete removes the link itself, as before.
    await client.delete('to-d');
    expect((await client.list('')).map((e) => e.name)).toEqual(['d', 'f', 'to-f']);
  });
});

describe.each(['memory', 'disk'] as const)('a trailing / on %s storage', (backend) => {
  it('fails NOT_A_DIRECTORY on a file for every operation, and leaves the file as it was', async () => {
    const client = await tree(backend);
    const calls: Record<string, () => Promise<unknown>> = {
      stat: () => client.stat('f/'),
      'stat /.': () => client.stat('f/.'),
      list: () => client.list('f/'),
      delete: () => client.delete('f/'),
      'delete /.': () => client.delete('f/.'),
      rmdir: () => client.rmdir('f/'),
      mkdir: () => client.mkdir('f/'),
      'mkdir parents': () => client.mkdir('f/', { parents: true }),
      'rename from': () => client.rename('f/', 'g'),
      'rename to a new name': () => client.rename('f', 'g/'),
      'rename a directory onto it': () => client.rename('d', 'f/'),
      setModifiedTime: () => client.setModifiedTime('f/', 0),
      setPermissions: () => client.setPermissions('f/', 0o600),
      digest: () => client.digest('f/'),
      get: () => client.getBuffer('f/'),
      put: () => client.put('f/', Buffer.from('replaced')),
    };
    const codes: Record<string, string> = {};
    for (const [name, call] of Object.entries(calls)) codes[name] = await codeOf(call());
    expect(codes).toEqual(Object.fromEntries(Object.keys(calls).map((name) => [name, 'NOT_A_DIRECTORY'])));
    expect(await client.getBuffer('f')).toEqual(FILE);
    expect((await client.list('')).map((e) => e.name)).toEqual(['d', 'f']);
  });

  it('works on a directory as without it, and a file operation on one fails IS_A_DIRECTORY', async () => {
    const client = await tree(backend);
    expect((await client.stat('d/')).type).toBe('dir');
    expect((await client.list('d/')).map((e) => e.name)).toEqual(['x']);
    expect((await client.setModifiedTime('d/.', 1_000_000_000_000)).mtime).toBe(1_000_000_000_000);
    await client.mkdir('new/');
    expect((await client.stat('new')).type).toBe('dir');
    await client.mkdir('d/', { parents: true });
    await client.rename('new/', 'renamed/');
    await client.rmdir('renamed/');
    expect(await codeOf(client.delete('d/'))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(client.digest('d/'))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(client.getBuffer('d/'))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(client.put('d/', Buffer.from('y')))).toBe('IS_A_DIRECTORY');
    // A put makes a file: a name it would make, given as a directory, is refused as Linux's open(2) does.
    expect(await codeOf(client.put('nothing-here/', Buffer.from('y')))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(client.stat('nothing-here'))).toBe('NOT_FOUND');
    expect(await codeOf(client.stat('nothing-here/'))).toBe('NOT_FOUND');
    expect(await codeOf(client.delete('nothing-here/'))).toBe('NOT_FOUND');
    // The root written with a slash is the root, as before.
    expect((await client.stat('./')).type).toBe('dir');
    expect(await codeOf(client.delete('./'))).toBe('INVALID_PATH');
  });

  it('says which of the two a file operation met: a directory there, or a name a put would make', async () => {
    const client = await tree(backend);
    await expect(client.put('d/', Buffer.from('y'))).rejects.toMatchObject({
      code: 'IS_A_DIRECTORY',
      message: 'is a directory: d/',
    });
    await expect(client.put('nothing-here/', Buffer.from('y'))).rejects.toMatchObject({
      code: 'IS_A_DIRECTORY',
      message: "nothing-here/ names a directory (it ends in '/'): a put makes a file",
    });
    await expect(client.delete('f/')).rejects.toMatchObject({
      code: 'NOT_A_DIRECTORY',
      message: 'not a directory: f/',
    });
  });

  it("moves a directory to a name given with a '/' as without it: a new name, never over an entry", async () => {
    const client = await tree(backend);
    await client.mkdir('empty');
    await client.rename('d', 'moved/');
    expect((await client.list('moved')).map((e) => e.name)).toEqual(['x']);
    // rename(2)'s answers, as without the slash: storage never replaces a directory, nor a file with one.
    expect(await codeOf(client.rename('moved', 'empty/'))).toBe('ALREADY_EXISTS');
    expect(await codeOf(client.rename('moved/', 'f'))).toBe('ALREADY_EXISTS');
    expect((await client.list('')).map((e) => e.name)).toEqual(['empty', 'f', 'moved']);
    expect(await client.getBuffer('f')).toEqual(FILE);
  });

  it("keeps the rest of README §Library's path rules: no leading '/', '' the home, no '..'", async () => {
    const client = await tree(backend);
    expect(await codeOf(client.stat('/f'))).toBe('INVALID_PATH');
    expect(await codeOf(client.put('/g', Buffer.from('g')))).toBe('INVALID_PATH');
    // With a trailing '/' too: the path is refused, not taken for a directory to be made.
    expect(await codeOf(client.put('/g/', Buffer.from('g')))).toBe('INVALID_PATH');
    expect(await codeOf(client.put('d/../g/', Buffer.from('g')))).toBe('INVALID_PATH');
    expect(await codeOf(client.mkdir('../g/'))).toBe('INVALID_PATH');
    expect(await codeOf(client.stat('d/../f'))).toBe('INVALID_PATH');
    expect((await client.list('')).map((e) => e.name)).toEqual(['d', 'f']);
    expect((await client.stat('')).type).toBe('dir');
  });

  it('leaves a rename of nothing to NOT_FOUND, as rename(2) says ENOENT before it looks at the new name', async () => {
    const client = await tree(backend);
    expect(await codeOf(client.rename('missing', 'f/'))).toBe('NOT_FOUND');
    expect(await codeOf(client.rename('missing/', 'f/'))).toBe('NOT_FOUND');
    expect(await codeOf(client.rename('missing', 'g/'))).toBe('NOT_FOUND');
    expect(await client.getBuffer('f')).toEqual(FILE);
  });

  it('refuses a resumable put of a local file to it before any byte is kept', async () => {
    const client = await tree(backend);
    const local = join(await tempDirs.make(), 'big.bin');
    await writeFile(local, Buffer.alloc(5 * 1024 * 1024, 7)); // over one block: the put asks `partial` first
    expect(await codeOf(client.put('f/', local, { continue: true }))).toBe('NOT_A_DIRECTORY');
    expect(await client.getBuffer('f')).toEqual(FILE);
  });
});
