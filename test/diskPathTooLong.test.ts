/**
 * A path within the protocol's 4096 bytes can still be too long on the host, whose PATH_MAX
 * counts the root's own path too: that is the client's path to shorten (INVALID_PATH), not the
 * disk failing (IO_ERROR, which the server logs for its operator: any user could fill the log
 * with those). Real files, DiskStorage.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DiskStorage } from '../storage/disk.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-longpath-');
afterEach(() => tempDirs.removeAll());

// 15 names of 255 bytes and one of 250: 4090 bytes with the slashes, under maxPathBytes (4096).
const LONG = [...Array.from({ length: 15 }, () => 'n'.repeat(255)), 'm'.repeat(250)].join('/');

describe.skipIf(process.platform !== 'linux')('a path too long for the host', () => {
  it('is INVALID_PATH, said as too long for the server, for mkdir -p and a stat', async () => {
    expect(Buffer.byteLength(LONG)).toBe(4090);
    const storage = await DiskStorage.open({ root: await tempDirs.make() });
    try {
      const refused = {
        code: 'INVALID_PATH',
        message: expect.stringContaining("path too long for the server's filesystem"),
      };
      await expect(storage.mkdir(LONG, { parents: true })).rejects.toMatchObject(refused);
      await expect(storage.stat(LONG)).rejects.toMatchObject(refused);
    } finally {
      await storage.close();
    }
  });
});
