/**
 * What a user in their first hour types, with habits from scp, lftp and curl, and what muxftp
 * answers: each mistake gets a line that says what muxftp does instead, or what to type.
 * Real server on 127.0.0.1 (port 0), temp dirs, `node bin/muxftp.js …` children. Needs dist/.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-newcomer-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

const hostPathWarning = (argument: string) =>
  `muxftp: warning: ${argument} names a path with a colon in it on the server; the server is --server's (or $MUXFTP_SERVER's), not named in the path as scp's host:path is\n`;

describe("scp's [user@]host:path", () => {
  it('is warned of with a user or an IPv4 address too, as with a bare host name', async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    await writeFile(join(local, 'a.txt'), 'a');
    const at = ['--server', `127.0.0.1:${server.port}`];
    for (const remote of ['alice@backup:a.txt', '10.0.0.5:a.txt', '[fd00::5]:a.txt', 'backup:a.txt']) {
      const put = await runCli(['put', 'a.txt', remote, ...at], local);
      // Before: only backup:a.txt was warned of; the others were stored without a word.
      expect({ remote, code: put.code, stderr: put.stderr }).toEqual({
        remote,
        code: 0,
        stderr: hostPathWarning(remote),
      });
    }
    const get = await runCli(['get', 'alice@backup:a.txt', 'back.txt', ...at], local);
    expect(get).toMatchObject({ code: 0, stderr: hostPathWarning('alice@backup:a.txt') });
    // A name with a time in it is no host's.
    const timed = await runCli(['put', 'a.txt', '2024-06-01T10:00.log', ...at], local);
    expect(timed).toMatchObject({ code: 0, stderr: '' });
    // Nor one that starts with a bracketed number: no colon in the brackets, no IPv6 address.
    const bracketed = await runCli(['put', 'a.txt', '[2024]:notes', ...at], local);
    expect(bracketed).toMatchObject({ code: 0, stderr: '' });
  });
});

describe("other tools' commands", () => {
  it("an lftp, sftp or git command says muxftp's way to do it, not a look-alike's name", async () => {
    const local = await tempDirs.make();
    for (const [command, instead] of [
      // Before: "(Did you mean help?)", "(Did you mean put?)", "(Did you mean stat?)".
      ['del', 'rm'],
      ['pull', 'get'],
      ['cat', 'get FILE -, to stdout'],
      // Before: no word at all.
      ['upload', 'put'],
      ['mirror', 'put -r or get -r, with --delete to remove what the source lacks'],
      ['cd', 'no working directory: each remote path starts at the root (your home once logged in)'],
      ['version', '--version, -V'],
    ]) {
      const result = await runCli([command!, 'x'], local);
      expect({ command, code: result.code, first: result.stderr.split('\n')[0] }).toEqual({
        command,
        code: 2,
        first: `muxftp: unknown command '${command}' (muxftp: ${instead})`,
      });
      expect(result.stderr).not.toContain('Did you mean');
    }
    // Before: "(muxftp: --json gives a result for each file)" alone, to `muxftp -v` too.
    const v = await runCli(['-v'], local);
    expect(v).toMatchObject({ code: 2 });
    expect(v.stderr.split('\n')[0]).toBe(
      "muxftp: unknown option '-v' (muxftp: -V, --version for the version; --json gives a result for each file)",
    );
    // A plain typo keeps commander's suggestion.
    const typo = await runCli(['gte', 'x'], local);
    expect(typo).toMatchObject({ code: 2 });
    expect(typo.stderr.split('\n').slice(0, 2)).toEqual([
      "muxftp: unknown command 'gte'",
      '(Did you mean get?)',
    ]);
    // Under `user` (add, del, list), not the file commands: `user delete` is not rm.
    const userDelete = await runCli(['user', 'delete', 'alice'], local);
    expect(userDelete).toMatchObject({ code: 2 });
    expect(userDelete.stderr.split('\n').slice(0, 2)).toEqual([
      "muxftp: unknown command 'delete'",
      '(Did you mean del?)',
    ]);
  });
});

describe("scp's `put a b DIR`", () => {
  it('says how to write it with --to, and how to put them all where one alone goes', async () => {
    const local = await tempDirs.make();
    await writeFile(join(local, 'a.txt'), 'a');
    await writeFile(join(local, 'b.txt'), 'b');
    const put = await runCli(['put', 'a.txt', 'b.txt', 'backup'], local);
    expect(put.code).toBe(2);
    // Before: "several local files need --to REMOTE_DIR (a second argument alone is a remote name)".
    expect(put.stderr.split('\n')[0]).toBe(
      "muxftp: several local files need --to REMOTE_DIR (a second argument alone is a remote name): `put … --to backup/` puts the others into backup, as scp's last argument does; `--to /` puts them all at the root",
    );
    const get = await runCli(['get', 'a.txt', 'b.txt', 'out/'], local);
    expect(get.code).toBe(2);
    expect(get.stderr.split('\n')[0]).toBe(
      "muxftp: several remote files need --to LOCAL_DIR (a second argument alone is a local name): `get … --to out/` gets the others into out, as scp's last argument does; `--to .` gets them all here",
    );
    // The root, or here: one way, said once; a name with a space, quoted as a shell reads it.
    const root = await runCli(['put', 'a.txt', 'b.txt', '/'], local);
    expect(root.stderr.split('\n')[0]).toBe(
      "muxftp: several local files need --to REMOTE_DIR (a second argument alone is a remote name): `put … --to /` puts the others at the root, as scp's last argument does",
    );
    const here = await runCli(['get', 'a.txt', 'b.txt', '.'], local);
    expect(here.stderr.split('\n')[0]).toBe(
      "muxftp: several remote files need --to LOCAL_DIR (a second argument alone is a local name): `get … --to ./` gets the others here, as scp's last argument does",
    );
    const spaced = await runCli(['put', 'a.txt', 'b.txt', 'my dir'], local);
    expect(spaced.stderr.split('\n')[0]).toContain("`put … --to 'my dir/'` puts the others into my dir");
  });
});

describe("a command's usage error", () => {
  it("points at that command's own help", async () => {
    const local = await tempDirs.make();
    for (const [args, help] of [
      [['chmod', '999', 'f'], 'muxftp chmod --help'],
      [['ls', '--bogus'], 'muxftp ls --help'],
      [['user', 'add', 'zoe'], 'muxftp user add --help'],
    ] as const) {
      const result = await runCli([...args], local);
      // Before: "(see muxftp --help, or muxftp <command> --help)" whatever the command.
      expect({ args, code: result.code, last: result.stderr.trimEnd().split('\n').at(-1) }).toEqual({
        args,
        code: 2,
        last: `(see ${help})`,
      });
    }
    // Before any command: the general pointer.
    const unknown = await runCli(['--bogus'], local);
    expect(unknown.stderr.trimEnd().split('\n').at(-1)).toBe(
      '(see muxftp --help, or muxftp <command> --help)',
    );
  });
});

describe('a second serve on a port in use', () => {
  it('says what to do: stop the other, or choose another --port (0 picks a free one)', async () => {
    server = await startServer({ backend: 'memory' });
    const dir = await tempDirs.make();
    const result = await runCli(['serve', '--port', String(server.port), '--root', dir], dir, {
      timeoutMs: 10_000,
    });
    // Before: "address already in use" alone.
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `muxftp: serve: cannot listen on 127.0.0.1:${server.port}: address already in use (another server has that port: stop it, or choose another --port; --port 0 picks a free one)\n`,
    });
    // The metrics port the same, in its own flag's words.
    const metrics = await runCli(
      ['serve', '--memory', '--port', '0', '--metrics', `127.0.0.1:${server.port}`],
      dir,
      { timeoutMs: 10_000 },
    );
    expect(metrics).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(
        `cannot serve metrics on 127.0.0.1:${server.port}: address already in use (another server has that port: stop it, or choose another --metrics; --metrics :0 picks a free one)\n`,
      ),
    });
  });
});

describe('serve --root of a file', () => {
  it('says the root is no directory, in the words of the command line', async () => {
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'notes.txt'), 'x');
    const result = await runCli(['serve', '--port', '0', '--root', 'notes.txt'], dir, { timeoutMs: 10_000 });
    // Before: "serve: DiskStorage: cannot use …", the library's class name.
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `muxftp: serve: cannot use ${join(dir, 'notes.txt')} as the root: not a directory\n`,
    });
  });
});

describe('a file not there', () => {
  it("says which side it is missing on, not only by the code at the line's end", async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    const put = await runCli(['put', 'nothere.txt', ...at], local);
    // Before: "no such file or directory: nothere.txt (LOCAL_IO_ERROR)", get's words.
    expect(put).toMatchObject({
      code: 1,
      stderr: 'muxftp: put nothere.txt: no such local file or directory: nothere.txt (LOCAL_IO_ERROR)\n',
    });
    const get = await runCli(['get', 'nothere.txt', ...at], local);
    expect(get).toMatchObject({
      code: 1,
      stderr: 'muxftp: get nothere.txt: no such file or directory: nothere.txt (NOT_FOUND)\n',
    });
  });
});

describe('stat --hash of a directory', () => {
  it('says --hash is for files, and how to see the directory', async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    expect((await runCli(['mkdir', 'photos', ...at], local)).code).toBe(0);
    const result = await runCli(['stat', 'photos', '--hash', ...at], local);
    // Before: "is a directory: photos (IS_A_DIRECTORY)" alone, though `stat photos` shows it.
    expect(result).toMatchObject({
      code: 1,
      stderr:
        'muxftp: stat photos: is a directory: photos (IS_A_DIRECTORY); --hash digests files only: stat it without --hash\n',
    });
    expect(await runCli(['stat', 'photos', ...at], local)).toMatchObject({ code: 0, stderr: '' });
  });
});

describe('~ in a remote path', () => {
  it('is said to be the shell’s, in place of `add -p`, which would make a directory named ~', async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    await writeFile(join(local, 'a.txt'), 'a');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const hint = '~ is not expanded on the server: remote paths start at its root (your home once logged in)';
    const get = await runCli(['get', '~/notes.txt', ...at], local);
    // Before: the NOT_FOUND alone.
    expect(get).toMatchObject({
      code: 1,
      stderr: `muxftp: get ~/notes.txt: no such file or directory: ~/notes.txt (NOT_FOUND); ${hint}\n`,
    });
    const put = await runCli(['put', 'a.txt', '~/docs/a.txt', ...at], local);
    // Before: "…; add -p to create it".
    expect(put).toMatchObject({
      code: 1,
      stderr: `muxftp: put a.txt: no such file or directory: ~/docs (NOT_FOUND); ${hint}\n`,
    });
    // Office's lock files (~$report.docx) are names, not homes.
    const lock = await runCli(['get', '~$report.docx', ...at], local);
    expect(lock.stderr).toBe(
      'muxftp: get ~$report.docx: no such file or directory: ~$report.docx (NOT_FOUND)\n',
    );
    // A local ~ (quoted, left by the shell) is not the server's: -p makes it, as asked.
    expect((await runCli(['put', 'a.txt', 'notes.txt', ...at], local)).code).toBe(0);
    const intoLocal = await runCli(['get', 'notes.txt', '--to', '~/dl/', ...at], local);
    expect(intoLocal).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /: no such local directory: ~\/dl\/? \(NOT_FOUND\); add -p to create it\n$/,
      ),
    });
  });
});

describe('put of a file where the server has a directory of its name', () => {
  it('says the directory is on the server, and how to put the file into it', async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    await writeFile(join(local, 'notes'), 'n');
    const at = ['--server', `127.0.0.1:${server.port}`];
    expect((await runCli(['mkdir', 'notes', ...at], local)).code).toBe(0);
    const put = await runCli(['put', 'notes', ...at], local);
    // Before: "is a directory: notes (IS_A_DIRECTORY)" alone, which reads as the local file's.
    expect(put).toMatchObject({
      code: 1,
      stderr:
        'muxftp: put notes: is a directory: notes (IS_A_DIRECTORY); a directory on the server has that name: to put the file into it, --to notes/\n',
    });
    expect(await runCli(['put', 'notes', '--to', 'notes/', ...at], local)).toMatchObject({
      code: 0,
      stderr: '',
    });
    // A name with a space: the --to as a shell reads it back.
    await writeFile(join(local, 'my notes'), 'm');
    expect((await runCli(['mkdir', 'my notes', ...at], local)).code).toBe(0);
    const spaced = await runCli(['put', 'my notes', ...at], local);
    expect(spaced.stderr).toContain("to put the file into it, --to 'my notes/'\n");
    // One of several, or with --to already: no --to to suggest (it would move them all).
    await writeFile(join(local, 'other'), 'o');
    expect((await runCli(['mkdir', '-p', 'd2/notes', ...at], local)).code).toBe(0);
    const several = await runCli(['put', 'notes', 'other', '--to', 'd2/', ...at], local);
    expect(several).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(
        'muxftp: put notes: is a directory: d2/notes (IS_A_DIRECTORY); a directory on the server has that name\n',
      ),
    });
    // Nor with a remote name given: --to added to it would make that name a second source.
    const named = await runCli(['put', 'notes', 'd2', ...at], local);
    expect(named).toMatchObject({
      code: 1,
      stderr:
        'muxftp: put notes: is a directory: d2/notes (IS_A_DIRECTORY); a directory on the server has that name\n',
    });
  });
});

describe('get of a file where a local directory has its name', () => {
  it('says the directory is the local one, and how to get the file into it', async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    await writeFile(join(local, 'notes'), 'n');
    const at = ['--server', `127.0.0.1:${server.port}`];
    expect((await runCli(['put', 'notes', ...at], local)).code).toBe(0);
    await rm(join(local, 'notes'));
    await mkdir(join(local, 'notes'));
    const get = await runCli(['get', 'notes', ...at], local);
    // Before: "is a directory: notes (LOCAL_IO_ERROR)" alone: only the code said which side.
    expect(get).toMatchObject({
      code: 1,
      stderr:
        'muxftp: get notes: is a directory: notes (LOCAL_IO_ERROR); a local directory has that name: to get the file into it, --to notes/\n',
    });
    expect(await runCli(['get', 'notes', '--to', 'notes/', ...at], local)).toMatchObject({
      code: 0,
      stderr: '',
    });
    expect(await readFile(join(local, 'notes', 'notes'), 'utf8')).toBe('n');
    // A name with a space: the --to as a shell reads it back.
    await writeFile(join(local, 'my notes'), 'm');
    expect((await runCli(['put', 'my notes', ...at], local)).code).toBe(0);
    await rm(join(local, 'my notes'));
    await mkdir(join(local, 'my notes'));
    const spaced = await runCli(['get', 'my notes', ...at], local);
    expect(spaced.stderr).toContain(
      "; a local directory has that name: to get the file into it, --to 'my notes/'\n",
    );
    // One of several (or under --to, or -r): no --to to suggest, it would move them all.
    const several = await runCli(['get', 'notes', 'my notes', '--to', '.', ...at], local);
    expect(several).toMatchObject({ code: 1 });
    expect(several.stderr).toContain('(LOCAL_IO_ERROR); a local directory has that name\n');
    // Nor with a local name given: --to added to it would make that name a second remote path.
    await mkdir(join(local, 'dest', 'notes'), { recursive: true });
    const named = await runCli(['get', 'notes', 'dest', ...at], local);
    expect(named).toMatchObject({ code: 1 });
    expect(named.stderr).toContain('(LOCAL_IO_ERROR); a local directory has that name\n');
  });
});

describe('-p with a remote path that starts with ~', () => {
  it('warns that it makes a directory named ~ at the root', async () => {
    server = await startServer({ backend: 'memory' });
    const local = await tempDirs.make();
    await writeFile(join(local, 'a.txt'), 'a');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const why =
      "at the server's root: ~ is not expanded there (remote paths start at its root, your home once logged in)";
    // `--to=~/docs/`: no shell expands a ~ after the =.
    const put = await runCli(['put', '-p', 'a.txt', '--to=~/docs/', ...at], local);
    // Before: made ~/docs without a word.
    expect(put).toMatchObject({
      code: 0,
      stderr: `muxftp: warning: ~/docs/ makes a directory named ~ ${why}\n`,
    });
    const mkdir = await runCli(['mkdir', '-p', '~alice/x', 'plain/y', ...at], local);
    expect(mkdir).toMatchObject({
      code: 0,
      stderr: `muxftp: warning: ~alice/x makes a directory named ~alice ${why}\n`,
    });
    const ls = await runCli(['ls', ...at], local);
    expect(ls.stdout).toMatch(/ ~\/\n/);
  });
});
