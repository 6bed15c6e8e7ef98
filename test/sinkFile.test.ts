/**
 * The file a download writes (client/sinkFile.ts): its calls run on the loop while file calls are
 * fast (localFileCalls), except large writes and a rename onto an existing file; every byte given
 * is written (writeFully, shared with the other sinks, goes on after a short write), and close
 * waits for a write still in the threadpool. Real files in a temp dir.
 */

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { renameIntoPlace, SinkFile, writeFully } from '../client/sinkFile.js';
import { isSpecialFile } from '../client/sinks.js';
import { localFileCalls } from '../client/sources.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-sinkfile-');

afterEach(async () => {
  vi.restoreAllMocks();
  await tempDirs.removeAll();
});

/** Counts the calls localFileCalls runs on the loop from here on. */
function countCallsOnLoop(): { readonly onLoop: number } {
  const counter = { onLoop: 0 };
  const run = localFileCalls.run.bind(localFileCalls);
  vi.spyOn(localFileCalls, 'run').mockImplementation((inline, offloaded) =>
    run(() => {
      counter.onLoop++;
      return inline();
    }, offloaded),
  );
  return counter;
}

/** A fresh loop turn, so that calls run on the loop at once (not after the turn budget). */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('SinkFile', () => {
  it('creates, writes a small piece, closes and renames onto nothing on the loop; a large write and a rename onto a file go to the threadpool', async () => {
    const dir = await tempDirs.make();
    const calls = countCallsOnLoop();
    await nextTurn();
    const file = await SinkFile.create(join(dir, 'tmp'));
    expect(calls.onLoop).toBe(1);
    expect(await file.writeAll([Buffer.alloc(60 * 1024, 1), Buffer.alloc(4 * 1024, 2)])).toBe(64 * 1024);
    expect(calls.onLoop).toBe(2);
    expect(await file.writeAll([Buffer.alloc(64 * 1024 + 1, 3)])).toBe(64 * 1024 + 1);
    expect(calls.onLoop).toBe(2);
    await nextTurn();
    await file.close();
    expect(calls.onLoop).toBe(3);
    const written = readFileSync(join(dir, 'tmp'));
    expect(written.length).toBe(128 * 1024 + 1);
    expect(written.subarray(60 * 1024 - 1, 60 * 1024 + 1)).toEqual(Buffer.from([1, 2]));
    expect(written.at(-1)).toBe(3);

    await nextTurn();
    await renameIntoPlace(join(dir, 'tmp'), join(dir, 'target'));
    expect(calls.onLoop).toBe(4);
    expect(readdirSync(dir)).toEqual(['target']);

    // Onto an existing file (renamed through the threadpool): replaced all the same.
    writeFileSync(join(dir, 'newer'), 'newer');
    await renameIntoPlace(join(dir, 'newer'), join(dir, 'target'));
    expect(readdirSync(dir)).toEqual(['target']);
    expect(readFileSync(join(dir, 'target'), 'utf8')).toBe('newer');
  });

  it('refuses to create over an existing name (O_EXCL), leaving it as it was', async () => {
    const dir = await tempDirs.make();
    writeFileSync(join(dir, 'there'), 'kept');
    await expect(SinkFile.create(join(dir, 'there'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(join(dir, 'there'), 'utf8')).toBe('kept');
  });

  it('closes only once a large write still in the threadpool is over, and writes every byte given', async () => {
    const dir = await tempDirs.make();
    const file = await SinkFile.create(join(dir, 'tmp'));
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    const writing = file.writeAll([big, big.subarray(0, 3)]);
    let written: number | undefined;
    void writing.then((bytes) => {
      written = bytes;
    });
    await file.close(); // without waiting for the write: the descriptor must outlive it
    expect(written).toBe(big.length + 3);
    expect(readFileSync(join(dir, 'tmp')).equals(Buffer.concat([big, big.subarray(0, 3)]))).toBe(true);
    await expect(file.writeAll([Buffer.from('late')])).rejects.toMatchObject({ code: 'EBADF' });
  });

  it("a chmod asked just before close reaches no other file that took the descriptor's number", async () => {
    const dir = await tempDirs.make();
    const sink = await SinkFile.create(join(dir, 'sink'));
    await sink.writeAll([Buffer.from('data')]);
    const chmod = sink.chmod(0o600).catch((error: unknown) => error);
    await sink.close();
    // The lowest free number: most likely the one the sink had.
    const other = await open(join(dir, 'other'), 'w', 0o644);
    expect(await chmod).toMatchObject({ code: 'EBADF', message: 'EBADF: file already closed' });
    expect((await other.stat()).mode & 0o777).toBe(0o644);
    await other.close();
  });

  it('truncates through the threadpool, for the whole blocks a failed download keeps', async () => {
    const dir = await tempDirs.make();
    const file = await SinkFile.create(join(dir, 'tmp'));
    await file.writeAll([Buffer.alloc(10_000, 1)]);
    await file.truncate(4096);
    await file.close();
    expect(readFileSync(join(dir, 'tmp')).length).toBe(4096);
  });
});

describe('writeFully', () => {
  it('goes on after short writes until every chunk is on disk, in order', async () => {
    const path = join(await tempDirs.make(), 'f');
    const handle = await open(path, 'w');
    const chunks = [randomBytes(7), Buffer.alloc(0), randomBytes(1), randomBytes(20)];
    const calls: Array<{ written: number; leftBytes: number }> = [];
    try {
      // Each call writes at most 5 bytes of the first chunk it is given: a short write every time.
      const written = await writeFully(chunks, async (left, written, leftBytes) => {
        calls.push({ written, leftBytes });
        const first = left.find((chunk) => chunk.length > 0)!;
        const { bytesWritten } = await handle.write(first, 0, Math.min(5, first.length), written);
        return bytesWritten;
      });
      expect(written).toBe(28);
    } finally {
      await handle.close();
    }
    expect(readFileSync(path)).toEqual(Buffer.concat(chunks));
    expect(calls[0]).toEqual({ written: 0, leftBytes: 28 });
    expect(calls.length).toBe(7); // 5 + 2, 1, 5 + 5 + 5 + 5
  });

  it('fails rather than loop when a write makes no progress', async () => {
    await expect(writeFully([Buffer.from('abc')], async () => 0)).rejects.toThrow('write made no progress');
  });
});

describe('isSpecialFile', () => {
  it('a target that cannot be looked at (a name too long here) is no special file: it does not throw', async () => {
    // Thrown, it ended a whole get -r as an internal error instead of failing that one file.
    const dir = await tempDirs.make();
    expect(await isSpecialFile(join(dir, 'x'.repeat(300)))).toBe(false);
  });
});
