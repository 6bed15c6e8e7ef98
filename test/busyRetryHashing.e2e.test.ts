/**
 * A `get -c` refused SERVER_BUSY and tried again does not hash the kept partial again: the first
 * try's block digests are reused while the file is the same version (LocalDigestMemo); nor does
 * it copy a partial file of the user's again: the copy is made once the server accepted. The real
 * CLI against a real server on 127.0.0.1 whose one open-file slot another client holds; the
 * bytes the CLI reads of local files to hash them are counted in the child process (test/helpers/countLocalReads.mjs).
 * Needs dist/ (npm run build).
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { keptPartialPath } from '../client/sinks.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeOpen } from '../shared/protocol/encoder.js';
import { runCli } from './helpers/cliProcess.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const COUNTER = pathToFileURL(join(import.meta.dirname, 'helpers', 'countLocalReads.mjs')).href;

let env: TestServer | undefined;
const peers: RawPeer[] = [];
const tempDirs = new TempDirs('muxftp-busy-hashing-');
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
  await tempDirs.removeAll();
});

/**
 * A server with one open-file slot, serving big.bin (3 blocks and a bit) and hold.bin, whose slot
 * another client holds with a download it grants no credit: every get is refused SERVER_BUSY
 * until `holder` goes.
 */
async function serveWithTheSlotHeld(): Promise<{ content: Buffer; cwd: string; holder: RawPeer }> {
  env = await startServer({ maxOpenFiles: 1 });
  const content = randomBytes(3 * INTEGRITY_BLOCK_BYTES + 1000);
  const seeder = await env.connect();
  await seeder.put('big.bin', content);
  await seeder.put('hold.bin', randomBytes(4 * INTEGRITY_BLOCK_BYTES));
  await seeder.close();
  const cwd = await tempDirs.make();
  const holder = await RawPeer.open(env.port);
  peers.push(holder);
  holder.write(encodeOpen(1, { op: 'get', path: 'hold.bin' }));
  await holder.waitFor((f) => f.streamId === 1 && f.type === FrameType.REPLY);
  return { content, cwd, holder };
}

/** Waits (bounded) until the server has refused `count` requests SERVER_BUSY. */
async function refusedBusy(count: number): Promise<void> {
  const busy = () => env!.server.counters.errors.get('SERVER_BUSY') ?? 0;
  for (let i = 0; i < 1500 && busy() < count; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(busy()).toBeGreaterThanOrEqual(count);
}

/**
 * `get -c big.bin` in `cwd`; with `countInto`, what the CLI reads and copies of local files there
 * is counted into that file (countLocalReads.mjs).
 */
function continueInCli(cwd: string, options: { countInto?: string; interruptWhen?: Promise<void> } = {}) {
  const { countInto, interruptWhen } = options;
  return runCli(['--server', `127.0.0.1:${env!.port}`, 'get', '-c', 'big.bin'], cwd, {
    ...(countInto === undefined
      ? {}
      : {
          env: {
            NODE_OPTIONS: `--import ${COUNTER}`,
            MUXFTP_TEST_READS_UNDER: cwd,
            MUXFTP_TEST_READS_OUT: countInto,
          },
        }),
    ...(interruptWhen === undefined ? {} : { interruptWhen }),
    timeoutMs: 60_000,
  });
}

describe('a busy retry reuses what the first try hashed', () => {
  it('get -c refused SERVER_BUSY, then served: the kept partial is read to hash it once', async () => {
    const { content, cwd, holder } = await serveWithTheSlotHeld();
    // What an earlier get kept: the first two blocks.
    await writeFile(keptPartialPath(join(cwd, 'big.bin')), content.subarray(0, 2 * INTEGRITY_BLOCK_BYTES));
    const out = join(cwd, 'reads.json');
    const run = continueInCli(cwd, { countInto: out });
    // Once the CLI was refused, the holder goes: its next try is served.
    await refusedBusy(1);
    holder.destroy();

    const { code, stderr } = await run;
    expect(stderr).toMatch(/server busy|trying again/);
    expect(code).toBe(0);
    expect((await readFile(join(cwd, 'big.bin'))).equals(content)).toBe(true);
    // Read once to hash its blocks (the first try), not again by the try that was served.
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual({ bytes: 2 * INTEGRITY_BLOCK_BYTES, copied: 0 });
  }, 90_000);

  it('get -c of a partial file at the target, refused SERVER_BUSY twice: copied once, when served, through its handle', async () => {
    const { content, cwd, holder } = await serveWithTheSlotHeld();
    // The user's own partial file (an interrupted curl, say): continued through a copy of it.
    await writeFile(join(cwd, 'big.bin'), content.subarray(0, 2 * INTEGRITY_BLOCK_BYTES + 500));
    const out = join(cwd, 'reads.json');
    const run = continueInCli(cwd, { countInto: out });
    // Two refusals, then the holder goes: the third try is served.
    await refusedBusy(2);
    holder.destroy();

    const { code, stderr } = await run;
    expect(stderr).toMatch(/server busy|trying again/);
    expect(code).toBe(0);
    expect((await readFile(join(cwd, 'big.bin'))).equals(content)).toBe(true);
    // Read twice: its two whole blocks hashed by the first try, and copied up to the server's
    // offset (those two blocks) by the try the server accepted, through the temporary file's
    // handle, not by path (copyFile).
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual({
      bytes: 4 * INTEGRITY_BLOCK_BYTES,
      copied: 0,
    });
  }, 90_000);

  it('get -c whose partial file is rewritten (same size) between busy tries hashes it again', async () => {
    const { content, cwd, holder } = await serveWithTheSlotHeld();
    const partial = Buffer.from(content.subarray(0, 2 * INTEGRITY_BLOCK_BYTES));
    await writeFile(join(cwd, 'big.bin'), partial);
    const run = continueInCli(cwd);
    await refusedBusy(1);
    // Between tries its second block changes: same inode and size, a new modification time.
    partial.fill(0, INTEGRITY_BLOCK_BYTES);
    await writeFile(join(cwd, 'big.bin'), partial);
    holder.destroy();

    // The try that is served compares the file as it is now (the first try's digests were of
    // another version): it differs at block 1, so it is not continued and is left as it is.
    const { code, stderr } = await run;
    expect(stderr).toMatch(/server busy|trying again/);
    expect(stderr).toMatch(/differs from the server's at block 1 .*not continued, left as it was/);
    expect(code).toBe(1);
    expect((await readFile(join(cwd, 'big.bin'))).equals(partial)).toBe(true);
  }, 90_000);

  it('get -c interrupted while refused SERVER_BUSY: no hidden file left, the partial file as it was', async () => {
    // The holder never lets go: every try is refused until Ctrl-C.
    const { content, cwd } = await serveWithTheSlotHeld();
    const partial = content.subarray(0, 2 * INTEGRITY_BLOCK_BYTES + 500);
    await writeFile(join(cwd, 'big.bin'), partial);
    let interrupt!: () => void;
    const interruptWhen = new Promise<void>((resolve) => {
      interrupt = resolve;
    });
    const run = continueInCli(cwd, { interruptWhen });
    await refusedBusy(2);
    interrupt();

    const { code } = await run;
    expect(code).toBe(130);
    expect((await readFile(join(cwd, 'big.bin'))).equals(partial)).toBe(true);
    // No temporary file of a try, and nothing kept (no byte came).
    expect(await readdir(cwd)).toEqual(['big.bin']);
  }, 90_000);
});
