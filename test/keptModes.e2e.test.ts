/**
 * Permission bits kept across a transfer (TransferOptions.keepModes, the CLI's default), as scp
 * and rsync give a new file: a put gives the remote file its local source's read, write and
 * execute bits less the server's umask, never without the server's own read and write; a get gives
 * the local file the server's less the client's umask. Without it, a file gets what a new file
 * gets. The test runs under umask 027, which takes group write and all of others' bits, so that
 * the masking shows; the server runs in this process, the CLI in a child that inherits it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseModeArgument } from '../cli/modeArgument.js';
import { byDepth } from '../cli/remotePath.js';
import { ContinueSink, keptPartialPath, openSink } from '../client/sinks.js';
import { processUmask, umaskShownBy } from '../shared/fileModes.js';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { DiskStorage } from '../storage/disk.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;
const UMASK = 0o027;
const tempDirs = new TempDirs('muxftp-modes-');
let server: TestServer | undefined;
let umaskBefore: number;

beforeAll(() => {
  umaskBefore = process.umask(UMASK);
});
afterAll(() => {
  process.umask(umaskBefore);
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

async function fileWithMode(dir: string, name: string, bytes: Buffer, mode: number): Promise<string> {
  const path = join(dir, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, bytes);
  await chmod(path, mode);
  return path;
}

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe('the umask', () => {
  it.each([
    // the mode a file opened with 0o666 gets, the umask it shows
    ['644', '022'],
    ['640', '027'],
    ['600', '077'],
    ['664', '002'],
    ['666', '000'],
  ])('read off a file created %s: %s', (created, umask) => {
    expect(umaskShownBy(Number.parseInt(created, 8)).toString(8).padStart(3, '0')).toBe(umask);
  });

  it('is read where the kernel shows it, without being set', () => {
    if (process.platform !== 'linux') return;
    expect(processUmask()).toBe(UMASK);
  });
});

describe('put -r makes remote directories a depth at a time', () => {
  it('groups them by depth, the shallowest first, whatever order they come in', () => {
    const dirs = ['t/a/b/c', 't', 't/a/b', 'u', 't/a', 't/z'];
    expect(byDepth(dirs, (dir) => dir)).toEqual([['t', 'u'], ['t/a', 't/z'], ['t/a/b'], ['t/a/b/c']]);
    expect(byDepth([], (dir: string) => dir)).toEqual([]);
  });
});

describe("chmod's mode argument", () => {
  it.each([
    // argument, the bits before, after
    ['755', '000', '755'],
    ['0644', '777', '644'],
    ['u+x', '644', '744'],
    ['+x', '644', '755'],
    ['go-w', '666', '644'],
    ['a=r', '755', '444'],
    ['u=rw,go=r', '700', '644'],
    ['o=', '777', '770'],
    ['ug+rwx,o-rwx', '005', '770'],
  ])('%s turns %s into %s', (argument, before, after) => {
    const mode = parseModeArgument(argument);
    const bits = 'bits' in mode ? mode.bits : mode.change(Number.parseInt(before, 8));
    expect(bits.toString(8).padStart(3, '0')).toBe(after);
  });
});

describe('keeping permission bits, disk storage', () => {
  it('put with keepModes gives the remote file the source bits, less the umask, never without its own read and write', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    const client = await server.connect();
    const cases: [name: string, source: number, kept: number][] = [
      ['run.sh', 0o755, 0o750],
      ['secret', 0o600, 0o600],
      ['wide', 0o777, 0o750],
      ['read-only', 0o444, 0o640],
      ['none', 0o000, 0o600],
    ];
    for (const [name, source, kept] of cases) {
      const local = await fileWithMode(dir, name, Buffer.from(name), source);
      const result = await client.put(name, local, { keepModes: true });
      expect(await modeOf(join(server.root!, name)), name).toBe(kept);
      expect(result.entry.mode, name).toBe(kept);
      expect((await client.stat(name)).mode, name).toBe(kept);
    }
    expect((await client.list('')).map((entry) => [entry.name, entry.mode])).toEqual(
      cases.map(([name, , kept]) => [name, kept]).sort(),
    );
    // Over one block and resumable: declared with its source identity, the way put -c goes.
    const big = await fileWithMode(dir, 'big.bin', Buffer.alloc(5 * MiB + 3, 7), 0o750);
    await client.put('big.bin', big, { keepModes: true, resumable: true });
    expect(await modeOf(join(server.root!, 'big.bin'))).toBe(0o750);

    // Without it: what a new file gets under the server's umask, whatever the source's.
    await client.put('plain.sh', join(dir, 'run.sh'));
    expect(await modeOf(join(server.root!, 'plain.sh'))).toBe(0o640);
    // Replacing a file gives the new one its own bits, not the old one's.
    await client.put('run.sh', join(dir, 'secret'), { keepModes: true });
    expect(await modeOf(join(server.root!, 'run.sh'))).toBe(0o600);
  });

  it("get with keepModes gives the local file the server's bits, less the umask; without it, a new file's", async () => {
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    const client = await server.connect();
    const big = Buffer.alloc(5 * MiB + 1, 9);
    for (const [name, bytes, mode] of [
      ['run.sh', Buffer.from('#!/bin/sh\n'), 0o755],
      ['secret', Buffer.from('s'), 0o600],
      ['read-only', Buffer.from('r'), 0o444],
      ['big.bin', big, 0o700],
    ] as const) {
      await writeFile(join(server.root!, name), bytes);
      await chmod(join(server.root!, name), mode);
    }

    const result = await client.get('run.sh', join(dir, 'run.sh'), { keepModes: true });
    expect(result.mode).toBe(0o755);
    expect(await modeOf(join(dir, 'run.sh'))).toBe(0o750);
    await client.get('secret', join(dir, 'secret'), { keepModes: true });
    expect(await modeOf(join(dir, 'secret'))).toBe(0o600);
    await client.get('read-only', join(dir, 'read-only'), { keepModes: true });
    expect(await modeOf(join(dir, 'read-only'))).toBe(0o440);
    // A download continued from a partial local file (get -c) keeps them too.
    await writeFile(join(dir, 'partial.bin'), big.subarray(0, 4 * MiB + 5));
    await client.get('big.bin', join(dir, 'partial.bin'), { keepModes: true, continue: true });
    expect(await modeOf(join(dir, 'partial.bin'))).toBe(0o700);

    const plain = await client.get('run.sh', join(dir, 'plain.sh'));
    expect(plain.mode).toBe(0o755);
    expect(await modeOf(join(dir, 'plain.sh'))).toBe(0o640);
  });
});

describe("a download's hidden file is its owner's alone until it is finished", () => {
  // Where the kernel shows the umask; elsewhere the hidden file is created as any new file.
  const linux = process.platform === 'linux';

  it('while written, kept for get -c, and as a get -c copy; the finished file gets its bits', async () => {
    if (!linux) return;
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    const client = await server.connect();
    const bytes = Buffer.alloc(9 * MiB, 5);
    await fileWithMode(server.root!, 'secret.bin', bytes, 0o600);
    await fileWithMode(server.root!, 'open.bin', bytes, 0o644);
    // The hidden files' modes once bytes are written (looked at in step: the get waits for it).
    const hiddenModes = (): number[] =>
      readdirSync(dir)
        .filter((name) => name.startsWith('.muxftp-'))
        .map((name) => statSync(join(dir, name)).mode & 0o777);
    const seen: number[] = [];
    const watch = {
      onProgress: (done: number) => {
        if (done > 0 && seen.length === 0) seen.push(...hiddenModes());
      },
    };

    // A private file: under umask 027 its bytes were readable by the group while written (0640).
    await client.get('secret.bin', join(dir, 'secret.bin'), { keepModes: true, ...watch });
    expect(seen).toEqual([0o600]);
    expect(await modeOf(join(dir, 'secret.bin'))).toBe(0o600);

    // Any file carrying bits, kept or not: the final bits are given once verified.
    seen.length = 0;
    await client.get('open.bin', join(dir, 'open.bin'), { keepModes: true, ...watch });
    expect(seen).toEqual([0o600]);
    expect(await modeOf(join(dir, 'open.bin'))).toBe(0o644 & ~UMASK);

    // Without bits (--no-perms), nothing more private than a new file to hide: made as one.
    seen.length = 0;
    await client.get('secret.bin', join(dir, 'plain.bin'), watch);
    expect(seen).toEqual([0o666 & ~UMASK]);
    expect(await modeOf(join(dir, 'plain.bin'))).toBe(0o666 & ~UMASK);

    // What a failed download keeps for get -c stays so.
    const sink = await openSink(join(dir, 'again.bin'), undefined, false, true, true);
    await sink.write([bytes.subarray(0, 5 * MiB)]);
    seen.length = 0;
    seen.push(...hiddenModes());
    const kept = await sink.keepPartial!();
    expect(kept).toEqual({ path: keptPartialPath(join(dir, 'again.bin')), bytes: 4 * MiB });
    expect(seen).toEqual([0o600]);
    expect(await modeOf(kept!.path)).toBe(0o600);
    await rm(kept!.path);

    // get -c of a partial local file (one the user made, 0644) copies it into a hidden file: so too.
    await writeFile(join(dir, 'partial.bin'), bytes.subarray(0, 4 * MiB + 7));
    await chmod(join(dir, 'partial.bin'), 0o644);
    seen.length = 0;
    await client.get('secret.bin', join(dir, 'partial.bin'), { keepModes: true, continue: true, ...watch });
    expect(seen).toEqual([0o600]);
    expect(await modeOf(join(dir, 'partial.bin'))).toBe(0o600);
  });
});

describe("an upload's temporary file is the server's alone until it is committed", () => {
  // Where the kernel shows the umask; elsewhere the temporary file is created as any new file.
  const linux = process.platform === 'linux';

  it('while written, kept for put -c, and taken over; the committed file gets its bits', async () => {
    if (!linux) return;
    server = await startServer({ backend: 'disk' });
    const root = server.root!;
    const dir = await tempDirs.make();
    const client = await server.connect();
    const bytes = Buffer.alloc(9 * MiB, 5);
    // The temporary files' modes once bytes are sent (looked at in step: the put waits for it).
    const hiddenModes = (): number[] =>
      readdirSync(root)
        .filter((name) => name.startsWith('.muxftp-') && name !== SERVED_ROOT_LOCK_NAME)
        .map((name) => statSync(join(root, name)).mode & 0o777);
    const seen: number[] = [];
    const watch = {
      onProgress: (done: number) => {
        if (done > 0 && seen.length === 0) seen.push(...hiddenModes());
      },
    };

    // A private file: under umask 027 its bytes were readable by the server's group while sent.
    await client.put('secret.bin', await fileWithMode(dir, 'secret.bin', bytes, 0o600), {
      keepModes: true,
      ...watch,
    });
    expect(seen).toEqual([0o600]);
    expect(await modeOf(join(root, 'secret.bin'))).toBe(0o600);

    // Without bits asked for (--no-perms), a new file's, made so: nothing more private to hide.
    seen.length = 0;
    await client.put('plain.bin', await fileWithMode(dir, 'plain.bin', bytes, 0o600), watch);
    expect(seen).toEqual([0o666 & ~UMASK]);
    expect(await modeOf(join(root, 'plain.bin'))).toBe(0o666 & ~UMASK);

    // What a failed upload keeps for put -c (--partial-retention, a day) stays so.
    const storage = await DiskStorage.open({ root: dir, durable: false });
    try {
      const key = { size: 8 * MiB, algorithm: 'xxh128' as const, source: 'v1' };
      const first = await storage.createUpload('f.bin', { partial: key, bitsCarried: true });
      await first.write([bytes.subarray(0, 4 * MiB)]);
      expect(await first.abort({ keepPartial: true })).toBe(4 * MiB);
      const [kept] = (await readdir(dir)).filter((name) => name.startsWith('.muxftp-'));
      expect(await modeOf(join(dir, kept!))).toBe(0o600);
      // One kept before the server made them its own (0640 here), or by a put carrying no bits:
      // made so as one carrying bits takes it over.
      await chmod(join(dir, kept!), 0o640);
      const resumed = await storage.createUpload('f.bin', {
        partial: key,
        resumeFrom: 4 * MiB,
        bitsCarried: true,
      });
      expect(await modeOf(join(dir, kept!))).toBe(0o600);
      await resumed.write([bytes.subarray(0, 4 * MiB)]);
      expect((await resumed.commit(undefined, { mode: 0o644 })).mode).toBe(0o640);
      expect(await modeOf(join(dir, 'f.bin'))).toBe(0o640);
    } finally {
      await storage.close();
    }
  });
});

describe("without bits carried (--no-perms), a directory's default ACL decides a new file's", () => {
  /**
   * Gives `dir` the default ACL `setfacl -d -m u::rw,g::-,o::-` sets (its files are their owner's
   * alone, whatever the umask), written as its xattr (no setfacl needed): the reason it cannot,
   * else undefined.
   */
  async function privateDefaultAcl(dir: string): Promise<string | undefined> {
    if (process.platform !== 'linux') return 'POSIX default ACLs are set here as a Linux xattr';
    const script = [
      'import os, struct, sys',
      "entry = lambda tag, perm: struct.pack('<HHI', tag, perm, 0xFFFFFFFF)",
      // Version 2; the owner (tag 1) rw, the owning group (4) and others (0x20) nothing.
      "acl = struct.pack('<I', 2) + entry(1, 6) + entry(4, 0) + entry(0x20, 0)",
      "os.setxattr(sys.argv[1], 'system.posix_acl_default', acl)",
    ].join('\n');
    const run = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8', timeout: 10_000 });
    if (run.error !== undefined) return `no python3 to set the ACL with (${run.error.message})`;
    if (run.status !== 0) return `the ACL could not be set: ${run.stderr.trim().split('\n').pop()}`;
    await writeFile(join(dir, 'probe'), '', { mode: 0o666 });
    const probe = await modeOf(join(dir, 'probe'));
    await rm(join(dir, 'probe'));
    return probe === 0o600
      ? undefined
      : `this filesystem ignores default ACLs (a new file is ${probe.toString(8)})`;
  }

  it("a put over a connection: the file is 0600 as the kernel made it, not the umask's 0640", async (context) => {
    server = await startServer({ backend: 'disk' });
    const shared = join(server.root!, 'shared');
    await mkdir(shared);
    const unset = await privateDefaultAcl(shared);
    if (unset !== undefined) context.skip(unset);
    const dir = await tempDirs.make();
    const client = await server.connect();
    const bytes = Buffer.alloc(5 * MiB + 3, 9);
    const local = await fileWithMode(dir, 'f.bin', bytes, 0o644);
    const result = await client.put('shared/f.bin', local);
    expect(await modeOf(join(shared, 'f.bin'))).toBe(0o600);
    expect(result.entry.mode).toBe(0o600);
    // Carrying bits, they are asked for: the source's, less the umask, as before.
    await client.put('shared/kept.bin', local, { keepModes: true });
    expect(await modeOf(join(shared, 'kept.bin'))).toBe(0o640);

    // What a failed put kept there, continued by a put -c carrying no bits either: left as made.
    const storage = await DiskStorage.open({ root: server.root!, durable: false });
    try {
      const key = { size: 8 * MiB, algorithm: 'xxh128' as const, source: 'v1' };
      const first = await storage.createUpload('shared/g.bin', { partial: key });
      await first.write([bytes.subarray(0, 4 * MiB)]);
      expect(await first.abort({ keepPartial: true })).toBe(4 * MiB);
      const resumed = await storage.createUpload('shared/g.bin', { partial: key, resumeFrom: 4 * MiB });
      await resumed.write([bytes.subarray(0, 4 * MiB)]);
      expect((await resumed.commit(undefined)).mode).toBe(0o600);
      expect(await modeOf(join(shared, 'g.bin'))).toBe(0o600);
    } finally {
      await storage.close();
    }
  });

  it('a get into a local directory: the file is 0600 as the kernel made it, get -c too', async (context) => {
    const dir = await tempDirs.make();
    const unset = await privateDefaultAcl(dir);
    if (unset !== undefined) context.skip(unset);
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    const bytes = Buffer.alloc(5 * MiB + 3, 9);
    await fileWithMode(server.root!, 'f.bin', bytes, 0o644);
    await client.get('f.bin', join(dir, 'f.bin'));
    expect(await modeOf(join(dir, 'f.bin'))).toBe(0o600);
    // Carrying bits, the remote file's less the umask, as before.
    await client.get('f.bin', join(dir, 'kept.bin'), { keepModes: true });
    expect(await modeOf(join(dir, 'kept.bin'))).toBe(0o640);

    // What a failed get kept there, continued by a get -c carrying no bits either: left as made.
    const target = join(dir, 'g.bin');
    const sink = await openSink(target, undefined, false, true);
    await sink.write([bytes.subarray(0, 4 * MiB)]);
    expect(await sink.keepPartial!()).toEqual({ path: keptPartialPath(target), bytes: 4 * MiB });
    await client.get('f.bin', target, { continue: true });
    expect((await readFile(target)).equals(bytes)).toBe(true);
    expect(await modeOf(target)).toBe(0o600);
  });
});

