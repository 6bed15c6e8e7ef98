/**
 * A name on the server's disk that is not UTF-8 (put there behind the server's back: muxftp
 * names files in UTF-8 only). readdir gives it back with U+FFFD for its bad bytes, a name no
 * call finds: the listing dropped it, so `get -r` of its directory exited 0 without it. It is
 * listed now, marked `notUtf8`, and a tree copy says it left it (exit 1). Real server on
 * 127.0.0.1 (disk), the real CLI. Needs dist/ (npm run build).
 */
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-not-utf8-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

describe('a name on the server that is not UTF-8', () => {
  it('is listed, marked, and a get -r names it as left out and fails', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = join(server.root!, 'odd');
    await mkdir(dir);
    // "lat" + 0xE9 (Latin-1 é): not UTF-8.
    await writeFile(Buffer.concat([Buffer.from(`${dir}/lat`), Buffer.from([0xe9])]), 'latin');
    await writeFile(join(dir, 'ok'), 'fine');

    const client = await server.connect();
    const entries = await client.list('odd');
    expect(entries.map((entry) => [entry.name, entry.type, entry.notUtf8])).toEqual([
      ['lat\uFFFD', 'other', true],
      ['ok', 'file', undefined],
    ]);
    await client.close();

    const local = await tempDirs.make();
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);
    const listed = await cli('ls', 'odd');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('lat\uFFFD  (name not UTF-8 on the server: muxftp cannot name it)');
    // Before: exit 0, with only ok copied and nothing said.
    const copied = await cli('get', '-r', 'odd', '--to', 'out', '-p');
    expect(copied.code).toBe(1);
    expect(copied.stderr).toContain(
      'name on the server is not UTF-8 (muxftp names files in UTF-8 only), skipped: odd/lat',
    );
    expect(await readdir(join(local, 'out', 'odd'))).toEqual(['ok']);
    // chmod -R counts it among those below that kept their bits (it said 1 of the 1 before).
    const changed = await cli('chmod', '-R', '700', 'odd');
    expect(changed.code).toBe(1);
    expect(changed.stderr).toContain('1 of the 2 below it kept their bits (the rest have the new ones)');
    expect((await stat(join(dir, 'ok'))).mode & 0o777).toBe(0o700);
    // A pattern acts on what it can name, and says so when that is nothing.
    expect(await cli('get', 'odd/*', '--to', 'both', '-p')).toMatchObject({ code: 0 });
    expect(await readdir(join(local, 'both'))).toEqual(['ok']);
    const only = await cli('rm', 'odd/lat*');
    expect(only.code).toBe(1);
    expect(only.stderr).toBe(
      'muxftp: rm odd/lat*: odd/lat* matches only a name on the server that is not UTF-8 (muxftp names files in UTF-8 only): odd/lat\uFFFD (INVALID_PATH)\n',
    );
  });
});

describe('a name on the server with a character no path may hold', () => {
  it('is listed and marked, and a get -r or rm -r says muxftp cannot name it and to rename it', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = join(server.root!, 'odd');
    await mkdir(dir);
    await writeFile(join(dir, 'back\\slash'), 'a');
    await writeFile(join(dir, 'new\nline'), 'b');
    await writeFile(join(dir, 'ok'), 'c');

    const local = await tempDirs.make();
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);
    const listed = await cli('ls', 'odd');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('back\\slash  (muxftp cannot name it: the name contains a backslash)');
    expect(listed.stdout).toContain(
      'new?line  (muxftp cannot name it: the name contains a control character)',
    );
    expect(listed.stdout).toMatch(/ ok\n/);
    const copied = await cli('get', '-r', 'odd', '--to', 'out', '-p');
    expect(copied.code).toBe(1);
    expect(copied.stderr).toContain(
      'muxftp cannot name it (the name contains a backslash; rename it on the server), skipped: odd/back\\slash',
    );
    expect(copied.stderr).toContain(
      'muxftp cannot name it (the name contains a control character; rename it on the server), skipped: odd/new?line',
    );
    expect(await readdir(join(local, 'out', 'odd'))).toEqual(['ok']);
    // rm -r removes all or nothing: nothing, saying why (it blamed "an unsafe name" the server listed).
    const removed = await cli('rm', '-r', 'odd');
    expect(removed.code).toBe(1);
    expect(removed.stderr).toContain('muxftp cannot name it');
    expect((await readdir(dir)).sort()).toEqual(['back\\slash', 'new\nline', 'ok']);
    // A pattern matches them and fails each, loudly: it left the backslash out without a word
    // (rm -r 'odd/*' exited 0 with it still there).
    const matched = await cli('rm', 'odd/*');
    expect(matched.code).toBe(1);
    expect(matched.stderr).toContain(
      'muxftp: rm odd/back\\slash: invalid path: contains a backslash (INVALID_PATH)',
    );
    expect(matched.stderr).toContain('rm odd/new?line: invalid path: contains a control character');
    expect((await readdir(dir)).sort()).toEqual(['back\\slash', 'new\nline']);
    // A directory such a name has, that a pattern goes through, is left out: the other matches go
    // on (its listing failed the whole pattern, and nothing was removed).
    for (const sub of ['a', 'd\\ir', 'n\nl']) {
      await mkdir(join(dir, sub));
      await writeFile(join(dir, sub, 'in.log'), 'x');
    }
    const through = await cli('rm', 'odd/*/in.log');
    expect(through.code, through.stderr).toBe(0);
    expect(await readdir(join(dir, 'a'))).toEqual([]);
    expect(await readdir(join(dir, 'd\\ir'))).toEqual(['in.log']);
    const onlyThrough = await cli('rm', 'odd/d*/in.log');
    expect(onlyThrough.code).toBe(1);
    expect(onlyThrough.stderr).toContain(
      'odd/d*/in.log matches only a name on the server muxftp cannot name (the name contains a backslash): odd/d\\ir',
    );
  });
});

describe('a pattern a get matches a backslash name with', () => {
  it('fails it for its backslash, as rm does, not for want of a local name', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = join(server.root!, 'odd');
    await mkdir(dir);
    await writeFile(join(dir, 'back\\slash'), 'a');
    await writeFile(join(dir, 'ok'), 'c');

    const local = await tempDirs.make();
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);
    // It said "no local name for odd/back\slash; give a local path": given one, the get fails
    // all the same (the name cannot be sent).
    const copied = await cli('get', 'odd/*', '--to', 'out', '-p');
    expect(copied.code).toBe(1);
    expect(copied.stderr).toContain(
      'muxftp: get odd/back\\slash: invalid path: contains a backslash (INVALID_PATH)\n',
    );
    expect(copied.stderr).not.toContain('give a local path');
    expect(await readdir(join(local, 'out'))).toEqual(['ok']);
    const named = await cli('get', 'odd/b*', join(local, 'named'));
    expect(named.stderr).toContain('get odd/back\\slash: invalid path: contains a backslash (INVALID_PATH)');
  });
});
