/** Server options are checked when the server is made, each with a TypeError naming the option. */
import { describe, expect, it } from 'vitest';
import { resolveServerOptions } from '../server/options.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MemoryStorage } from '../storage/memory.js';

const KiB = 1024;

describe('server options: the upload initial window', () => {
  const storage = new MemoryStorage();

  it('refuses one given larger than the stream window', () => {
    const options = { storage, streamWindowBytes: 128 * KiB, uploadInitialWindowBytes: 256 * KiB };
    expect(() => resolveServerOptions(options)).toThrow(TypeError);
    expect(() => resolveServerOptions(options)).toThrow(
      'server: uploadInitialWindowBytes must not exceed streamWindowBytes',
    );
  });

  it('shrinks the default to a smaller stream window, and keeps it under a larger one', () => {
    expect(DEFAULTS.uploadInitialWindowBytes).toBeGreaterThan(64 * KiB);
    expect(resolveServerOptions({ storage, streamWindowBytes: 64 * KiB }).uploadInitialWindowBytes).toBe(
      64 * KiB,
    );
    expect(resolveServerOptions({ storage }).uploadInitialWindowBytes).toBe(
      DEFAULTS.uploadInitialWindowBytes,
    );
  });
});
