/**
 * `rm -r DIR` / `rmdir DIR` while another client's upload into DIR is in progress: the upload's
 * hidden file keeps DIR from going, and the failure said only "directory not empty" of a
 * directory `ls` shows empty. It now says why. Real server on 127.0.0.1 (disk), the real CLI
 * beside a library client whose upload waits mid-file. Needs dist/ (npm run build).
 */

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-rmupload-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** Resolves once `dir` holds an upload's hidden temporary file; bounded to 5 s. */
async function uploadUnderWay(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await readdir(dir)).some((name) => name.startsWith('.muxftp-'))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no upload under way in ${dir}`);
}

describe('removing a directory an upload is going into', () => {
  it('rm -r and rmdir fail naming the directory, and say an upload in progress keeps it', async () => {
    server = await startServer({ backend: 'disk' });
    const uploader = await server.connect();
    await uploader.mkdir('incoming/batch', { parents: true });
    const source = new PassThrough();
    source.write(Buffer.alloc(64 * 1024, 1)); // then it waits, never ended until the test ends it
    const upload = uploader.put('incoming/batch/part.bin', source);
    await uploadUnderWay(join(server.root!, 'incoming', 'batch'));
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];

    const rm = await runCli([...at, 'rm', '-r', 'incoming'], local);
    const rmdir = await runCli([...at, 'rmdir', 'incoming/batch'], local);

    source.end();
    await upload;
    expect(rm.code).toBe(1);
    expect(rm.stderr).toBe(
      'muxftp: rm incoming: directory not empty: incoming/batch (DIRECTORY_NOT_EMPTY); an upload in progress there counts, though ls does not show it\n',
    );
    expect(rmdir.code).toBe(1);
    expect(rmdir.stderr).toBe(
      'muxftp: rmdir incoming/batch: directory not empty: incoming/batch (DIRECTORY_NOT_EMPTY); an upload in progress there counts, though ls does not show it\n',
    );
    // The upload went through, whole.
    expect((await uploader.stat('incoming/batch/part.bin')).size).toBe(64 * 1024);
  });
});

describe('rmdir of a directory that lists files', () => {
  it('fails directory not empty without the hint about a hidden upload: there is none', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('photos');
    await client.put('photos/a.jpg', Buffer.from('jpeg'));
    const local = await tempDirs.make();

    const rmdir = await runCli(['--server', `127.0.0.1:${server.port}`, 'rmdir', 'photos'], local);

    // Before, every DIRECTORY_NOT_EMPTY from rmdir blamed an upload in progress.
    expect(rmdir.code).toBe(1);
    expect(rmdir.stderr).toBe('muxftp: rmdir photos: directory not empty: photos (DIRECTORY_NOT_EMPTY)\n');
  });
});
