/**
 * put -r / get -r --exclude (cli/excludes.ts): what matches is left out of the tree, a directory
 * with everything in it; names match at any depth, a pattern with '/' the path below the tree.
 * Real server on 127.0.0.1 (disk), the real CLI, temp dirs. Needs dist/ (npm run build).
 */
import { mkdir, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-excludes-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** Every file under `dir`, by its path below it, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/** A site tree: pages, a temp file at two depths, a cache dir, a .git dir. */
async function makeSite(root: string): Promise<void> {
  for (const dir of ['cache/deep', 'sub', '.git']) await mkdir(join(root, dir), { recursive: true });
  const files = [
    'index.html',
    'draft.tmp',
    'cache/deep/blob',
    'sub/keep.txt',
    'sub/skip.txt',
    'sub/old.tmp',
    '.git/HEAD',
  ];
  for (const file of files) await writeFile(join(root, file), file);
}

describe('--exclude', () => {
  it('put -r leaves out names at any depth, paths below the tree, and whole directories', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    const excludes = [
      '--exclude',
      '*.tmp',
      '--exclude',
      'cache',
      '--exclude',
      'sub/skip.txt',
      '--exclude',
      '.git',
    ];
    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'site', ...excludes],
      local,
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'site'))).toEqual(['index.html', 'sub/keep.txt']);
    expect(await readdir(join(server.root!, 'site'))).not.toContain('cache');
  });

  it('get -r leaves out what matches on the server, and the directories it would have made', async () => {
    server = await startServer({ backend: 'disk' });
    await makeSite(join(server.root!, 'site'));
    const local = await tempDirs.make();
    const result = await runCli(
      [
        '--server',
        `127.0.0.1:${server.port}`,
        'get',
        '-r',
        'site',
        'copy',
        '--exclude',
        'c*',
        '--exclude',
        '*/*.tmp',
      ],
      local,
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(local, 'copy'))).toEqual([
      '.git/HEAD',
      'draft.tmp', // '*/*.tmp' is a path: one level down only
      'index.html',
      'sub/keep.txt',
      'sub/skip.txt',
    ]);
    expect(await readdir(join(local, 'copy'))).not.toContain('cache');
  });

  it("a trailing '/' matches directories only, at any depth (rsync's `cache/`), both ways", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const tree = join(local, 'tree');
    for (const dir of ['sub', 'other/sub', 'files']) await mkdir(join(tree, dir), { recursive: true });
    for (const file of ['sub/f', 'other/sub/g', 'files/sub', 'keep']) await writeFile(join(tree, file), file);
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);
    // Before: 'sub/' was anchored (only tree/sub) and matched a file named sub as well.
    expect(await cli('put', '-r', 'tree', '--exclude', 'sub/')).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'tree'))).toEqual(['files/sub', 'keep']);
    await mkdir(join(server.root!, 'tree', 'other', 'sub'), { recursive: true });
    await writeFile(join(server.root!, 'tree', 'other', 'sub', 'g'), 'g');
    expect(await cli('get', '-r', 'tree', 'copy', '--exclude', 'sub/')).toMatchObject({
      code: 0,
      stderr: '',
    });
    expect(await filesUnder(join(local, 'copy'))).toEqual(['files/sub', 'keep']);
    // With a '/' before the end it is a path below the tree, directories only still.
    expect(await cli('get', '-r', 'tree', 'copy2', '--exclude', 'other/sub/')).toMatchObject({ code: 0 });
    expect(await filesUnder(join(local, 'copy2'))).toEqual(['files/sub', 'keep']);
  });

  it('warns of a pattern that left nothing out, saying how to write one with the tree named in it', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    const at = ['--server', `127.0.0.1:${server.port}`];
    const siteSub =
      'muxftp: warning: --exclude site/sub matched nothing (one with a / is matched below each tree given: for site/sub, write /sub)\n';
    for (const [command, stderr] of [
      // Two patterns matching one entry both count; one for directories matches no file of its name.
      [
        [
          'put',
          '-r',
          'site',
          '--exclude',
          '*.tmp',
          '--exclude',
          '.git',
          '--exclude',
          '.git/',
          '--exclude',
          'skip.txt/',
        ],
        `muxftp: warning: --exclude skip.txt/ matched nothing\n${siteSub}`,
      ],
      [['get', '-r', 'site', 'copy', '--exclude', 'index.html'], siteSub],
    ] as const) {
      // tar's and rsync's way to write it (the tree's name first) matched nothing here, silently.
      const result = await runCli([...at, ...command, '--exclude', 'site/sub'], local);
      expect({ command, code: result.code, stderr: result.stderr }).toEqual({ command, code: 0, stderr });
    }
    expect(await filesUnder(join(local, 'copy'))).toContain('sub/keep.txt');
    // `put -r .` in site: the tree is site all the same (before: no hint, '.' taken for its name).
    const dot = await runCli(
      [...at, 'put', '-r', '.', 'dotted', '--exclude', 'site/sub'],
      join(local, 'site'),
    );
    expect(dot).toMatchObject({ code: 0, stderr: siteSub });
    // What it suggests leaves out that path alone: not a directory of that name deeper down.
    await mkdir(join(local, 'site', 'deep', 'sub'), { recursive: true });
    await writeFile(join(local, 'site', 'deep', 'sub', 'kept.txt'), 'k');
    expect(await runCli([...at, 'put', '-r', 'site', 'anchored', '--exclude', '/sub'], local)).toMatchObject({
      code: 0,
      stderr: '',
    });
    const anchored = await filesUnder(join(server.root!, 'anchored'));
    expect(anchored).toContain('deep/sub/kept.txt');
    expect(anchored.filter((file) => file.startsWith('sub/'))).toEqual([]);
  });

  it('--exclude-from reads the patterns of a file, one a line, as rsync does', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    await writeFile(join(local, 'excludes'), '# what a build leaves\n*.tmp\n\ncache\r\n.git\n');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const result = await runCli(
      [...at, 'put', '-r', 'site', '--exclude-from', 'excludes', '--exclude', 'sub/skip.txt'],
      local,
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'site'))).toEqual(['index.html', 'sub/keep.txt']);
    const missing = await runCli([...at, 'put', '-r', 'site', '--exclude-from', 'nowhere'], local);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /^muxftp: cannot read --exclude-from nowhere: no such file or directory\n/,
    );
  });

  it("--exclude-from reads rsync's '- ' and '+ ' prefixes and ';' comments: what the file keeps out, --delete keeps", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    await mkdir(join(server.root!, 'site'));
    await writeFile(join(server.root!, 'site', 'notes.tmp'), 'only on the server');
    // An exclude file written for rsync (rsnapshot's are): each prefix says what its line is.
    await writeFile(join(local, 'rules'), '; kept out\n- *.tmp\n- .git\n+ sub/keep.txt\n- sub/*\ncache\n');
    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'site', '--exclude-from', 'rules', '--delete'],
      local,
    );
    // Read as names, no line matched: notes.tmp went as not in the tree, and everything was sent.
    expect(await filesUnder(join(server.root!, 'site'))).toEqual(['index.html', 'notes.tmp', 'sub/keep.txt']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
  });

  it("--exclude-from reads rsync's '!' line: the rules before it, the command line's too, are dropped", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    await writeFile(join(local, 'rules'), '- sub/\n!\n- *.tmp\n- .git\n- cache\n');
    const result = await runCli(
      [
        '--server',
        `127.0.0.1:${server.port}`,
        'put',
        '-r',
        'site',
        '--exclude',
        'index.html',
        '--exclude-from',
        'rules',
      ],
      local,
    );
    // Read as a name, '!' matched nothing and index.html and sub stayed out.
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'site'))).toEqual([
      'index.html',
      'sub/keep.txt',
      'sub/skip.txt',
    ]);
    // On the command line as rsync takes it: `--exclude '!'` clears too, not a name matched nothing.
    const at = ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'site', '--to', 'again'];
    const cleared = await runCli([...at, '--exclude', 'sub', '--include', '!', '--exclude', '.git'], local);
    expect(cleared).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'again', 'site'))).toContain('sub/skip.txt');
  });

  it('--include keeps what matches when it comes first, the order given deciding, --exclude-from in its place', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    await writeFile(join(local, 'excludes'), 'sub/*\n');
    const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server!.port}`, ...args], local);
    const everything = ['.git/HEAD', 'cache/deep/blob', 'draft.tmp', 'index.html'];
    for (const [destination, rules, kept] of [
      ['a', ['--include', 'keep.txt', '--exclude', 'sub/*'], ['sub/keep.txt']],
      // Checked in the order given: the --exclude matches first, and decides.
      ['b', ['--exclude', 'sub/*', '--include', 'keep.txt'], []],
      ['c', ['--include', 'keep.txt', '--exclude-from', 'excludes'], ['sub/keep.txt']],
      ['d', ['--exclude-from', 'excludes', '--include=keep.txt'], []],
    ] as const) {
      const result = await cli('put', '-r', 'site', destination, ...rules);
      expect({ rules, result: { code: result.code, stderr: result.stderr } }).toEqual({
        rules,
        result: { code: 0, stderr: '' },
      });
      expect({ rules, files: await filesUnder(join(server.root!, destination)) }).toEqual({
        rules,
        files: [...everything, ...kept],
      });
    }
  });

  it("get -r with rsync's way to copy one kind of file: --include '*/' --include '*.tmp' --exclude '*'", async () => {
    server = await startServer({ backend: 'disk' });
    await makeSite(join(server.root!, 'site'));
    const local = await tempDirs.make();
    const rules = ['--include', '*/', '--include', '*.tmp', '--exclude', '*'];
    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'site', 'copy', ...rules],
      local,
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(local, 'copy'))).toEqual(['draft.tmp', 'sub/old.tmp']);
    // As rsync without -m, the directories are made, empty or not.
    expect((await readdir(join(local, 'copy'))).sort()).toEqual(['.git', 'cache', 'draft.tmp', 'sub']);
    // put -r the same, from a local tree: a directory is not left out by its kind unknown.
    const put = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'copy', 'back', ...rules],
      local,
    );
    expect(put).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'back'))).toEqual(['draft.tmp', 'sub/old.tmp']);
  });

  it('an --include inside a directory left out decides nothing, as in rsync, and is warned of', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeSite(join(local, 'site'));
    const at = ['--server', `127.0.0.1:${server.port}`];
    const result = await runCli(
      [
        ...at,
        'put',
        '-r',
        'site',
        '--exclude',
        'cache',
        '--include',
        'cache/deep/blob',
        '--include',
        '*.nothing',
      ],
      local,
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(
      // Before: also "for cache/deep/blob, write deep/blob", as if cache were the tree given (site).
      'muxftp: warning: --include cache/deep/blob matched nothing (nothing in a directory left out is looked at)\n' +
        'muxftp: warning: --include *.nothing matched nothing (nothing in a directory left out is looked at)\n',
    );
    expect(await readdir(join(server.root!, 'site'))).not.toContain('cache');
    // Included first, the directory is walked: what else is in it is left out by its own rule.
    const first = await runCli(
      [...at, 'put', '-r', 'site', 'kept', '--include', '/cache/deep/blob', '--exclude', '/cache/deep/*'],
      local,
    );
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'kept', 'cache'))).toEqual(['deep/blob']);
  });

  it('reads `**` and a trailing `dir/***` as rsync does, put and get alike', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    for (const root of [join(local, 'src'), join(server.root!, 'src')]) {
      await mkdir(join(root, 'a', 'b'), { recursive: true });
      for (const file of ['a/b/z.c', 'a/n.txt', 'a/y.c', 'top.c']) await writeFile(join(root, file), file);
    }
    const at = ['--server', `127.0.0.1:${server.port}`];
    const all = ['a', 'a/b', 'a/b/z.c', 'a/n.txt', 'a/y.c', 'top.c'];
    // What `rsync -r RULES src/ dst/` (3.x) copies, files and directories.
    const cases: Array<[string[], string[]]> = [
      // The directory and everything in it.
      [
        ['--include', '/a/***', '--exclude', '*'],
        ['a', 'a/b', 'a/b/z.c', 'a/n.txt', 'a/y.c'],
      ],
      // `a/**` is what is inside a, not a itself, which '*' leaves out with all it holds.
      [['--include', 'a/**', '--exclude', '*'], []],
      [
        ['--exclude', '/a/**'],
        ['a', 'top.c'],
      ],
      [['--exclude', '/a/***'], ['top.c']],
      // `**` between two names stands for one name at least.
      [['--exclude', '/a/**/b'], all],
      [['--exclude', '/**/a'], all],
      [
        ['--exclude', '/**/b'],
        ['a', 'a/n.txt', 'a/y.c', 'top.c'],
      ],
      [
        ['--exclude', '/**/z.c'],
        ['a', 'a/b', 'a/n.txt', 'a/y.c', 'top.c'],
      ],
    ];
    for (const [index, [rules, copied]] of cases.entries()) {
      const put = await runCli([...at, 'put', '-r', 'src', `put${index}`, ...rules], local);
      const get = await runCli([...at, 'get', '-r', 'src', `get${index}`, ...rules], local);
      expect({ rules, put: put.code, get: get.code }).toEqual({ rules, put: 0, get: 0 });
      for (const copy of [join(server.root!, `put${index}`), join(local, `get${index}`)]) {
        const entries = await readdir(copy, { recursive: true }).catch(() => []);
        expect({ rules, entries: entries.sort() }).toEqual({ rules, entries: copied });
      }
    }
  });

  it("reads a shell's `[!…]` as the class of what it does not list, as rsync does, and --delete keeps what it leaves out", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const write = async (root: string, names: string[]) => {
      await mkdir(root, { recursive: true });
      for (const name of names) await writeFile(join(root, name), name);
    };
    for (const root of [join(local, 'src'), join(server.root!, 'src')]) await write(root, ['ax', 'bx', 'cx']);
    const at = ['--server', `127.0.0.1:${server.port}`];
    const rules = ['--exclude', '[!a]*'];
    const put = await runCli([...at, 'put', '-r', 'src', 'put1', ...rules], local);
    const get = await runCli([...at, 'get', '-r', 'src', 'get1', ...rules], local);
    expect([put.code, get.code]).toEqual([0, 0]);
    expect(await filesUnder(join(server.root!, 'put1'))).toEqual(['ax']);
    expect(await filesUnder(join(local, 'get1'))).toEqual(['ax']);
    // What the rule leaves out is kept at the destination: `b-only` is there alone, on purpose.
    await write(join(server.root!, 'www'), ['ax', 'b-only']);
    const mirror = await runCli([...at, 'put', '-r', 'src/.', 'www', '--delete', ...rules], local);
    expect(mirror).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'www'))).toEqual(['ax', 'b-only']);
  });

  it("reads '(', ')', '|' and '+' as themselves, as rsync does: --exclude '* (1).*' leaves out a browser's second copy", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'src'));
    for (const name of ['report.pdf', 'report (1).pdf', 'report 1.pdf', 'a+b.txt', 'aab.txt'])
      await writeFile(join(local, 'src', name), name);
    const at = ['--server', `127.0.0.1:${server.port}`];
    const rules = ['--exclude', '* (1).*', '--exclude', 'a+b.*', '--exclude', '*|x'];
    const put = await runCli([...at, 'put', '-r', 'src', ...rules], local);
    expect(put.code).toBe(0);
    expect(await filesUnder(join(server.root!, 'src'))).toEqual(['aab.txt', 'report 1.pdf', 'report.pdf']);
  });

  it("reads '\"' and '$$' as themselves and '\\d' as d, as rsync does: --exclude '*\"' left out every name", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'src'));
    for (const name of ['said "hi"', 'notes.txt', '$$.log', 'd1', '1'])
      await writeFile(join(local, 'src', name), name);
    await mkdir(join(server.root!, 'src'));
    for (const name of ['said "hi"', 'old.txt']) await writeFile(join(server.root!, 'src', name), 'there');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const rules = ['--exclude', '*"', '--exclude', '$$*', '--exclude', '\\d*'];
    const put = await runCli([...at, 'put', '-r', 'src', '--delete', ...rules], local);
    expect(put).toMatchObject({ code: 0, stderr: 'muxftp: deleted src/old.txt\n' });
    expect(await filesUnder(join(server.root!, 'src'))).toEqual(['1', 'notes.txt', 'said "hi"']);
    expect(await readFile(join(server.root!, 'src', 'said "hi"'), 'utf8')).toBe('there');
  });

  it('put -r reports a name that is not UTF-8 which the rules keep, a directory by its kind', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const latin1 = (...names: string[]) =>
      Buffer.concat([Buffer.from(`${local}/nu/`), Buffer.from(names.join('/'), 'latin1')]);
    await mkdir(latin1('caf\u00e9'), { recursive: true });
    await writeFile(latin1('caf\u00e9', 'x.c'), 'c');
    await writeFile(latin1('f\u00e9.c'), 'c');
    await writeFile(latin1('f\u00e9.txt'), 't');
    await writeFile(join(local, 'nu', 'ok.c'), 'c');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const said = (name: string) =>
      `muxftp: put nu/${name}: name is not UTF-8 (muxftp sends UTF-8 names only), skipped: nu/${name} (INVALID_PATH)`;
    const plain = await runCli([...at, 'put', '-r', 'nu', 'nu1', '-q'], local);
    expect(plain.code).toBe(1);
    expect(plain.stderr.split('\n').filter(Boolean).sort()).toEqual(
      [said('caf\ufffd'), said('f\ufffd.c'), said('f\ufffd.txt')].sort(),
    );
    // The directory is kept by '*/' and the .c file by '*.c': both said; the .txt file left out.
    const rules = ['--include', '*/', '--include', '*.c', '--exclude', '*'];
    const kept = await runCli([...at, 'put', '-r', 'nu', 'nu2', '-q', ...rules], local);
    expect(kept.code).toBe(1);
    expect(kept.stderr.split('\n').filter(Boolean).sort()).toEqual(
      [said('caf\ufffd'), said('f\ufffd.c')].sort(),
    );
    expect(await filesUnder(join(server.root!, 'nu2'))).toEqual(['ok.c']);
  });

  it('get -r leaves out a name on the server muxftp cannot name when a rule matches it, as put -r does a local one', async () => {
    server = await startServer({ backend: 'disk' });
    const site = join(server.root!, 'site');
    await mkdir(site);
    await writeFile(join(site, 'good'), 'ok');
    await writeFile(join(site, 'we\\ird'), 'backslash');
    await writeFile(Buffer.concat([Buffer.from(`${site}/`), Buffer.from('caf\u00e9', 'latin1')]), 'latin1');
    const local = await tempDirs.make();
    await mkdir(join(local, 'site'));
    await writeFile(join(local, 'site', 'stale'), 'gone from the server');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const rules = ['--exclude', 'we*', '--exclude', 'caf*'];
    const result = await runCli([...at, 'get', '-r', 'site', '--delete', ...rules], local);
    expect(result).toMatchObject({ code: 0, stderr: 'muxftp: deleted site/stale\n' });
    expect(await filesUnder(join(local, 'site'))).toEqual(['good']);
    // Not UTF-8, it lists with no kind: a rule for files alone (`--include '*/' … --exclude '*'`)
    // does not leave out what may be a directory.
    const kinds = await runCli(
      [...at, 'get', '-r', 'site', 'kinds', '--include', '*/', '--exclude', '*'],
      local,
    );
    expect(kinds.code).toBe(1);
    expect(kinds.stderr).toContain('name on the server is not UTF-8');
    expect(kinds.stderr).not.toContain('we\\ird');
    // The server's copy of it, as a destination: kept as excluded, no failure to remove it.
    await mkdir(join(local, 'up'));
    await writeFile(join(local, 'up', 'good'), 'ok');
    const put = await runCli([...at, 'put', '-r', 'up/.', 'site', '--delete', ...rules], local);
    expect(put).toMatchObject({ code: 0, stderr: '' });
    expect((await readdir(site)).filter((name) => name.startsWith('we'))).toEqual(['we\\ird']);
  });

  it("reads a backslash as itself in a pattern with no wildcard, as rsync does: --exclude 'we\\ird' leaves out that name", async () => {
    server = await startServer({ backend: 'disk' });
    const site = join(server.root!, 'site');
    await mkdir(site);
    for (const name of ['good', 'we\\ird', 'weird']) await writeFile(join(site, name), name);
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    const result = await runCli([...at, 'get', '-r', 'site', '--exclude', 'we\\ird'], local);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(local, 'site'))).toEqual(['good', 'weird']);
    // With a wildcard it escapes what follows, as in rsync: 'we\\i*' is every name starting 'wei'.
    const escaping = await runCli(
      [...at, 'get', '-r', 'site', 'two', '--exclude', 'we\\i*', '--exclude', '*\\\\*'],
      local,
    );
    expect(escaping).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(local, 'two'))).toEqual(['good']);
  });

  it('a pattern that names nothing (empty, or only slashes) is a usage error, not an internal one', async () => {
    const local = await tempDirs.make();
    await mkdir(join(local, 'site'));
    await writeFile(join(local, 'rules'), '*.tmp\n/\n');
    const at = ['--server', '127.0.0.1:1', 'put', '-r', 'site'];
    for (const [rule, said] of [
      [['--exclude', ''], "--exclude '' names nothing"],
      [['--include', '//'], '--include // names nothing'],
      [['--exclude-from', 'rules'], '--exclude-from rules: line 2, /, names nothing'],
    ] as const) {
      const result = await runCli([...at, ...rule], local);
      expect({ rule, code: result.code }).toEqual({ rule, code: 2 });
      expect(result.stderr).toContain(said);
      expect(result.stderr).not.toContain('internal error');
    }
  });

  it('without -r is a usage error', async () => {
    const local = await tempDirs.make();
    await writeFile(join(local, 'a.txt'), 'a');
    const result = await runCli(['--server', '127.0.0.1:1', 'put', 'a.txt', '--exclude', '*.tmp'], local);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--exclude leaves parts out of the trees -r walks: add -r');
    const include = await runCli(['--server', '127.0.0.1:1', 'get', 'a.txt', '--include', 'a*'], local);
    expect(include.code).toBe(2);
    expect(include.stderr).toContain('--include picks from the trees -r walks: add -r');
  });

  it('--exclude-from refuses a file past 16 MiB, not read into memory however large (/dev/zero)', async () => {
    const local = await tempDirs.make();
    // Sparse: 16 MiB and a byte of nothing on the disk.
    const rules = join(local, 'rules');
    await writeFile(rules, '');
    await truncate(rules, 16 * 1024 * 1024 + 1);
    const result = await runCli(
      ['--server', '127.0.0.1:1', 'put', '-r', '.', '--exclude-from', rules],
      local,
    );
    // Before: read whole, as /dev/zero would be until memory ran out, and taken for one pattern.
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `cannot read --exclude-from ${rules}: larger than 16 MiB: not an exclude file`,
    );
  });
});

