/**
 * put -r and put -p for an account without the mkdir permission, where the path a tree
 * directory goes to is not a directory, and where the connection goes during the stat that
 * follows a refused mkdir. Real `muxftp serve` child, frameProxy, the built CLI.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli, startServeChild, stopChildren } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-nomkdir-');
const servers = new Set<ChildProcess>();
let proxy: FrameProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await stopChildren(servers);
  await tempDirs.removeAll();
});

async function setUp(user = 'alice', perms = 'list,read,write'): Promise<{ dir: string; port: number }> {
  const dir = await tempDirs.make();
  const users = join(dir, 'users.json');
  const added = await runCli(['user', 'add', user, '--users', users, '--perm', perms], dir, {
    stdin: 'password\n',
  });
  expect(added).toMatchObject({ code: 0 });
  await mkdir(join(dir, 'data', user), { recursive: true });
  await mkdir(join(dir, 'tree', 'in'), { recursive: true });
  await writeFile(join(dir, 'tree', 'a'), 'a');
  await writeFile(join(dir, 'tree', 'in', 'b'), 'b');
  const { port } = await startServeChild(['--root', join(dir, 'data'), '--users', users], servers, {
    cwd: dir,
  });
  return { dir, port };
}

const as = { env: { MUXFTP_PASSWORD: 'password' } };

/** A proxy that drops the connection at the first stat after a mkdir: the look after a refused mkdir. */
async function droppingStatAfterMkdir(port: number): Promise<{ args: string[]; dropped: () => boolean }> {
  let sawMkdir = false;
  let dropped = false;
  proxy = await startFrameProxy(port, {
    fromClient: (frame) => {
      if (frame.type === FrameType.OPEN) {
        const op = jsonOf(frame).op;
        if (op === 'mkdir') sawMkdir = true;
        if (sawMkdir && !dropped && op === 'stat') {
          dropped = true;
          throw new Error('dropped');
        }
      }
      return frame;
    },
  });
  return { args: ['--server', `127.0.0.1:${proxy.port}`], dropped: () => dropped };
}

