/**
 * `put -r`/`get -r` with `-j` above what the process's open-file limit allows (`ulimit -n`: 256
 * by default on macOS, less in some containers): each transfer holds a local file open, so the
 * transfers at once are capped to the limit instead of failing files with EMFILE ("too many open
 * files"). Real server on 127.0.0.1, the real CLI under `prlimit --nofile`. Linux only (the limit
 * is read from /proc/self/limits). Needs dist/ (npm run build).
 */

import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-fdlimit-');
const FILES = 300;
const havePrlimit = process.platform === 'linux' && spawnSync('prlimit', ['--version']).status === 0;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** The CLI with at most `nofile` descriptors; killed after 60 s. */
function runLimited(
  nofile: number,
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('prlimit', [`--nofile=${nofile}`, process.execPath, CLI_BIN, ...args], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe.skipIf(!havePrlimit)('-j above the open-file limit', () => {
  it('put -r and get -r of 300 files with -j 256 under ulimit -n 128 move every file', async () => {
    server = await startServer();
    const local = await tempDirs.make();
    await mkdir(join(local, 'tree'));
    for (let i = 0; i < FILES; i++) await writeFile(join(local, 'tree', `f${i}`), `file ${i}\n`);
    const at = ['--server', `127.0.0.1:${server.port}`, '-q'];

    const put = await runLimited(128, [...at, 'put', '-r', 'tree', '--to', 'up/', '-p', '-j', '256'], local);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    const client = await server.connect();
    expect(await client.list('up/tree')).toHaveLength(FILES);

    const get = await runLimited(
      128,
      [...at, 'get', '-r', 'up/tree', '--to', 'down', '-p', '-j', '256'],
      local,
    );
    expect(get.stderr).toBe('');
    expect(get.code).toBe(0);
    const names = await readdir(join(local, 'down', 'tree'));
    expect(names).toHaveLength(FILES);
    expect(await readFile(join(local, 'down', 'tree', 'f299'), 'utf8')).toBe('file 299\n');
  });
});

describe.skipIf(!havePrlimit)('serve under a limit that leaves it no room', () => {
  it('refuses to start, saying which limit and what to raise it to; with enough, it serves', async () => {
    const cwd = await tempDirs.make();
    // 64 descriptors, fewer than the server's reserve: it said "listening" and refused every
    // connection "out of file descriptors" for as long as it ran.
    const starved = await runLimited(64, ['serve', '--memory', '--port', '0'], cwd);
    expect(starved.code).toBe(1);
    // What the process holds at start counts too (node's own, stdio: some 20 here).
    const said = new RegExp(
      `serve: the open-file limit \\(ulimit -n 64\\) leaves 0 descriptors for connections and files after the ${DEFAULTS.fdReserve} kept in reserve and the (\\d+) the process holds, and a server needs at least 16: raise it to (\\d+) or more`,
    ).exec(starved.stderr);
    expect(said, starved.stderr).not.toBeNull();
    const held = Number(said![1]);
    expect(held).toBeGreaterThan(8);
    expect(held).toBeLessThan(64);
    const least = Number(said![2]);
    // The reserve: what is taken from it at its bounds (shared/defaults.ts), 76.
    expect(DEFAULTS.fdReserve).toBe(76);
    expect(least).toBe(DEFAULTS.fdReserve + held + 16);
    // 80 was the least before what the process holds was counted (and the reserve was 64): 16
    // past the reserve on paper, none in fact.
    const below = await runLimited(80, ['serve', '--memory', '--port', '0'], cwd);
    expect(below.code).toBe(1);
    expect(below.stderr).toContain(`raise it to ${least} or more`);

    // The least it takes: up, and it answers a client.
    const child = spawn(
      'prlimit',
      [`--nofile=${least}`, process.execPath, CLI_BIN, 'serve', '--memory', '--port', '0'],
      {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 20_000);
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const match = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
          if (match !== null) {
            clearTimeout(timer);
            resolve(Number(match[1]));
          }
        });
      });
      const ls = spawnSync(process.execPath, [CLI_BIN, '--server', `127.0.0.1:${port}`, 'ls'], {
        cwd,
        timeout: 20_000,
        encoding: 'utf8',
      });
      expect({ code: ls.status, stderr: ls.stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe.skipIf(!havePrlimit)('the CLI under a limit too low to start', () => {
  it('says so in one line, not with a stack trace', async () => {
    // Node opens the CLI's modules many at once: at 30 descriptors even --version ran out.
    const { code, stderr } = await runLimited(30, ['--version'], await tempDirs.make());
    expect({ code, stderr }).toEqual({
      code: 1,
      stderr:
        'muxftp: too many open files while starting (the open-file limit, ulimit -n, is too low): raise it\n',
    });
  });
});

describe.skipIf(!havePrlimit)('serve --max-open-files above what the limit allows', () => {
  it('is held to what the default would be, with a warning at start', async () => {
    // Given as is, 500 under ulimit -n 128 failed transfers EMFILE (IO_ERROR) instead of SERVER_BUSY.
    const child = spawn(
      'prlimit',
      [
        '--nofile=128',
        process.execPath,
        CLI_BIN,
        'serve',
        '--memory',
        '--port',
        '0',
        '--max-open-files',
        '500',
      ],
      { cwd: await tempDirs.make(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no listening line: ${out} ${stderr}`)), 20_000);
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('listening on')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const said = new RegExp(
        `muxftp: warning: --max-open-files 500 is more than the open-file limit allows \\(ulimit -n 128: half of what is left after ${DEFAULTS.fdReserve} kept in reserve and the (\\d+) the process holds, the other half being for connections\\); using (\\d+)\n`,
      ).exec(stderr);
      expect(said, stderr).not.toBeNull();
      expect(Number(said![2])).toBe(Math.floor((128 - DEFAULTS.fdReserve - Number(said![1])) / 2));
    } finally {
      child.kill('SIGKILL');
    }
  });
});
