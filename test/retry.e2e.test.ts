/**
 * `--retries N`: the server is SIGKILLed mid-transfer and restarted on the same port and root; the
 * CLI reconnects (exponential backoff with jitter) and does each unfinished transfer again, and
 * every file arrives whole (checked by hash). With `--retries 0` the same fault fails the command.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../cli/reconnect.js';
import { Client } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import { runCli, type ServeChild, startServeChild } from './helpers/cliProcess.js';
import { type OwnedByTest, ownFor } from './helpers/ownedByTest.js';
import { restartablePort } from './helpers/restartPort.js';
import { delay, until } from './helpers/waits.js';

const MiB = 1024 * 1024;
/**
 * The large file of each test. The first server holds each connection to FIRST_SERVER_RATE, so a
 * transfer is still under way (for 2 s) when the test kills it, however fast the machine; the
 * restarted one is not limited. (300 MiB unthrottled before: ~6 s a test.)
 */
const BIG = 64 * MiB;
const FIRST_SERVER_RATE = '32MiB';

/** A server root with `up/`, and a local directory holding `a.bin` of BIG bytes. */
async function rootAndBigSource(own: OwnedByTest): Promise<{ root: string; local: string }> {
  const root = await own.tempDir();
  const local = await own.tempDir();
  await mkdir(join(root, 'up'));
  await writeFile(join(local, 'a.bin'), '');
  await truncate(join(local, 'a.bin'), BIG); // sparse: quick to make
  return { root, local };
}

function fileSha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** `muxftp serve` on `root` and `port` (0: any), with `extraArgs`, once it listens. */
function startServe(own: OwnedByTest, root: string, port = 0, extraArgs: string[] = []): Promise<ServeChild> {
  return startServeChild(['--root', root, '--fsync', 'never', ...extraArgs], own.children, { port });
}

/** `muxftp ARGS` in `cwd`: killed when the test ends, if it has not exited (within the test's 60 s). */
const runCliOwned = (own: OwnedByTest, args: string[], cwd: string) =>
  runCli(args, cwd, { children: own.children, timeoutMs: 55_000 });

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Runs `muxftp ARGS`, kills the server once `started()` says the transfers are under way, restarts it. */
async function runThroughRestart(
  own: OwnedByTest,
  root: string,
  cwd: string,
  args: (port: number) => string[],
  started: () => Promise<boolean>,
): Promise<{
  code: number | null;
  stderr: string;
  bytesOutAfterRestart: number;
  bytesInAfterRestart: number;
}> {
  // Restarted on this port below: one no client connection can take meanwhile.
  const first = await startServe(own, root, await restartablePort(), ['--max-rate', FIRST_SERVER_RATE]);
  const cli = runCliOwned(own, [...args(first.port), '--server', `127.0.0.1:${first.port}`], cwd);
  await until(started, 'the transfers under way', { everyMs: 10 });
  first.child.kill('SIGKILL');
  await first.exited;
  await delay(200);
  const second = await startServe(own, root, first.port);
  const { code, stderr } = await cli;
  const probe = await Client.connect({ host: '127.0.0.1', port: second.port });
  const { bytesOut, bytesIn } = await probe.stats();
  await probe.close();
  second.child.kill('SIGTERM');
  await second.exited;
  return { code, stderr, bytesOutAfterRestart: bytesOut, bytesInAfterRestart: bytesIn };
}

const uploadsUnderWay = (dir: string, count: number) => async () =>
  (await readdir(dir).catch(() => [])).filter((n) => n.startsWith('.muxftp-')).length >= count;

