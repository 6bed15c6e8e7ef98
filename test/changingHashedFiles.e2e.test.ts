/**
 * A file in the server's root written in place by another program while the server hashes it for
 * a `digest` (stat --hash, --skip-identical): the bytes hashed are no version of the file, so the
 * request fails IO_ERROR as a download does, rather than answer a digest of the mix. Real server
 * on 127.0.0.1 (disk); the test writes the file just after the server's first read of it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, utimesSync, writeSync } from 'node:fs';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { prepareBlockHashes } from '../shared/integrity/blockHash.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { DiskStorage } from '../storage/disk.js';
import { MemoryStorage } from '../storage/memory.js';
import type { ReadHandle, Storage } from '../storage/types.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-hashed-changing-');
const MiB = 1024 * 1024;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** `target`'s own methods, bound to it (its private fields need the real object as `this`). */
function passingThrough<T extends object>(target: T, own: Partial<T>): T {
  return new Proxy(target, {
    get(object, key) {
      if (key in own) return (own as Record<PropertyKey, unknown>)[key];
      const value = Reflect.get(object, key, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

// Its mtime put back too (rsync --inplace -t): same size and mtime, only ctime tells.
it.each([false, true])(
  'a file written in place while hashed (its mtime put back: %s) fails IO_ERROR, not a digest of no version',
  async (timePutBack) => {
    const root = await tempDirs.make();
    const served = join(root, 'data.bin');
    const before = randomBytes(3 * MiB);
    await writeFile(served, before);
    // Written long ago: the rewrite's time is another.
    await utimes(served, new Date(2020, 0, 1), new Date(2020, 0, 1));
    const after = Buffer.from(before);
    after.fill(0x61, 0, 1000);
    after.fill(0x61, after.length - 1000);
    const disk = await DiskStorage.open({ root, durable: false });
    let rewritten = false;
    const storage = passingThrough<Storage>(disk, {
      openRead: async (path: string) => {
        const handle = await disk.openRead(path);
        return passingThrough<ReadHandle>(handle, {
          read: async (buffer: Buffer, offset: number, length: number, position: number) => {
            const bytesRead = await handle.read(buffer, offset, length, position);
            if (!rewritten) {
              // Another program writes the file in place, what was read and what was not: same size, other bytes.
              const fd = openSync(served, 'r+');
              writeSync(fd, after, 0, 1000, 0);
              writeSync(fd, after, after.length - 1000, 1000, after.length - 1000);
              closeSync(fd);
              // Same size and mtime: only ctime tells.
              if (timePutBack) utimesSync(served, new Date(2020, 0, 1), new Date(2020, 0, 1));
              rewritten = true;
            }
            return bytesRead;
          },
        });
      },
    });
    server = await startServer({ storage });
    const client = await server.connect();
    const outcome = await client.digest('data.bin').then(
      (answer) => answer.digest,
      (error: unknown) => (error as { code?: string }).code,
    );
    expect(rewritten).toBe(true);
    await prepareBlockHashes();
    const versions = [before, after].map((bytes) => contentDigest(client.integrity, bytes).toString('hex'));
    // Not the digest of a mix (neither version's): the failure that says the file changed.
    expect(versions).not.toContain(outcome);
    expect(outcome).toBe('IO_ERROR');
  },
);

for (const backend of ['disk', 'memory'] as const) {
  it(`${backend}: muxftp's own utime, chmod and mv of a file while it is hashed change no byte: its digest is answered`, async () => {
    const before = randomBytes(3 * MiB);
    let base: Storage;
    if (backend === 'disk') {
      const root = await tempDirs.make();
      await writeFile(join(root, 'data.bin'), before);
      await utimes(join(root, 'data.bin'), new Date(2020, 0, 1), new Date(2020, 0, 1));
      base = await DiskStorage.open({ root, durable: false });
    } else {
      const memory = new MemoryStorage();
      memory.volume.writeFileSync('/data.bin', before);
      base = memory;
    }
    let other: Awaited<ReturnType<TestServer['connect']>> | undefined;
    let changed = false;
    const storage = passingThrough<Storage>(base, {
      openRead: async (path: string) => {
        const handle = await base.openRead(path);
        return passingThrough<ReadHandle>(handle, {
          read: async (buffer: Buffer, offset: number, length: number, position: number) => {
            const bytesRead = await handle.read(buffer, offset, length, position);
            if (!changed) {
              changed = true;
              await other!.setModifiedTime('data.bin', Date.UTC(2021, 0, 1));
              await other!.setPermissions('data.bin', 0o600);
              await other!.rename('data.bin', 'moved.bin');
            }
            return bytesRead;
          },
        });
      },
    });
    server = await startServer({ storage });
    other = await server.connect();
    const client = await server.connect();
    const answer = await client.digest('data.bin');
    expect(changed).toBe(true);
    await prepareBlockHashes();
    expect(answer.digest).toBe(contentDigest(client.integrity, before).toString('hex'));
  });
}
