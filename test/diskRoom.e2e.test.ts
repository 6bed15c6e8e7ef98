/**
 * shared/diskRoom.ts on the server: uploads that declared their size are admitted only while what they
 * declared fits in the free space beside the uploads in flight; the rest are refused NO_SPACE
 * before a byte moves, and nothing is left under a real name or as a temporary file.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalRoomRefusedError, LocalRooms } from '../cli/localRoom.js';
import { keptPartialPath } from '../client/sinks.js';
import { DEFAULTS } from '../shared/defaults.js';
import { DiskRoom, DiskRooms, writableBytes } from '../shared/diskRoom.js';
import { MuxftpError } from '../shared/errors.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeReply } from '../shared/protocol/encoder.js';
import { partialName } from '../shared/temporaryNames.js';
import { openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import { FsStorage } from '../storage/fsStorage.js';
import { runCli } from './helpers/cliProcess.js';
import { startScriptedServer } from './helpers/scriptedServer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;
let env: TestServer | undefined;
let root: string | undefined;

const tempDirs = new TempDirs('muxftp-room-cli-');
let scripted: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (scripted ? scripted.close(() => resolve()) : resolve()));
  scripted = undefined;
  await tempDirs.removeAll();
  await env?.stop();
  env = undefined;
  if (root !== undefined) await rm(root, { recursive: true, force: true });
  root = undefined;
});

/** Bytes of the files under `dir`, temporary ones included. */
async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/** Disk storage over a real directory whose filesystem says it holds `sizeBytes` in all. */
async function smallDisk(sizeBytes: number): Promise<FsStorage> {
  root = await mkdtemp(join(tmpdir(), 'muxftp-room-'));
  const dir = root;
  const fs = diskFs(new InlineFileCalls());
  return new FsStorage({
    fs: {
      ...fs,
      statfs: async () => {
        const free = Math.max(0, sizeBytes - (await bytesUnder(dir)));
        return { bsize: 4096, blocks: Math.floor(sizeBytes / 4096), bavail: Math.floor(free / 4096) };
      },
    },
    root: dir,
    durable: false,
    hostPaths: path,
    locateOpened: openedFileLocation,
  });
}