describe('put -r without the mkdir permission', () => {
  it('a file where the tree directory goes: one line, as for an account with mkdir (ALREADY_EXISTS)', async () => {
    const { dir, port } = await setUp();
    await mkdir(join(dir, 'data', 'alice', 'd'));
    await writeFile(join(dir, 'data', 'alice', 'd', 'tree'), 'x');
    const result = await runCli(
      ['--server', `127.0.0.1:${port}`, '--user', 'alice', 'put', '-r', 'tree', '--to', 'd'],
      dir,
      as,
    );
    expect(result.code).toBe(1);
    // Before: tree's refusal, then tree/in's, and each file sent and failed NOT_A_DIRECTORY, its own line.
    expect(result.stderr.split('\n').filter((line) => line.startsWith('muxftp: put'))).toEqual([
      'muxftp: put tree: permission denied: user alice has no mkdir permission (PERMISSION_DENIED)',
    ]);
  });

  it('the connection lost during the stat after a refused mkdir (--retries 0): exit 3', async () => {
    const { dir, port } = await setUp();
    const at = await droppingStatAfterMkdir(port);
    const result = await runCli(
      [...at.args, '--user', 'alice', '--json', 'put', '-r', 'tree', '--retries', '0'],
      dir,
      as,
    );
    expect(result.code).toBe(3);
  });

  it('an account that can neither make nor look (write only): files still go into directories that are there', async () => {
    const { dir, port } = await setUp('bob', 'read,write');
    await mkdir(join(dir, 'data', 'bob', 'tree', 'in'), { recursive: true });
    const result = await runCli(
      ['--server', `127.0.0.1:${port}`, '--user', 'bob', '--json', 'put', '-r', 'tree'],
      dir,
      as,
    );
    const outcomes = JSON.parse(result.stdout) as Array<{ remote: string; ok: boolean }>;
    expect(
      outcomes
        .filter((outcome) => outcome.ok)
        .map((outcome) => outcome.remote)
        .sort(),
    ).toEqual(['tree/a', 'tree/in/b']);
    expect(await readFile(join(dir, 'data', 'bob', 'tree', 'in', 'b'), 'utf8')).toBe('b');
  });

  it('an account that can neither make nor look: a file whose directory is missing fails without "add -p", which would not help', async () => {
    const { dir, port } = await setUp('bob', 'read,write');
    const result = await runCli(
      ['--server', `127.0.0.1:${port}`, '--user', 'bob', 'put', '-r', 'tree', 'dest/'],
      dir,
      as,
    );
    expect(result.code).toBe(1);
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('muxftp: put'));
    // The directories' lines say why (no mkdir permission); the files' lines, NOT_FOUND, told to
    // add -p, which asks the same refused mkdir again.
    expect(lines).toContain(
      'muxftp: put tree: permission denied: user bob has no mkdir permission (PERMISSION_DENIED)',
    );
    expect(lines.filter((line) => line.includes('(NOT_FOUND)'))).toHaveLength(2);
    expect(result.stderr).not.toContain('add -p');
    const withParents = await runCli(
      ['--server', `127.0.0.1:${port}`, '--user', 'bob', 'put', '-r', '-p', 'tree', 'dest/'],
      dir,
      as,
    );
    expect(withParents.code).toBe(1);
    expect(await stat(join(dir, 'data', 'bob', 'dest')).catch(() => undefined)).toBeUndefined();
  });

  it('an account that cannot look: put -r DIR REMOTE, REMOTE a directory that is there, is refused, not guessed; REMOTE/ puts into it', async () => {
    const { dir, port } = await setUp('bob', 'read,write');
    const home = join(dir, 'data', 'bob');
    await mkdir(join(home, 'dest', 'tree', 'in'), { recursive: true });
    await writeFile(join(home, 'dest', 'a'), 'keep me');
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'bob'];
    const bare = await runCli([...at, 'put', '-r', 'tree', 'dest'], dir, as);
    // Before: taken as missing, the tree was made as dest: dest/a got tree/a. dest/a is someone else's file.
    expect(await readFile(join(home, 'dest', 'a'), 'utf8')).toBe('keep me');
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(
      /put dest: cannot tell whether dest is a directory \(.*no list permission\): give dest\/ to put into it \(PERMISSION_DENIED\)/,
    );
    // dest/ says it is a directory: the tree goes into it, into the directories there.
    const into = await runCli([...at, 'put', '-r', 'tree', 'dest/'], dir, as);
    expect(await readFile(join(home, 'dest', 'tree', 'a'), 'utf8')).toBe('a');
    expect(await readFile(join(home, 'dest', 'tree', 'in', 'b'), 'utf8')).toBe('b');
    expect(await readFile(join(home, 'dest', 'a'), 'utf8')).toBe('keep me');
    expect(into.stdout + into.stderr).not.toContain('cannot tell');
    // A file into dest/ too (before: refused for the look at dest), and into the home, '.'.
    const file = await runCli([...at, 'put', 'tree/a', 'dest/'], dir, as);
    expect(file.code).toBe(0);
    const home_ = await runCli([...at, 'put', '-r', 'tree/in', '.'], dir, as);
    expect(home_.stderr).not.toContain('cannot tell');
    expect(home_.code).toBe(1); // in/ cannot be made without the mkdir permission: said, b still tried
  });

  it('an account that cannot look: a file (put -p f d/x, put -r f d/y) still goes as named; a path no request may name is said as such', async () => {
    const { dir, port } = await setUp('carl', 'read,write,mkdir');
    const home = join(dir, 'data', 'carl');
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'carl'];
    // A file goes as d/x whatever d/x is (a directory there fails the upload): nothing to guess.
    const parents = await runCli([...at, 'put', '-p', 'tree/a', 'd/x'], dir, as);
    expect(parents.stderr).not.toContain('cannot tell');
    expect(parents.code).toBe(0);
    expect(await readFile(join(home, 'd', 'x'), 'utf8')).toBe('a');
    const recursive = await runCli([...at, 'put', '-r', 'tree/a', 'd/y'], dir, as);
    expect(recursive.code).toBe(0);
    expect(await readFile(join(home, 'd', 'y'), 'utf8')).toBe('a');
    // The server refuses the look before it reads the path: '..' is no directory to give as '../'.
    const outside = await runCli([...at, 'put', '-r', 'tree', '..'], dir, as);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain("invalid path: contains a '..' segment (INVALID_PATH)");
    expect(outside.stderr).not.toContain('cannot tell');
  });

  it('an account that may make but not look: DIR/ and --to DIR are made as for one that may look (-p for missing parents, none without)', async () => {
    const { dir, port } = await setUp('dora', 'read,write,mkdir');
    const home = join(dir, 'data', 'dora');
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'dora'];
    // Before: taken as there, the tree's own mkdir -p made typo/ and typo/deep without -p.
    const typo = await runCli([...at, 'put', '-r', 'tree', '--to', 'typo/deep'], dir, as);
    expect(typo.stderr).toContain(
      'muxftp: put typo/deep: no such directory: typo (NOT_FOUND); add -p to create it',
    );
    expect(typo.code).toBe(1);
    await expect(stat(join(home, 'typo'))).rejects.toMatchObject({ code: 'ENOENT' });
    // Before: taken as there, -p's mkdir never asked: NOT_FOUND for the file.
    const parents = await runCli([...at, 'put', '-p', 'tree/a', 'new/'], dir, as);
    expect(parents.code).toBe(0);
    expect(await readFile(join(home, 'new', 'a'), 'utf8')).toBe('a');
    // There already: its mkdir's ALREADY_EXISTS is no failure.
    const again = await runCli([...at, 'put', '-r', 'tree', 'new/'], dir, as);
    expect(again.code).toBe(0);
    expect(await readFile(join(home, 'new', 'tree', 'in', 'b'), 'utf8')).toBe('b');
  });

  it('put -p into a directory that is there, the connection lost at the stat after the refused mkdir: reconnects (--retries 2) and sends', async () => {
    const { dir, port } = await setUp();
    await mkdir(join(dir, 'data', 'alice', 'd', 'in'), { recursive: true });
    const at = await droppingStatAfterMkdir(port);
    const result = await runCli(
      [...at.args, '--user', 'alice', 'put', '-p', 'tree/a', 'd/in/a2', '--retries', '2'],
      dir,
      as,
    );
    expect({ code: result.code, stderr: result.stderr.replace(/^muxftp: put: .*retry.*\n/gm, '') }).toEqual({
      code: 0,
      stderr: '',
    });
    expect(await readFile(join(dir, 'data', 'alice', 'd', 'in', 'a2'), 'utf8')).toBe('a');
  });

  it('put -p into a directory that is there, the connection lost for good (--retries 0) at the stat after the refused mkdir: exit 3, not PERMISSION_DENIED', async () => {
    const { dir, port } = await setUp();
    await mkdir(join(dir, 'data', 'alice', 'd', 'in'), { recursive: true });
    const at = await droppingStatAfterMkdir(port);
    const result = await runCli(
      [...at.args, '--user', 'alice', 'put', '-p', 'tree/a', 'd/in/a2', '--retries', '0'],
      dir,
      as,
    );
    expect(at.dropped()).toBe(true);
    expect({ code: result.code, stderr: result.stderr }).toMatchObject({
      code: 3,
      stderr: expect.not.stringContaining('PERMISSION_DENIED'),
    });
  });

  it('put -r into a tree that is there, the connection lost at the stat after a refused mkdir: reconnects (--retries 2), no failure', async () => {
    const { dir, port } = await setUp();
    await mkdir(join(dir, 'data', 'alice', 'tree', 'in'), { recursive: true });
    const at = await droppingStatAfterMkdir(port);
    const result = await runCli(
      [...at.args, '--user', 'alice', 'put', '-r', 'tree', '--retries', '2'],
      dir,
      as,
    );
    expect({ code: result.code, stderr: result.stderr.replace(/^muxftp: put: .*retry.*\n/gm, '') }).toEqual({
      code: 0,
      stderr: '',
    });
    expect(await readFile(join(dir, 'data', 'alice', 'tree', 'in', 'b'), 'utf8')).toBe('b');
  });
});

