/**
 * Storage tells file versions apart by (device, inode, size, mtime, ctime): the digest cache
 * serves a version's digests to every later reader of it. memfs gave a removed file's inode
 * number to the next file at once, and its clock ticks in milliseconds, so a file put within the
 * millisecond of a removed one of the same size was that version: it was served the removed
 * file's digests (a `digest` answered wrong; a download's END carried a D its bytes did not have).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import type { MemoryStorage } from '../storage/memory.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
afterEach(async () => {
  env = await stopServerAndPeers(env, []);
});

describe('memory storage: a new file is never taken for a removed one', () => {
  it('put, digest, rm, put of the same size: the digest is always the new content', async () => {
    env = await startServer({ backend: 'memory' });
    const volume = (env.storage as MemoryStorage).volume;
    const client = await env.connect();
    const inodes = new Set<number>();
    let wrong = 0;
    for (let i = 0; i < 100; i++) {
      await client.put('f', randomBytes(5));
      // A second algorithm's digest, computed by reading: kept, as the commit vouched for the version.
      await client.digest('f', 'sha256');
      inodes.add(Number(volume.statSync('/f').ino));
      await client.delete('f');
      const content = randomBytes(5);
      await client.put('f', content);
      inodes.add(Number(volume.statSync('/f').ino));
      const { digest } = await client.digest('f', 'sha256');
      if (digest !== contentDigest('sha256', content).toString('hex')) wrong++;
      await client.delete('f');
    }
    expect(wrong).toBe(0);
    // The cause, without depending on the clock: no inode number was given out twice.
    expect(inodes.size).toBe(200);
  }, 60_000);
});
