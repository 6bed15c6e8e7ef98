/**
 * Wildcards in the remote paths of get, rm and ls (cli/remoteGlob.ts): expanded against the
 * server's listings, as sftp's mget does. Real server on 127.0.0.1 (disk), the real CLI, temp
 * dirs. Needs dist/ (npm run build).
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer;
let local: string;
const tempDirs = new TempDirs('muxftp-patterns-');

beforeEach(async () => {
  server = await startServer({ backend: 'disk' });
  local = await tempDirs.make();
  const root = server.root!;
  await mkdir(join(root, 'logs', 'old'), { recursive: true });
  await mkdir(join(root, 'web'), { recursive: true });
  for (const name of ['a.log', 'b.log', 'notes.txt', '.hidden.log', 'old/c.log'])
    await writeFile(join(root, 'logs', name), `content of ${name}`);
  await writeFile(join(root, 'logs', 'old', 'app.log'), 'old app');
  await writeFile(join(root, 'web', 'app.log'), 'web app');
  await writeFile(join(root, 'odd*name'), 'the odd one');
  await writeFile(join(root, 'oddXname'), 'not this one');
  await writeFile(join(root, 'report[1].pdf'), 'bracketed');
});

afterEach(async () => {
  await server.stop();
  await tempDirs.removeAll();
});

const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server.port}`, ...args], local);

describe('remote wildcards', () => {
  it('get takes the files a pattern matched as their listing described them: no stat each before it goes', async () => {
    const ops: string[] = [];
    const proxy = await startFrameProxy(server.port, {
      fromClient: (frame) => {
        if (frame.type === FrameType.OPEN) ops.push(String(jsonOf(frame).op));
        return frame;
      },
    });
    try {
      const result = await runCli(
        ['--server', `127.0.0.1:${proxy.port}`, 'get', 'logs/*.log', '--to', 'out', '-p'],
        local,
      );
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect((await readdir(join(local, 'out'))).sort()).toEqual(['a.log', 'b.log']);
      // One listing, the two downloads: a stat per file cost a round trip each before any byte.
      expect(ops.filter((op) => op !== 'mkdir').sort()).toEqual(['get', 'get', 'list']);
    } finally {
      await proxy.close();
    }
  });

  it('get downloads the files a pattern matches, and only those (* skips dot files and directories below)', async () => {
    const result = await cli('get', 'logs/*.log', '--to', 'out', '-p');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(join(local, 'out'))).sort()).toEqual(['a.log', 'b.log']);
  });

  it('a pattern that matches nothing fails NOT_FOUND and writes nothing', async () => {
    const result = await cli('get', 'logs/*.zip', '--to', 'out', '-p');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('get logs/*.zip: no remote path matches logs/*.zip (NOT_FOUND)');
    // Not even the directory -p would have made for it.
    expect(await readdir(local)).toEqual([]);
  });

  it('several matches for one local name (or stdout) fail, pointing at --to', async () => {
    for (const target of ['one.log', '-']) {
      const result = await cli('get', 'logs/?.log', target);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        'logs/?.log matches 2 remote paths (INVALID_PATH); download them with --to',
      );
      expect(result.stdout).toBe('');
    }
    expect(await readdir(local)).toEqual([]);
  });

  it('a backslash makes a wildcard literal; a name with wildcard characters still names itself', async () => {
    expect(await cli('get', 'odd\\*name', '--to', 'out', '-p')).toMatchObject({ code: 0 });
    expect(await readdir(join(local, 'out'))).toEqual(['odd*name']);
    expect(await cli('get', 'report[1].pdf', '--to', 'out')).toMatchObject({ code: 0 });
    expect((await readdir(join(local, 'out'))).sort()).toEqual(['odd*name', 'report[1].pdf']);
  });

  it('a name with wildcard characters names that file alone, not also what the pattern matches', async () => {
    const root = server.root!;
    await writeFile(join(root, 'report1.pdf'), 'the pattern matches this one');
    // Before: both matched, so get to one local name was refused and rm removed both.
    expect(await cli('get', 'report[1].pdf', 'one.pdf')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(local, 'one.pdf'), 'utf8')).toBe('bracketed');
    expect(await cli('rm', 'report[1].pdf')).toMatchObject({ code: 0 });
    expect(await readFile(join(root, 'report1.pdf'), 'utf8')).toBe('the pattern matches this one');
    await expect(stat(join(root, 'report[1].pdf'))).rejects.toMatchObject({ code: 'ENOENT' });
    // Only brackets and braces: a file literally named '*' does not narrow `*` to itself.
    await mkdir(join(root, 'x'));
    for (const name of ['*', 'a', 'b']) await writeFile(join(root, 'x', name), name);
    expect(await cli('get', 'x/*', '--to', 'all', '-p')).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(join(local, 'all'))).sort()).toEqual(['*', 'a', 'b']);
    // An escaped bracket before one is no exception ('x\\[*' is every name starting 'x[').
    for (const name of ['x[*', 'x[a]']) await writeFile(join(root, 'x', name), name);
    expect(await cli('get', 'x/x\\[*', '--to', 'brackets', '-p')).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(join(local, 'brackets'))).sort()).toEqual(['x[*', 'x[a]']);
    // Nor does a file of that name where the pattern must lead into a directory.
    await mkdir(join(root, 'a1'));
    await writeFile(join(root, 'a1', 'x'), 'in a1');
    await writeFile(join(root, 'a[1]'), 'a file');
    expect(await cli('get', 'a[1]/x', 'x-from-a1')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(local, 'x-from-a1'), 'utf8')).toBe('in a1');
    // With the file itself gone, the pattern is a pattern again.
    expect(await cli('rm', 'report[1].pdf')).toMatchObject({ code: 0 });
    await expect(stat(join(root, 'report1.pdf'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('ls lists what a pattern matches by path, a wildcard in a directory too; ls -r refuses a pattern', async () => {
    const names = async (pattern: string) => {
      const listed = await cli('--json', 'ls', pattern);
      expect(listed.code).toBe(0);
      return JSON.parse(listed.stdout).map((entry: { name: string }) => entry.name);
    };
    expect(await names('*/app.log')).toEqual(['web/app.log']);
    expect(await names('*/*/app.log')).toEqual(['logs/old/app.log']);
    expect(await names('logs/{a,notes}.*')).toEqual(['logs/a.log', 'logs/notes.txt']);
    const dirs = await cli('--json', 'ls', 'logs/*/');
    expect(JSON.parse(dirs.stdout)).toMatchObject([{ name: 'logs/old', type: 'dir' }]);
    const recursive = await cli('ls', '-r', 'logs/*');
    expect(recursive.code).toBe(1);
    expect(recursive.stderr).toContain('ls -r lists a directory, not a pattern');
  });

  it('rm removes what a pattern matches; a directory among them fails alone without -r', async () => {
    const result = await cli('--json', 'rm', 'logs/*');
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual([
      { path: 'logs/a.log', ok: true },
      { path: 'logs/b.log', ok: true },
      { path: 'logs/notes.txt', ok: true },
      { path: 'logs/old', ok: false, error: expect.objectContaining({ code: 'IS_A_DIRECTORY' }) },
    ]);
    expect((await readdir(join(server.root!, 'logs'))).sort()).toEqual(['.hidden.log', 'old']);
    expect(await cli('rm', '*/app.log')).toMatchObject({ code: 0, stderr: '' });
    expect(await readdir(join(server.root!, 'web'))).toEqual([]);
    expect(await readdir(join(server.root!, 'logs', 'old'))).toEqual(['app.log', 'c.log']);
  });

  it("'(', ')', '|' and '+' are themselves, as in a shell: rm '*(1).jpg' removes the copies, not IMG1.jpg", async () => {
    const photos = join(server.root!, 'photos');
    await mkdir(photos);
    for (const name of ['IMG1.jpg', 'IMG(1).jpg', 'IMG.jpg', 'c+d.txt', 'cd.txt'])
      await writeFile(join(photos, name), name);
    expect(await cli('rm', 'photos/*(1).jpg')).toMatchObject({ code: 0, stderr: '' });
    expect(await cli('rm', 'photos/c+*')).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(photos)).sort()).toEqual(['IMG.jpg', 'IMG1.jpg', 'cd.txt']);
  });

  it("a '\"' is itself, as in a shell: rm 'quotes/*\"draft\"*' keeps draft.txt (it removed every file there)", async () => {
    const quotes = join(server.root!, 'quotes');
    await mkdir(quotes);
    for (const name of ['a "draft" b.txt', 'draft.txt', 'said "hi"', 'said hi'])
      await writeFile(join(quotes, name), name);
    expect(await cli('rm', 'quotes/*"draft"*')).toMatchObject({ code: 0, stderr: '' });
    expect(await cli('rm', 'quotes/*"')).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(quotes)).sort()).toEqual(['draft.txt', 'said hi']);
  });

  it("a shell's `[!…]` matches what its class does not list: rm 'logs/[!a]*.log' keeps a.log", async () => {
    const listed = await cli('ls', 'logs/[!a]*.log');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('logs/b.log');
    expect(listed.stdout).not.toContain('logs/a.log');
    expect(await cli('rm', 'logs/[!a]*.log')).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(join(server.root!, 'logs'))).sort()).toEqual([
      '.hidden.log',
      'a.log',
      'notes.txt',
      'old',
    ]);
  });
});
