/** put and get name the same local condition with the same code (issue 6: one failure vocabulary). */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCliQuietly as runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-vocab-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** The error code in the CLI's one failure line. */
const codeInStderr = (stderr: string) => /\b([A-Z]+(?:_[A-Z]+)+)\b/.exec(stderr)?.[1];

describe('put and get share one failure vocabulary', () => {
  it('a directory without -r is IS_A_DIRECTORY, a --to that is a file NOT_A_DIRECTORY, both ways', async () => {
    server = await startServer();
    const client = await server.connect();
    await client.mkdir('rdir');
    await client.put('rfile', Buffer.from('x'));
    const local = await tempDirs.make();
    await mkdir(join(local, 'ldir'));
    await writeFile(join(local, 'lfile'), 'x');
    const at = ['--server', `127.0.0.1:${server.port}`];

    const cases = [
      { args: ['put', 'ldir', 'somewhere'], code: 'IS_A_DIRECTORY' },
      { args: ['get', 'rdir', 'elsewhere'], code: 'IS_A_DIRECTORY' },
      { args: ['put', 'lfile', '--to', 'rfile/'], code: 'NOT_A_DIRECTORY' },
      { args: ['get', 'rfile', '--to', 'lfile/'], code: 'NOT_A_DIRECTORY' },
    ];
    for (const { args, code } of cases) {
      const result = await runCli([...args, ...at], local);
      expect({ args, code: codeInStderr(result.stderr) }).toEqual({ args, code });
      expect(result.code).toBe(1);
    }
  });

  it('a missing directory to put or get a named file into is NOT_FOUND with the -p hint, both ways', async () => {
    server = await startServer();
    const client = await server.connect();
    await client.put('rfile', Buffer.from('x'));
    const local = await tempDirs.make();
    await writeFile(join(local, 'lfile'), 'x');
    const at = ['--server', `127.0.0.1:${server.port}`];

    for (const args of [
      ['put', 'lfile', 'no/a/name'],
      ['get', 'rfile', 'no/b/name'],
      ['put', 'lfile', '--to', 'no/c/'],
      ['get', 'rfile', '--to', 'no/d/'],
    ]) {
      const result = await runCli([...args, ...at], local);
      expect({
        args,
        code: codeInStderr(result.stderr),
        hint: result.stderr.trimEnd().endsWith('; add -p to create it'),
      }).toEqual({
        args,
        code: 'NOT_FOUND',
        hint: true,
      });
      expect(result.code).toBe(1);
      expect((await runCli([...args, '-p', ...at], local)).code).toBe(0);
    }
  });
});
