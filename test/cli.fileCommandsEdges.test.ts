/**
 * Edge cases of the remote file commands (rm, mv, ls, stat, chmod) over a disk: links, trailing
 * slashes, several paths. Real server on 127.0.0.1, the real CLI, temp dirs. Needs dist/ (npm
 * run build).
 */
import { chmod, lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer;
let local: string;
const tempDirs = new TempDirs('muxftp-file-edges-');

beforeEach(async () => {
  server = await startServer({ backend: 'disk' });
  local = await tempDirs.make();
  await mkdir(join(server.root!, 'd'));
  await writeFile(join(server.root!, 'd', 'f'), 'kept');
  await symlink('d', join(server.root!, 'link'));
});

afterEach(async () => {
  await server.stop();
  await tempDirs.removeAll();
});

const cli = (...args: string[]) => runCli(['--server', `127.0.0.1:${server.port}`, ...args], local);

describe('rm of a path ending in /', () => {
  it('of a link to a directory, without -r, is refused as the directory it names: the link stays', async () => {
    for (const argument of ['link/', 'd/']) {
      const result = await cli('rm', argument);
      expect({ code: result.code, stderr: result.stderr }).toEqual({
        code: 1,
        stderr: `muxftp: rm ${argument}: is a directory: ${argument.slice(0, -1)} (IS_A_DIRECTORY); add -r to remove it and everything in it\n`,
      });
    }
    // Before: `rm link/` removed the link and exited 0.
    expect((await lstat(join(server.root!, 'link'))).isSymbolicLink()).toBe(true);
    expect((await cli('ls', 'link')).stdout).toMatch(/ f\n$/);
  });
});

describe('ls of a directory whose name holds […] or {…}', () => {
  it('lists what is in it, as it names itself alone (as rm, mv and get -r take it); -r too', async () => {
    await mkdir(join(server.root!, '[backup]', 'in'), { recursive: true });
    await writeFile(join(server.root!, '[backup]', 'in', 'f'), 'x');
    await mkdir(join(server.root!, 'b'));
    const names = (stdout: string) =>
      stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(/\s+/).at(-1));
    for (const argument of ['[backup]', '[backup]/']) {
      const listed = await cli('ls', argument);
      expect({ code: listed.code, stderr: listed.stderr, names: names(listed.stdout) }).toEqual({
        code: 0,
        stderr: '',
        names: ['in/'], // was `[backup]/`, the directory itself, as `ls -d` shows a pattern's match
      });
    }
    const tree = await cli('ls', '-r', '[backup]');
    expect({ code: tree.code, stderr: tree.stderr, names: names(tree.stdout) }).toEqual({
      code: 0,
      stderr: '',
      names: ['in/', 'in/f'], // was refused: "ls -r lists a directory, not a pattern"
    });
    // A pattern it is where no such name is: what it matches, by path.
    expect(names((await cli('ls', '[ab]')).stdout)).toEqual(['b/']);
    expect((await cli('ls', '-r', '[ab]')).stderr).toContain('ls -r lists a directory, not a pattern');
  });
});

describe('chmod of a path ending in /', () => {
  it('of a file fails NOT_A_DIRECTORY and changes nothing, as chmod f/. did (and rm f/, mv f/ x)', async () => {
    const file = join(server.root!, 'd', 'f');
    const before = (await lstat(file)).mode & 0o777;
    for (const args of [
      ['600', 'd/f/'],
      ['-R', '600', 'd/f/'],
    ]) {
      const result = await cli('chmod', ...args);
      expect({ code: result.code, stderr: result.stderr }).toEqual({
        code: 1,
        stderr: 'muxftp: chmod d/f/: not a directory: d/f (NOT_A_DIRECTORY)\n',
      });
    }
    // Before: the slash was dropped and the file got 0600.
    expect((await lstat(file)).mode & 0o777).toBe(before);
    expect(await cli('chmod', '700', 'd/')).toMatchObject({ code: 0, stderr: '' });
    expect((await lstat(join(server.root!, 'd'))).mode & 0o777).toBe(0o700);
  });
});

describe('stat --hash of a path ending in /', () => {
  it('of a file fails NOT_A_DIRECTORY, as stat FILE/ does without --hash', async () => {
    for (const args of [['d/f/'], ['--hash', 'd/f/'], ['d/f/', '--hash', 'sha256']]) {
      const result = await cli('stat', ...args);
      // Before: with --hash the file's entry and digest were printed, exit 0.
      expect({ args, code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stdout: '',
        stderr: 'muxftp: stat d/f/: not a directory: d/f (NOT_A_DIRECTORY)\n',
      });
    }
    // A directory has no digest, however it is written.
    const directory = await cli('stat', '--hash', 'd/');
    expect({ code: directory.code, stderr: directory.stderr }).toEqual({
      code: 1,
      stderr: expect.stringMatching(/^muxftp: stat d\/: .*\(IS_A_DIRECTORY\); --hash digests files only/),
    });
  });
});

