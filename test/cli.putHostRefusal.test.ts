/**
 * put's target resolution on a server without logins (Client.permissions undefined: every
 * permission), where the host refuses a look (EACCES): the refusal is the answer, as before the
 * handling for accounts that may not list. No "cannot tell whether … is a directory" hint, which
 * could not help. A storage whose fs refuses paths with a `locked` segment, embedded; the built CLI.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path, { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsStorage } from '../storage/fsStorage.js';
import { runCli } from './helpers/cliProcess.js';
import { lockedFs } from './helpers/lockedFs.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-hostrefusal-');
let env: TestServer | undefined;

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

describe('put where the host refuses the look, no logins', () => {
  it('put -r tree locked/dest: the tree fails on the host refusal, no "cannot tell" hint', async () => {
    const dir = await tempDirs.make();
    const root = join(dir, 'data');
    await mkdir(join(root, 'locked', 'dest'), { recursive: true });
    await mkdir(join(dir, 'tree', 'in'), { recursive: true });
    await writeFile(join(dir, 'tree', 'a'), 'a');
    await writeFile(join(dir, 'tree', 'in', 'b'), 'b');
    env = await startServer({
      storage: new FsStorage({ fs: lockedFs(), root, hostPaths: path, durable: false }),
    });
    const result = await runCli(
      ['--server', `127.0.0.1:${env.port}`, 'put', '-r', 'tree', 'locked/dest'],
      dir,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain('cannot tell');
    expect(result.stderr).toContain('permission denied');
  });
});
