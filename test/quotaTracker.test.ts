/**
 * QuotaTracker's bookkeeping where an end-to-end test cannot time it: changes recorded while a
 * walk of the home is under way (the walk may or may not have seen them), a change whose delta
 * is unknown, and the recount interval. Real files in a memory volume; the walk is held after
 * it has listed the home, so the test decides what it saw.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QuotaTracker } from '../server/auth/quota.js';
import { MemoryStorage } from '../storage/memory.js';
import type { EntryInfo } from '../storage/types.js';

const LIMIT = 10_000;

async function write(storage: MemoryStorage, path: string, size: number): Promise<void> {
  const upload = await storage.createUpload(path);
  await upload.write([Buffer.alloc(size)]);
  await upload.commit();
}

const file = (name: string, size: number): EntryInfo => ({ name, type: 'file', size, mtimeMs: 0 });

/** Holds every listing, once done, until released: what the walk saw is fixed, its result is not in yet. */
function holdListings(storage: MemoryStorage) {
  const list = storage.list.bind(storage);
  let held: Promise<void> | undefined;
  let release = () => {};
  let onListed = () => {};
  let listed = new Promise<void>((resolve) => {
    onListed = resolve;
  });
  storage.list = async (dir) => {
    const entries = await list(dir);
    onListed();
    await held;
    return entries;
  };
  return {
    hold() {
      held = new Promise((resolve) => {
        release = resolve;
      });
      listed = new Promise((resolve) => {
        onListed = resolve;
      });
    },
    /** Resolves once a listing has been made and is being held. */
    get listed() {
      return listed;
    },
    release() {
      release();
      held = undefined;
    },
  };
}

