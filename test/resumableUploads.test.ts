/** The server-wide table of resumable uploads (server/resumableUploads.ts): who gives way to a retry. */
import { describe, expect, it } from 'vitest';
import { type ResumableHolder, ResumableUploads } from '../server/resumableUploads.js';

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
});
