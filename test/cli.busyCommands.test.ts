/**
 * Every client command waits on a busy server, not only transfers: a connect refused SERVER_BUSY
 * (`--max-connections`) and a request refused so (`stat --hash` at `--max-open-files`) are tried
 * again for up to DEFAULTS.serverBusyRetryMs, with one 'trying again' line. The real CLI against
 * a real server on 127.0.0.1 whose one connection (or one open-file slot) another client holds
 * until the CLI has been refused. Needs dist/ (npm run build).
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import { contentDigest } from '../shared/integrity/index.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeOpen } from '../shared/protocol/encoder.js';
import { runCli } from './helpers/cliProcess.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
let holder: Client | undefined;
const tempDirs = new TempDirs('muxftp-busy-commands-');
afterEach(async () => {
  await holder?.destroy();
  holder = undefined;
  env = await stopServerAndPeers(env, peers);
  await tempDirs.removeAll();
});

/** As long as the waits here took before they were shared (1,000 looks 20 ms apart). */
const BUSY_WAIT = { timeoutMs: 20_000 };

const content = randomBytes(100_000);
const digestLine = () => `xxh128 ${contentDigest('xxh128', content).toString('hex')}`;

/**
 * A server with one open-file slot (--max-open-files 1), f.bin (and `others`) on it, and another client holding
 * the slot: a download it grants no credit. `busy`: the server's SERVER_BUSY answers so far.
 */
async function oneOpenFileSlotHeld(
  others: Record<string, Buffer> = {},
): Promise<{ peer: RawPeer; busy: () => number }> {
  env = await startServer({ maxOpenFiles: 1 });
  const seeder = await env.connect();
  await seeder.put('f.bin', content);
  for (const [name, bytes] of Object.entries(others)) await seeder.put(name, bytes);
  await seeder.close();
  const peer = await RawPeer.open(env.port);
  peers.push(peer);
  peer.write(encodeOpen(1, { op: 'get', path: 'f.bin' }));
  await peer.waitFor((f) => f.streamId === 1 && f.type === FrameType.REPLY);
  return { peer, busy: () => env!.server.counters.errors.get('SERVER_BUSY') ?? 0 };
}

describe('a client command refused SERVER_BUSY tries again', () => {
  it('stat --hash refused a connection (--max-connections 1) succeeds once the holder leaves', async () => {
    env = await startServer({ maxConnections: 1 });
    holder = await env.connect();
    await holder.put('f.bin', content);
    const cwd = await tempDirs.make();
    const run = runCli(['--server', `127.0.0.1:${env.port}`, 'stat', '--hash', 'f.bin'], cwd, {
      timeoutMs: 60_000,
    });
    await until(() => (env!.server.counters.refused.get('max_connections') ?? 0) > 0, 'a refusal', BUSY_WAIT);
    await holder.close();
    holder = undefined;

    const { code, stdout, stderr } = await run;
    expect(stderr).toMatch(
      /^muxftp: stat: cannot connect to 127\.0\.0\.1:\d+ yet: server busy: at most 1 connection; trying again in \d+\.\d s \(for up to 60 s while the server is busy\)\n$/,
    );
    expect(code).toBe(0);
    expect(stdout).toContain(digestLine());
  }, 90_000);

  it('put and get with --retries 0 refused a connection fail at once, as documented: they do not wait', async () => {
    env = await startServer({ maxConnections: 1 });
    holder = await env.connect();
    await holder.put('f.bin', content);
    const cwd = await tempDirs.make();
    await writeFile(join(cwd, 'up.bin'), content);
    const at = ['--server', `127.0.0.1:${env.port}`];
    for (const args of [
      ['get', 'f.bin', '--retries', '0'],
      ['put', 'up.bin', '--retries', '0'],
    ]) {
      // Waiting, either would still be trying when killed (the server stays full for up to 60 s).
      const { code, stderr } = await runCli([...at, ...args], cwd, { timeoutMs: 20_000 });
      expect({ args, code, waited: stderr.includes('trying again') }).toEqual({
        args,
        code: 3, // a connect refused: the connection failed, whatever refused it
        waited: false,
      });
      expect(stderr).toMatch(/server busy: at most 1 connection/);
    }
  }, 60_000);

  it('stat --hash refused its file (--max-open-files 1) succeeds once the slot is free', async () => {
    const { peer, busy } = await oneOpenFileSlotHeld();

    const cwd = await tempDirs.make();
    const run = runCli(['--server', `127.0.0.1:${env!.port}`, 'stat', '--hash', 'f.bin'], cwd, {
      timeoutMs: 60_000,
    });
    await until(() => busy() > 0, 'a refusal', BUSY_WAIT);
    peer.destroy();

    const { code, stdout, stderr } = await run;
    expect(stderr).toMatch(
      /^muxftp: stat: server busy: 1 files are open for transfers; try again later; trying again in 0\.\d s \(for up to 60 s while the server is busy\)\n$/,
    );
    expect(code).toBe(0);
    expect(stdout).toContain(digestLine());
  }, 90_000);

  it('get FILE - refused its file (--max-open-files 1) waits as get FILE does, and writes it once', async () => {
    // Text, so stdout (read as a string) can be compared whole.
    const text = content.toString('hex');
    const { peer, busy } = await oneOpenFileSlotHeld({ 'f.txt': Buffer.from(text) });

    const run = runCli(['--server', `127.0.0.1:${env!.port}`, 'get', 'f.txt', '-'], await tempDirs.make(), {
      timeoutMs: 60_000,
    });
    await until(() => busy() > 0, 'a refusal', BUSY_WAIT);
    peer.destroy();

    // It failed at once, SERVER_BUSY (exit 1), where a download into a file waited.
    const { code, stdout, stderr } = await run;
    expect(stderr).toMatch(/^muxftp: get f\.txt: server busy: .*; trying again in 0\.\d s/);
    expect(code).toBe(0);
    expect(stdout === text).toBe(true);
  }, 90_000);

  it("bench's seeding refused its file (--max-open-files 1) waits, and the run reports", async () => {
    const { peer, busy } = await oneOpenFileSlotHeld();

    const run = runCli(
      [
        '--server',
        `127.0.0.1:${env!.port}`,
        'bench',
        '--op',
        'download',
        '--clients',
        '1',
        '--files',
        '4',
        '--size',
        '1KiB',
        '--workers',
        '1',
        '--json',
      ],
      await tempDirs.make(),
      { timeoutMs: 60_000 },
    );
    await until(() => busy() > 0, 'a refusal', BUSY_WAIT);
    peer.destroy();

    // It ended at once with no report, the seeding's SERVER_BUSY as its error.
    const { code, stdout, stderr } = await run;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(stdout)).toMatchObject({ op: 'download' });
  }, 90_000);
});