describe('keeping permission bits, files made before (a partial transfer continued)', () => {
  // Made under another umask (000, say): its mode is no guide to this process's umask.
  const made = 0o666;
  // Where the kernel does not show the umask, such a file gets no group or other write.
  const umask = process.platform === 'linux' ? UMASK : 0o022;

  it('an upload that takes over kept data', async () => {
    const root = await tempDirs.make();
    const storage = await DiskStorage.open({ root, durable: false });
    try {
      const key = { size: 2 * MiB * 4, algorithm: 'xxh128' as const, source: 'v1' };
      const block = (fill: number) => Buffer.alloc(4 * MiB, fill);
      const first = await storage.createUpload('f.bin', { partial: key });
      await first.write([block(1)]);
      expect(await first.abort({ keepPartial: true })).toBe(4 * MiB);
      const [kept] = (await readdir(root)).filter((name) => name.startsWith('.muxftp-'));
      await chmod(join(root, kept!), made);
      const resumed = await storage.createUpload('f.bin', {
        partial: key,
        resumeFrom: 4 * MiB,
        bitsCarried: true,
      });
      expect(resumed.takenOverBytes).toBe(4 * MiB);
      await resumed.write([block(2)]);
      const entry = await resumed.commit(undefined, { mode: 0o777 });
      expect(entry.mode).toBe(0o777 & ~umask);
      expect(await modeOf(join(root, 'f.bin'))).toBe(0o777 & ~umask);
    } finally {
      await storage.close();
    }
  });

  it('a download that continues what a failed one kept (get -c)', async () => {
    const dir = await tempDirs.make();
    const target = join(dir, 'f.bin');
    await writeFile(keptPartialPath(target), Buffer.alloc(10, 1));
    await chmod(keptPartialPath(target), made);
    const sink = await ContinueSink.claimKept(target, { bitsCarried: true });
    expect(sink).toBeDefined();
    // Kept before hidden files were made their owner's alone: so as it is taken over.
    if (process.platform === 'linux') expect(await modeOf(sink!.temporary)).toBe(0o600);
    sink!.startAt({ algorithm: 'xxh128', digests: [] });
    await sink!.write([Buffer.from('all of it')]);
    await sink!.finish({ mode: 0o777 });
    expect(await modeOf(target)).toBe(0o777 & ~umask);
  });

  it('carrying no bits (--no-perms), put -c and get -c: what the kept file has, less this umask', async () => {
    const dir = await tempDirs.make();
    const storage = await DiskStorage.open({ root: dir, durable: false });
    try {
      const key = { size: 8 * MiB, algorithm: 'xxh128' as const, source: 'v1' };
      const first = await storage.createUpload('f.bin', { partial: key });
      await first.write([Buffer.alloc(4 * MiB, 1)]);
      expect(await first.abort({ keepPartial: true })).toBe(4 * MiB);
      const [kept] = (await readdir(dir)).filter((name) => name.startsWith('.muxftp-'));
      // Kept by a server under a looser umask (000 here) than it has now (serve --umask tightened).
      await chmod(join(dir, kept!), made);
      const resumed = await storage.createUpload('f.bin', { partial: key, resumeFrom: 4 * MiB });
      await resumed.write([Buffer.alloc(4 * MiB, 2)]);
      expect((await resumed.commit(undefined)).mode).toBe(made & ~umask);
      expect(await modeOf(join(dir, 'f.bin'))).toBe(made & ~umask);
    } finally {
      await storage.close();
    }

    const target = join(dir, 'g.bin');
    await writeFile(keptPartialPath(target), Buffer.alloc(10, 1));
    await chmod(keptPartialPath(target), made);
    const sink = await ContinueSink.claimKept(target);
    sink!.startAt({ algorithm: 'xxh128', digests: [] });
    await sink!.write([Buffer.from('all of it')]);
    await sink!.finish({});
    expect(await modeOf(target)).toBe(made & ~umask);
  });
});

