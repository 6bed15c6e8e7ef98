/**
 * put -c racing another upload of the same name: the server offers the blocks it kept (the
 * `partial` request), and another client's put of that name, started before the put -c's OPEN
 * arrives, drops them (one kept upload per file). The put -c then must start over from 0, as
 * when the blocks differ, not fail NOT_FOUND (which the CLI reads as a missing directory: "add
 * -p"): two runs writing one file, the last one stands. Real server on 127.0.0.1 (disk), real
 * files on both sides.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { cutAndKept } from './helpers/cutUploads.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;

let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-put-continue-race-');

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

const hiddenNames = async (root: string) =>
  (await readdir(root)).filter((name) => name.startsWith('.muxftp-'));

/**
 * A server (also `env`, stopped after the test) keeping the first 2 whole blocks of big.bin from
 * an interrupted resumable put of `source` (3 blocks and a bit, `content`): small fixed windows,
 * so a cut after 2.5 blocks sent leaves exactly 2.
 */
async function keptUpload(): Promise<{ server: TestServer; content: Buffer; source: string }> {
  env = await startServer({
    backend: 'disk',
    streamWindowBytes: 256 * 1024,
    streamWindowMaxBytes: 256 * 1024,
  });
  const content = randomBytes(3 * BLOCK + 1000);
  const source = join(await tempDirs.make(), 'source.bin');
  await writeFile(source, content);
  await cutAndKept(env, source);
  return { server: env, content, source };
}

describe('put -c while another client overwrites the file', () => {
  it('starts over from 0 when the kept blocks it was offered are dropped before its OPEN', async () => {
    const { server, content, source } = await keptUpload();

    // Between the put -c's `partial` answer and its OPEN, another client puts the file whole.
    const other = await server.connect();
    const overwrite = randomBytes(BLOCK + 7);
    const createUpload = server.storage.createUpload.bind(server.storage);
    let raced = false;
    server.storage.createUpload = async (path, options) => {
      if ((options?.resumeFrom ?? 0) > 0 && !raced) {
        raced = true;
        await other.put('big.bin', overwrite);
      }
      return createUpload(path, options);
    };

    const client = await server.connect();
    const restarts: string[] = [];
    const result = await client.put('big.bin', source, {
      continue: true,
      onRestart: (reason) => restarts.push(reason),
    });
    expect(raced).toBe(true);
    expect(restarts).toHaveLength(1);
    expect(result.continuedFrom).toBeUndefined();
    expect(result.entry.size).toBe(content.length);
    // The put -c came last: its file stands, whole, and nothing is left hidden.
    expect((await readFile(join(server.root!, 'big.bin'))).equals(content)).toBe(true);
    expect(await hiddenNames(server.root!)).toEqual([]);
  });

  it("does not start over once the server took the offset: a NOT_FOUND after it is the put's failure", async () => {
    const { server, source } = await keptUpload();

    // The continued upload is taken, then its commit finds the directory gone (as a host's rm -r).
    const createUpload = server.storage.createUpload.bind(server.storage);
    server.storage.createUpload = async (path, options) => {
      const upload = await createUpload(path, options);
      if ((options?.resumeFrom ?? 0) > 0)
        upload.commit = async () => {
          throw new StorageError('NOT_FOUND', `no such directory: ${path}`, path);
        };
      return upload;
    };

    const client = await server.connect();
    const restarts: string[] = [];
    const continued: number[] = [];
    await expect(
      client.put('big.bin', source, {
        continue: true,
        onRestart: (reason) => restarts.push(reason),
        onContinue: (from) => continued.push(from),
      }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(continued).toEqual([2 * BLOCK]);
    expect(restarts).toEqual([]);
  });
});

describe('two put -c of one kept upload at once', () => {
  it('the second is told what is kept is in use by another upload, not that nothing is kept', async () => {
    const { server, content, source } = await keptUpload();
    const second = await server.connect();
    const told: Array<boolean | undefined> = [];
    const createUpload = server.storage.createUpload.bind(server.storage);
    let raced = false;
    // Once the first has taken the kept blocks over (its upload made), the second asks.
    server.storage.createUpload = async (path, options) => {
      const upload = await createUpload(path, options);
      if ((options?.resumeFrom ?? 0) > 0 && !raced) {
        raced = true;
        await second.put('big.bin', source, { continue: true, onNothingKept: (inUse) => told.push(inUse) });
      }
      return upload;
    };
    const first = await server.connect();
    const result = await first.put('big.bin', source, { continue: true });
    expect(raced).toBe(true);
    expect(result.continuedFrom).toBe(2 * BLOCK);
    // Before: told nothing is kept (the CLI: "nothing of it is kept on the server … to continue").
    expect(told).toEqual([true]);
    expect((await readFile(join(server.root!, 'big.bin'))).equals(content)).toBe(true);
  });
});
