/**
 * Edge cases of the remote file commands (rm, mv, ls, stat, chmod) over a disk: links, trailing
 * slashes, several paths. Real server on 127.0.0.1, the real CLI, temp dirs. Needs dist/ (npm
 * run build).
 */
import { lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
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
