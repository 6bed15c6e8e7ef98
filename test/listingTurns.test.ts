/**
 * A listing (and a sweep of temporary files) lets the loop turn between its batches, so other connections are served while a
 * huge directory is listed. memfs answers every call in microtasks (no timer or I/O callback runs
 * while its promises chain), so in memory a 20,000-entry listing used to hold the one thread from
 * its first lookup to its last. Counted in loop turns (helpers/loopTurns.ts), not timed.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { fileDigest } from '../storage/fileDigest.js';
import { MemoryStorage } from '../storage/memory.js';
import { LoopTurns } from './helpers/loopTurns.js';

describe('listBatches', () => {
  it('lets the loop turn between batches of a huge listing in memory', async () => {
    const storage = new MemoryStorage();
    try {
      storage.volume.mkdirSync('/huge');
      for (let i = 0; i < 20_000; i++)
        storage.volume.writeFileSync(`/huge/entry-${String(i).padStart(6, '0')}`, '');
      const loop = new LoopTurns();
      let batches = 0;
      let entries = 0;
      for await (const batch of storage.listBatches('huge')) {
        batches++;
        entries += batch.length;
      }
      const turns = loop.stop();
      expect(entries).toBe(20_000);
      expect(batches).toBe(Math.ceil(20_000 / DEFAULTS.listBatchEntries));
      // At least one turn between each two batches (0 before).
      expect(turns).toBeGreaterThanOrEqual(batches - 1);
    } finally {
      await storage.close();
    }
  });
});

describe('sweepTemporaryFiles', () => {
  it('looks a huge directory up a batch at a time, letting the loop turn between batches', async () => {
    const storage = new MemoryStorage();
    try {
      storage.volume.mkdirSync('/huge');
      for (let i = 0; i < 5_000; i++)
        storage.volume.writeFileSync(`/huge/entry-${String(i).padStart(6, '0')}`, '');
      const loop = new LoopTurns();
      expect(await storage.sweepTemporaryFiles()).toBe(0);
      const turns = loop.stop();
      // At least one turn between each two batches of the 5,000 entries (0 before: every lookup at once).
      expect(turns).toBeGreaterThanOrEqual(Math.ceil(5_000 / DEFAULTS.listBatchEntries) - 1);
    } finally {
      await storage.close();
    }
  });
});

describe('fileDigest', () => {
  it("lets the loop turn while it reads a large file in memory (memfs's reads resolve in microtasks)", async () => {
    const storage = new MemoryStorage();
    try {
      storage.volume.writeFileSync('/big.bin', Buffer.alloc(64 * 1024 * 1024, 7));
      const loop = new LoopTurns();
      const { digest } = await fileDigest(storage, 'big.bin', 'sha256');
      const turns = loop.stop();
      expect(digest.algorithm).toBe('sha256');
      // 64 reads of 1 MiB, hashed at ~1.4 GB/s: tens of 2 ms turns. 0 before: one 45 ms hold.
      expect(turns).toBeGreaterThanOrEqual(4);
    } finally {
      await storage.close();
    }
  });
});