describe('keeping permission bits, memory storage', () => {
  it('holds the bits it is given less the umask, with its own read and write', async () => {
    server = await startServer({ backend: 'memory' });
    const dir = await tempDirs.make();
    const client = await server.connect();
    await client.put('run.sh', await fileWithMode(dir, 'run.sh', Buffer.from('x'), 0o755), {
      keepModes: true,
    });
    await client.put('ro', await fileWithMode(dir, 'ro', Buffer.from('r'), 0o444), { keepModes: true });
    // Bits and time both: the time stays (memfs's chmod moves it, so the bits go first).
    const old = await fileWithMode(dir, 'old', Buffer.from('o'), 0o700);
    await utimes(old, new Date(), new Date(Date.UTC(2001, 0, 1)));
    await client.put('old', old, { keepModes: true, keepTimes: true });
    expect(await client.stat('old')).toMatchObject({ mtime: Date.UTC(2001, 0, 1), mode: 0o700 });
    // memfs has no umask: the server applies its process's, where the kernel shows it.
    const stored = process.platform === 'linux' ? 0o750 : 0o755;
    expect((await client.stat('run.sh')).mode).toBe(stored);
    expect((await client.stat('ro')).mode).toBe(process.platform === 'linux' ? 0o640 : 0o644);
    // Without bits asked for, a new file's: the umask, applied as memory storage creates it.
    await client.put('plain', await fileWithMode(dir, 'plain', Buffer.from('p'), 0o600));
    expect((await client.stat('plain')).mode).toBe(process.platform === 'linux' ? 0o640 : 0o666);
    const result = await client.get('run.sh', join(dir, 'back.sh'), { keepModes: true });
    expect(result.mode).toBe(stored);
    expect(await modeOf(join(dir, 'back.sh'))).toBe(0o750);
  });
});

