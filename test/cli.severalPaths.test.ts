/**
 * `muxftp ls` and `stat` given several paths, as ls(1) and stat(1) take them: ls lists the files
 * first, then each directory under a `PATH:` line with a blank line between; stat shows each
 * entry in turn; a path that fails is a line on stderr, the others are still shown, and the exit
 * status is 1. --json: one result per path, in the order given. Real server on 127.0.0.1, the
 * real CLI. Needs dist/ (npm run build).
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-several-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** The `ls` table's lines with the date and time taken out, so that they do not depend on the zone. */
const withoutTimes = (stdout: string): string =>
  stdout.replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, 'TIME').replace(/ +/g, ' ');

/** docs/ (guide.md, 300 B), logs/ (a.log, 20 B; old/), notes.txt (5 B), top.bin (1000 B). */
async function serveTree(): Promise<string[]> {
  server = await startServer({ backend: 'disk' });
  const root = server.root!;
  await mkdir(join(root, 'docs'));
  await mkdir(join(root, 'logs', 'old'), { recursive: true });
  await writeFile(join(root, 'docs', 'guide.md'), Buffer.alloc(300, 1));
  await writeFile(join(root, 'logs', 'a.log'), Buffer.alloc(20, 1));
  await writeFile(join(root, 'notes.txt'), 'notes');
  await writeFile(join(root, 'top.bin'), Buffer.alloc(1000, 1));
  await utimes(join(root, 'notes.txt'), new Date(Date.UTC(2021, 0, 1)), new Date(Date.UTC(2021, 0, 1)));
  await utimes(join(root, 'top.bin'), new Date(Date.UTC(2020, 0, 1)), new Date(Date.UTC(2020, 0, 1)));
  return ['--server', `127.0.0.1:${server.port}`];
}