/** `free` bytes fit, one more does not (and nothing stays reserved). */
async function expectFree(quota: QuotaTracker, free: number): Promise<void> {
  await expect(quota.reserve(free + 1)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
  await quota.reserve(free);
  quota.release(free);
}

// Only the clock the interval is read from is fake: memfs and promises run as usual.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});
const passMs = (ms: number) => vi.advanceTimersByTime(ms);

describe('QuotaTracker', () => {
  it('counts an upload committed during the first walk, whether the walk saw it or not', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    const listings = holdListings(storage);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    listings.hold();
    const reserving = quota.reserve(0);
    await listings.listed; // the walk saw only a
    await write(storage, 'b', 500);
    quota.record({ op: 'put', committed: { ...file('b', 500), replaced: undefined } });
    listings.release();
    await reserving;
    await expectFree(quota, LIMIT - 1500);
    expect(quota.walkCount).toBe(1);
  });

  it('applies known deltas without walking, and walks again at once after an unknown one', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    await expectFree(quota, LIMIT - 1000);
    await storage.remove('a');
    quota.record({ op: 'delete', removed: file('a', 1000) });
    await expectFree(quota, LIMIT);
    expect(quota.walkCount).toBe(1);
    // A link or special file went: only a walk can tell what that changed.
    await write(storage, 'c', 300);
    quota.record({ op: 'delete', removed: { name: 'link', type: 'other', size: 0, mtimeMs: 0 } });
    await expectFree(quota, LIMIT - 300);
    expect(quota.walkCount).toBe(2);
  });

  it('sees outside changes once the interval is over, and not before', async () => {
    const storage = new MemoryStorage();
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 200 });
    await expectFree(quota, LIMIT);
    await write(storage, 'outside', 4000); // not recorded: made outside muxftp
    await expectFree(quota, LIMIT);
    expect(quota.walkCount).toBe(1);
    passMs(199);
    await expectFree(quota, LIMIT);
    expect(quota.walkCount).toBe(1);
    passMs(1); // the interval to the ms
    await expectFree(quota, LIMIT - 4000);
    expect(quota.walkCount).toBe(2);
  });

  it('says how many bytes are free, and none (not fewer than none) when outside changes filled the home past the limit', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    const quota = new QuotaTracker(storage, { limitBytes: 2000, recountIntervalMs: 60_000 });
    await quota.reserve(300);
    await expect(quota.reserve(701)).rejects.toThrow(
      'quota exceeded: 701 more bytes do not fit (700 of 2000 free)',
    );
    quota.release(300);
    const full = new QuotaTracker(storage, { limitBytes: 500, recountIntervalMs: 60_000 });
    await expect(full.reserve(1)).rejects.toThrow('quota exceeded: 1 more bytes do not fit (0 of 500 free)');
  });

  it('after a walk that overlapped own changes, takes the highest usage the walk allows, until a clean walk', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    await write(storage, 'c', 400);
    const listings = holdListings(storage);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 200 });
    await expectFree(quota, LIMIT - 1400);
    await write(storage, 'outside', 3000);
    passMs(250);
    listings.hold();
    const reserving = quota.reserve(0);
    await listings.listed; // the walk saw a, c and outside: 4400
    await storage.remove('c');
    quota.record({ op: 'delete', removed: file('c', 400) });
    listings.release();
    await reserving;
    // The running count (1000) is below anything the walk allows (4000 or 4400): the walk
    // proves an outside change, and which of the two it is cannot be told.
    await expectFree(quota, LIMIT - 4400);
    passMs(250);
    await expectFree(quota, LIMIT - 4000);
    expect(quota.walkCount).toBe(3);
  });

  it('keeps its running count when a move during the walk spoils it', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    const listings = holdListings(storage);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 200 });
    await expectFree(quota, LIMIT - 1000);
    await storage.mkdir('d');
    await write(storage, 'd/x', 2000); // outside
    passMs(250);
    listings.hold();
    const reserving = quota.reserve(0);
    await listings.listed; // the root listing: a, d
    quota.record({ op: 'rename', renamed: { moved: file('a', 1000), replaced: undefined } });
    listings.release();
    await reserving;
    // A walk racing a move may list a moved entry twice or not at all: it taught nothing.
    await expectFree(quota, LIMIT - 1000);
    passMs(250);
    await expectFree(quota, LIMIT - 3000);
  });

  it('keeps its running count after a delete during a walk that saw the file', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    await write(storage, 'b', 500);
    const listings = holdListings(storage);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 200 });
    await expectFree(quota, LIMIT - 1500);
    passMs(250);
    listings.hold();
    const reserving = quota.reserve(0);
    await listings.listed; // the walk saw a and b: 1500
    await storage.remove('b');
    quota.record({ op: 'delete', removed: file('b', 500) });
    listings.release();
    await reserving;
    // The running count (1000) is one the walk allows (1500 less the 500 freed): it stays.
    await expectFree(quota, LIMIT - 1000);
    expect(quota.walkCount).toBe(2);
  });

  it('refuses a reservation waiting on a first walk that a move spoiled, counting what was added meanwhile', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    const listings = holdListings(storage);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    listings.hold();
    const reserving = quota.reserve(LIMIT - 1000);
    await listings.listed; // the walk saw only a
    await write(storage, 'b', 500);
    quota.record({ op: 'put', committed: { ...file('b', 500), replaced: undefined } });
    quota.record({ op: 'rename', renamed: { moved: file('a', 1000), replaced: undefined } });
    listings.release();
    await expect(reserving).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await expectFree(quota, LIMIT - 1500);
  });

  it('walks again after a move whose bytes it cannot tell: a link, a directory out of the home', async () => {
    const storage = new MemoryStorage();
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    await expectFree(quota, LIMIT);
    const link: EntryInfo = { name: 'l', type: 'other', size: 0, mtimeMs: 0 };
    const dir: EntryInfo = { name: 'd', type: 'dir', size: 0, mtimeMs: 0 };
    const walks = quota.walkCount;
    // A link moved may name another file from its new place (a relative one) or none.
    quota.record({ op: 'rename', renamed: { moved: link, replaced: undefined } });
    await expectFree(quota, LIMIT);
    expect(quota.walkCount).toBe(walks + 1);
    quota.record({ op: 'moveOut', moved: dir });
    await expectFree(quota, LIMIT);
    expect(quota.walkCount).toBe(walks + 2);
  });

  it('frees the file a move into the home replaces', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'old', 3000);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    await expectFree(quota, LIMIT - 3000);
    quota.record({ op: 'moveIn', moved: file('new', 1000), replaced: file('old', 3000) });
    await expectFree(quota, LIMIT - 1000);
    expect(quota.walkCount).toBe(1);
  });

  it('never counts usage below zero: a file made outside and deleted through muxftp frees no room', async () => {
    const storage = new MemoryStorage();
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    await expectFree(quota, LIMIT);
    await write(storage, 'outside', 4000); // not recorded: the count stays 0
    await storage.remove('outside');
    quota.record({ op: 'delete', removed: file('outside', 4000) });
    await expectFree(quota, LIMIT);
  });

  it('lets an upload grow to the limit exactly, and not a byte past it', async () => {
    const storage = new MemoryStorage();
    await write(storage, 'a', 1000);
    const quota = new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: 60_000 });
    await quota.reserve(0);
    quota.grow(LIMIT - 1000 - 10);
    expect(quota.hasRoom(10)).toBe(true);
    expect(() => quota.grow(11)).toThrow(expect.objectContaining({ code: 'QUOTA_EXCEEDED' }));
    quota.grow(10);
    expect(quota.hasRoom(1)).toBe(false);
    quota.release(LIMIT - 1000);
    await expectFree(quota, LIMIT - 1000);
  });

  it('refuses a limit or a recount interval that is not a positive integer', () => {
    const storage = new MemoryStorage();
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new QuotaTracker(storage, { limitBytes: bad, recountIntervalMs: 1000 })).toThrow(
        /quota must be a positive integer of bytes/,
      );
      expect(() => new QuotaTracker(storage, { limitBytes: LIMIT, recountIntervalMs: bad })).toThrow(
        /recount interval must be a positive integer of ms/,
      );
    }
    const smallest = new QuotaTracker(storage, { limitBytes: 1, recountIntervalMs: 1 });
    expect(smallest.limitBytes).toBe(1);
  });
});
