/**
 * `put -r` and `chmod -R` of a directory holding tens of thousands of files: a bounded number of
 * calls in flight, not one suspended call per name. Real server on 127.0.0.1 (disk), the real CLI
 * under a small heap. Needs dist/ (npm run build).
 */

import { closeSync, openSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-widetree-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

it('put -r walks a directory of 40,000 files within a 48 MB heap', async () => {
  server = await startServer({ backend: 'disk' });
  const local = await tempDirs.make();
  await mkdir(join(local, 'wide'));
  const files = 40_000;
  for (let i = 0; i < files; i++) closeSync(openSync(join(local, 'wide', `f${i}`), 'w'));

  // A dry run: the walk and the plan, without 40,000 uploads.
  const result = await runCli(
    ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'wide', '--to', 'backup/', '-n', '-q'],
    local,
    { env: { NODE_OPTIONS: '--max-old-space-size=48' }, timeoutMs: 60_000 },
  );

  // Before: every name of the directory was stat'ed at once, each an async call suspended until
  // its stat was done (some 3 KiB each: 130 MB here), and the CLI died of a full heap (SIGABRT).
  expect(result.signal).toBe(null);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout.match(/^would put /gm)).toHaveLength(files);
}, 120_000);

it('chmod -R of a directory of 20,000 files changes them all within a 32 MB heap', async () => {
  server = await startServer({ backend: 'disk' });
  const local = await tempDirs.make();
  await mkdir(join(server.root!, 'wide'));
  const files = 20_000;
  for (let i = 0; i < files; i++) closeSync(openSync(join(server.root!, 'wide', `f${i}`), 'w', 0o600));

  const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'chmod', '-R', '640', 'wide'], local, {
    env: { NODE_OPTIONS: '--max-old-space-size=32' },
    timeoutMs: 60_000,
  });

  // Before: a call held for each entry until the limit let it run (ls -r of it fits the heap).
  expect(result.signal).toBe(null);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  for (const i of [0, files / 2, files - 1])
    expect((await stat(join(server.root!, 'wide', `f${i}`))).mode & 0o777).toBe(0o640);
}, 120_000);

it('ls -r of a directory of 20,000 subdirectories lists them all within a 48 MB heap', async () => {
  server = await startServer({ backend: 'disk' });
  const local = await tempDirs.make();
  await mkdir(join(server.root!, 'wide'));
  const dirs = 20_000;
  for (let i = 0; i < dirs; i++) await mkdir(join(server.root!, 'wide', `d${i}`));

  const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'ls', '-r', 'wide'], local, {
    env: { NODE_OPTIONS: '--max-old-space-size=48' },
    timeoutMs: 60_000,
  });

  // Before: the walk (get -r's, rm -r's, chmod -R's too) held a call for each subdirectory found,
  // waiting in line for its listing, and the CLI died of a full heap (SIGABRT) before a line.
  expect(result.signal).toBe(null);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout.trim().split('\n')).toHaveLength(dirs);
}, 120_000);
