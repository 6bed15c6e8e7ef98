/**
 * A FIFO swapped in for a local file the CLI planned as a regular one, between the plan and the
 * open: the open never waits for a writer (a waiting open held a threadpool thread, which Node's
 * exit joins, so that only SIGKILL ended the process), and the file fails `not a regular file`.
 * The swap is made by a proxy at the moment the client sends a transfer's OPEN: for put, the
 * other file of a `-j 1` run, not yet opened; for get -c, the partial file whose blocks were just
 * read, before the server's offset has the client copy them. Real server, the real CLI.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { makeFifo } from './helpers/fifo.js';
import { type FrameProxy, jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-swappedfifo-');
let server: TestServer | undefined;
let proxy: FrameProxy | undefined;

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

/** Replaces the file at `path` by a FIFO with no writer, synchronously (inside a proxy's rewriter). */
function swapInFifo(path: string): void {
  rmSync(path);
  makeFifo(path);
}

/** A proxy in front of `server` that calls `onOpen` with each OPEN's op and path, once the client sent it. */
async function proxyNotingOpens(onOpen: (op: string, path: string) => void): Promise<number> {
  proxy = await startFrameProxy(server!.port, {
    fromClient: (frame) => {
      if (frame.type === FrameType.OPEN) {
        const { op, path } = jsonOf(frame) as { op: string; path: string };
        onOpen(op, path);
      }
      return frame;
    },
  });
  return proxy.port;
}

// Far above a run's own time (well under a second each): a hung CLI is killed at it, and fails.
const BOUND_MS = 10_000;

describe('a FIFO swapped in for a planned regular file', () => {
  it('put fails that file, not a regular file, and exits on its own', async () => {
    server = await startServer();
    const dir = await tempDirs.make();
    const files = { a: randomBytes(1000), b: randomBytes(1000) };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    let swapped: string | undefined;
    const port = await proxyNotingOpens((op, path) => {
      if (op !== 'put' || swapped !== undefined) return;
      // One at a time (-j 1): the other has been planned, not yet opened.
      swapped = path === 'in/a' ? 'b' : 'a';
      swapInFifo(join(dir, swapped));
    });
    const client = await server.connect();
    await client.mkdir('in');
    const started = performance.now();
    const run = await runCli(
      ['put', 'a', 'b', '--to', 'in', '-j', '1', '--server', `127.0.0.1:${port}`],
      dir,
      {
        timeoutMs: BOUND_MS,
      },
    );
    expect(performance.now() - started).toBeLessThan(BOUND_MS);
    expect(run.signal).toBeNull();
    expect(run.code).toBe(1);
    expect(swapped).toBeDefined();
    const sent = swapped === 'a' ? 'b' : 'a';
    expect(run.stderr).toContain(`not a regular file: ${swapped} (LOCAL_IO_ERROR)`);
    expect(await client.getBuffer(`in/${sent}`)).toEqual(files[sent]);
    await expect(client.stat(`in/${swapped}`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('get -c fails the file whose partial copy became a FIFO, and exits on its own', async () => {
    server = await startServer();
    const dir = await tempDirs.make();
    // Past one 4 MiB block, so the server continues from it and the client copies it.
    const content = randomBytes(5 * 1024 * 1024);
    const client = await server.connect();
    await client.put('f', content);
    const partial = join(dir, 'f');
    writeFileSync(partial, content.subarray(0, 4.5 * 1024 * 1024));
    let swaps = 0;
    const port = await proxyNotingOpens((op) => {
      // Its blocks were read (they go in this OPEN): the copy comes once the server answers.
      if (op === 'get' && swaps++ === 0) swapInFifo(partial);
    });
    const started = performance.now();
    const run = await runCli(['get', '-c', 'f', '--retries', '0', '--server', `127.0.0.1:${port}`], dir, {
      timeoutMs: BOUND_MS,
    });
    expect(performance.now() - started).toBeLessThan(BOUND_MS);
    expect(run.signal).toBeNull();
    expect(swaps).toBe(1);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('muxftp: get f: not a regular file: f (LOCAL_IO_ERROR)');
  });
});