describe('room on the disk for uploads of a declared size', () => {
  it('three 8 MiB uploads at once into 20 MiB: two are stored, the third refused at once; it fits once room is made', async () => {
    env = await startServer({ storage: await smallDisk(20 * MiB) });
    const client = await env.connect();
    const files = [randomBytes(8 * MiB), randomBytes(8 * MiB), randomBytes(8 * MiB)];
    const results = await Promise.allSettled(files.map((bytes, i) => client.put(`f${i}.bin`, bytes)));
    const refused = results.flatMap((result, i) =>
      result.status === 'rejected' ? [[i, result.reason]] : [],
    );
    expect(refused).toHaveLength(1);
    const [index, error] = refused[0] as [number, { code: string; message: string }];
    expect(error.code).toBe('NO_SPACE');
    expect(error.message).toMatch(
      new RegExp(
        `^not enough room on the server's disk for f${index}\\.bin: 8\\.00 MiB declared, [\\d.]+ MiB free for it$`,
      ),
    );
    // The two stored whole, nothing of the third: no temporary file either.
    const stored = [0, 1, 2].filter((i) => i !== index);
    expect((await readdir(root!)).sort()).toEqual(stored.map((i) => `f${i}.bin`));
    for (const i of stored) expect((await client.getBuffer(`f${i}.bin`)).equals(files[i]!)).toBe(true);

    await client.delete(`f${stored[0]}.bin`);
    await client.put(`f${index}.bin`, files[index]!);
    expect((await client.getBuffer(`f${index}.bin`)).equals(files[index]!)).toBe(true);
  });

  it("a disk mounted below the root is held to its own room, not the root's", async () => {
    root = await mkdtemp(join(tmpdir(), 'muxftp-room-'));
    const big = join(root, 'big');
    await mkdir(big);
    // big/ stands for another filesystem: it reports a device of its own, and statfs
    // there says it has room, while the root's filesystem has 1 MiB.
    const bigDevice = 987_654_321;
    const onBig = (hostPath: string): boolean => hostPath === big || hostPath.startsWith(`${big}/`);
    const fs = diskFs(new InlineFileCalls());
    const storage = new FsStorage({
      fs: {
        ...fs,
        stat: async (hostPath) => {
          const stats = await fs.stat(hostPath);
          return onBig(hostPath)
            ? Object.defineProperty(Object.create(stats), 'dev', { value: bigDevice })
            : stats;
        },
        statfs: async (hostPath) => ({
          bsize: 4096,
          blocks: 1 << 20,
          bavail: onBig(hostPath) ? 1 << 20 : 256,
        }),
      },
      root,
      durable: false,
      hostPaths: path,
      locateOpened: openedFileLocation,
    });
    env = await startServer({ storage });
    const client = await env.connect();
    const bytes = randomBytes(8 * MiB);
    await client.put('big/a.bin', bytes);
    expect((await client.getBuffer('big/a.bin')).equals(bytes)).toBe(true);
    await expect(client.put('a.bin', bytes)).rejects.toMatchObject({
      code: 'NO_SPACE',
      message: "not enough room on the server's disk for a.bin: 8.00 MiB declared, 1.00 MiB free for it",
    });
    expect((await readdir(root)).sort()).toEqual(['big']);
  });

  it('a refusal short by less than its figures show gives both in bytes, where it read "4.00 MiB declared, 4.00 MiB free"', async () => {
    env = await startServer({ storage: await smallDisk(4 * MiB - 4096) });
    const client = await env.connect();
    const refusal: unknown = await client.put('a.bin', randomBytes(4 * MiB)).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ code: 'NO_SPACE' });
    expect((refusal as Error).message).toBe(
      "not enough room on the server's disk for a.bin: 4194304 B declared, 4190208 B free for it",
    );
    expect(await readdir(root!)).toEqual([]);
  });

  it('a resumable upload refused for want of room leaves no kept file behind', async () => {
    const storage = await smallDisk(4 * MiB);
    await expect(
      storage.createUpload('a.bin', {
        expectedSize: 8 * MiB,
        partial: { size: 8 * MiB, algorithm: 'xxh128', source: 'a-version' },
      }),
    ).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(await readdir(root!)).toEqual([]);
  });

  it('a put of a file run again from the start counts the blocks an interrupted one kept as room: it writes over them', async () => {
    const storage = await smallDisk(20 * MiB);
    const partial = { size: 16 * MiB, algorithm: 'xxh128' as const, source: 'a-version' };
    const first = await storage.createUpload('a.bin', { expectedSize: 16 * MiB, partial });
    await first.write([randomBytes(12 * MiB)]);
    expect(await first.abort({ keepPartial: true })).toBe(12 * MiB);
    // 8 MiB free beside the 12 kept: the same put again from byte 0 needs 4 MiB more, not 16.
    // Before: refused NO_SPACE for want of room its own kept blocks held.
    const again = await storage.createUpload('a.bin', { expectedSize: 16 * MiB, partial });
    const bytes = randomBytes(16 * MiB);
    // Its first 12 MiB go over the kept blocks: they use none of its claim on the 4 MiB after.
    await again.write([bytes.subarray(0, 4 * MiB)]);
    await new Promise((resolve) => setTimeout(resolve, DEFAULTS.diskRoomSampleMs + 100)); // a fresh sample
    // Before: the overwrite spent the claim, and 8 MiB more were admitted beside the 4 to come.
    await expect(storage.createUpload('b.bin', { expectedSize: 8 * MiB })).rejects.toMatchObject({
      code: 'NO_SPACE',
    });
    await again.write([bytes.subarray(4 * MiB)]);
    await again.commit();
    expect((await readdir(root!)).sort()).toEqual(['a.bin']);
    // Another file of that size does not fit beside it.
    await expect(storage.createUpload('b.bin', { expectedSize: 16 * MiB })).rejects.toMatchObject({
      code: 'NO_SPACE',
    });
  });

  it('a resume of kept blocks counts, as room, what other keys kept of the file: they go before its admission', async () => {
    const storage = await smallDisk(20 * MiB);
    const mine = { size: 16 * MiB, algorithm: 'xxh128' as const, source: 'mine' };
    const first = await storage.createUpload('a.bin', { expectedSize: 16 * MiB, partial: mine });
    await first.write([randomBytes(4 * MiB)]);
    expect(await first.abort({ keepPartial: true })).toBe(4 * MiB);
    // 12 MiB kept for an older version, by a server before this one (its start-up sweep sees it).
    const older = partialName('a.bin', { size: 16 * MiB, algorithm: 'xxh128', source: 'older' });
    await writeFile(join(root!, older), randomBytes(12 * MiB));
    await storage.sweepTemporaryFiles({ partialRetentionMs: 60_000 });
    // 4 MiB free: the resume needs 12 more, which the older version's blocks hold. Before, it
    // was refused NO_SPACE, each time, and the older blocks stayed.
    const resumed = await storage.createUpload('a.bin', {
      expectedSize: 16 * MiB,
      partial: mine,
      resumeFrom: 4 * MiB,
    });
    expect(await readdir(root!)).not.toContain(older);
    await resumed.abort({ keepPartial: true });
  });

  it('space() (df) shows the room less what uploads in flight declared and have not written', async () => {
    const storage = await smallDisk(20 * MiB);
    const before = (await storage.space())!.freeBytes;
    const upload = await storage.createUpload('a.bin', { expectedSize: 8 * MiB });
    expect((await storage.space())!.freeBytes).toBe(before - 8 * MiB);
    await upload.abort();
    expect((await storage.space())!.freeBytes).toBe(before);
  });

  it('an upload of unknown size (a stream) is not refused up front: what fits is stored', async () => {
    env = await startServer({ storage: await smallDisk(4 * MiB) });
    const client = await env.connect();
    const bytes = randomBytes(MiB);
    const stream = new PassThrough();
    stream.end(bytes);
    await client.put('s.bin', stream);
    expect((await client.getBuffer('s.bin')).equals(bytes)).toBe(true);
    // A declared size past the room is refused.
    await expect(client.put('big.bin', randomBytes(4 * MiB))).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(await readdir(root!)).toEqual(['s.bin']);
  });
});

