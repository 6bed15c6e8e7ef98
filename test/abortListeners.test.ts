/**
 * One AbortSignal serving many transfers (the CLI's Ctrl-C) must not collect a listener per
 * transfer: with -j 50 Node printed "MaxListenersExceededWarning: 11 abort listeners added".
 */
import { getEventListeners } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCliQuietly as runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const FILES = 60;

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-j50-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

describe('one AbortSignal over many transfers', () => {
  it('holds one abort listener per client, not one per transfer, and none once they are done', async () => {
    server = await startServer();
    const client = await server.connect();
    const controller = new AbortController();
    let most = 0;
    const onProgress = () => {
      most = Math.max(most, getEventListeners(controller.signal, 'abort').length);
    };
    const options = { signal: controller.signal, onProgress };
    await Promise.all(
      Array.from({ length: FILES }, (_, i) => client.put(`f${i}.bin`, Buffer.alloc(1000, i), options)),
    );
    expect(most).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    most = 0;
    const buffers = await Promise.all(
      Array.from({ length: FILES }, (_, i) => client.getBuffer(`f${i}.bin`, options)),
    );
    expect(most).toBe(1);
    expect(buffers.every((b, i) => b.equals(Buffer.alloc(1000, i)))).toBe(true);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('still cancels every transfer it serves when aborted', async () => {
    server = await startServer();
    const client = await server.connect();
    const controller = new AbortController();
    const big = Buffer.alloc(8 * 1024 * 1024);
    const puts = Array.from({ length: 20 }, (_, i) =>
      client.put(`big${i}.bin`, big, { signal: controller.signal }),
    );
    controller.abort();
    const results = await Promise.allSettled(puts);
    expect(
      results.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'done')),
    ).toEqual(Array(20).fill('CANCELLED'));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('prints no warning for put -j 50 and get -j 50 over many files', async () => {
    server = await startServer();
    const local = await tempDirs.make();
    const names = Array.from({ length: FILES }, (_, i) => `file${i}.txt`);
    for (const name of names) await writeFile(join(local, name), `contents of ${name}\n`);
    const address = ['--server', `127.0.0.1:${server.port}`];
    const put = await runCli(['put', ...names, '--to', 'many/', '-p', '-j', '50', '-q', ...address], local);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    const back = join(local, 'back');
    const remote = names.map((name) => `many/${name}`);
    const get = await runCli(['get', ...remote, '--to', 'back/', '-p', '-j', '50', '-q', ...address], local);
    expect(get.stderr).toBe('');
    expect(get.code).toBe(0);
    expect(await readFile(join(back, names[59]!), 'utf8')).toBe(`contents of ${names[59]}\n`);
  });
});
