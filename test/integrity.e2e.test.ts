/**
 * Protocol v2 integrity over real sockets: the negotiated algorithm in each preference order, a
 * corrupted byte in any 4 MiB block caught before anything is committed, and the server's digest
 * cache holding one digest per algorithm.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES as B, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import type { MemoryStorage } from '../storage/memory.js';
import { RawPeer } from './helpers/rawPeer.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

const MiB = 1024 * 1024;

describe('negotiation over a real connection', () => {
  it.each([
    [['xxh128', 'sha256'], 'xxh128'],
    [['sha256', 'xxh128'], 'sha256'],
    [['sha256'], 'sha256'],
    [['xxh128'], 'xxh128'],
  ] as const)('a client preferring %j gets %s, and every transfer uses it', async (preference, chosen) => {
    env = await startServer();
    const client = await env.connect({ integrity: [...preference] });
    expect(client.integrity).toBe(chosen);
    expect(client.serverInfo.integrity).toEqual({ algorithm: chosen, blockBytes: B });
    const bytes = randomBytes(B + 1);
    const expected = contentDigest(chosen, bytes).toString('hex');
    expect(await client.put('n.bin', bytes)).toMatchObject({ algorithm: chosen, digest: expected });
    const chunks: Buffer[] = [];
    const got = await client.get(
      'n.bin',
      new PassThrough().on('data', (c) => chunks.push(c)),
    );
    const { mtime, mode } = await client.stat('n.bin');
    expect(got).toEqual({ size: bytes.length, algorithm: chosen, digest: expected, mtime, mode });
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it('a client offering nothing known is refused at construction', async () => {
    env = await startServer();
    await expect(env.connect({ integrity: ['md5' as IntegrityAlgorithm] })).rejects.toThrow(
      /integrity must list/,
    );
    await expect(env.connect({ integrity: [] })).rejects.toThrow(/integrity must list/);
  });
});

describe.each(['xxh128', 'sha256'] as const)(
  'a corrupted upload (%s) is caught and never committed',
  (algorithm) => {
    const size = 2 * B + 1; // three blocks, the last of one byte

    async function upload(peer: RawPeer, id: number, path: string, sent: Buffer, digestOf: Buffer) {
      peer.write(encodeOpen(id, { op: 'put', path, size }));
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === id);
      for (let at = 0; at < sent.length; at += 256 * 1024)
        peer.write(encodeData(id, sent.subarray(at, at + 256 * 1024)));
      peer.write(encodeEnd(id, size, algorithm, contentDigest(algorithm, digestOf)));
    }

    it.each([
      ['the first block', 0],
      ['the middle block, at its first byte', B],
      ['the middle block, at its last byte', 2 * B - 1],
      ['the last block of one byte', 2 * B],
    ])('a flipped byte in %s', async (_where, at) => {
      env = await startServer({ backend: 'disk', streamWindowBytes: 16 * MiB });
      const peer = await RawPeer.open(env.port, [algorithm]);
      const original = randomBytes(size);
      const corrupted = Buffer.from(original);
      corrupted[at]! ^= 0x40;
      await upload(peer, 1, 'c.bin', corrupted, original);
      const error = await peer.streamError(1);
      expect(error).toEqual({
        code: 'INTEGRITY_ERROR',
        message: `upload of c.bin failed verification: ${algorithm} digest mismatch`,
      });
      // Nothing under the name, no temporary file left behind.
      await expect(env.storage.stat('c.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      for (let i = 0; i < 250 && (await readdir(env.root!)).length > 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(await readdir(env.root!)).toEqual([]);

      // The same bytes uncorrupted commit, and the REPLY names the algorithm beside the digest.
      await upload(peer, 3, 'c.bin', original, original);
      const reply = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3, 20_000);
      expect(JSON.parse(reply.payload.toString())).toMatchObject({
        algorithm,
        digest: contentDigest(algorithm, original).toString('hex'),
      });
      expect((await env.storage.stat('c.bin')).size).toBe(size);
    });

    it('an END naming the other algorithm is an INTEGRITY_ERROR', async () => {
      env = await startServer();
      const peer = await RawPeer.open(env.port, [algorithm]);
      const other = algorithm === 'xxh128' ? 'sha256' : 'xxh128';
      const body = Buffer.from('some bytes');
      peer.write(encodeOpen(1, { op: 'put', path: 'o.bin' }));
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
      peer.write(encodeData(1, body));
      peer.write(encodeEnd(1, body.length, other, contentDigest(other, body)));
      expect(await peer.streamError(1)).toEqual({
        code: 'INTEGRITY_ERROR',
        message: `upload of o.bin failed verification: END names ${other}, the connection uses ${algorithm}`,
      });
      await expect(env.storage.stat('o.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });
  },
);

describe("the server's digest cache", () => {
  it('holds each algorithm computed for a file version; a download fills in the one it lacked', async () => {
    env = await startServer();
    const xxhClient = await env.connect({ integrity: ['xxh128'] });
    const shaClient = await env.connect({ integrity: ['sha256'] });
    const bytes = randomBytes(B + 7);
    await xxhClient.put('cached.bin', bytes);
    const known = async () => {
      const handle = await env!.storage.openRead('cached.bin');
      const figures = { xxh128: handle.knownDigest('xxh128'), sha256: handle.knownDigest('sha256') };
      await handle.close();
      return figures;
    };
    const afterPut = await known();
    expect(afterPut.xxh128?.digest.equals(contentDigest('xxh128', bytes))).toBe(true);
    expect(afterPut.xxh128?.blockDigests).toHaveLength(2);
    expect(afterPut.sha256).toBeUndefined();

    expect((await shaClient.getBuffer('cached.bin')).equals(bytes)).toBe(true);
    const afterGet = await known();
    expect(afterGet.sha256?.digest.equals(contentDigest('sha256', bytes))).toBe(true);
    expect(afterGet.xxh128).toBe(afterPut.xxh128); // the other algorithm's entry is kept

    // The digest op serves both from the cache, and is the same D the transfers verified.
    expect(await xxhClient.digest('cached.bin', 'sha256')).toMatchObject({
      algorithm: 'sha256',
      digest: afterGet.sha256!.digest.toString('hex'),
      entry: { name: 'cached.bin', size: bytes.length },
    });
    expect((await shaClient.digest('cached.bin', 'xxh128')).digest).toBe(
      afterPut.xxh128!.digest.toString('hex'),
    );
  });
});

describe('a digest computed by reading the file', () => {
  it('is not a stalled stream however much longer than the idle timeout the reading takes', async () => {
    // sha256 of 512 MiB takes ~0.3 s here, six of these idle timeouts: each read counts as the
    // stream moving data (it failed STREAM_TIMEOUT once the reads let the loop turn).
    env = await startServer({ idleTimeoutMs: 50 });
    const big = Buffer.alloc(512 * 1024 * 1024, 7);
    (env.storage as MemoryStorage).volume.writeFileSync('/big.bin', big);
    const client = await env.connect();
    const started = performance.now();
    const { digest } = await client.digest('big.bin', 'sha256');
    const elapsedMs = performance.now() - started;
    expect(digest).toBe(contentDigest('sha256', big).toString('hex'));
    expect(elapsedMs).toBeGreaterThan(2 * 50); // else the idle timer was never put to the test
    expect(env.server.counters.errors.get('STREAM_TIMEOUT') ?? 0).toBe(0);
  });
});