describe('--exclude matching a source given (rules apply within the trees given)', () => {
  it('get -r --delete of a tree whose own name a rule matches is refused before anything is done', async () => {
    server = await startServer({ backend: 'disk' });
    for (const file of ['g/src/a.c', 'g/src/spare.txt', 'g/doc/b.txt']) {
      await mkdir(join(server.root!, file, '..'), { recursive: true });
      await writeFile(join(server.root!, file), file);
    }
    const local = await tempDirs.make();
    await mkdir(join(local, 'og', 'src'), { recursive: true });
    await writeFile(join(local, 'og', 'src', 'precious'), 'kept out of the mirror by --exclude src');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const result = await runCli(
      [...at, 'get', '-r', 'g/*', '--exclude', 'src', '--to', 'og', '--delete'],
      local,
    );
    // Before: g/src was mirrored whole and og/src/precious deleted ("--exclude src matched nothing").
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--delete: --exclude src matches g/src itself, a tree given');
    expect(result.stderr).toContain(
      'leave g/src out of the sources, or to mirror it, the rules applying within it, give --include /src/ before them (nothing done)',
    );
    expect(await filesUnder(join(local, 'og'))).toEqual(['src/precious']);
    // Anchored as rsync anchors it (at the source's own level), and from an --exclude-from file too.
    await writeFile(join(local, 'rules'), '- /src\n');
    const fromFile = await runCli(
      [...at, 'get', '-r', 'g/*', '--exclude-from', 'rules', '--to', 'og', '--delete'],
      local,
    );
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toContain('--exclude /src matches g/src itself');
    // `g/src/` is copied as og/src (a trailing / is no rsync contents here): refused as g/src is.
    // Before: it was taken for its contents, unnamed, mirrored whole and og/src/precious deleted.
    const slashed = await runCli(
      [...at, 'get', '-r', 'g/src/', '--exclude', 'src', '--to', 'og', '--delete'],
      local,
    );
    expect({ code: slashed.code, stderr: slashed.stderr }).toMatchObject({ code: 2 });
    expect(slashed.stderr).toContain('--delete: --exclude src matches g/src itself, a tree given');
    expect(await filesUnder(join(local, 'og'))).toEqual(['src/precious']);
    // An --include of it before decides first, as rsync's order does; `*` alone speaks of what is
    // inside (`--include '/docs/***' --exclude '*'`); `g/src/.` is its contents, unnamed.
    for (const [source, rules] of [
      ['g/src', ['--include', 'src', '--exclude', 's*']],
      ['g/src', ['--include', '/a.c', '--exclude', '*']],
      ['g/src/.', ['--exclude', 'src', '--exclude', 'spare.txt']],
    ] as const) {
      const kept = await runCli([...at, 'get', '-r', source, ...rules, '--to', 'og', '--delete'], local);
      expect({ source, rules, code: kept.code, stderr: kept.stderr }).toMatchObject({ code: 0 });
      expect(kept.stderr).not.toContain('itself');
      if (!source.endsWith('/.')) expect(await filesUnder(join(local, 'og'))).toEqual(['src/a.c']);
    }
  });

  it('put -r --delete of a tree whose own name a rule matches is refused; without --delete, warned of', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    for (const file of ['app/main.js', 'node_modules/m/index.js', 'notes.log'])
      await mkdir(join(local, file, '..'), { recursive: true }).then(() =>
        writeFile(join(local, file), file),
      );
    await mkdir(join(server.root!, 'd', 'node_modules'), { recursive: true });
    await writeFile(join(server.root!, 'd', 'node_modules', 'keep'), 'the server side of node_modules');
    const at = ['--server', `127.0.0.1:${server.port}`];
    // `put -r * --to d`, as the shell gives it.
    const sources = ['app', 'node_modules', 'notes.log'];
    const refused = await runCli(
      [...at, 'put', '-r', ...sources, '--to', 'd', '--delete', '--exclude', 'node_modules'],
      local,
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      '--delete: --exclude node_modules matches node_modules itself, a tree given',
    );
    expect(await filesUnder(join(server.root!, 'd'))).toEqual(['node_modules/keep']);
    // `put -r */ --to d`: node_modules/ is sent as d/node_modules all the same, so refused too.
    const slashed = await runCli(
      [...at, 'put', '-r', 'app/', 'node_modules/', '--to', 'd', '--delete', '--exclude', 'node_modules'],
      local,
    );
    expect({ code: slashed.code, stderr: slashed.stderr }).toMatchObject({ code: 2 });
    expect(slashed.stderr).toContain('--delete: --exclude node_modules matches node_modules/ itself');
    expect(await filesUnder(join(server.root!, 'd'))).toEqual(['node_modules/keep']);
    // The way out the refusal gives: a tree mirrored, the rule applying within it only.
    await mkdir(join(local, 'x.tmp', 'a'), { recursive: true });
    await writeFile(join(local, 'x.tmp', 'a', 'f'), 'kept');
    await writeFile(join(local, 'x.tmp', 'b.tmp'), 'left out');
    const tmp = ['put', '-r', 'x.tmp', '--to', 'd', '--delete', '--exclude', '*.tmp'];
    const tmpRefused = await runCli([...at, ...tmp], local);
    expect(tmpRefused.code).toBe(2);
    expect(tmpRefused.stderr).toContain('give --include /x.tmp/ before them (nothing done)');
    const tmpMirrored = await runCli(
      [...at, 'put', '-r', 'x.tmp', '--to', 'd', '--delete', '--include', '/x.tmp/', '--exclude', '*.tmp'],
      local,
    );
    expect(tmpMirrored).toMatchObject({ code: 0, stderr: '' });
    expect(await filesUnder(join(server.root!, 'd'))).toEqual(['node_modules/keep', 'x.tmp/a/f']);
    const warned = await runCli(
      [...at, 'put', '-r', ...sources, '--to', 'd', '--exclude', 'node_modules/', '--exclude', '*.log'],
      local,
    );
    expect(warned.code).toBe(0);
    // Said of each, not "matched nothing": before, node_modules went without a word.
    expect(warned.stderr).toBe(
      'muxftp: warning: --exclude node_modules/ matches node_modules itself, a tree given: rules apply within the trees given, not to them: node_modules is copied all the same (leave it out of the sources)\n' +
        "muxftp: warning: --exclude '*.log' matches notes.log itself, a file given: rules apply within the trees given, not to them: notes.log is copied all the same (leave it out of the sources)\n",
    );
    expect(await filesUnder(join(server.root!, 'd'))).toContain('node_modules/m/index.js');
    // `*` alone speaks of what is in a tree (the README's `--include '/docs/***' --exclude '*'`),
    // but a file given has nothing inside: rsync would leave it out.
    const only = await runCli(
      [...at, 'put', '-r', 'app', 'notes.log', '--to', 'f', '--include', '/main.js', '--exclude', '*'],
      local,
    );
    expect(only).toMatchObject({
      code: 0,
      stderr:
        "muxftp: warning: --exclude '*' matches notes.log itself, a file given: rules apply within the trees given, not to them: notes.log is copied all the same (leave it out of the sources)\n",
    });
    expect(await filesUnder(join(server.root!, 'f'))).toEqual(['app/main.js', 'notes.log']);
  });
});