describe('get for an account that may read but not list', () => {
  it('gets a file it names (the get asks only read); a missing one and a directory are the server’s to refuse', async () => {
    const { dir, port } = await setUp('fetcher', 'read');
    const home = join(dir, 'data', 'fetcher');
    await writeFile(join(home, 'report.txt'), 'the report');
    await mkdir(join(home, 'sub'));
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'fetcher'];
    // Before: refused at the planning's stat, "no list permission", though the server serves it.
    const got = await runCli([...at, 'get', 'report.txt', 'out.txt'], dir, as);
    expect(got).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('the report');
    const toStdout = await runCli([...at, 'get', 'report.txt', '-'], dir, as);
    expect(toStdout).toMatchObject({ code: 0, stdout: 'the report' });
    const missing = await runCli([...at, 'get', 'nothing.txt'], dir, as);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('(NOT_FOUND)');
    await expect(stat(join(dir, 'nothing.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    const directory = await runCli([...at, 'get', 'sub'], dir, as);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toContain('(IS_A_DIRECTORY)');
    // -r walks the directory, which takes list: refused as before.
    const tree = await runCli([...at, 'get', '-r', 'sub'], dir, as);
    expect(tree.code).toBe(1);
    expect(tree.stderr).toContain('no list permission');
  });
});

describe('get --skip-identical for an account that may read but not list', () => {
  it('compares the contents (the digest asks only read): an identical copy is skipped, another is replaced', async () => {
    const { dir, port } = await setUp('fetcher', 'read');
    const home = join(dir, 'data', 'fetcher');
    await writeFile(join(home, 'same.txt'), 'the same');
    await writeFile(join(home, 'other.txt'), 'the server’s');
    await writeFile(join(dir, 'same.txt'), 'the same');
    await writeFile(join(dir, 'other.txt'), 'mine, longer than the server’s');
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'fetcher'];
    const got = await runCli(
      [...at, '--json', 'get', '--skip-identical', 'same.txt', 'other.txt', '--to', '.'],
      dir,
      as,
    );
    expect(got).toMatchObject({ code: 0, stderr: '' });
    // Before: the size the planning could not look at was taken to differ, and each was fetched again.
    const outcomes = JSON.parse(got.stdout) as Array<{ remote: string; skipped?: true }>;
    expect(outcomes.map(({ remote, skipped }) => [remote, skipped === true])).toEqual([
      ['same.txt', true],
      ['other.txt', false],
    ]);
    expect(await readFile(join(dir, 'other.txt'), 'utf8')).toBe('the server’s');
  });
});

describe('mv for an account that may rename but not list', () => {
  it('moves to TO as named, and into TO/; a directory at TO is never replaced (ALREADY_EXISTS)', async () => {
    const { dir, port } = await setUp('mover', 'rename');
    const home = join(dir, 'data', 'mover');
    await writeFile(join(home, 'a.txt'), 'a');
    await mkdir(join(home, 'd'));
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'mover'];
    // Before: refused at the look at TO, "no list permission", though the rename takes only rename.
    expect(await runCli([...at, 'mv', 'a.txt', 'b.txt'], dir, as)).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(home, 'b.txt'), 'utf8')).toBe('a');
    expect(await runCli([...at, 'mv', 'b.txt', 'd/'], dir, as)).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(home, 'd', 'b.txt'), 'utf8')).toBe('a');
    // TO a directory, not said with /: not guessed into, and nothing replaced.
    await writeFile(join(home, 'c.txt'), 'c');
    const onto = await runCli([...at, 'mv', 'c.txt', 'd'], dir, as);
    expect(onto.code).toBe(1);
    expect(onto.stderr).toContain('(ALREADY_EXISTS)');
    // Said how to move into it, as an account that may look would have.
    expect(onto.stderr).toContain('if d is a directory, give d/ to move into it');
    expect(await readFile(join(home, 'c.txt'), 'utf8')).toBe('c');
    expect(await readFile(join(home, 'd', 'b.txt'), 'utf8')).toBe('a');
  });
});