describe('get: room on the local disk', () => {
  it('a file larger than the local disk has room for fails at once, before a byte is asked for; one that fits is downloaded', async () => {
    // A stand-in server listing huge.bin at 1 PB (no disk here has that), and small.bin as it is.
    const small = randomBytes(1000);
    const gets: string[] = [];
    const { server, port } = await startScriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      const request = JSON.parse(frame.payload.toString()) as { op: string; path: string };
      const huge = request.path === 'huge.bin';
      const size = huge ? 10 ** 15 : small.length;
      const entry = { name: request.path, type: 'file', size, mtime: 1_700_000_000_000 };
      if (request.op === 'stat') socket.write(encodeReply(frame.streamId, { entry }));
      else if (request.op === 'get') {
        gets.push(request.path);
        if (huge) {
          socket.destroy(); // before: the download started, and failed on the lost connection
          return;
        }
        socket.write(encodeReply(frame.streamId, { size, mtime: entry.mtime, offset: 0, blocks: [] }));
        socket.write(encodeData(frame.streamId, small));
        socket.write(encodeEnd(frame.streamId, size, 'xxh128', contentDigest('xxh128', small)));
      }
    });
    scripted = server;
    const local = await tempDirs.make();
    const run = await runCli(
      ['--server', `127.0.0.1:${port}`, 'get', 'huge.bin', 'small.bin', '--to', '.', '--retries', '0'],
      local,
    );
    expect(run.stderr).toMatch(
      /^muxftp: get huge\.bin: not enough room on the local disk for \S*huge\.bin: 909 TiB needed, [\d.]+ [KMGT]iB free for it \(LOCAL_IO_ERROR\)\nmuxftp: 1 file \(1000 B\), 1 failed in [^\n]+\n$/,
    );
    expect(run.code).toBe(1);
    expect(gets).toEqual(['small.bin']);
    expect(await readdir(local)).toEqual(['small.bin']);

    // What an earlier download of it kept holds room a plain get does not free until it is whole
    // itself: the refusal says so, and that get -c continues it.
    const kept = keptPartialPath(join(local, 'huge.bin'));
    await writeFile(kept, Buffer.alloc(4 * MiB));
    const again = await runCli(['--server', `127.0.0.1:${port}`, 'get', 'huge.bin', '--retries', '0'], local);
    expect(again.stderr).toMatch(
      /^muxftp: get huge\.bin: not enough room on the local disk .* \(LOCAL_IO_ERROR\).*an earlier download of it left 4\.00 MiB beside it: get -c continues from there/s,
    );
    expect(again.code).toBe(1);
    expect((await stat(kept)).size).toBe(4 * MiB);
  });

  it('a refusal short by less than its figures show gives both in bytes, as the server does', async () => {
    const local = await tempDirs.make();
    // The local disk's room moves with whatever else writes to it: a page more than it has, asked
    // again should room be made between the look and the admission.
    for (let attempt = 1; ; attempt++) {
      const asked = writableBytes(await statfs(local))! + 4096;
      const refusal: unknown = await new LocalRooms().admit(join(local, 'a.bin'), asked).then(
        (claim) => claim?.release(),
        (error: unknown) => error,
      );
      if (refusal === undefined && attempt < 5) continue;
      expect(refusal).toBeInstanceOf(LocalRoomRefusedError);
      const [, needed, free] =
        /: (\S+ \S+) needed, (\S+ \S+) free for it$/.exec((refusal as Error).message) ?? [];
      expect(needed).toBeDefined();
      expect(needed).not.toBe(free);
      break;
    }
  });
});

