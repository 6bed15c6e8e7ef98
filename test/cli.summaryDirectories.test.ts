/**
 * The summary line counts files: a directory that failed (not listed, not read, not made) is
 * counted as one, apart from them, not among the files that failed. Before, `get -r` with the
 * server gone during its listing ended `0 files (0 B), 246 failed, 54 not started`, where 245 of
 * the 246 were directories (the line above named them so) and one a file. Real server on
 * 127.0.0.1 (disk), the built CLI; not on a terminal, so the line ends only a run where some failed.
 */
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { writeTree } from './helpers/tree.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-summary-dirs-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

const lastLine = (stderr: string) => stderr.trimEnd().split('\n').at(-1);

it('put -r: a directory it could not read (a link loop) is a directory failed, not a file', async () => {
  server = await startServer({ backend: 'disk' });
  const local = await tempDirs.make();
  await writeTree(local, { 'site/a': 'aa', 'site/sub/b': 'bb' });
  await symlink('..', join(local, 'site', 'sub', 'up')); // site/sub/up is site/ again
  const result = await runCli(
    ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'site', '--to', 'backup/', '-p'],
    local,
  );
  expect(result.code).toBe(1);
  // Before: `2 files (4 B), 1 failed in …`: both files were sent.
  expect(lastLine(result.stderr)).toMatch(/^muxftp: 2 files \(4 B\), 1 directory failed in /);
});

it('get -r: a directory it could not make fails with what goes in it, counted apart', async () => {
  server = await startServer({ backend: 'disk' });
  await writeTree(server.root!, { 'srv/a': 'aa', 'srv/d/x': 'xx', 'srv/d/e/y': 'yy' });
  const local = await tempDirs.make();
  // A file where the tree has the directory d: d fails, and d/e, d/x and d/e/y with it.
  await writeTree(local, { 'out/srv/d': 'in the way' });
  const result = await runCli(
    ['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'srv', '--to', 'out'],
    local,
  );
  expect(result.code).toBe(1);
  // Before: `1 file (2 B), 4 failed in …`.
  expect(lastLine(result.stderr)).toMatch(/^muxftp: 1 file \(2 B\), 2 failed, 2 directories failed in /);
});

it('get -r: a run where every file failed with its directory still ends with the line', async () => {
  server = await startServer({ backend: 'disk' });
  await writeTree(server.root!, { 'srv/d/x': 'xx', 'srv/d/y': 'yy' });
  const local = await tempDirs.make();
  // A file where the tree has the directory d: d fails, and both files with it; nothing is sent.
  await writeTree(local, { 'out/srv/d': 'in the way' });
  const result = await runCli(
    ['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'srv', '--to', 'out'],
    local,
  );
  expect(result.code).toBe(1);
  // Before: no line at all, the transfers having no job left to run.
  expect(lastLine(result.stderr)).toMatch(/^muxftp: 0 files \(0 B\), 2 failed, 1 directory failed in /);
});
