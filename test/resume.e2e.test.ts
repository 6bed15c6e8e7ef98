/**
 * get -c: a partial local file is continued from its last whole block after its block digests
 * were checked against the server's, the whole file is verified at the end, and a partial file of
 * another version is detected and left exactly as it was. The server decides the offset.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;
const BLOCK = INTEGRITY_BLOCK_BYTES;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-resume-');

afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/** A disk server holding `content` at big.bin: uploaded (digest remembered) or written behind its back. */
async function serverWith(content: Buffer, how: 'uploaded' | 'written'): Promise<TestServer> {
  const server = await startServer({ backend: 'disk' });
  if (how === 'written') await writeFile(join(server.root!, 'big.bin'), content);
  else await (await server.connect()).put('big.bin', content);
  return server;
}

describe('get -c (library: continue)', () => {
  it.each(['uploaded', 'written'] as const)(
    'continues a partial file from its last whole block and sends only the rest (digest %s)',
    async (how) => {
      const content = randomBytes(2 * BLOCK + MiB + 123);
      env = await serverWith(content, how);
      const local = join(await tempDirs.make(), 'big.bin');
      await writeFile(local, content.subarray(0, 2 * BLOCK + 700_000)); // 2 whole blocks and a bit
      const client = await env.connect();
      const before = env.server.stats().bytesOut;
      const progress: number[] = [];
      const result = await client.get('big.bin', local, {
        continue: true,
        onProgress: (done) => progress.push(done),
      });
      expect(result.size).toBe(content.length);
      expect(sha256(await readFile(local))).toBe(sha256(content));
      // Only what follows the two verified blocks crossed the wire.
      expect(env.server.stats().bytesOut - before).toBe(content.length - 2 * BLOCK);
      expect(progress[0]).toBe(2 * BLOCK);
      expect(await readdir(dirname(local))).toEqual(['big.bin']);
    },
  );

  it('leaves a partial file of another version exactly as it was, and says which block differs', async () => {
    const content = randomBytes(3 * BLOCK);
    env = await serverWith(content, 'uploaded');
    const local = join(await tempDirs.make(), 'big.bin');
    const foreign = Buffer.from(content.subarray(0, 2 * BLOCK + 5));
    foreign[BLOCK + 17] = foreign[BLOCK + 17]! ^ 0xff; // the second block differs
    await writeFile(local, foreign);
    const client = await env.connect();
    await expect(client.get('big.bin', local, { continue: true })).rejects.toMatchObject({
      code: 'INTEGRITY_ERROR',
      message: expect.stringMatching(/block 1\b.*left as it was/),
    });
    expect(sha256(await readFile(local))).toBe(sha256(foreign));
    expect(await readdir(dirname(local))).toEqual(['big.bin']);
    // The stream was cancelled cleanly: the connection goes on.
    expect(sha256(await client.getBuffer('big.bin'))).toBe(sha256(content));
    expect(env.server.stats().streams).toBe(0);
  });

  it('the server decides the offset: never past its own whole blocks', async () => {
    const content = randomBytes(2 * BLOCK + 10);
    env = await serverWith(content, 'written');
    const local = join(await tempDirs.make(), 'big.bin');
    // Longer than the server's file: its first two blocks match, the rest is stale.
    await writeFile(local, Buffer.concat([content, randomBytes(2 * BLOCK)]));
    const client = await env.connect();
    const before = env.server.stats().bytesOut;
    await client.get('big.bin', local, { continue: true });
    expect(sha256(await readFile(local))).toBe(sha256(content));
    expect(env.server.stats().bytesOut - before).toBe(10);
  });

  it('a complete local copy is confirmed without sending its whole blocks again; a partial under one block is replaced', async () => {
    const content = randomBytes(2 * BLOCK);
    env = await serverWith(content, 'uploaded');
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'big.bin'), content);
    const client = await env.connect();
    const before = env.server.stats().bytesOut;
    expect((await client.get('big.bin', join(dir, 'big.bin'), { continue: true })).size).toBe(2 * BLOCK);
    expect(env.server.stats().bytesOut - before).toBe(0);
    await writeFile(join(dir, 'small.bin'), 'not even one block');
    await client.get('big.bin', join(dir, 'small.bin'), { continue: true });
    expect(sha256(await readFile(join(dir, 'small.bin')))).toBe(sha256(content));
  });

  it('an offset that is not a whole block is a BAD_REQUEST for that stream', async () => {
    env = await serverWith(randomBytes(100), 'uploaded');
    const { RawPeer } = await import('./helpers/rawPeer.js');
    const { encodeOpen } = await import('../shared/protocol/encoder.js');
    const peer = await RawPeer.open(env.port);
    peer.write(encodeOpen(1, { op: 'get', path: 'big.bin', offset: 1000 }));
    expect((await peer.streamError(1)).code).toBe('BAD_REQUEST');
    peer.destroy();
  });
});

describe('muxftp get -c', () => {
  it('continues a partial download, and exits 1 leaving a foreign partial file untouched', async () => {
    const content = randomBytes(BLOCK + 3 * MiB);
    env = await serverWith(content, 'uploaded');
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'big.bin'), content.subarray(0, BLOCK + MiB));
    const run = (file: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [CLI_BIN, 'get', '-c', 'big.bin', file, '--server', `127.0.0.1:${env!.port}`],
          { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        // A hung command is killed, not left behind the test.
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, stderr });
        });
      });
    expect(await run('big.bin')).toEqual({ code: 0, stderr: '' });
    expect(sha256(await readFile(join(dir, 'big.bin')))).toBe(sha256(content));

    const foreign = randomBytes(BLOCK + 5);
    await writeFile(join(dir, 'other.bin'), foreign);
    const failed = await run('other.bin');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('INTEGRITY_ERROR');
    expect(sha256(await readFile(join(dir, 'other.bin')))).toBe(sha256(foreign));
    expect((await readdir(dir)).sort()).toEqual(['big.bin', 'other.bin']);
  }, 30_000);
});
