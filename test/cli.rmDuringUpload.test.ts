/**
 * `rm -r DIR` / `rmdir DIR` while another client's upload into DIR is in progress: the upload's
 * hidden file keeps DIR from going, and the failure said only "directory not empty" of a
 * directory `ls` shows empty. The server now says why (`details.keptBy`); with one from before,
 * the CLI does. Real server on 127.0.0.1 (disk), the real CLI
 * beside a library client whose upload waits mid-file. Needs dist/ (npm run build).
 */

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import type { Frame } from '../shared/protocol/frame.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy, withJson } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-rmupload-');

let proxy: FrameProxy | undefined;

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
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
  /** A server from before it said what keeps a directory: the bare message, no details. */
  const asAnOlderServer = (frame: Frame): Frame => {
    if (frame.type !== FrameType.ERROR) return frame;
    const error = jsonOf(frame);
    if (error.code !== 'DIRECTORY_NOT_EMPTY') return frame;
    const message = String(error.message).replace(
      ' (an upload into it is in progress, hidden from listings)',
      '',
    );
    return withJson(frame, { status: error.status, code: error.code, message });
  };

  /** rm -r and rmdir of a directory another client uploads into (`older`: through asAnOlderServer). */
  async function removingDuringUpload(
    older = false,
  ): Promise<{ rm: Awaited<ReturnType<typeof runCli>>; rmdir: Awaited<ReturnType<typeof runCli>> }> {
    server = await startServer({ backend: 'disk' });
    const uploader = await server.connect();
    await uploader.mkdir('incoming/batch', { parents: true });
    const source = new PassThrough();
    source.write(Buffer.alloc(64 * 1024, 1)); // then it waits, never ended until the test ends it
    const upload = uploader.put('incoming/batch/part.bin', source);
    await uploadUnderWay(join(server.root!, 'incoming', 'batch'));
    const local = await tempDirs.make();
    if (older) proxy = await startFrameProxy(server.port, { fromServer: asAnOlderServer });
    const at = ['--server', `127.0.0.1:${proxy?.port ?? server.port}`];

    const rm = await runCli([...at, 'rm', '-r', 'incoming'], local);
    const rmdir = await runCli([...at, 'rmdir', 'incoming/batch'], local);

    source.end();
    await upload;
    // The upload went through, whole.
    expect((await uploader.stat('incoming/batch/part.bin')).size).toBe(64 * 1024);
    return { rm, rmdir };
  }

  it('rm -r and rmdir fail naming the directory, and the server says an upload in progress keeps it', async () => {
    const { rm, rmdir } = await removingDuringUpload();
    expect(rm.code).toBe(1);
    expect(rm.stderr).toBe(
      'muxftp: rm incoming: directory not empty: incoming/batch (an upload into it is in progress, hidden from listings) (DIRECTORY_NOT_EMPTY)\n',
    );
    expect(rmdir.code).toBe(1);
    expect(rmdir.stderr).toBe(
      'muxftp: rmdir incoming/batch: directory not empty: incoming/batch (an upload into it is in progress, hidden from listings) (DIRECTORY_NOT_EMPTY)\n',
    );
  });

  it('with a server from before it said so, the CLI says it, since the directory lists empty', async () => {
    const { rm, rmdir } = await removingDuringUpload(true);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toBe(
      'muxftp: rm incoming: directory not empty: incoming/batch (DIRECTORY_NOT_EMPTY); an upload in progress there counts, though ls does not show it\n',
    );
    expect(rmdir.code).toBe(1);
    expect(rmdir.stderr).toBe(
      'muxftp: rmdir incoming/batch: directory not empty: incoming/batch (DIRECTORY_NOT_EMPTY); an upload in progress there counts, though ls does not show it\n',
    );
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

  it('rm -r of a tree another run puts a file into meanwhile blames no hidden upload: ls shows the file', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('photos/2024', { parents: true });
    await client.put('photos/2024/a.jpg', Buffer.from('jpeg'));
    // Once rm -r has emptied photos/2024, another run's put lands there before its rmdir.
    const rmdir = server.storage.rmdir.bind(server.storage);
    server.storage.rmdir = async (path, options) => {
      if (path === 'photos/2024') await client.put('photos/2024/b.jpg', Buffer.from('late'));
      return rmdir(path, options);
    };
    const local = await tempDirs.make();

    const rm = await runCli(['--server', `127.0.0.1:${server.port}`, 'rm', '-r', 'photos'], local);

    expect(rm.code).toBe(1);
    expect(rm.stderr).toBe('muxftp: rm photos: directory not empty: photos/2024 (DIRECTORY_NOT_EMPTY)\n');
    expect((await client.list('photos/2024')).map((entry) => entry.name)).toEqual(['b.jpg']);
  });

  it('a directory holding only files under the reserved prefix, made on the host, says so, not an upload', async () => {
    server = await startServer({ backend: 'disk' });
    await mkdir(join(server.root!, 'resv'));
    await writeFile(join(server.root!, 'resv', '.muxftp-notes'), 'mine');
    const local = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${server.port}`];
    const rmdir = await runCli([...at, 'rmdir', 'resv'], local);
    expect(rmdir.code).toBe(1);
    expect(rmdir.stderr).toBe(
      'muxftp: rmdir resv: directory not empty: resv (it holds files named .muxftp-…, a prefix muxftp reserves and never lists: remove them on the server) (DIRECTORY_NOT_EMPTY)\n',
    );
    expect(await readdir(join(server.root!, 'resv'))).toEqual(['.muxftp-notes']);
  });
});
