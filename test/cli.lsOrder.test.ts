/**
 * `muxftp ls` sorted as ls(1) sorts: by name (the default), newest first (-t), largest first
 * (-S), any of them reversed (--reverse, as -r is recursive here); a recursive listing within
 * each directory; every format (-l, -lh, -1, --json) in that order. Real server on 127.0.0.1,
 * real files whose times are set, the real CLI. Needs dist/ (npm run build).
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lsNameColumn, runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-lsorder-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

const names = lsNameColumn;

const at = (year: number): Date => new Date(Date.UTC(year, 0, 1));

/**
 * site/: a.txt (10 B, 2020), b.bin (3000 B, 2023), c.log (500 B, 2021), d.txt (10 B, 2020: ties
 * a.txt on both), sub/ (2022) holding x (1 B, 2019) and y (2 B, 2024).
 */
async function serveSite(): Promise<string[]> {
  server = await startServer({ backend: 'disk' });
  const site = join(server.root!, 'site');
  await mkdir(join(site, 'sub'), { recursive: true });
  const files: Array<[string, number, number]> = [
    ['a.txt', 10, 2020],
    ['b.bin', 3000, 2023],
    ['c.log', 500, 2021],
    ['d.txt', 10, 2020],
    ['sub/x', 1, 2019],
    ['sub/y', 2, 2024],
  ];
  for (const [name, size, year] of files) {
    await writeFile(join(site, name), Buffer.alloc(size, 1));
    await utimes(join(site, name), at(year), at(year));
  }
  // After its files: writing them set its time.
  await utimes(join(site, 'sub'), at(2022), at(2022));
  return ['--server', `127.0.0.1:${server.port}`];
}

describe('ls sorting', () => {
  it('sorts by name, newest first (-t), largest first (-S), and reverses any (--reverse)', async () => {
    const remote = await serveSite();
    const cwd = await tempDirs.make();
    const listed = async (...args: string[]): Promise<string[]> => {
      const result = await runCli([...remote, 'ls', ...args, 'site'], cwd);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
      return names(result.stdout);
    };
    expect(await listed()).toEqual(['a.txt', 'b.bin', 'c.log', 'd.txt', 'sub/']);
    expect(await listed('--reverse')).toEqual(['sub/', 'd.txt', 'c.log', 'b.bin', 'a.txt']);
    // a.txt and d.txt share their time and size: by name.
    expect(await listed('-t')).toEqual(['b.bin', 'sub/', 'c.log', 'a.txt', 'd.txt']);
    expect(await listed('-t', '--reverse')).toEqual(['d.txt', 'a.txt', 'c.log', 'sub/', 'b.bin']);
    // A directory shows no size, and sorts as 0.
    expect(await listed('-S')).toEqual(['b.bin', 'c.log', 'a.txt', 'd.txt', 'sub/']);
    expect(await listed('-S', '--reverse')).toEqual(['sub/', 'd.txt', 'a.txt', 'c.log', 'b.bin']);
    // ls(1)'s spellings, in any format.
    expect(await listed('-lt')).toEqual(['b.bin', 'sub/', 'c.log', 'a.txt', 'd.txt']);
    expect(await listed('-lhS')).toEqual(['b.bin', 'c.log', 'a.txt', 'd.txt', 'sub/']);
    expect(await listed('-1t')).toEqual(['b.bin', 'sub/', 'c.log', 'a.txt', 'd.txt']);

    const json = await runCli([...remote, '--json', 'ls', '-S', 'site'], cwd);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as Array<{ name: string }>).map((entry) => entry.name)).toEqual([
      'b.bin',
      'c.log',
      'a.txt',
      'd.txt',
      'sub',
    ]);
  });

  it('sorts a recursive listing within each directory, each directory followed by its entries', async () => {
    const remote = await serveSite();
    const cwd = await tempDirs.make();
    const newest = await runCli([...remote, 'ls', '-r', '-t', 'site'], cwd);
    expect(newest.code).toBe(0);
    expect(names(newest.stdout)).toEqual(['b.bin', 'sub/', 'sub/y', 'sub/x', 'c.log', 'a.txt', 'd.txt']);

    const json = await runCli([...remote, '--json', 'ls', '-r', '-S', '--reverse', 'site'], cwd);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as Array<{ path: string }>).map((entry) => entry.path)).toEqual([
      'sub',
      'sub/x',
      'sub/y',
      'd.txt',
      'a.txt',
      'c.log',
      'b.bin',
    ]);
  });

  it("sorts a pattern's matches, and takes one of -t and -S", async () => {
    const remote = await serveSite();
    const cwd = await tempDirs.make();
    const matched = await runCli([...remote, 'ls', '-t', 'site/*.*'], cwd);
    expect(matched.code).toBe(0);
    expect(names(matched.stdout)).toEqual(['site/b.bin', 'site/c.log', 'site/a.txt', 'site/d.txt']);

    const both = await runCli([...remote, 'ls', '-t', '-S', 'site'], cwd);
    expect(both.code).toBe(2);
    expect(both.stdout).toBe('');
    expect(both.stderr).toContain("option '-t' cannot be used with option '-S'");
  });
});
