/**
 * The CLI as a user or a script meets it, end to end: a real server on 127.0.0.1 (port 0) and
 * `node bin/muxftp.js …` children. What --json prints when a command cannot even start, how
 * --server takes IPv6 addresses, and what cp/scp users expect of `rm DIR` and `put -r .`.
 * Needs dist/ (npm run build).
 */

import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { closedPort } from './helpers/closedPort.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-expect-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** Every file and directory under `dir`, relative, sorted; directories end in '/'. */
async function treeOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .map((entry) => {
      const relative = join(entry.parentPath, entry.name).slice(dir.length + 1);
      return entry.isDirectory() ? `${relative}/` : relative;
    })
    .sort();
}

describe('--json when the command cannot start', () => {
  it("prints each command's own failure shape on stdout, with the code, when it cannot connect", async () => {
    const port = await closedPort();
    const local = await tempDirs.make();
    await writeFile(join(local, 'f.txt'), 'x');
    const at = ['--server', `127.0.0.1:${port}`, '--json'];
    const error = {
      code: 'CONNECT_FAILED',
      message: `cannot connect to 127.0.0.1:${port}: connection refused (is \`muxftp serve\` running there?)`,
    };
    const cases: Array<{ args: string[]; json: unknown }> = [
      { args: ['ls'], json: { ok: false, error } },
      { args: ['stat', 'f'], json: { ok: false, error } },
      { args: ['mv', 'a', 'b'], json: { ok: false, error } },
      {
        args: ['rm', 'a', 'b'],
        json: [
          { path: 'a', ok: false, error },
          { path: 'b', ok: false, error },
        ],
      },
      { args: ['mkdir', '-p', 'a/b'], json: [{ path: 'a/b', ok: false, error }] },
      { args: ['rmdir', 'a'], json: [{ path: 'a', ok: false, error }] },
      {
        args: ['put', 'f.txt', 'g.txt', '--to', 'dir/'],
        json: [
          { local: 'f.txt', remote: 'dir/f.txt', ok: false, bytes: 0, error },
          { local: 'g.txt', remote: 'dir/g.txt', ok: false, bytes: 0, error },
        ],
      },
      {
        args: ['put', 'f.txt', 'named.txt'],
        json: [{ local: 'f.txt', remote: 'named.txt', ok: false, bytes: 0, error }],
      },
      {
        args: ['get', 'r/a.txt', 'b.txt', '--to', 'out'],
        json: [
          { local: join('out', 'a.txt'), remote: 'r/a.txt', ok: false, bytes: 0, error },
          { local: join('out', 'b.txt'), remote: 'b.txt', ok: false, bytes: 0, error },
        ],
      },
      {
        args: ['get', 'r/a.txt', 'mine.txt'],
        json: [{ local: 'mine.txt', remote: 'r/a.txt', ok: false, bytes: 0, error }],
      },
    ];
    for (const { args, json } of cases) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({
        args,
        code: 3, // the connection failed: not 1, "asked, and it failed"
        // The line ends with the code --json gives, as every other failure line does.
        stderr: `muxftp: ${error.message} (${error.code})\n`,
      });
      expect({ args, json: JSON.parse(result.stdout) }).toEqual({ args, json });
    }
    expect(await readdir(local)).toEqual(['f.txt']); // get made no directory it could not fill

    // bench prints its report as one object; a run that cannot start, {ok: false, error}.
    const bench = await runCli(['bench', '--op', 'connect', '--clients', '1', ...at], local);
    expect(bench.code).toBe(3);
    expect(JSON.parse(bench.stdout)).toEqual({
      ok: false,
      error: { code: 'CONNECT_FAILED', message: expect.stringContaining(`127.0.0.1:${port}`) },
    });
    expect(bench.stderr).toBe(`muxftp: ${JSON.parse(bench.stdout).error.message} (CONNECT_FAILED)\n`);
  });

  it('names a local problem before connecting (a credentials file others can read) by its code', async () => {
    server = await startServer();
    const local = await tempDirs.make();
    const credentials = join(local, 'creds.json');
    await writeFile(credentials, JSON.stringify({ user: 'alice', password: 'pw' }));
    await chmod(credentials, 0o644);
    const result = await runCli(
      ['ls', '--json', '--credentials', credentials, '--server', `127.0.0.1:${server.port}`],
      local,
    );
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: false,
      error: { code: 'LOCAL_IO_ERROR', message: expect.stringContaining('it must be 600') },
    });
  });

  it('ls and stat of a missing path print a JSON failure too, as mv does', async () => {
    server = await startServer();
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`, '--json'];
    const error = { code: 'NOT_FOUND', message: 'no such file or directory: nope' };
    for (const args of [
      ['ls', 'nope'],
      ['stat', 'nope'],
      ['stat', 'nope', '--hash'],
    ]) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, json: JSON.parse(result.stdout || 'null') }).toEqual({
        args,
        code: 1,
        json: { ok: false, error },
      });
    }
  });
});

describe('--server and IPv6 addresses', () => {
  it('takes [v6]:port, a bare v6 address (default port), and refuses a bare one with a port, saying to use brackets', async () => {
    server = await startServer({ host: '::1' });
    const local = await tempDirs.make();
    const port = server.port;

    const bracketed = await runCli(['mkdir', 'v6', '--server', `[::1]:${port}`], local);
    expect(bracketed).toMatchObject({ code: 0, stderr: '' });

    // The address and a port, written without brackets: said how to write it, a usage error.
    const unbracketed = await runCli(['ls', '--server', `::1:${port}`], local);
    expect(unbracketed.code).toBe(2);
    expect(unbracketed.stderr).toContain(`an IPv6 address with a port goes in brackets: [::1]:${port}`);
    // Both readings are addresses (::1:7421 is one too): no guess, both bracketed forms named.
    const ambiguous = await runCli(['ls', '--server', '::1:7421'], local);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('[::1:7421]:7421 or [::1]:7421');
    const fromEnv = await runCli(['ls'], local, { env: { MUXFTP_SERVER: `::1:${port}` } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain(`[::1]:${port}`);

    // A bare address is only an address: the default port (whatever listens there, or nothing).
    const bare = await runCli(['ls', '--server', '::1', '--json'], local);
    expect(bare.code).not.toBe(2);
    if (bare.code === 1) expect(bare.stderr).toMatch(/^muxftp: cannot connect to \[::1\]:7421: /);
  });
});

/** A disk-backed server, and a local `project` directory holding a.txt and sub/b.txt. */
async function serverAndProject() {
  server = await startServer({ backend: 'disk' });
  const local = await tempDirs.make();
  const project = join(local, 'project');
  await mkdir(join(project, 'sub'), { recursive: true });
  await writeFile(join(project, 'a.txt'), 'a');
  await writeFile(join(project, 'sub', 'b.txt'), 'b');
  return { root: server.root!, local, project, at: ['--server', `127.0.0.1:${server.port}`] };
}

/** What a copied a.txt and sub/b.txt make under `dir`. */
const contents = (dir: string) => [`${dir}/`, `${dir}/a.txt`, `${dir}/sub/`, `${dir}/sub/b.txt`];

describe('put -r and get -r of ., .. or the root: the contents go into the destination, as with cp -r and scp -r', () => {
  it('puts what is in the directory, not a directory named after it', async () => {
    const { root, local, project, at } = await serverAndProject();
    const put = async (args: string[], cwd = project) => {
      const result = await runCli(['put', '-r', ...args, ...at], cwd);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    };

    await put(['.']); // into the root itself
    expect(await treeOf(root)).toEqual(['a.txt', 'sub/', 'sub/b.txt']);
    await mkdir(join(root, 'existing'));
    await put(['.', 'existing']); // an existing directory: into it, as cp -r . existing
    await put(['./', 'slash/', '-p']);
    await put(['.', '--to', 'to', '-p']);
    await put(['..', '--to', 'up', '-p'], join(project, 'sub')); // the parent's contents
    await put(['project/.', '--to', 'dot', '-p'], local);
    await put(['project', '--to', 'named', '-p'], local); // a name of its own: the directory itself
    expect(await treeOf(root)).toEqual(
      [
        'a.txt',
        'sub/',
        'sub/b.txt',
        ...contents('existing'),
        ...contents('slash'),
        ...contents('to'),
        ...contents('up'),
        ...contents('dot'),
        ...contents('named/project'),
        'named/',
      ].sort(),
    );

    const json = await runCli(['put', '-r', '.', '--to', 'j', '-p', '--json', ...at], project);
    expect(json.code).toBe(0);
    const remotes = (JSON.parse(json.stdout) as Array<{ remote: string }>).map(({ remote }) => remote);
    expect(remotes.sort()).toEqual(['j/a.txt', 'j/sub/b.txt']);
  });

  it('gets what is in the root or a remote ., not a directory it cannot name', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('tree/sub', { parents: true });
    await client.put('tree/a.txt', Buffer.from('a'));
    await client.put('tree/sub/b.txt', Buffer.from('b'));
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    const get = async (args: string[]) => {
      const result = await runCli(['get', '-r', ...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    };

    await get(['/', '--to', 'whole', '-p']);
    await get(['tree/.', 'dot/', '-p']);
    await get(['.', '--to', 'here', '-p']);
    expect(await treeOf(local)).toEqual(
      [
        'whole/',
        'whole/tree/',
        'whole/tree/a.txt',
        'whole/tree/sub/',
        'whole/tree/sub/b.txt',
        'dot/',
        'dot/a.txt',
        'dot/sub/',
        'dot/sub/b.txt',
        'here/',
        'here/tree/',
        'here/tree/a.txt',
        'here/tree/sub/',
        'here/tree/sub/b.txt',
      ].sort(),
    );
  });
});

describe('put -r and get -r into a missing directory: made, in a parent that exists, as cp -r and rsync make their destination', () => {
  it('put -r . site/ and put -r DIR backup/ need no -p; a missing parent still does; a plain put still does', async () => {
    const { root, local, project, at } = await serverAndProject();

    for (const [args, cwd] of [
      [['put', '-r', '.', 'site/'], project],
      [['put', '-r', 'project', 'backup/'], local],
      [['put', '-r', 'project', '--to', 'to'], local],
    ] as const) {
      const result = await runCli([...args, ...at], cwd);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    const made = [
      ...contents('site'),
      'backup/',
      ...contents('backup/project'),
      'to/',
      ...contents('to/project'),
    ];
    expect(await treeOf(root)).toEqual(made.sort());

    for (const [args, line] of [
      [
        ['put', '-r', 'project', 'no/such/'],
        'muxftp: put no/such/: no such directory: no (NOT_FOUND); add -p to create it\n',
      ],
      [
        ['put', 'project/a.txt', '--to', 'flat/'],
        'muxftp: put flat/: no such directory: flat (NOT_FOUND); add -p to create it\n',
      ],
    ] as const) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 1, stderr: line });
    }
    expect(await treeOf(root)).toEqual(made.sort());
  });

  it('put -r DIR FILE, a file where the tree would go: one line, and a dry run says it too', async () => {
    const { root, local, at } = await serverAndProject();
    await writeFile(join(root, 'blob'), 'a file');
    // Before: the dry run said "would put" and exited 0; the run failed the mkdir, then every
    // file of the tree with a line of its own.
    for (const dryRun of [['-n'], []]) {
      const result = await runCli(['put', '-r', 'project', 'blob', ...dryRun, ...at], local);
      expect({ dryRun, code: result.code, stderr: result.stderr }).toEqual({
        dryRun,
        code: 1,
        stderr: 'muxftp: put project: not a directory: blob (NOT_A_DIRECTORY)\n',
      });
    }
    expect(await treeOf(root)).toEqual(['blob']);
  });

  it('get -r: a local file where a directory of the tree goes fails the dry run as it fails the run', async () => {
    const { local, at } = await serverAndProject();
    expect((await runCli(['put', '-r', 'project', ...at], local)).code).toBe(0);
    const out = join(local, 'out');
    await mkdir(join(out, 'project'), { recursive: true });
    await writeFile(join(out, 'project', 'sub'), 'a file, where sub/ goes');
    // Before: the dry run said "would get project/sub/b.txt" and exited 0.
    for (const dryRun of [['-n'], []]) {
      const result = await runCli(['get', '-r', 'project', '--to', 'out', ...dryRun, ...at], local);
      expect({ dryRun, code: result.code }).toEqual({ dryRun, code: 1 });
      expect(result.stderr).toContain(
        `muxftp: get project/sub: not a directory: ${join('out', 'project', 'sub')} (LOCAL_IO_ERROR)\n`,
      );
    }
  });

  it('get -r DIR out/ needs no -p; a missing parent still does', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('tree/sub', { parents: true });
    await client.put('tree/a.txt', Buffer.from('a'));
    await client.put('tree/sub/b.txt', Buffer.from('b'));
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    for (const args of [
      ['get', '-r', 'tree', 'out/'],
      ['get', '-r', 'tree', '--to', 'to'],
    ]) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    const made = ['out/', ...contents('out/tree'), 'to/', ...contents('to/tree')];
    expect(await treeOf(local)).toEqual(made.sort());

    const missing = await runCli(['get', '-r', 'tree', 'no/such/', ...at], local);
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({
      code: 1,
      stderr: 'muxftp: get no/such/: no such local directory: no (NOT_FOUND); add -p to create it\n',
    });
    expect(await treeOf(local)).toEqual(made.sort());
  });
});

describe('rm -r', () => {
  it('removes a directory and everything in it, a file as rm does, and never the root', async () => {
    server = await startServer({ backend: 'disk' });
    const root = server.root!;
    const client = await server.connect();
    await client.mkdir('tree/sub/deeper', { parents: true });
    await client.mkdir('tree/empty');
    for (const name of ['tree/a.txt', 'tree/sub/b.txt', 'tree/sub/deeper/c.txt', 'keep.txt', 'lone.txt'])
      await client.put(name, Buffer.from(name));
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];

    const plain = await runCli(['rm', 'tree', ...at], local);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toBe(
      'muxftp: rm tree: is a directory: tree (IS_A_DIRECTORY); add -r to remove it and everything in it\n',
    );
    for (const args of [
      ['rm', '-r', '/'],
      ['rm', '-r', '.'],
      ['rm', '-r', './'],
    ]) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stderr: `muxftp: rm ${args[2]}: invalid path: cannot remove the root (INVALID_PATH)\n`,
      });
    }
    expect(await treeOf(root)).toContain('tree/sub/deeper/c.txt');

    const removed = await runCli(['rm', '-r', 'tree', 'lone.txt', '--json', ...at], local);
    expect(removed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(removed.stdout)).toEqual([
      { path: 'tree', ok: true },
      { path: 'lone.txt', ok: true },
    ]);
    expect(await treeOf(root)).toEqual(['keep.txt']);
    const missing = await runCli(['rm', '-r', 'tree', ...at], local);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NOT_FOUND');
  });

  it('-f, as rm -f: a path not there, or a pattern matching nothing, is no error; anything else still is', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('build/out', { parents: true });
    await client.put('build/out/a.o', Buffer.from('a'));
    await client.mkdir('kept');
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];

    // Before: "unknown option '-f'", exit 2; a script's clean-up could not say "if it is there".
    const forced = await runCli(['rm', '-rf', 'build', 'gone', 'nodir/*.tmp', '--json', ...at], local);
    expect(forced).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(forced.stdout)).toEqual([
      { path: 'build', ok: true },
      { path: 'gone', ok: true },
      { path: 'nodir/*.tmp', ok: true },
    ]);
    expect(await treeOf(server.root!)).toEqual(['kept/']);
    expect(await runCli(['rm', '-rf', 'build', ...at], local)).toMatchObject({ code: 0, stderr: '' });
    // Not a missing path: still refused (a directory without -r).
    const directory = await runCli(['rm', '-f', 'kept', ...at], local);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toContain('(IS_A_DIRECTORY)');
  });
});

describe('a remote path ending in / names a directory, as in POSIX', () => {
  it('rm, rm -r, stat, ls, mv and get of FILE/ fail NOT_A_DIRECTORY and leave the file; DIR/ works', async () => {
    server = await startServer({ backend: 'disk' });
    const root = server.root!;
    const client = await server.connect();
    await client.put('f.txt', Buffer.from('f'));
    await client.mkdir('d');
    await client.put('d/g.txt', Buffer.from('g'));
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    for (const args of [
      ['rm', 'f.txt/'],
      ['rm', '-r', 'f.txt/'],
      ['stat', 'f.txt/'],
      ['ls', 'f.txt/'],
      ['mv', 'f.txt/', 'g'],
    ]) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stderr: `muxftp: ${args[0]} f.txt/: not a directory: f.txt (NOT_A_DIRECTORY)\n`,
      });
    }
    expect(await treeOf(root)).toEqual(['d/', 'd/g.txt', 'f.txt']);
    const got = await runCli(['get', 'f.txt/', ...at], local);
    expect({ code: got.code, stderr: got.stderr }).toEqual({
      code: 1,
      stderr: 'muxftp: get f.txt: not a directory: f.txt (NOT_A_DIRECTORY)\n',
    });
    // FILE/. too, which the server reads as FILE: before, it was downloaded, then renamed onto `.` (EBUSY).
    const dotted = await runCli(['get', 'f.txt/.', '--to', '.', ...at], local);
    expect({ code: dotted.code, stderr: dotted.stderr }).toEqual({
      code: 1,
      stderr: 'muxftp: get f.txt/.: not a directory: f.txt/. (NOT_A_DIRECTORY)\n',
    });
    expect(await readdir(local)).toEqual([]);
    for (const args of [
      ['stat', 'd/'],
      ['ls', 'd/'],
      ['mv', 'd/', 'e'],
      ['rm', '-r', 'e/'],
    ]) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    expect(await treeOf(root)).toEqual(['f.txt']);
  });
});

describe('rm, rmdir and mkdir say what to use instead', () => {
  it('rm of a directory points to -r, rmdir of a file to rm, mkdir of a missing parent to -p', async () => {
    server = await startServer();
    const client = await server.connect();
    await client.mkdir('dir');
    await client.put('file.txt', Buffer.from('x'));
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    const cases = [
      {
        args: ['rm', 'dir'],
        stderr:
          'muxftp: rm dir: is a directory: dir (IS_A_DIRECTORY); add -r to remove it and everything in it\n',
      },
      {
        args: ['rmdir', 'file.txt'],
        stderr: 'muxftp: rmdir file.txt: not a directory: file.txt (NOT_A_DIRECTORY); use rm for a file\n',
      },
      {
        args: ['mkdir', 'no/such'],
        stderr:
          'muxftp: mkdir no/such: no such file or directory: no/such (NOT_FOUND); add -p to create its parents\n',
      },
    ];
    for (const { args, stderr } of cases) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 1, stderr });
    }
    expect((await client.stat('dir')).type).toBe('dir');
    expect((await client.stat('file.txt')).type).toBe('file');
  });
});

describe("other tools' options", () => {
  it("an rsync, curl or lftp option says muxftp's name for it; ls -la lists as ls -l", async () => {
    const { local, at } = await serverAndProject();
    for (const [option, instead] of [
      ['--bwlimit=1M', '--limit-rate RATE'],
      ['--partial', '-c, --continue'],
      ['-a', 'times and permission bits are kept by default'],
      ['--include-from=keep', '--include PATTERN, once for each'],
      // Before: commander's "(Did you mean --exclude-from?)" came first, the opposite of the wish.
      ['--include-from', '--include PATTERN, once for each'],
    ]) {
      const result = await runCli(['put', '-r', 'project', option!, ...at], local);
      expect(result.code).toBe(2);
      // Before: only "unknown option".
      expect(result.stderr.split('\n')[0]).toMatch(
        new RegExp(`^muxftp: unknown option '${option}' \\(muxftp: ${instead!.replace(/[-.,]/g, '\\$&')}`),
      );
    }
    const unknown = await runCli(['put', '-r', 'project', '--no-such-thing', ...at], local);
    expect(unknown.stderr.split('\n')[0]).toBe("muxftp: unknown option '--no-such-thing'");
    await runCli(['put', '-r', 'project', ...at], local);
    const la = await runCli(['ls', '-la', 'project', ...at], local);
    expect(la).toMatchObject({ code: 0, stderr: '' });
    expect(la.stdout).toBe((await runCli(['ls', '-l', 'project', ...at], local)).stdout);
    // scp's host:path is a remote name here: stored as asked, with a word that it is no host.
    const scp = await runCli(['put', join('project', 'a.txt'), 'backup:a.txt', ...at], local);
    expect(scp.code).toBe(0);
    expect(scp.stderr).toBe(
      "muxftp: warning: backup:a.txt names a path with a colon in it on the server; the server is --server's (or $MUXFTP_SERVER's), not named in the path as scp's host:path is\n",
    );
    const one = await runCli(['ls', '-1', 'project', ...at], local);
    expect(one).toMatchObject({ code: 0, stderr: '' });
    expect(one.stdout).toBe((await runCli(['ls', 'project', ...at], local)).stdout);
  });
});

describe('$MUXFTP_SERVER', () => {
  it('is read only by the commands that connect: a bad one fails ls, not serve or user', async () => {
    const local = await tempDirs.make();
    const env = { MUXFTP_SERVER: 'nowhere:port' };
    const users = join(local, 'users.json');

    const ls = await runCli(['ls'], local, { env });
    expect(ls.code).toBe(2);
    expect(ls.stderr).toContain("value 'nowhere:port' from env 'MUXFTP_SERVER' is invalid");
    const flag = await runCli(['ls', '--server', 'nowhere:port'], local);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("option '--server <host:port>' argument 'nowhere:port' is invalid");

    const add = await runCli(['user', 'add', 'zoe', '--users', users], local, {
      env,
      stdin: 'zoe-password\n',
    });
    expect(add).toMatchObject({ code: 0, stderr: '' });
    const list = await runCli(['user', 'list', '--users', users, '--json'], local, { env });
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: 'zoe' }]);
    expect((await runCli(['serve', '--help'], local, { env })).code).toBe(0);
  });
});

describe('serve', () => {
  it('refuses --memory with --root (the root was silently not served)', async () => {
    const local = await tempDirs.make();
    const both = await runCli(['serve', '--memory', '--root', 'x', '--port', '0'], local, {
      timeoutMs: 10_000,
    });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("option '--memory' cannot be used with option '--root <dir>'");
    expect(await readdir(local)).toEqual([]);
  });

  it('refuses an empty --host, --root or --metrics (an unset variable): an empty host listened on every address', async () => {
    const local = await tempDirs.make();
    for (const [flag, reason] of [
      ['--host', 'give 0.0.0.0 or :: to listen on every address, or leave --host out for 127.0.0.1.'],
      ['--root', 'give . for the working directory, or leave --root out for data.'],
      // It served them at 127.0.0.1:9464 (metrics are off without --metrics).
      ['--metrics', 'give :PORT or HOST:PORT.'],
    ] as const) {
      const empty = await runCli(['serve', '--port', '0', flag, ''], local, { timeoutMs: 10_000 });
      expect(empty).toMatchObject({ code: 2, stdout: '' });
      expect(empty.stderr).toContain(`argument '' is invalid. empty (an unset variable?); ${reason}`);
    }
    expect(await readdir(local)).toEqual([]);
  });

  it('refuses a users file or PEM file past its cap, not read into memory however large (--users /dev/zero)', async () => {
    const local = await tempDirs.make();
    // Sparse: 64 MiB and 4 MiB, and a byte, of nothing on the disk.
    const users = join(local, 'users.json');
    await writeFile(users, '', { mode: 0o600 });
    await truncate(users, 64 * 1024 * 1024 + 1);
    const pem = join(local, 'big.pem');
    await writeFile(pem, '', { mode: 0o600 });
    await truncate(pem, 4 * 1024 * 1024 + 1);
    for (const [args, message] of [
      [['--users', users], `cannot read users file ${users}: larger than 64 MiB: not a users file`],
      [
        ['--tls-cert', pem, '--tls-key', pem],
        `cannot read --tls-cert ${pem}: larger than 4 MiB: not a PEM file`,
      ],
    ] as const) {
      const big = await runCli(['serve', '--memory', '--port', '0', ...args], local, { timeoutMs: 10_000 });
      expect(big).toMatchObject({ code: 1, stdout: '' });
      expect(big.stderr).toContain(message);
    }
  });

  it('refuses --anonymous with --anonymous-write (anonymous got every permission)', async () => {
    const local = await tempDirs.make();
    const users = join(local, 'users.json');
    await writeFile(users, '{"version":1,"users":{}}\n');
    const both = await runCli(
      ['serve', '--memory', '--port', '0', '--users', users, '--anonymous', '--anonymous-write'],
      local,
      { timeoutMs: 10_000 },
    );
    expect(both).toMatchObject({ code: 2, stdout: '' });
    expect(both.stderr).toContain("option '--anonymous-write' cannot be used with option '--anonymous'");
  });

  it('refuses an --idle-timeout or --handshake-timeout in hex, binary or octal notation: Number() took 0x10 for 16 s', async () => {
    const local = await tempDirs.make();
    for (const [flag, value] of [
      ['--idle-timeout', '0x10'],
      ['--handshake-timeout', '0o17'],
    ] as const) {
      const hex = await runCli(['serve', '--memory', '--port', '0', flag, value], local, {
        timeoutMs: 10_000,
      });
      expect(hex).toMatchObject({ code: 2, stdout: '' });
      expect(hex.stderr).toContain(`argument '${value}' is invalid. expected a positive number of seconds.`);
    }
  });

  it('refuses an --idle-timeout or --handshake-timeout too long to count in milliseconds: no stack trace', async () => {
    const local = await tempDirs.make();
    for (const flag of ['--idle-timeout', '--handshake-timeout']) {
      const long = await runCli(['serve', '--memory', '--port', '0', flag, '1e13'], local, {
        timeoutMs: 10_000,
      });
      expect(long).toMatchObject({ code: 2, stdout: '' });
      expect(long.stderr).toContain(
        `option '${flag} <seconds>' argument '1e13' is invalid. duration too long.`,
      );
      expect(long.stderr).not.toContain('internal error');
    }
  });

  it('stops cleanly (exit 0) on a SIGTERM sent the moment its listening line appears', async () => {
    // A service manager or a test may signal as soon as it reads the line; the handlers were
    // installed just after it, and about half of such signals killed the process outright.
    const outcomes: Array<{ code: number | null; signal: NodeJS.Signals | null }> = [];
    for (let round = 0; round < 8; round++) {
      const child = spawn(process.execPath, [CLI_BIN, 'serve', '--memory', '--port', '0'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      try {
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
          child.once('exit', (code, signal) => resolve({ code, signal })),
        );
        await new Promise((resolve, reject) => {
          child.stdout.once('data', resolve);
          child.once('exit', () => reject(new Error('serve exited before it listened')));
        });
        child.kill('SIGTERM');
        outcomes.push(await exited);
      } finally {
        child.kill('SIGKILL'); // only if still running (a failed round)
      }
    }
    expect(outcomes).toEqual(Array.from({ length: 8 }, () => ({ code: 0, signal: null })));
  });
});

describe('help', () => {
  it("user's help lists no client option (--server, --tls...), none applies; list takes --json", async () => {
    const local = await tempDirs.make();
    for (const args of [
      ['user', '--help'],
      ['user', 'add', '--help'],
      ['user', 'del', '--help'],
    ]) {
      const help = await runCli(args, local);
      expect({ args, code: help.code, server: help.stdout.includes('--server') }).toEqual({
        args,
        code: 0,
        server: false,
      });
    }
    const list = await runCli(['user', 'list', '--help'], local);
    expect(list.stdout).toContain('--json');
    expect(list.stdout).not.toContain('--tls');
  });

  it("shows bench's --size default as it is typed (and as the README has it), not in bytes", async () => {
    const help = await runCli(['bench', '--help'], await tempDirs.make());
    expect(help.stdout).toMatch(/--size <size> +file size, e\.g\. 64KiB, 10MiB \(default: 1MiB\)\n/);
  });
});
