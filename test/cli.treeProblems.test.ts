/**
 * `put -r` / `get -r --json`: an entry the tree walk had to skip (a dangling link, a FIFO, a
 * directory it cannot read; a FIFO and a dangling link as skipped, not failed) still gets both its paths in its result, as every other file does,
 * so a script can tell where it would have gone. Real server on 127.0.0.1 (disk), the real CLI.
 * Needs dist/ (npm run build).
 */

import { spawnSync } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-treeproblems-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

interface Outcome {
  local: string;
  remote: string;
  ok: boolean;
  skipped?: true;
  error?: { code: string };
}

describe('--json results of entries a tree walk skipped', () => {
  it('put -r skips a dangling link, naming the remote path it would have had, and fails nothing', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'site', 'sub'), { recursive: true });
    await writeFile(join(local, 'site', 'index.html'), 'hi');
    await symlink('nowhere', join(local, 'site', 'sub', 'gone'));
    // What an editor leaves beside a file being edited: a link to nothing, by design.
    await symlink('user@host.1234:1700000000', join(local, 'site', '.#index.html'));
    const at = ['--server', `127.0.0.1:${server.port}`];
    expect((await runCli([...at, 'put', '-r', 'site', '--to', 'backup/', '-p', '-q'], local)).code).toBe(0);
    await writeFile(join(server.root!, 'backup', 'site', 'stale.html'), 'old');

    // Before: each link failed the run (exit 1), so --delete never deleted anything again.
    const result = await runCli([...at, '--json', 'put', '-r', 'site', '--to', 'backup/', '--delete'], local);

    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      `muxftp: put ${join('site', 'sub', 'gone')}: symbolic link to nothing (nowhere does not exist), skipped\n`,
    );
    expect(result.stderr).toContain('muxftp: deleted backup/site/stale.html\n');
    const outcomes = JSON.parse(result.stdout) as Array<Outcome & { skipped?: boolean; reason?: string }>;
    expect(outcomes.filter((outcome) => outcome.skipped === true)).toEqual([
      {
        local: join('site', '.#index.html'),
        remote: 'backup/site/.#index.html',
        ok: true,
        bytes: 0,
        skipped: true,
        reason: 'symbolic link to nothing (user@host.1234:1700000000 does not exist)',
      },
      {
        local: join('site', 'sub', 'gone'),
        remote: 'backup/site/sub/gone',
        ok: true,
        bytes: 0,
        skipped: true,
        reason: 'symbolic link to nothing (nowhere does not exist)',
      },
    ]);
    expect((await readdir(join(server.root!, 'backup', 'site'))).sort()).toEqual(['index.html', 'sub']);
  });

  it('put -r reports a link loop and creates no remote directory for it', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'site', 'sub'), { recursive: true });
    await writeFile(join(local, 'site', 'sub', 'page.html'), 'hi');
    await symlink('..', join(local, 'site', 'sub', 'up')); // site/sub/up is site/ again

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, '--json', 'put', '-r', 'site', '--to', 'backup/', '-p'],
      local,
    );

    expect(result.code).toBe(1);
    const outcomes = JSON.parse(result.stdout) as Outcome[];
    expect(outcomes.filter((outcome) => !outcome.ok)).toMatchObject([
      { local: join('site', 'sub', 'up'), remote: 'backup/site/sub/up', error: { code: 'LOCAL_IO_ERROR' } },
    ]);
    expect(await readdir(join(server.root!, 'backup', 'site', 'sub'))).toEqual(['page.html']);
  });

  it('put -r says a local name that is not UTF-8 cannot be sent, and sends the rest', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'site'));
    await writeFile(join(local, 'site', 'index.html'), 'hi');
    // Latin-1 names, as an old archive leaves them: a file, and a directory with a file in it.
    const latin1 = (...names: string[]) => Buffer.from(join(local, 'site', ...names), 'latin1');
    await writeFile(latin1('caf\u00e9.txt'), 'x');
    await mkdir(latin1('r\u00e9sum\u00e9'));
    await writeFile(latin1('r\u00e9sum\u00e9', 'cv.pdf'), 'y');

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, '--json', 'put', '-r', 'site', '--to', 'backup/', '-p'],
      local,
    );

    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `muxftp: put ${join('site', 'caf\ufffd.txt')}: name is not UTF-8 (muxftp sends UTF-8 names only), skipped`,
    );
    const outcomes = JSON.parse(result.stdout) as Outcome[];
    expect(outcomes.filter((outcome) => !outcome.ok)).toMatchObject([
      {
        local: join('site', 'caf\ufffd.txt'),
        remote: 'backup/site/caf\ufffd.txt',
        error: { code: 'INVALID_PATH' },
      },
      {
        local: join('site', 'r\ufffdsum\ufffd'),
        remote: 'backup/site/r\ufffdsum\ufffd',
        error: { code: 'INVALID_PATH' },
      },
    ]);
    expect(await readdir(join(server.root!, 'backup', 'site'))).toEqual(['index.html']);
  });

  it('put -r fails a local name with a backslash or a newline once, a directory with all in it, and sends the rest', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'site', 'a\\b'), { recursive: true });
    await mkdir(join(local, 'site', 'new\nline'));
    await writeFile(join(local, 'site', 'index.html'), 'hi');
    for (const dir of ['a\\b', 'new\nline'])
      for (const name of ['1.txt', '2.txt', '3.txt']) await writeFile(join(local, 'site', dir, name), name);

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'site', '--to', 'backup/', '-p', '-q'],
      local,
    );

    // Before: each file under such a directory failed a line of its own (`invalid path`), six here.
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `muxftp: put ${join('site', 'a\\b')}: muxftp cannot name it (the name contains a backslash; rename it), skipped: ${join('site', 'a\\b')} (INVALID_PATH)\n` +
        `muxftp: put ${join('site', 'new?line')}: muxftp cannot name it (the name contains a control character; rename it), skipped: ${join('site', 'new?line')} (INVALID_PATH)\n`,
    );
    expect(await readdir(join(server.root!, 'backup', 'site'))).toEqual(['index.html']);
  });

  it('put -r stops its walk where the remote paths would be too deep for a request: one line, no deeper walk', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    // 700 levels under deep/, a file at the bottom and one at each of levels 1 and 300.
    const level = (depth: number) => join(local, 'deep', ...Array<string>(depth).fill('d'));
    await mkdir(level(700), { recursive: true });
    await writeFile(join(level(1), 'top.txt'), 't');
    await writeFile(join(level(300), 'mid.txt'), 'm');
    await writeFile(join(level(700), 'bottom.txt'), 'b');

    const started = performance.now();
    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'deep', '--to', 'backup/', '-p'],
      local,
    );
    const seconds = (performance.now() - started) / 1000;

    // backup/deep/d… reaches 256 names at the 254th d: the 255th is past it, said once, not walked.
    // Before: the walk went to the bottom, a realpath(3) per level reading every level above
    // again (cubic in the depth: 3 s at 500 levels, 100 s at 2,000), and the summary counted each
    // of the 446 levels past 254 as a directory failed, and the two files in them as failed.
    expect(result.code).toBe(1);
    const tooDeep = join(local, 'deep', ...Array<string>(255).fill('d')).slice(local.length + 1);
    expect(result.stderr).toContain(
      `muxftp: put ${tooDeep}: its remote path would be more than 256 names deep, skipped: ${tooDeep} (INVALID_PATH)\n`,
    );
    expect(result.stderr.match(/^muxftp: put /gm)).toHaveLength(1);
    expect(result.stderr).toMatch(/muxftp: 1 file \(1 B\), 1 directory failed in /);
    expect(seconds).toBeLessThan(20);
    expect(await readdir(join(server.root!, 'backup', 'deep', 'd'))).toEqual(['d', 'top.txt']);
  });

  it('put -r counts the remote path as it is sent (`--to ./long/`): the first directory past 4096 bytes fails one line, not walked', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    // deep/S/T: with the destination, `backup…/deep/S/T` is 4096 bytes as the server reads it
    // normalized, but 4098 as sent (`./` in front): past what a request may name.
    const base = Array.from({ length: 15 }, (_, i) => `${String(i).padStart(2, '0')}${'r'.repeat(248)}`).join(
      '/',
    );
    const s = 's'.repeat(200);
    const t = 't'.repeat(4096 - Buffer.byteLength(`${base}/deep/${s}/`));
    await mkdir(join(local, 'deep', s, t), { recursive: true });
    await writeFile(join(local, 'deep', s, 'above.txt'), 'a');
    await writeFile(join(local, 'deep', s, t, 'below.txt'), 'b');

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'deep', '--to', `./${base}/`, '-p'],
      local,
    );

    // Before: the walk counted the normalized path (4096 bytes: not past the limit) and took
    // deep/S/T, whose mkdir then failed (`longer than 4096 bytes`), and below.txt on its own.
    expect(result.code).toBe(1);
    const tooLong = join('deep', s, t);
    expect(result.stderr).toContain(
      `muxftp: put ${tooLong}: its remote path would be longer than 4096 bytes, skipped: ${tooLong} (INVALID_PATH)\n`,
    );
    expect(result.stderr.match(/^muxftp: put /gm)).toHaveLength(1);
    expect(await readdir(join(server.root!, ...base.split('/'), 'deep', s))).toEqual(['above.txt']);
  });

  it('get -r ./TREE fetches a directory 256 names deep: the walk counts names as the server does, not `.`', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    // deep/d…d: 256 names at the 255th d, as deep as a request may name.
    const deepest = ['deep', ...Array<string>(255).fill('d')];
    await mkdir(join(server.root!, ...deepest), { recursive: true });
    await writeFile(join(server.root!, ...deepest.slice(0, -1), 'last.txt'), 'x');

    const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'get', '-r', './deep', '-q'], local);

    // Before: `./deep/d…` split on '/' counted the `.`: 257 names, `server listed an invalid path
    // (more than 256 names deep)`, exit 1, the deepest directory not made.
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await readdir(join(local, ...deepest.slice(0, -1)))).toEqual(['d', 'last.txt']);
  });

  it('get -r gives a FIFO on the server as skipped, with why, and the local path it would have had', async () => {
    server = await startServer({ backend: 'disk' });
    await mkdir(join(server.root!, 'odd', 'deeper'), { recursive: true });
    await writeFile(join(server.root!, 'odd', 'fine.txt'), 'x');
    expect(spawnSync('mkfifo', [join(server.root!, 'odd', 'deeper', 'pipe')]).status).toBe(0);
    const local = await tempDirs.make();

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, '--json', 'get', '-r', 'odd', '--to', 'out', '-p'],
      local,
    );

    expect(result.code).toBe(0);
    const outcomes = JSON.parse(result.stdout) as Outcome[];
    expect(outcomes.find((outcome) => outcome.remote === 'odd/deeper/pipe')).toEqual({
      local: join('out', 'odd', 'deeper', 'pipe'),
      remote: 'odd/deeper/pipe',
      ok: true,
      bytes: 0,
      skipped: true,
      reason: 'not a regular file',
    });
    expect(await readdir(join(local, 'out', 'odd', 'deeper'))).toEqual([]);
  });

  // procfs refuses a new directory to everyone, root included: -p's look passes, its mkdir fails.
  it.skipIf(process.platform !== 'linux')(
    'get -r whose destination cannot be made still gives the FIFO it said it skipped in --json',
    async () => {
      server = await startServer({ backend: 'disk' });
      await mkdir(join(server.root!, 'odd'), { recursive: true });
      await writeFile(join(server.root!, 'odd', 'fine.txt'), 'x');
      expect(spawnSync('mkfifo', [join(server.root!, 'odd', 'pipe')]).status).toBe(0);
      const local = await tempDirs.make();
      const to = '/proc/muxftp-no-such-dir/out';
      const result = await runCli(
        ['--server', `127.0.0.1:${server.port}`, '--json', 'get', '-r', 'odd', '--to', to, '-p'],
        local,
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('muxftp: get odd/pipe: not a regular file, skipped\n');
      const outcomes = JSON.parse(result.stdout) as Outcome[];
      expect(outcomes.map(({ remote, ok, skipped }) => ({ remote, ok, skipped }))).toEqual([
        { remote: 'odd/pipe', ok: true, skipped: true },
        { remote: 'odd/fine.txt', ok: false, skipped: undefined },
      ]);
    },
  );
});