describe('mv of several paths for an account that may rename but not list', () => {
  it('moves them into TO, taken for a directory; one that is not fails each move, and nothing is lost', async () => {
    const { dir, port } = await setUp('mover', 'rename');
    const home = join(dir, 'data', 'mover');
    await writeFile(join(home, 'a.txt'), 'a');
    await writeFile(join(home, 'b.txt'), 'b');
    await writeFile(join(home, 'f.txt'), 'f');
    await mkdir(join(home, 'd'));
    const at = ['--server', `127.0.0.1:${port}`, '--user', 'mover'];
    // Before: each refused at the look at TO, "no list permission", though `mv a.txt d/` moved.
    expect(await runCli([...at, 'mv', 'a.txt', 'b.txt', 'd/'], dir, as)).toMatchObject({
      code: 0,
      stderr: '',
    });
    expect(await readFile(join(home, 'd', 'a.txt'), 'utf8')).toBe('a');
    expect(await readFile(join(home, 'd', 'b.txt'), 'utf8')).toBe('b');
    // A file at TO: the server refuses each move into it.
    await writeFile(join(home, 'c.txt'), 'c');
    const ontoFile = await runCli([...at, 'mv', 'd/a.txt', 'c.txt', 'f.txt'], dir, as);
    expect(ontoFile.code).toBe(1);
    expect(ontoFile.stderr.match(/\(NOT_A_DIRECTORY\)/g)).toHaveLength(2);
    expect(await readFile(join(home, 'f.txt'), 'utf8')).toBe('f');
    expect(await readFile(join(home, 'c.txt'), 'utf8')).toBe('c');
    expect(await readFile(join(home, 'd', 'a.txt'), 'utf8')).toBe('a');
  });
});