describe('chmod of a path starting with -', () => {
  it('takes it after --, as every other command does, and still refuses it as an option before', async () => {
    await writeFile(join(server.root!, '-f'), 'x');
    const modeOf = async () => (await lstat(join(server.root!, '-f'))).mode & 0o777;
    // It said "unknown option '-f'" (exit 2) for each: commander drops the `--` itself when
    // nothing unknown to it came before, or passes it on as a path when the mode (-r) was.
    for (const [args, mode] of [
      [['600', '--', '-f'], 0o600],
      [['--', '640', '-f'], 0o640],
      [['-r', '--', '-f'], 0o600], // the server keeps its own read and write
      [['--', 'g+r', '-f'], 0o640],
    ] as const) {
      const result = await cli('chmod', ...args);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(await modeOf()).toBe(mode);
    }
    const unknown = await cli('chmod', '600', '-f');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '-f'");
    expect(await cli('chmod', '-R', '600', 'd', '-x')).toMatchObject({ code: 2 });
    expect(await modeOf()).toBe(0o640);
  });

  it('takes every word after the first -- as a path, a second -- too, as rm does', async () => {
    const names = ['--', '-a', '-b'];
    for (const name of names) await writeFile(join(server.root!, name), 'x');
    // With a mode not starting with '-', commander drops the first `--`: the second was then taken
    // for it, and dropped (`600 -- -- -a` left the file `--` as it was, exit 0) or ended the paths
    // there (`600 -- -a -- -b` refused "unknown option '-a'", exit 2).
    for (const [args, changed] of [
      [
        ['600', '--', '--', '-a'],
        ['--', '-a'],
      ],
      [
        ['600', '--', '-a', '--', '-b'],
        ['--', '-a', '-b'],
      ],
      [
        ['-r', '--', '--', '-a'],
        ['--', '-a'],
      ],
      [
        ['-r', '--', '-a', '--', '-b'],
        ['--', '-a', '-b'],
      ],
    ] as const) {
      for (const name of names) await chmod(join(server.root!, name), 0o644);
      const result = await cli('chmod', ...args);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
      const modes = Object.fromEntries(
        await Promise.all(
          names.map(async (name) => [name, (await lstat(join(server.root!, name))).mode & 0o777]),
        ),
      );
      const expected = Object.fromEntries(
        names.map((name) => [name, (changed as readonly string[]).includes(name) ? 0o600 : 0o644]),
      );
      expect({ args, modes }).toEqual({ args, modes: expected });
    }
  });
});

describe('mv of a path to itself', () => {
  it('fails as mv(1) does ("the same file", exit 1), not exit 0 having moved nothing', async () => {
    await mkdir(join(server.root!, 'd', 'sub'));
    // d/sub into d, where it is; a file onto itself, by another spelling too; several into where they are.
    for (const args of [
      ['d/sub', 'd'],
      ['d/f', 'd/f'],
      ['d/f', 'd/./f'],
      ['d/f', 'd/'],
      ['d/f', 'd/sub', 'd'],
    ]) {
      const result = await cli('mv', ...args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(/are the same file: nothing moved \(INVALID_PATH\)\n$/);
    }
    expect(await cli('--json', 'mv', 'd/sub', 'd')).toMatchObject({ code: 1 });
    // A path not there is said so, as mv(1)'s "cannot stat", not "the same file".
    for (const args of [
      ['gone', 'gone'],
      ['d/gone', 'd'],
      ['d/gone', 'd/f', 'd'],
    ]) {
      const result = await cli('mv', ...args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(/no such file or directory: (d\/)?gone \(NOT_FOUND\)\n/);
    }
    // What moves still does.
    expect(await cli('mv', 'd/f', 'd/sub')).toMatchObject({ code: 0, stderr: '' });
    expect((await lstat(join(server.root!, 'd', 'sub', 'f'))).isFile()).toBe(true);
  });
});

describe('mv of a link onto what it leads to', () => {
  it('is refused as mv(1) refuses it ("the same file"), not a file replaced by a link to itself', async () => {
    await writeFile(join(server.root!, 't'), 'kept');
    await symlink('t', join(server.root!, 'lt'));
    await symlink('../t', join(server.root!, 'd', 'lt'));
    for (const args of [
      ['lt', 't'],
      ['d/lt', 't'],
    ]) {
      const result = await cli('mv', ...args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(
        /leads to t: the same file, nothing to move \(ALREADY_EXISTS\)\n$/,
      );
      // Before: t became a link to itself, its bytes gone.
      expect(await readFile(join(server.root!, 't'), 'utf8')).toBe('kept');
    }
    // A file onto a link to it replaces the link, as mv(1) does: nothing is lost.
    expect(await cli('mv', 't', 'lt')).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(server.root!, 'lt'), 'utf8')).toBe('kept');
  });
});