describe('the CLI keeps permission bits', () => {
  it('put -r and get -r keep each file bits; --no-perms gives new files; stat shows them', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    await fileWithMode(dir, 'tree/run.sh', Buffer.from('#!/bin/sh\n'), 0o755);
    await fileWithMode(dir, 'tree/sub/secret', Buffer.from('s'), 0o600);
    await fileWithMode(dir, 'tree/sub/deep/open/f', Buffer.from('f'), 0o644);
    // Directories too, each made by its own mkdir (a parent made by a child's has no bits of its own).
    await chmod(join(dir, 'tree/sub'), 0o700);
    await chmod(join(dir, 'tree/sub/deep/open'), 0o777);
    await chmod(join(dir, 'tree'), 0o755);
    const cli = async (...args: string[]) => {
      const run = await runCli([...args, '--server', `127.0.0.1:${server!.port}`], dir, {
        timeoutMs: 30_000,
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      return run.stdout;
    };

    await cli('put', '-r', '-q', 'tree', 'kept');
    expect(await modeOf(join(server.root!, 'kept/run.sh'))).toBe(0o750);
    expect(await modeOf(join(server.root!, 'kept/sub/secret'))).toBe(0o600);
    expect(await cli('stat', 'kept/run.sh')).toContain('mode   0750 (rwxr-x---)');
    const long = await cli('ls', '-l', 'kept');
    expect(long).toMatch(/^file {2}rwxr-x--- +\d+ {2}\S+ \S+ {2}run\.sh$/m);
    expect(long).toMatch(/^dir {3}rwx------ +- {2}\S+ \S+ {2}sub\/$/m);
    expect(await cli('ls', '-r', '-l', 'kept')).toMatch(
      /^file {2}rw------- +\d+ {2}\S+ \S+ {2}sub\/secret$/m,
    );
    expect(await modeOf(join(server.root!, 'kept'))).toBe(0o750);
    expect(await modeOf(join(server.root!, 'kept/sub'))).toBe(0o700);
    expect(await modeOf(join(server.root!, 'kept/sub/deep/open'))).toBe(0o750);
    await chmod(join(server.root!, 'kept/run.sh'), 0o755);
    await cli('get', '-r', '-q', 'kept', 'back');
    expect(await modeOf(join(dir, 'back/run.sh'))).toBe(0o750);
    expect(await modeOf(join(dir, 'back/sub/secret'))).toBe(0o600);
    // A copy skipped as unchanged or identical takes the remote bits too, as a download would.
    await cli('get', '-r', '-q', 'kept', '.');
    await chmod(join(dir, 'kept/run.sh'), 0o600);
    await chmod(join(dir, 'kept/sub/secret'), 0o640);
    // Skipped, not downloaded again: a download would give it a new inode.
    const inode = (await stat(join(dir, 'kept/run.sh'))).ino;
    await cli('get', '-r', '-q', '--skip-unchanged', 'kept', '.');
    expect(await modeOf(join(dir, 'kept/run.sh'))).toBe(0o750);
    expect(await modeOf(join(dir, 'kept/sub/secret'))).toBe(0o600);
    await chmod(join(dir, 'kept/run.sh'), 0o600);
    await cli('get', '-r', '-q', '--skip-identical', 'kept', '.');
    expect(await modeOf(join(dir, 'kept/run.sh'))).toBe(0o750);
    expect((await stat(join(dir, 'kept/run.sh'))).ino).toBe(inode);
    await chmod(join(server.root!, 'kept/sub/deep'), 0o555);
    await cli('get', '-r', '-q', 'kept', 'back2');
    expect(await modeOf(join(dir, 'back2'))).toBe(0o750);
    expect(await modeOf(join(dir, 'back2/sub'))).toBe(0o700);
    // Always its owner's: the download writes into it.
    expect(await modeOf(join(dir, 'back2/sub/deep'))).toBe(0o750);
    expect(await modeOf(join(dir, 'back2/sub/deep/open'))).toBe(0o750);

    // A remote copy skipped as unchanged or identical takes the local bits, as an upload would
    // (the server said its umask in WELCOME).
    await cli('put', '-r', '-q', 'tree', '/');
    const remoteInode = (await stat(join(server.root!, 'tree/run.sh'))).ino;
    await chmod(join(server.root!, 'tree/run.sh'), 0o600);
    await chmod(join(server.root!, 'tree/sub/secret'), 0o640);
    await cli('put', '-r', '-q', '--skip-unchanged', 'tree', '/');
    expect(await modeOf(join(server.root!, 'tree/run.sh'))).toBe(0o750);
    expect(await modeOf(join(server.root!, 'tree/sub/secret'))).toBe(0o600);
    await chmod(join(server.root!, 'tree/run.sh'), 0o604);
    await cli('put', '-r', '-q', '--skip-identical', 'tree', '/');
    expect(await modeOf(join(server.root!, 'tree/run.sh'))).toBe(0o750);
    expect((await stat(join(server.root!, 'tree/run.sh'))).ino).toBe(remoteInode);

    await cli('put', '-r', '-q', '--no-perms', 'tree', 'plain');
    expect(await modeOf(join(server.root!, 'plain/run.sh'))).toBe(0o640);
    expect(await modeOf(join(server.root!, 'plain/sub/secret'))).toBe(0o640);
    expect(await modeOf(join(server.root!, 'plain/sub'))).toBe(0o750);
    await cli('get', '-r', '-q', '--no-perms', 'kept', 'again');
    expect(await modeOf(join(dir, 'again/run.sh'))).toBe(0o640);
  });
});

describe('chmod', () => {
  it('over a connection: sets bits less the umask, keeps the server its own, refuses bad bits and links', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('d');
    await client.put('d/run.sh', Buffer.from('#!/bin/sh\n'));
    expect(await client.setPermissions('d/run.sh', 0o754)).toMatchObject({ name: 'run.sh', mode: 0o750 });
    expect(await modeOf(join(server.root!, 'd/run.sh'))).toBe(0o750);
    expect(await client.setPermissions('d/run.sh', 0o000)).toMatchObject({ mode: 0o600 });
    expect(await client.setPermissions('d', 0o777)).toMatchObject({ type: 'dir', mode: 0o750 });
    await expect(client.setPermissions('d/run.sh', 0o4755)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(client.setPermissions('nothing', 0o644)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await symlink('d/run.sh', join(server.root!, 'link'));
    await expect(client.setPermissions('link', 0o777)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(await modeOf(join(server.root!, 'd/run.sh'))).toBe(0o600);
    // The connection goes on, and the file is still served.
    expect((await client.getBuffer('d/run.sh')).toString()).toBe('#!/bin/sh\n');
  });

  it('through the CLI: octal, symbolic, a pattern; a bad mode or option is a usage error', async () => {
    server = await startServer({ backend: 'disk' });
    const dir = await tempDirs.make();
    const client = await server.connect();
    await client.mkdir('bin');
    for (const name of ['bin/a.sh', 'bin/b.sh', 'bin/notes.txt']) {
      await client.put(name, Buffer.from(name));
      await chmod(join(server.root!, name), 0o600);
    }
    const cli = (...args: string[]) =>
      runCli([...args, '--server', `127.0.0.1:${server!.port}`], dir, { timeoutMs: 30_000 });
    // Each result less the server's umask (027 here).
    let run = await cli('chmod', '755', 'bin/notes.txt');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(await modeOf(join(server.root!, 'bin/notes.txt'))).toBe(0o750);
    run = await cli('chmod', 'u+x,g+r', 'bin/*.sh');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(await modeOf(join(server.root!, 'bin/a.sh'))).toBe(0o740);
    expect(await modeOf(join(server.root!, 'bin/b.sh'))).toBe(0o740);
    run = await cli('chmod', 'g=', 'bin/a.sh', '--json');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([{ path: 'bin/a.sh', ok: true }]);
    expect(await modeOf(join(server.root!, 'bin/a.sh'))).toBe(0o700);
    run = await cli('chmod', '+x', 'bin/b.sh', 'bin/missing');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('bin/missing');
    expect(await modeOf(join(server.root!, 'bin/b.sh'))).toBe(0o750);
    // A mode that starts with '-' is a mode, as chmod(1) takes it, not an option.
    run = await cli('chmod', '-x', 'bin/notes.txt');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(await modeOf(join(server.root!, 'bin/notes.txt'))).toBe(0o640);

    for (const bad of ['u+s', '8', '4755', 'rwx', '-y']) {
      run = await cli('chmod', bad, 'bin/a.sh');
      expect(run.code, bad).toBe(2);
      expect(run.stderr, bad).toContain('expected octal bits');
    }
    // Any other word that starts with '-' is an option it does not know, not a path.
    run = await cli('chmod', '750', 'bin/a.sh', '--jsn');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown option '--jsn'");
    expect(await modeOf(join(server.root!, 'bin/a.sh'))).toBe(0o700);

    // -R: the directory and everything below it, each from its own bits.
    await client.mkdir('bin/sub');
    await client.put('bin/sub/c.sh', Buffer.from('c'));
    await chmod(join(server.root!, 'bin/sub/c.sh'), 0o750);
    await chmod(join(server.root!, 'bin/sub'), 0o750);
    run = await cli('chmod', '-R', 'g-x', 'bin');
    expect([run.code, run.stderr]).toEqual([0, '']);
    const tree = ['bin', 'bin/a.sh', 'bin/b.sh', 'bin/notes.txt', 'bin/sub', 'bin/sub/c.sh'];
    const root = server.root!;
    const modes = async () => Promise.all(tree.map((name) => modeOf(join(root, name))));
    expect(await modes()).toEqual([0o740, 0o700, 0o740, 0o640, 0o740, 0o740]);
    // Links below are left be, as chmod -R leaves them, and not walked into: what a link to a
    // directory elsewhere leads to keeps its bits.
    await symlink('a.sh', join(server.root!, 'bin', 'link'));
    await mkdir(join(server.root!, 'elsewhere'), { mode: 0o750 });
    await chmod(join(server.root!, 'elsewhere'), 0o750);
    await symlink('../elsewhere', join(server.root!, 'bin', 'dirlink'));
    run = await cli('chmod', '-R', 'g-r', 'bin');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(await modes()).toEqual([0o700, 0o700, 0o700, 0o600, 0o700, 0o700]);
    expect(await modeOf(join(server.root!, 'elsewhere'))).toBe(0o750);
  });
});
