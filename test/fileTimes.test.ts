/** shared/fileTimes.ts: a time set on a real file reads back to the microsecond it was given. */
import { stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fileTime } from '../shared/fileTimes.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-times-');
afterEach(() => tempDirs.removeAll());

describe('fileTime', () => {
  it('sets whole milliseconds and microseconds exactly (not a microsecond short after float error)', async () => {
    const file = join(await tempDirs.make(), 'f');
    await writeFile(file, '');
    // In µs since the epoch: .020 s was set as .019999 before.
    const micros = [
      1_700_000_000_020_000, 1_733_400_000_001_000, 1_700_000_000_123_456, 1_000, 999_999_999_999_999,
    ];
    for (const us of micros) {
      await utimes(file, new Date(), fileTime(us / 1000));
      const { mtimeNs } = await stat(file, { bigint: true });
      expect(mtimeNs / 1000n, String(us)).toBe(BigInt(us));
    }
  });

  it('a time before 1970 is set, not taken as "now"', async () => {
    const file = join(await tempDirs.make(), 'f');
    await writeFile(file, '');
    await utimes(file, new Date(), fileTime(-86_400_000));
    expect((await stat(file)).mtimeMs).toBe(-86_400_000);
  });
});
