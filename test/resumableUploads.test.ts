/** The server-wide table of resumable uploads (server/resumableUploads.ts): who gives way to a retry. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ResumableHolder, ResumableUploads } from '../server/resumableUploads.js';
import { delay } from './helpers/waits.js';

const key = { size: 10, algorithm: 'xxh128' as const, source: 'v1' };

function holder(stalledForMs: number): ResumableHolder & { gaveWay: boolean } {
  const made = {
    gaveWay: false,
    isStalledFor: (ms: number) => stalledForMs >= ms,
    giveWay: async () => {
      made.gaveWay = true;
    },
  };
  return made;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ResumableUploads', () => {
  it('fails only holders of the same data that stalled long enough, and waits for them', async () => {
    const uploads = new ResumableUploads();
    const stalled = holder(5_000);
    const moving = holder(10);
    const elsewhere = holder(5_000);
    const otherKey = holder(5_000);
    uploads.hold('', 'dir/f', key, stalled);
    uploads.hold('', './dir//f', key, moving); // the same file, named otherwise
    uploads.hold('alice', 'dir/f', key, elsewhere); // another home: another file
    uploads.hold('', 'dir/f', { ...key, source: 'v2' }, otherKey);
    await uploads.takeOverStalled('', 'dir/f', key, 1_000);
    expect([stalled.gaveWay, moving.gaveWay, elsewhere.gaveWay, otherKey.gaveWay]).toEqual([
      true,
      false,
      false,
      false,
    ]);
  });

  it('forgets a holder once it is over', async () => {
    const uploads = new ResumableUploads();
    const stalled = holder(5_000);
    const release = uploads.hold('', 'f', key, stalled);
    release();
    release(); // twice is harmless
    await uploads.takeOverStalled('', 'f', key, 1_000);
    expect(stalled.gaveWay).toBe(false);
  });

  it('keeps the other holders of the same data when one is over, and a later holder when an old one ends again', async () => {
    const uploads = new ResumableUploads();
    const first = holder(5_000);
    const second = holder(5_000);
    const releaseFirst = uploads.hold('', 'f', key, first);
    uploads.hold('', 'f', key, second);
    releaseFirst();
    await uploads.takeOverStalled('', 'f', key, 1_000);
    expect([first.gaveWay, second.gaveWay]).toEqual([false, true]);

    // The key's holders all gone, then a new one: the first's release, called again, leaves it.
    const again = new ResumableUploads();
    const old = holder(5_000);
    const releaseOld = again.hold('', 'f', key, old);
    releaseOld();
    const later = holder(5_000);
    again.hold('', 'f', key, later);
    releaseOld();
    await again.takeOverStalled('', 'f', key, 1_000);
    expect(later.gaveWay).toBe(true);
  });

  it('tells the data of one file apart by the digest its key names', async () => {
    const uploads = new ResumableUploads();
    const byDigest = { size: 10, algorithm: 'xxh128' as const, digest: 'aa'.repeat(16) };
    const one = holder(5_000);
    const other = holder(5_000);
    uploads.hold('', 'f', byDigest, one);
    uploads.hold('', 'f', { ...byDigest, digest: 'bb'.repeat(16) }, other);
    await uploads.takeOverStalled('', 'f', byDigest, 1_000);
    expect([one.gaveWay, other.gaveWay]).toEqual([true, false]);
  });

  it('keys whose parts would run together stay apart (a path ending in digits, another size)', async () => {
    const uploads = new ResumableUploads();
    const held = holder(5_000);
    uploads.hold('', 'f', { ...key, size: 10 }, held);
    await uploads.takeOverStalled('', 'f1', { ...key, size: 0 }, 1_000);
    expect(held.gaveWay).toBe(false);
  });

  it('leaves no timer behind once what it waited for is kept', async () => {
    vi.useFakeTimers();
    const uploads = new ResumableUploads();
    const stalled = holder(5_000);
    uploads.hold('', 'f', key, stalled);
    await uploads.takeOverStalled('', 'f', key, 1_000);
    expect(stalled.gaveWay).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a taker waits for the latest holder giving way, after an earlier one has finished', async () => {
    const uploads = new ResumableUploads();
    const slow = () => {
      let kept = () => {};
      const giving = new Promise<void>((resolve) => {
        kept = resolve;
      });
      return { holder: { isStalledFor: () => true, giveWay: () => giving }, kept: () => kept() };
    };
    const first = slow();
    const second = slow();
    const releaseFirst = uploads.hold('', 'f', key, first.holder);
    const one = uploads.takeOverStalled('', 'f', key, 1_000);
    const releaseSecond = uploads.hold('', 'f', key, second.holder);
    const two = uploads.takeOverStalled('', 'f', key, 1_000);
    releaseFirst();
    releaseSecond();
    first.kept();
    await one;
    let third = false;
    const three = uploads.takeOverStalled('', 'f', key, 1_000).then(() => {
      third = true;
    });
    await delay(20);
    expect(third).toBe(false); // the second holder has not kept what it wrote yet
    second.kept();
    await Promise.all([two, three]);
    expect(third).toBe(true);
  });

  it('a second taker waits for a holder still giving way to the first', async () => {
    const uploads = new ResumableUploads();
    let kept = () => {};
    const slow: ResumableHolder = {
      isStalledFor: () => true,
      giveWay: () =>
        new Promise<void>((resolve) => {
          kept = resolve;
        }),
    };
    const release = uploads.hold('', 'f', key, slow);
    const order: string[] = [];
    const first = uploads.takeOverStalled('', 'f', key, 1_000).then(() => order.push('first'));
    // The holder leaves the table as soon as it is failed, before what it wrote is kept.
    release();
    const second = uploads.takeOverStalled('', 'f', key, 1_000).then(() => order.push('second'));
    await delay(20);
    expect(order).toEqual([]); // before: the second went on at once, seeing nothing kept
    kept();
    await Promise.all([first, second]);
    expect(order.sort()).toEqual(['first', 'second']);
  });

  it('a taker waits for a holder giving way at most its bound (an abort stuck on a hung disk)', async () => {
    const uploads = new ResumableUploads(50);
    uploads.hold('', 'f', key, { isStalledFor: () => true, giveWay: () => new Promise<void>(() => {}) });
    const started = performance.now();
    await uploads.takeOverStalled('', 'f', key, 1_000);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