// At once: they mostly wait, on a backoff, a restart, a throttled first server; each kills and
// removes only its own (ownFor).
describe.concurrent('--retries', () => {
  it('backs off exponentially with jitter between half and all of each step, capped', () => {
    expect(backoffDelayMs(0, () => 1)).toBe(DEFAULTS.retryBaseDelayMs);
    expect(backoffDelayMs(0, () => 0)).toBe(DEFAULTS.retryBaseDelayMs / 2);
    expect(backoffDelayMs(3, () => 1)).toBe(DEFAULTS.retryBaseDelayMs * 8);
    expect(backoffDelayMs(3, () => 0)).toBe(DEFAULTS.retryBaseDelayMs * 4);
    expect(backoffDelayMs(30, () => 1)).toBe(DEFAULTS.retryMaxDelayMs);
  });

  it('put: after the server is killed and restarted mid-upload, every file arrives whole', async (test) => {
    const own = ownFor(test);
    const { root, local } = await rootAndBigSource(own);
    const names = ['a.bin', 'b.bin'];
    await writeFile(join(local, 'b.bin'), Buffer.alloc(3 * MiB, 7));
    const { code, stderr } = await runThroughRestart(
      own,
      root,
      local,
      () => ['put', ...names, '--to', 'up/', '--retries', '3'],
      uploadsUnderWay(join(root, 'up'), 1),
    );
    // One line for the lost connection: a.bin's, or both files' when b.bin was still in flight.
    expect(stderr).toMatch(/^muxftp: put(?: a\.bin: .*; retry 1\/3|: .*; 2 transfers retry 1\/3) in /m);
    expect(stderr.match(/retry 1\/3/g)).toHaveLength(1);
    expect(code).toBe(0);
    for (const name of names) {
      expect(await fileSha256(join(root, 'up', name))).toBe(await fileSha256(join(local, name)));
    }
    expect((await readdir(join(root, 'up'))).sort()).toEqual(names);
  }, 60_000);

  it('put: a retried upload continues from the whole blocks the killed server had kept', async (test) => {
    const own = ownFor(test);
    const { root, local } = await rootAndBigSource(own);
    const { code, stderr, bytesInAfterRestart } = await runThroughRestart(
      own,
      root,
      local,
      () => ['put', 'a.bin', '--to', 'up/', '--retries', '3'],
      // Killed once the upload's kept data holds at least two whole blocks.
      async () => {
        const names = await readdir(join(root, 'up')).catch(() => [] as string[]);
        const kept = names.find((n) => n.startsWith('.muxftp-partial-'));
        if (kept === undefined) return false;
        const size = (await stat(join(root, 'up', kept)).catch(() => undefined))?.size ?? 0;
        return size >= 8 * MiB;
      },
    );
    expect(stderr).toMatch(/put a\.bin: .*retry 1\/3/);
    expect(code).toBe(0);
    // The restarted server received less than the file: the retry sent only what it did not keep.
    expect(bytesInAfterRestart).toBeLessThanOrEqual(BIG - 8 * MiB);
    expect(bytesInAfterRestart).toBeGreaterThan(0);
    expect(await fileSha256(join(root, 'up', 'a.bin'))).toBe(await fileSha256(join(local, 'a.bin')));
    expect(await readdir(join(root, 'up'))).toEqual(['a.bin']);
  }, 60_000);

  it('get: after the server is killed and restarted mid-download, the rest is fetched and the file arrives whole', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const local = await own.tempDir();
    await writeFile(join(root, 'big.bin'), '');
    await truncate(join(root, 'big.bin'), BIG);
    const { code, stderr, bytesOutAfterRestart } = await runThroughRestart(
      own,
      root,
      local,
      () => ['get', 'big.bin', 'big.bin', '--retries', '3'],
      // Killed once at least two whole blocks have reached the local partial file.
      async () => {
        const [name] = await readdir(local);
        // Renamed between the two looks (the download finished): not yet, the next look decides.
        return (
          name !== undefined && ((await stat(join(local, name)).catch(() => undefined))?.size ?? 0) >= 8 * MiB
        );
      },
    );
    expect(stderr).toMatch(/get big\.bin: .*retry 1\/3/);
    expect(code).toBe(0);
    // The retry continued after the blocks it had: the restarted server sent less than the file.
    expect(bytesOutAfterRestart).toBeLessThanOrEqual(BIG - 8 * MiB);
    expect(bytesOutAfterRestart).toBeGreaterThan(0);
    expect(await readdir(local)).toEqual(['big.bin']);
    expect(await fileSha256(join(local, 'big.bin'))).toBe(await fileSha256(join(root, 'big.bin')));
  }, 60_000);

  it('a server that stays away: each retry after the first says the reconnect failed, and why', async (test) => {
    const own = ownFor(test);
    const { root, local } = await rootAndBigSource(own);
    const first = await startServe(own, root, await restartablePort(), ['--max-rate', FIRST_SERVER_RATE]);
    const cli = runCliOwned(
      own,
      ['put', 'a.bin', '--to', 'up/', '--retries', '2', '--server', `127.0.0.1:${first.port}`],
      local,
    );
    await until(uploadsUnderWay(join(root, 'up'), 1), 'an upload under way', { everyMs: 10 });
    first.child.kill('SIGKILL');
    await first.exited;
    const { code, stderr } = await cli;
    expect(code).toBe(3);
    const address = `127.0.0.1:${first.port}`;
    const refused = `cannot connect to ${address}: connection refused (is \`muxftp serve\` running there?)`;
    // Before: every line said "connection … closed", the first connection's failure, again.
    expect(stderr.split('\n').filter((line) => line !== '')).toEqual([
      // The first: the connection's end, as the kernel told it (closed, or reset).
      expect.stringMatching(/^muxftp: put a\.bin: .*; retry 1\/2 in /),
      expect.stringMatching(new RegExp(`^muxftp: put a\\.bin: ${escapeRegExp(refused)}; retry 2/2 in `)),
      // Past a whole block, it says what the server keeps of it (how far it got is the timing's).
      // The failure's reason ends with its code, as every failure line's; retry notices have none.
      expect.stringMatching(
        new RegExp(
          `^muxftp: put a\\.bin: ${escapeRegExp(`${refused} (CONNECT_FAILED)`)}(; the server keeps the whole 4 MiB blocks .*)?$`,
        ),
      ),
    ]);
  }, 60_000);

  it("a server that stays away through a transfer's retries: the files not yet started fail at once, in one line", async (test) => {
    const own = ownFor(test);
    const { root, local } = await rootAndBigSource(own);
    const small = Array.from({ length: 30 }, (_, index) => `f${String(index).padStart(2, '0')}.txt`);
    for (const name of small) await writeFile(join(local, name), name);
    const first = await startServe(own, root, await restartablePort(), ['--max-rate', FIRST_SERVER_RATE]);
    const cli = runCliOwned(
      own,
      [
        'put',
        'a.bin',
        ...small,
        '--to',
        'up/',
        '-j',
        '1',
        '--retries',
        '1',
        '--server',
        `127.0.0.1:${first.port}`,
      ],
      local,
    );
    await until(uploadsUnderWay(join(root, 'up'), 1), 'an upload under way', { everyMs: 10 });
    first.child.kill('SIGKILL');
    await first.exited;
    const { code, stderr } = await cli;
    expect(code).toBe(3);
    const lines = stderr.split('\n').filter((line) => line !== '');
    // Before: each of the 30 waited out a retry of its own, a line each (a tree: most of a day).
    expect(lines.filter((line) => line.includes('retry 1/1'))).toHaveLength(1);
    expect(lines).toContainEqual(
      expect.stringMatching(/^muxftp: put: 30 files not started, the server still away: cannot connect to /),
    );
    expect(lines.filter((line) => /^muxftp: put f\d\d\.txt/.test(line))).toEqual([]);
  }, 60_000);

  it('--retries 0: the same fault fails the command and leaves nothing under the names', async (test) => {
    const own = ownFor(test);
    const { root, local } = await rootAndBigSource(own);
    const { code, stderr } = await runThroughRestart(
      own,
      root,
      local,
      () => ['put', 'a.bin', '--to', 'up/', '--retries', '0'],
      uploadsUnderWay(join(root, 'up'), 1),
    );
    expect(code).toBe(3);
    expect(stderr).toContain('CONNECTION_LOST');
    expect(stderr).not.toContain('retry');
    // The restarted server swept the killed upload's temporary file.
    expect(await readdir(join(root, 'up'))).toEqual([]);
  }, 60_000);
});
