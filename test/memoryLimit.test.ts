/**
 * The server's buffer marks scale by the memory the process may use (shared/memoryLimit.ts), as
 * its open-file cap scales by the descriptor limit: a container of 200 MB gets 50 MB, a large
 * machine the full 512 MiB. Pure arithmetic, and the limit as this machine gives it.
 */
import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { defaultBufferedBytes, processMemoryLimit } from '../shared/memoryLimit.js';

const MiB = 1024 * 1024;

describe('memory limit', () => {
  it('is the cgroup limit when one is below the machine, else the machine', () => {
    const limit = processMemoryLimit();
    expect(limit).toBeGreaterThan(0);
    expect(limit).toBeLessThanOrEqual(totalmem());
  });

  it('--max-buffered by default: 512 MiB, or a quarter of the limit in whole 2 MiB if less, at least 2 MiB', () => {
    expect(defaultBufferedBytes(24 * 1024 * MiB)).toBe(512 * MiB);
    expect(defaultBufferedBytes(2048 * MiB)).toBe(512 * MiB);
    expect(defaultBufferedBytes(200 * MiB)).toBe(50 * MiB);
    expect(defaultBufferedBytes(200_000_000)).toBe(46 * MiB);
    expect(defaultBufferedBytes(1024 * MiB)).toBe(256 * MiB);
    expect(defaultBufferedBytes(4 * MiB)).toBe(2 * MiB);
  });
});