describe('DiskRoom', () => {
  const refusal = (bytes: number, room: number, what: string) =>
    new MuxftpError('NO_SPACE', `${what}: ${bytes} do not fit in ${room}`);
  const BTRFS = 0x9123683e;

  it('counts what admitted uploads have yet to write, and gives it back as they write and end', async () => {
    let free = 100;
    let asked = 0;
    const room = new DiskRoom(async () => {
      asked++;
      return free;
    }, refusal);
    const a = await room.admit(60, 'a', '/d');
    expect(room.claimedBytes).toBe(60);
    await expect(room.admit(50, 'b', '/d')).rejects.toMatchObject({
      code: 'NO_SPACE',
      message: 'b: 50 do not fit in 40',
    });
    a.wrote(30);
    free -= 30; // what a wrote is on the disk now
    expect(room.claimedBytes).toBe(30);
    const b = await room.admit(40, 'b', '/d');
    expect(room.claimedBytes).toBe(70);
    a.release();
    a.release(); // twice: nothing more
    b.wrote(1000); // past what it declared: its claim is spent, no more
    expect(room.claimedBytes).toBe(0);
    expect(asked).toBeGreaterThanOrEqual(3);
  });

  it('what an admitted write wrote is off the cached sample: admissions in turn within its second are refused once the room is used', async () => {
    let free = 20;
    const room = new DiskRoom(async () => free, refusal);
    for (const name of ['a', 'b']) {
      const claim = await room.admit(8, name, '/d');
      claim.wrote(8);
      free -= 8;
      claim.release();
    }
    await expect(room.admit(8, 'c', '/d')).rejects.toMatchObject({ code: 'NO_SPACE' });
  });

  it('asks once for admissions waiting together, and admits when the filesystem cannot say', async () => {
    let asked = 0;
    let answer: (bytes: number) => void = () => {};
    const room = new DiskRoom(() => {
      asked++;
      return new Promise<number>((resolve) => {
        answer = resolve;
      });
    }, refusal);
    const both = Promise.allSettled([room.admit(30, 'a', '/d'), room.admit(30, 'b', '/d')]);
    answer(50);
    const [first, second] = await both;
    expect(asked).toBe(1);
    expect(first.status).toBe('fulfilled');
    expect(second.status).toBe('rejected');

    const unknown = new DiskRoom(() => Promise.reject(new Error('EACCES')), refusal);
    await expect(unknown.admit(10 ** 15, 'x', '/d')).resolves.toBeDefined();
    const uncounted = new DiskRoom(async () => undefined, refusal);
    await expect(uncounted.admit(10 ** 15, 'x', '/d')).resolves.toBeDefined();
  });

  it('DiskRooms: one account per device, each asked at the path of the write that needs a sample', async () => {
    const asked: string[] = [];
    const rooms = new DiskRooms(async (at) => {
      asked.push(at);
      return { bsize: 1, blocks: 1000, bavail: at.startsWith('/small') ? 10 : 100 };
    }, refusal);
    await rooms.admit(1, 8, 'a', '/small/a');
    await expect(rooms.admit(1, 8, 'b', '/small/b')).rejects.toMatchObject({
      message: 'b: 8 do not fit in 2',
    });
    await rooms.admit(2, 80, 'c', '/big/c');
    const stats = { bsize: 1, blocks: 1000, bavail: 0 };
    expect([1, 2, 3].map((device) => rooms.claimedBytes(device, stats))).toEqual([8, 80, 0]);
    // A device's first write also reads which filesystem it is (its room's key).
    expect(asked).toEqual(['/small/a', '/small/a', '/small/b', '/big/c', '/big/c']);
  });

  it('DiskRooms: subvolumes of one btrfs pool (a device each) share its room; other filesystems of one size do not', async () => {
    const EXT4 = 0xef53;
    const stats = (type: number) => ({ type, bsize: 1, blocks: 1000, bavail: 100 });
    const pooled = new DiskRooms(async () => stats(BTRFS), refusal);
    await pooled.admit(1, 60, 'a', '/@home/a');
    // Before: device 2 had a room of its own, and 60 more of the pool's 100 were admitted.
    await expect(pooled.admit(2, 60, 'b', '/@data/b')).rejects.toMatchObject({
      message: 'b: 60 do not fit in 40',
    });
    expect(pooled.claimedBytes(2, stats(BTRFS))).toBe(60);
    const separate = new DiskRooms(async () => stats(EXT4), refusal);
    await separate.admit(1, 60, 'a', '/one/a');
    await separate.admit(2, 60, 'b', '/two/b');
    expect([separate.claimedBytes(1, stats(EXT4)), separate.claimedBytes(2, stats(EXT4))]).toEqual([60, 60]);
  });

  it('DiskRooms: two pools of one size share an account, never a free-space sample', async () => {
    // Pool A has 1000 free, pool B 10: the same type and size, so one account.
    const rooms = new DiskRooms(
      async (at) => ({ type: BTRFS, bsize: 1, blocks: 5000, bavail: at.startsWith('/a') ? 1000 : 10 }),
      refusal,
    );
    await rooms.admit(1, 100, 'x', '/a/x');
    // Before: A's sample, fresh and with room to spare, admitted 100 into B's 10.
    await expect(rooms.admit(2, 100, 'y', '/b/y')).rejects.toMatchObject({
      message: 'y: 100 do not fit in 0',
    });
  });

  const TMPFS = 0x01021994;
  const POOL = { type: BTRFS, bsize: 1, blocks: 1000, bavail: 100 };
  /** Rooms where /seven is on the filesystem `seven()` says (what differs from POOL), the rest on POOL. */
  const sevenOn = (seven: () => Partial<typeof POOL>) =>
    new DiskRooms(async (at) => ({ ...POOL, ...(at.startsWith('/seven') ? seven() : {}) }), refusal);
  const pastASample = () => new Promise((resolve) => setTimeout(resolve, DEFAULTS.diskRoomSampleMs + 100));

  it("DiskRooms: a device number given to a new filesystem is read again, and joins its pool's account", async () => {
    let typeOfSeven = TMPFS;
    const rooms = sevenOn(() => ({ type: typeOfSeven }));
    (await rooms.admit(7, 10, 'a', '/seven/a')).release();
    // The tmpfs is gone; a subvolume of the pool is made and gets number 7.
    typeOfSeven = BTRFS;
    await rooms.admit(8, 60, 'b', '/eight/b');
    await pastASample();
    // Before: device 7 kept the tmpfs's room, and 60 more of the pool's 100 were admitted.
    await expect(rooms.admit(7, 60, 'c', '/seven/c')).rejects.toMatchObject({
      message: 'c: 60 do not fit in 40',
    });
  });

  it.each([
    ['a tmpfs', { type: TMPFS }],
    ["another pool's subvolume", { blocks: 2000 }],
  ])(
    "DiskRooms: a pool subvolume's device number given to %s does not bring the pool's writes along",
    async (_, then) => {
      let seven: Partial<typeof POOL> = {};
      const rooms = sevenOn(() => seven);
      await rooms.admit(7, 90, 'a', '/seven/a'); // in flight on the pool
      seven = then; // the subvolume went; another filesystem got its number
      await pastASample();
      // Before: the new filesystem took the pool's account along, and 20 of its 100 were refused.
      await rooms.admit(7, 20, 'b', '/seven/b');
      expect(rooms.claimedBytes(7, { ...POOL, ...then })).toBe(20);
      // The pool's other subvolumes still count the write in flight there.
      await expect(rooms.admit(8, 20, 'c', '/eight/c')).rejects.toMatchObject({
        message: 'c: 20 do not fit in 10',
      });
    },
  );

  it('DiskRooms: bytes written over blocks a file has need no room, but on a copy-on-write filesystem', async () => {
    const stats = (type: number) => ({ type, bsize: 1, blocks: 1000, bavail: 100 });
    const ext4 = new DiskRooms(async () => stats(0xef53), refusal);
    const claim = await ext4.admit(1, 100, 'a', '/a', 60);
    expect(ext4.claimedBytes(1, stats(0xef53))).toBe(40);
    claim.wrote(60); // the overwrite: the 40 after it still to come
    expect(ext4.claimedBytes(1, stats(0xef53))).toBe(40);
    claim.wrote(30);
    expect(ext4.claimedBytes(1, stats(0xef53))).toBe(10);
    const btrfs = new DiskRooms(async () => stats(BTRFS), refusal);
    await btrfs.admit(1, 100, 'a', '/a', 60);
    expect(btrfs.claimedBytes(1, stats(BTRFS))).toBe(100);
  });

  it('writableBytes: a filesystem without block counts (sysfs) has unknown room, not none; root may use bfree', async () => {
    expect(writableBytes({ bsize: 4096, blocks: 0, bavail: 0, bfree: 0 })).toBeUndefined();
    const stats = { bsize: 4096, blocks: 100, bavail: 5, bfree: 10 };
    expect(writableBytes(stats)).toBe(4096 * (process.geteuid?.() === 0 ? 10 : 5));
    // btrfs's bfree counts raw space its data cannot all have: bavail, for root too.
    expect(writableBytes({ ...stats, type: 0x9123683e })).toBe(4096 * 5);
    if (process.platform === 'linux') expect(writableBytes(await statfs('/sys'))).toBeUndefined();
    expect(writableBytes(await statfs(tmpdir()))).toBeGreaterThan(0);
  });
});
