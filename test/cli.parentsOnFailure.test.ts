/**
 * `-p` makes the directories a transfer needs, and none for one that cannot happen: a put whose
 * every source is missing, a put to a name no upload can take, a get of nothing there. Each made
 * its directories first and then failed, leaving them behind (edge pass). Real server on
 * 127.0.0.1 (disk), the real CLI. Needs dist/ (npm run build).
 */
import { lstat, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-parents-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

describe('-p on a transfer that cannot happen', () => {
  it('makes no directory on either side, and says why it failed', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await writeFile(join(local, 'src.txt'), 'hi');
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);

    const missing = await cli('put', '-p', 'nosuch.txt', 'x/y/z.txt');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'muxftp: put nosuch.txt: no such local file or directory: nosuch.txt (LOCAL_IO_ERROR)\n',
    );

    const tooLong = await cli('put', '-p', 'src.txt', `long/${'a'.repeat(256)}`);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain('invalid path: a name is longer than 255 bytes (INVALID_PATH)');
    const tooDeep = await cli('put', '-p', 'src.txt', `${'d/'.repeat(256)}f.txt`);
    expect(tooDeep.code).toBe(1);
    expect(tooDeep.stderr).toContain('invalid path: more than 256 names deep (INVALID_PATH)');
    expect(await readdir(server.root!)).toEqual([]);

    const nothing = await cli('get', 'nope', '--to', 'newdir/a/b', '-p');
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toBe('muxftp: get nope: no such file or directory: nope (NOT_FOUND)\n');
    expect(await readdir(local)).toEqual(['src.txt']);

    // Where there is something to move, -p makes what it needs, as before.
    expect(await cli('put', '-p', 'nosuch.txt', 'src.txt', '--to', 'up/dir')).toMatchObject({ code: 1 });
    expect(await readdir(join(server.root!, 'up', 'dir'))).toEqual(['src.txt']);
    expect(await cli('get', 'up/dir/src.txt', '--to', 'got/a', '-p')).toMatchObject({ code: 0, stderr: '' });
    expect(await readdir(join(local, 'got', 'a'))).toEqual(['src.txt']);
  });
});

describe('-p where something not a directory takes the name', () => {
  it('a link to nothing (mkdir fails EEXIST) is said, not taken for a directory made', async () => {
    server = await startServer({ backend: 'disk' });
    await mkdir(join(server.root!, 'd'));
    await writeFile(join(server.root!, 'd', 'f'), 'hi');
    const local = await tempDirs.make();
    await symlink(join(local, 'nowhere'), join(local, 'dd'));
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);
    const got = await cli('get', '-p', 'd/f', '--to', 'dd/x');
    // Before: taken as made, then "no such file or directory: dd/x/f" of the download.
    expect({ code: got.code, stderr: got.stderr }).toEqual({
      code: 1,
      stderr: 'muxftp: get dd/x: not a directory: dd (LOCAL_IO_ERROR)\n',
    });
    expect((await lstat(join(local, 'dd'))).isSymbolicLink()).toBe(true);
    expect(await readdir(local)).toEqual(['dd']);
  });
});