describe('ls with several paths', () => {
  it('lists the files first, then each directory under its name, and fails for the one not there', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();
    const result = await runCli([...remote, 'ls', 'logs', 'top.bin', 'missing', 'docs', 'notes.txt'], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('muxftp: ls missing: no such file or directory: missing (NOT_FOUND)\n');
    expect(withoutTimes(result.stdout)).toBe(
      [
        'file 5 TIME notes.txt',
        'file 1000 TIME top.bin',
        '',
        'docs:',
        'file 300 TIME guide.md',
        '',
        'logs:',
        'file 20 TIME a.log',
        'dir - TIME old/',
        '',
      ].join('\n'),
    );

    // The files are sorted as the entries are (-t: newest first); -r lists each tree.
    const sorted = await runCli([...remote, 'ls', '-t', '-r', 'top.bin', 'notes.txt', 'logs'], cwd);
    expect(sorted.code).toBe(0);
    expect(withoutTimes(sorted.stdout)).toMatch(
      /^file 5 TIME notes\.txt\nfile 1000 TIME top\.bin\n\nlogs:\n(?:.*\n){2}$/,
    );
    expect(withoutTimes(sorted.stdout)).toContain('a.log');
  });

  it('prints one {path, ok, entries | error} per path with --json, in the order given', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();
    const result = await runCli([...remote, '--json', 'ls', 'docs', 'missing', 'top.bin', 'logs/*.log'], cwd);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject([
      { path: 'docs', ok: true, entries: [{ name: 'guide.md', type: 'file', size: 300 }] },
      { path: 'missing', ok: false, error: { code: 'NOT_FOUND' } },
      { path: 'top.bin', ok: true, entries: [{ name: 'top.bin', type: 'file', size: 1000 }] },
      { path: 'logs/*.log', ok: true, entries: [{ name: 'logs/a.log', type: 'file', size: 20 }] },
    ]);

    // One path: the entries alone, as before, and the same entries as each path's among several.
    const one = await runCli([...remote, '--json', 'ls', 'docs'], cwd);
    expect(JSON.parse(one.stdout)).toMatchObject([{ name: 'guide.md' }]);
    expect(JSON.parse(result.stdout)[0].entries).toEqual(JSON.parse(one.stdout));
  });

  it('shows a file by the path given, as ls(1) does, alone as among several', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();
    const alone = await runCli([...remote, 'ls', 'docs/guide.md'], cwd);
    const among = await runCli([...remote, 'ls', 'docs/guide.md', 'notes.txt'], cwd);
    // Before: `guide.md` alone, `docs/guide.md` among several.
    expect(withoutTimes(alone.stdout)).toBe('file 300 TIME docs/guide.md\n');
    expect(withoutTimes(among.stdout)).toBe('file 300 TIME docs/guide.md\nfile 5 TIME notes.txt\n');
    // --json: the entry as stat gives it, by its name (its path is what was asked).
    const json = await runCli([...remote, '--json', 'ls', 'docs/guide.md'], cwd);
    expect(JSON.parse(json.stdout)).toMatchObject([{ name: 'guide.md', type: 'file', size: 300 }]);
  });

  it('lists the directories in the order their entries would be in (ls(1) sorts its operands)', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();
    await utimes(join(server!.root!, 'docs'), new Date(Date.UTC(2019, 0, 1)), new Date(Date.UTC(2019, 0, 1)));
    await utimes(join(server!.root!, 'logs'), new Date(Date.UTC(2023, 0, 1)), new Date(Date.UTC(2023, 0, 1)));
    const headings = async (...args: string[]): Promise<string[]> => {
      const result = await runCli([...remote, 'ls', ...args], cwd);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
      return result.stdout.split('\n').filter((line) => line.endsWith(':'));
    };
    // Before: in the order given, whatever the order asked for.
    expect(await headings('logs', 'docs')).toEqual(['docs:', 'logs:']);
    expect(await headings('-t', 'docs', 'logs')).toEqual(['logs:', 'docs:']); // newest first
    expect(await headings('-t', '--reverse', 'logs', 'docs')).toEqual(['docs:', 'logs:']);
    expect(await headings('--reverse', 'docs', 'logs')).toEqual(['logs:', 'docs:']);
    // -S: a directory sorts as size 0, as among entries: ties go by name.
    expect(await headings('-S', 'logs', 'docs/')).toEqual(['docs/:', 'logs:']);

    // --json: one result per path in the order given, as README says, for scripts to pair up.
    const json = await runCli([...remote, '--json', 'ls', 'logs', 'docs'], cwd);
    expect(JSON.parse(json.stdout).map((result: { path: string }) => result.path)).toEqual(['logs', 'docs']);
  });
});

describe('stat with several paths', () => {
  it('shows each entry in turn, and fails for the one not there', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();
    const result = await runCli([...remote, 'stat', 'notes.txt', 'missing', 'docs'], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('muxftp: stat missing: no such file or directory: missing (NOT_FOUND)\n');
    const records = result.stdout.split('\n\n');
    expect(records).toHaveLength(2);
    expect(records[0]).toMatch(/^path {3}notes\.txt\ntype {3}file\nsize {3}5 \(5 B\)\n/);
    expect(records[1]).toMatch(/^path {3}docs\ntype {3}dir\n/);

    const hashed = await runCli([...remote, 'stat', 'notes.txt', 'top.bin', '--hash'], cwd);
    expect(hashed.code).toBe(0);
    expect(hashed.stdout.match(/^xxh128 [0-9a-f]{32}$/gm)).toHaveLength(2);
  });

  it('prints one {path, ok, entry | error} per path with --json, in the order given', async () => {
    const remote = await serveTree();
    const cwd = await tempDirs.make();
    const result = await runCli([...remote, '--json', 'stat', '--hash', 'sha256', 'top.bin', 'missing'], cwd);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject([
      {
        path: 'top.bin',
        ok: true,
        entry: { name: 'top.bin', type: 'file', size: 1000, algorithm: 'sha256' },
      },
      { path: 'missing', ok: false, error: { code: 'NOT_FOUND' } },
    ]);
    // One path: the entry alone, as each path's among several, with `ok` (as its failure has).
    const one = await runCli([...remote, '--json', 'stat', '--hash', 'sha256', 'top.bin'], cwd);
    expect(JSON.parse(one.stdout)).toEqual({ ok: true, ...JSON.parse(result.stdout)[0].entry });
  });
});
