/**
 * `muxftp ls -r`: the whole tree below a directory in one table (or --json), each entry by its
 * path relative to the directory given, a directory's entries right after it. Real server on
 * 127.0.0.1, the real CLI. Needs dist/ (npm run build).
 */

import { spawnSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../shared/errors.js';
import { MemoryStorage } from '../storage/memory.js';
import type { EntryInfo } from '../storage/types.js';
import { lsNameColumn, runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-lsr-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

const names = lsNameColumn;

async function serveTree(): Promise<string[]> {
  server = await startServer({ backend: 'disk' });
  const root = server.root!;
  await mkdir(join(root, 'site', 'a', 'b'), { recursive: true });
  await mkdir(join(root, 'site', 'empty'));
  await writeFile(join(root, 'site', 'a', 'b', 'deep.bin'), Buffer.alloc(1234, 1));
  await writeFile(join(root, 'site', 'a', 'one.txt'), 'one');
  await writeFile(join(root, 'site', 'a.txt'), 'a');
  await writeFile(join(root, 'outside.txt'), 'not under site');
  return ['--server', `127.0.0.1:${server.port}`];
}

describe('ls -r', () => {
  it('lists every entry below the directory, each directory followed by what is in it', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();

    const table = await runCli([...remote, 'ls', '-r', 'site'], cwd);
    expect(table.code).toBe(0);
    expect(table.stderr).toBe('');
    // 'a/' and what is in it come before 'a.txt', though '.' sorts before '/'.
    expect(names(table.stdout)).toEqual(['a/', 'a/b/', 'a/b/deep.bin', 'a/one.txt', 'a.txt', 'empty/']);
    expect(table.stdout).toMatch(/^file +1234 .* a\/b\/deep\.bin$/m);

    // ls(1)'s -R is the same listing.
    const upper = await runCli([...remote, 'ls', '-R', 'site'], cwd);
    expect(upper.code).toBe(0);
    expect(upper.stdout).toBe(table.stdout);

    const json = await runCli([...remote, '--json', 'ls', '-r', 'site/'], cwd);
    expect(json.code).toBe(0);
    const entries = JSON.parse(json.stdout) as Array<{
      path: string;
      name: string;
      type: string;
      size: number;
    }>;
    expect(entries.map((entry) => entry.path)).toEqual([
      'a',
      'a/b',
      'a/b/deep.bin',
      'a/one.txt',
      'a.txt',
      'empty',
    ]);
    expect(entries.find((entry) => entry.path === 'a/b/deep.bin')).toMatchObject({
      name: 'deep.bin',
      type: 'file',
      size: 1234,
    });

    // Without -r, only the directory's own entries, by name.
    const flat = await runCli([...remote, 'ls', 'site'], cwd);
    expect(names(flat.stdout)).toEqual(['a/', 'a.txt', 'empty/']);
  });

  it('shows a file as plain ls does, and fails a missing path or a file named as a directory', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();

    const file = await runCli([...remote, 'ls', '-r', 'site/a/one.txt'], cwd);
    expect(file.code).toBe(0);
    expect(names(file.stdout)).toEqual(['site/a/one.txt']); // by the path given, as ls(1) -R shows it

    const asDirectory = await runCli([...remote, 'ls', '-r', 'site/a/one.txt/'], cwd);
    expect(asDirectory.code).toBe(1);
    expect(asDirectory.stdout).toBe('');
    expect(asDirectory.stderr).toContain('NOT_A_DIRECTORY');

    const missing = await runCli([...remote, '--json', 'ls', '-r', 'site/nothing'], cwd);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  });

  it('lists what is neither file nor directory, without failing', async () => {
    const remote = await serveTree();
    expect(spawnSync('mkfifo', [join(server!.root!, 'site', 'a', 'pipe')]).status).toBe(0);
    const listed = await runCli([...remote, 'ls', '-r', 'site'], await tempDirs.make());
    expect(listed.code).toBe(0);
    expect(listed.stderr).toBe('');
    expect(names(listed.stdout)).toContain('a/pipe');
  });

  it('ends in a link loop on the server: links are followed at most 4 deep, the rest named', async () => {
    server = await startServer({ backend: 'disk' });
    const root = server.root!;
    await mkdir(join(root, 'loop'));
    await writeFile(join(root, 'loop', 'f'), 'f');
    // Two links to the directory itself: each level of the walk twice as wide as the one above.
    await symlink('.', join(root, 'loop', 'a'));
    await symlink('.', join(root, 'loop', 'b'));
    const cli = (...args: string[]) =>
      runCli(['--server', `127.0.0.1:${server!.port}`, ...args], root, { timeoutMs: 20_000 });
    const ls = await cli('ls', '-r', 'loop');
    expect(ls.code).toBe(0);
    // f at the top and in each of the 2 + 4 + 8 + 16 directories the four levels of links lead to.
    expect(names(ls.stdout).filter((name) => name.endsWith('f'))).toHaveLength(31);
    const local = await tempDirs.make();
    const get = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'loop', '--to', local],
      local,
      {
        timeoutMs: 20_000,
      },
    );
    expect(get.code).toBe(1);
    expect(get.stderr).toContain(
      'symbolic link not followed (a loop, or more than 4 links on the way): loop/a/a/a/a/a',
    );
  });

  it('shows what it could list, then fails naming the directory it could not', async () => {
    class OneUnlistable extends MemoryStorage {
      override async *listBatches(path: string): AsyncGenerator<EntryInfo[]> {
        if (path.replace(/^\/+/, '') === 'site/locked') {
          throw new StorageError('PERMISSION_DENIED', 'permission denied: site/locked', path);
        }
        yield* super.listBatches(path);
      }
    }
    const storage = new OneUnlistable();
    storage.volume.mkdirSync('/site/locked', { recursive: true });
    storage.volume.mkdirSync('/site/open');
    storage.volume.writeFileSync('/site/open/f.txt', 'f');
    server = await startServer({ storage });

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'ls', '-r', 'site'],
      await tempDirs.make(),
    );
    expect(result.code).toBe(1);
    expect(names(result.stdout)).toEqual(['locked/', 'open/', 'open/f.txt']);
    const errorLines = result.stderr.trim().split('\n');
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toContain('ls site/locked');
    expect(errorLines[0]).toContain('PERMISSION_DENIED');
  });
  it('--max-depth stops that many levels below the directory (and implies -r); -H shows sizes in units', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();

    const two = await runCli([...remote, 'ls', '-r', '--max-depth', '2', 'site'], cwd);
    expect(two).toMatchObject({ code: 0, stderr: '' });
    // a/b/ is listed, not opened.
    expect(names(two.stdout)).toEqual(['a/', 'a/b/', 'a/one.txt', 'a.txt', 'empty/']);
    const one = await runCli([...remote, 'ls', '--max-depth', '1', 'site', '--json'], cwd);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).map((entry: { path: string }) => entry.path)).toEqual([
      'a',
      'a.txt',
      'empty',
    ]);

    for (const bad of ['0', '-1', '1.5', 'deep']) {
      const refused = await runCli([...remote, 'ls', '--max-depth', bad, 'site'], cwd);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/--max-depth/);
      // One period: the parser's message already ends in one (commanderParser added a second).
      expect(refused.stderr).toContain('expected a positive integer.\n');
    }

    const human = await runCli([...remote, 'ls', '-r', '-H', 'site'], cwd);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^file +1\.21KiB {2}.* a\/b\/deep\.bin$/m);
    expect(human.stdout).toMatch(/^file +1B {2}.* a\.txt$/m);
    expect(human.stdout).toMatch(/^dir +- {2}.* a\/$/m);

    // ls(1)'s -h, which was this command's help (usage on stdout, exit 0, in a script's output).
    const lh = await runCli([...remote, 'ls', '-lh', 'site/a/b'], cwd);
    expect(lh).toMatchObject({ code: 0, stderr: '' });
    expect(lh.stdout).toMatch(/^file +rw.{7} +1\.21KiB {2}.* deep\.bin\n$/);
    expect((await runCli([...remote, 'ls', '--help'], cwd)).stdout).toMatch(/^Usage: muxftp ls /);
  });
});
