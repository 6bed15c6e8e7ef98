/**
 * A resumed get's REPLY lists the digests of the blocks before its offset: up to maxResumeBlocks
 * (2048) of them, ~72 KB in xxh128 (~137 KB in sha256), for a file of 8 GiB or more. It waits for
 * room in the connection's output as a request's answer does: sent at once, clients asking 256
 * such gets each and reading none held them all, past the server's control budget (4 clients:
 * 72 MB in a `muxftp serve` whose budget is 64 MiB). Real sockets, a sparse file on disk, its
 * digest remembered beforehand (as after one `stat --hash`) so that no test hashes 8 GiB.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { RACY_WINDOW_MS } from '../storage/digestCache.js';
import { MiB } from './helpers/heap.js';
import type { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { expectAllReleased, peakOfUnreadReplies, repliesOnceRead } from './helpers/unreadReplies.js';
import { delay } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

const LIMIT = 1 * MiB;
const PEERS = 3;
const GETS = 256;
const BLOCKS = 2048;
const OFFSET = BLOCKS * INTEGRITY_BLOCK_BYTES;

describe('resumed gets of a large file, their REPLYs never read', () => {
  it('hold no more than the control budget and a REPLY each; a client reading them gets them all', async () => {
    env = await startServer({ backend: 'disk', serverControlHighWaterBytes: LIMIT });
    const path = join(env.root!, 'big.iso');
    const file = await open(path, 'w');
    await file.truncate(OFFSET + INTEGRITY_BLOCK_BYTES);
    await file.close();
    // Changed longer ago than a racy ctime: a version the digest cache remembers.
    await delay(RACY_WINDOW_MS + 100);
    const handle = await env.storage.openRead('big.iso');
    const zero = Buffer.alloc(16);
    handle.rememberDigest({
      algorithm: 'xxh128',
      digest: zero,
      blockDigests: Array.from({ length: BLOCKS + 1 }, () => zero),
    });
    await handle.close();

    const peak = await peakOfUnreadReplies(env, peers, PEERS, GETS, {
      op: 'get',
      path: 'big.iso',
      offset: OFFSET,
    });
    // Each REPLY ~72 KB: all of them were ~55 MB held (less what the kernel took).
    expect(peak).toBeLessThanOrEqual(LIMIT + PEERS * 256 * 1024);
    expect(env.logs.filter((line) => line.includes('closed after'))).toEqual([]);

    // Others are served meanwhile.
    const client = await env.connect();
    expect((await client.stat('big.iso')).size).toBe(OFFSET + INTEGRITY_BLOCK_BYTES);

    // A client that reads gets every answer, each with its blocks.
    const answer = (await repliesOnceRead(peers[0]!, GETS))[0]!;
    expect(answer.offset).toBe(OFFSET);
    expect(answer.blocks).toHaveLength(BLOCKS);

    await expectAllReleased(env, peers);
  }, 60_000);
});
