/**
 * The remote file commands (rm, rmdir, mkdir, mv, ls) give the same outcome over memory storage
 * as over a disk: the same checks, run against each. Real server on 127.0.0.1, the real CLI.
 * Needs dist/ (npm run build).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { processUmask } from '../shared/fileModes.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-backends-');

describe.each(['disk', 'memory'] as const)('file commands over %s storage', (backend) => {
  let server: TestServer;
  let local: string;

  beforeEach(async () => {
    server = await startServer({ backend });
    local = await tempDirs.make();
  });

  afterEach(async () => {
    await server.stop();
    await tempDirs.removeAll();
  });

  const cli = (...args: string[]) =>
    runCli(['--server', `127.0.0.1:${server.port}`, ...args], local, { stdin: 'new content' });

  it('a directory where a file was replaced (put over it, mv onto it) is removed once emptied', async () => {
    expect(await cli('mkdir', 'd', 'e')).toMatchObject({ code: 0 });
    expect(await cli('put', '-', 'd/f')).toMatchObject({ code: 0 });
    expect(await cli('put', '-', 'd/f')).toMatchObject({ code: 0 }); // replaces it
    expect(await cli('put', '-', 'e/f')).toMatchObject({ code: 0 });
    expect(await cli('put', '-', 'e/g')).toMatchObject({ code: 0 });
    expect(await cli('mv', 'e/g', 'e/f')).toMatchObject({ code: 0 }); // replaces it
    expect(await cli('rm', 'd/f')).toMatchObject({ code: 0 });
    // It lists empty: it was said not empty, "an upload in progress there counts".
    expect(await cli('rmdir', 'd')).toMatchObject({ code: 0, stderr: '' });
    expect(await cli('rm', '-r', 'e')).toMatchObject({ code: 0, stderr: '' });
    expect((await cli('ls')).stdout).toBe('');
  });

  it('new directories and files uploaded without bits (put -) get what the umask leaves, as on a disk', async () => {
    expect(await cli('mkdir', 'd')).toMatchObject({ code: 0 });
    expect(await cli('mkdir', '-p', 'p/q')).toMatchObject({ code: 0 });
    expect(await cli('put', '-', 'p/stdin')).toMatchObject({ code: 0 });
    const modes = JSON.parse((await cli('--json', 'ls', '-r', '/')).stdout) as Array<{
      path: string;
      mode: number;
    }>;
    // The kernel masks a disk's: memory storage applied no umask (0777, 0666).
    const umask = processUmask() ?? 0o022;
    const directory = (0o777 & ~umask).toString(8);
    expect(modes.map(({ path, mode }) => [path, mode.toString(8)])).toEqual([
      ['d', directory],
      ['p', directory],
      ['p/q', directory],
      ['p/stdin', (0o666 & ~umask).toString(8)],
    ]);
  });
});
