/**
 * A `partial` query's REPLY lists the digests of the kept blocks: up to maxResumeBlocks (2048) of
 * them, ~72 KB in xxh128 (~137 KB in sha256), for a kept upload of 8 GiB or more. It waits for room
 * for its real length in the connection's output: the 4 KiB reserved for a small answer before the
 * lookup let clients asking 256 such queries each and reading none hold them all, past the server's
 * control budget. Real sockets and server; storage's hashing of 8 GiB of kept data per query is
 * stood in for (heldPartial answers at once), since a kept upload's digests are never remembered.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { MiB } from './helpers/heap.js';
import type { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { expectAllReleased, peakOfUnreadReplies, repliesOnceRead } from './helpers/unreadReplies.js';

vi.mock('../storage/partialUpload.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../storage/partialUpload.js')>()),
  // Kept whole blocks, as many as the REPLY may list, each digest xxh128's 16 bytes.
  heldPartial: async (_storage: unknown, _path: string, _key: unknown, maxBlocks: number) => ({
    offset: maxBlocks * INTEGRITY_BLOCK_BYTES,
    blocks: Array.from({ length: maxBlocks }, () => '00'.repeat(16)),
  }),
}));

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

const LIMIT = 1 * MiB;
const PEERS = 3;
const QUERIES = 256;
const BLOCKS = 2048;

describe('partial queries of a large kept upload, their REPLYs never read', () => {
  it('hold no more than the control budget and a REPLY each; a client reading them gets them all', async () => {
    env = await startServer({ serverControlHighWaterBytes: LIMIT });
    const key = { size: 2 * BLOCKS * INTEGRITY_BLOCK_BYTES, algorithm: 'xxh128' as const, source: 'src' };
    const peak = await peakOfUnreadReplies(env, peers, PEERS, QUERIES, {
      op: 'partial',
      path: 'big.iso',
      ...key,
    });
    // Each REPLY ~72 KB: all of them were ~55 MB held (less what the kernel took).
    expect(peak).toBeLessThanOrEqual(LIMIT + PEERS * 256 * 1024);
    expect(env.logs.filter((line) => line.includes('closed after'))).toEqual([]);

    // Others are served meanwhile.
    const client = await env.connect();
    expect(await client.list()).toEqual([]);

    // A client that reads gets every answer, each with its blocks.
    const answer = (await repliesOnceRead(peers[0]!, QUERIES))[0]!;
    expect(answer.offset).toBe(BLOCKS * INTEGRITY_BLOCK_BYTES);
    expect(answer.blocks).toHaveLength(BLOCKS);

    await expectAllReleased(env, peers);
  }, 60_000);
});
