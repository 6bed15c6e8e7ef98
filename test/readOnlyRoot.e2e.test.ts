/**
 * A served root on a read-only filesystem (a tmpfs remounted ro): what a client asks to write
 * there is refused PERMISSION_DENIED, saying why, as serve's start-up warning announces. Real
 * `muxftp serve` and CLI children over 127.0.0.1; needs root to mount (else skipped).
 */

import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startServeChild, stopChildren } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { canMountTmpfs, mountTmpfs } from './helpers/tmpfsMount.js';

const children = new Set<ChildProcess>();
const tempDirs = new TempDirs('muxftp-readonly-');
const mounts: Array<{ remove(): void }> = [];

afterEach(async () => {
  await stopChildren(children);
  for (const mount of mounts.splice(0)) mount.remove();
  await tempDirs.removeAll();
});

describe.skipIf(!canMountTmpfs)('a served root on a read-only filesystem', () => {
  it('refuses an upload and a mkdir PERMISSION_DENIED: read-only file system', async () => {
    const mount = mountTmpfs('1m');
    mounts.push(mount);
    const root = join(mount.dir, 'root');
    await mkdir(join(root, 'up'), { recursive: true });
    execFileSync('mount', ['-o', 'remount,ro', mount.dir], { stdio: 'ignore' });
    const { port } = await startServeChild(['--root', root], children);
    const cwd = await tempDirs.make();
    await writeFile(join(cwd, 'a.txt'), 'hello\n');
    const server = ['--server', `127.0.0.1:${port}`];

    const put = await runCli([...server, '--json', 'put', 'a.txt', 'up/a.txt'], cwd);
    expect(put.code).toBe(1);
    expect(put.stderr).toBe('muxftp: put a.txt: read-only file system: up/a.txt (PERMISSION_DENIED)\n');
    expect(JSON.parse(put.stdout)).toMatchObject([
      { remote: 'up/a.txt', ok: false, error: { code: 'PERMISSION_DENIED' } },
    ]);

    const made = await runCli([...server, 'mkdir', 'new'], cwd);
    expect(made.code).toBe(1);
    expect(made.stderr).toBe('muxftp: mkdir new: read-only file system: new (PERMISSION_DENIED)\n');
  });
});
