/**
 * A server stopped gracefully (SIGTERM) stops accepting, refuses new transfers SHUTTING_DOWN and
 * lets those in flight finish for its grace (10 s). A put whose next file is refused so must not
 * cut the transfers still under way on that connection: it waits for the server to end it
 * before it reconnects. The real CLI and `muxftp serve`, real files.
 */
import { mkdir, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, startServeChild } from './helpers/cliProcess.js';
import { ownFor } from './helpers/ownedByTest.js';
import { until } from './helpers/waits.js';

const MiB = 1024 * 1024;

describe('a server draining on SIGTERM', () => {
  it("put -j 2: the next file's refusal does not cut the one still in flight, which lands whole", async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const local = await own.tempDir();
    await mkdir(join(root, 'up'));
    // a and b go first, two at once, at 4 MiB/s between them; c waits for a's end.
    for (const [name, size] of [
      ['a', 2 * MiB],
      ['b', 10 * MiB],
    ] as const) {
      await writeFile(join(local, name), '');
      await truncate(join(local, name), size);
    }
    await writeFile(join(local, 'c'), 'c');
    const serve = await startServeChild(
      ['--root', root, '--fsync', 'never', '--max-rate', '4MiB'],
      own.children,
    );
    const cli = runCli(
      [
        '--server',
        `127.0.0.1:${serve.port}`,
        'put',
        'a',
        'b',
        'c',
        '--to',
        'up/',
        '-j',
        '2',
        '--retries',
        '1',
      ],
      local,
      { children: own.children, timeoutMs: 40_000 },
    );
    const underWay = async () =>
      (await readdir(join(root, 'up')).catch(() => [])).filter((n) => n.startsWith('.muxftp-')).length >= 2;
    await until(underWay, 'a and b under way', { everyMs: 10 });
    // b needs about 3 s more: within the grace. c is refused once a is done.
    serve.child.kill('SIGTERM');
    const { code, stderr } = await cli;
    await serve.exited;
    expect((await stat(join(root, 'up', 'a'))).size).toBe(2 * MiB);
    // Before: c's refusal replaced the connection at once, which cut b (the server then stopped).
    expect((await stat(join(root, 'up', 'b'))).size, stderr).toBe(10 * MiB);
    // Its retry line says when it comes: not "in 0.7 s", which it is not.
    expect(stderr).toMatch(
      /^muxftp: put c: server is shutting down; retry 1\/1 once the transfers still on its connection end$/m,
    );
    expect(stderr).toMatch(/^muxftp: put c: .*SHUTTING_DOWN|^muxftp: put c: cannot connect/m);
    expect(code).toBe(3);
  }, 60_000);
});
