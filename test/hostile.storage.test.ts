import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, constants as fsConstants } from 'node:fs';
import * as nodeFs from 'node:fs/promises';
import { mkdir, mkdtemp, readdir, realpath, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path, { join, sep } from 'node:path';
import { PassThrough } from 'node:stream';
import { Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { partialName } from '../shared/temporaryNames.js';
import { DiskStorage, openedFileLocation } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { memfsApi } from '../storage/memory.js';
import { RawPeer } from './helpers/rawPeer.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

const EMPTY_DIGEST = contentDigest('xxh128', Buffer.alloc(0));
const isTemporary = (name: string) => name.startsWith('.muxftp-');

/** The first frame on `streamId` of one of `types`. */
function firstOf(peer: RawPeer, streamId: number, ...types: number[]): Promise<Frame> {
  return peer.waitFor((f) => f.streamId === streamId && types.includes(f.type), 10_000);
}

describe('a directory move racing an upload into it (disk)', () => {
  it('never strands the upload temporary file, whichever wins', async () => {
    env = await startServer({ backend: 'disk' });
    const root = env.root!;
    const client = await env.connect();
    const peer = await RawPeer.open(env.port);
    let id = 1;
    for (let trial = 0; trial < 100; trial++) {
      await client.mkdir(`d${trial}`);
      const put = id++;
      const move = id++;
      // One write: the server handles the OPEN of the put, then the rename, in one turn.
      peer.write(
        Buffer.concat([
          encodeOpen(put, { op: 'put', path: `d${trial}/f` }),
          encodeOpen(move, { op: 'rename', from: `d${trial}`, to: `e${trial}` }),
        ]),
      );
      const accepted = await firstOf(peer, put, FrameType.WINDOW, FrameType.ERROR);
      await firstOf(peer, move, FrameType.REPLY, FrameType.ERROR);
      if (accepted.type === FrameType.WINDOW) {
        // Finish the upload (empty); commit or fail, the server is done with its file afterwards.
        peer.write(encodeEnd(put, 0, 'xxh128', EMPTY_DIGEST));
        await peer.waitFor(
          (f) => f.streamId === put && (f.type === FrameType.REPLY || f.type === FrameType.ERROR),
          10_000,
        );
      }
      for (const dir of [`d${trial}`, `e${trial}`]) {
        const names = await readdir(join(root, dir)).catch(() => [] as string[]);
        expect(names.filter(isTemporary), `${dir} after trial ${trial}`).toEqual([]);
      }
    }
    peer.destroy();
  });
});

describe('a deep mkdir -p', () => {
  it('asks realpath a logarithmic number of times, not once or twice per level', async () => {
    const volume = new Volume();
    let realpathCalls = 0;
    const fs = volume.promises;
    const counting: FsPromises = {
      ...memfsApi(volume),
      realpath: (p) => {
        realpathCalls++;
        return fs.realpath(p);
      },
    };
    const storage = new FsStorage({ fs: counting, root: '/', durable: false });
    const depth = DEFAULTS.maxPathDepth;
    const deep = Array.from({ length: depth }, (_, i) => `n${i}`).join('/');
    await storage.mkdir(deep, { parents: true });
    // Bisection over 256 levels is about 10 calls; resolving every level again was over 500.
    expect(realpathCalls).toBeLessThan(40);
    expect((await storage.stat(deep)).type).toBe('dir');
    realpathCalls = 0;
    await storage.mkdir(deep, { parents: true }); // all there: one resolve
    expect(realpathCalls).toBeLessThan(10);
    await storage.close();
  });

  it(`refuses a path more than maxPathDepth names deep before touching the tree`, async () => {
    env = await startServer({ backend: 'memory' });
    const client = await env.connect();
    const tooDeep = Array.from({ length: DEFAULTS.maxPathDepth + 1 }, () => 'd').join('/');
    await expect(client.mkdir(tooDeep, { parents: true })).rejects.toMatchObject({ code: 'INVALID_PATH' });
    expect(await client.list('')).toEqual([]);
  });
});

/**
 * A root holding d/f, a directory beside it holding another f (0600), and what an attacker with
 * write access to the root does: d swapped for a link out, and back.
 */
async function rootBesideAnother(prefix: string) {
  const dir = await realpath(await mkdtemp(join(tmpdir(), prefix)));
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  const restore = async () => {
    await nodeFs.rm(join(root, 'd'), { recursive: true, force: true });
    await mkdir(join(root, 'd'), { recursive: true });
    await writeFile(join(root, 'd', 'f'), 'inside');
  };
  await restore();
  await mkdir(outside);
  await writeFile(join(outside, 'f'), 'secret');
  await nodeFs.chmod(join(outside, 'f'), 0o600);
  return {
    dir,
    root,
    outside,
    restore,
    linkOut: async () => {
      await nodeFs.rm(join(root, 'd'), { recursive: true, force: true });
      await nodeFs.symlink(outside, join(root, 'd'));
    },
    storageOver: (fs: FsPromises) =>
      new FsStorage({ fs, root, durable: false, hostPaths: path, locateOpened: openedFileLocation }),
  };
}

describe('a directory swapped for a symlink between the check and the open (disk)', () => {
  it('refuses to read or to start an upload through it: the opened descriptor is checked', async () => {
    const { dir, root, outside, restore, linkOut, storageOver } = await rootBesideAnother('muxftp-swap-');
    // The attacker wins the race every time: just before each open under d/, d becomes a link out.
    const storage = storageOver({
      ...(nodeFs as unknown as FsPromises),
      open: async (p, flags) => {
        if (p.startsWith(join(root, 'd') + sep)) await linkOut();
        return nodeFs.open(p, flags);
      },
    });
    try {
      await expect(storage.openRead('d/f')).rejects.toMatchObject({ code: 'INVALID_PATH' });
      await restore();
      await expect(storage.createUpload('d/new')).rejects.toMatchObject({ code: 'INVALID_PATH' });
      expect(await readdir(outside)).toEqual(['f']); // nothing was left outside
    } finally {
      await storage.close();
      await nodeFs.rm(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(process.platform !== 'linux')(
    'chmod changes nothing outside through it, nor a FIFO swapped in for the file',
    async () => {
      const { dir, root, outside, restore, linkOut, storageOver } =
        await rootBesideAnother('muxftp-chmod-swap-');
      const disk = diskFs(new InlineFileCalls());
      let swap = linkOut;
      // The attacker wins the race: just before the open, the swap is made.
      const storage = storageOver({
        ...disk,
        openPath: async (p) => {
          await swap();
          return disk.openPath!(p);
        },
      });
      try {
        await expect(storage.setPermissions('d/f', 0o777)).rejects.toMatchObject({ code: 'INVALID_PATH' });
        expect((await nodeFs.stat(join(outside, 'f'))).mode & 0o7777).toBe(0o600);

        await restore();
        swap = async () => {
          await nodeFs.rm(join(root, 'd', 'f'));
          execFileSync('mkfifo', [join(root, 'd', 'f')]);
        };
        await expect(storage.setPermissions('d/f', 0o777)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
        expect((await nodeFs.stat(join(root, 'd', 'f'))).mode & 0o777).not.toBe(0o777);
      } finally {
        await storage.close();
        await nodeFs.rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('special files in the root (disk)', () => {
  it('refuses to read a FIFO, a socket and a directory, without waiting on any of them', async () => {
    const root = await realpath(await mkdtemp(join(tmpdir(), 'muxftp-special-')));
    const fifo = join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const listener = createServer().listen(join(root, 'socket'));
    await once(listener, 'listening');
    await mkdir(join(root, 'dir'));
    const storage = await DiskStorage.open({ root, durable: false });
    // A blocking open of a FIFO with no writer never returns (nor frees its libuv thread): a
    // writer comes after 3 s to let such an open end, and the refusal must come before it.
    let writerCame = false;
    const writerTimer = setTimeout(() => {
      writerCame = true;
      void nodeFs.open(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK).then((h) => h.close());
    }, 3000);
    try {
      await expect(storage.openRead('fifo')).rejects.toMatchObject({
        code: 'UNSUPPORTED',
        message: 'not a regular file: fifo',
      });
      expect(writerCame).toBe(false);
      await expect(storage.openRead('socket')).rejects.toMatchObject({
        code: 'UNSUPPORTED',
        message: 'not a regular file: socket',
      });
      await expect(storage.openRead('dir')).rejects.toMatchObject({ code: 'IS_A_DIRECTORY' });
      await expect(storage.openRead('missing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      clearTimeout(writerTimer);
      listener.close();
      await storage.close();
      await nodeFs.rm(root, { recursive: true, force: true });
    }
  });
  it("does not wait on a FIFO found under a kept partial upload's name (a host user may put one there)", async () => {
    const root = await realpath(await mkdtemp(join(tmpdir(), 'muxftp-special-')));
    const key = { size: 10, algorithm: 'xxh128', source: 'v1' } as const;
    const fifo = join(root, partialName('f.bin', key));
    execFileSync('mkfifo', [fifo]);
    const storage = await DiskStorage.open({ root, durable: false });
    // The open runs on the loop: a blocking one would hold it, and this process's timers, until a
    // writer came. A writer in another process leaves once told to, or comes after 3 s (then the
    // open has waited for it, and it leaves 'waited' behind).
    const go = join(root, 'go');
    const waited = join(root, 'waited');
    const writer = spawn(
      'sh',
      [
        '-c',
        'i=0; while [ ! -e "$2" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; [ -e "$2" ] && exit 0; : > "$3"; exec 3>"$1"',
        'sh',
        fifo,
        go,
        waited,
      ],
      { stdio: 'ignore' },
    );
    const writerExit = once(writer, 'exit');
    try {
      await expect(storage.openPartial('f.bin', key)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(storage.createUpload('f.bin', { partial: key, resumeFrom: 1 })).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
      await writeFile(go, '');
      await writerExit;
      expect(existsSync(waited)).toBe(false);
    } finally {
      writer.kill();
      await storage.close();
      await nodeFs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('a symbolic link to nothing in the root (disk)', () => {
  it('listed by name, says it is a link to nothing, as stat does, not "no such file or directory"', async () => {
    env = await startServer({ backend: 'disk' });
    await nodeFs.symlink('nowhere', join(env.root!, 'gone'));
    const client = await env.connect();

    const toNothing = {
      code: 'NOT_FOUND',
      message: 'symbolic link to nothing (what it leads to does not exist): gone',
    };
    await expect(client.stat('gone')).rejects.toMatchObject(toNothing);
    // Before: `no such file or directory: gone`, of a name the listing of its directory shows.
    await expect(client.list('gone')).rejects.toMatchObject(toNothing);
    await expect(client.list('missing')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'no such file or directory: missing',
    });
  });
});

describe('a symbolic link loop in the root (disk)', () => {
  it('is a path that leads nowhere, refused INVALID_PATH with its reason, not a disk failure', async () => {
    env = await startServer({ backend: 'disk' });
    await nodeFs.symlink('l2', join(env.root!, 'l1'));
    await nodeFs.symlink('l1', join(env.root!, 'l2'));
    const client = await env.connect();

    // Before: IO_ERROR, `I/O error (ELOOP)`, and the server's log said it as an operator's failure.
    const refused = { code: 'INVALID_PATH', message: 'too many levels of symbolic links: l1' };
    await expect(client.stat('l1')).rejects.toMatchObject(refused);
    await expect(client.get('l1', new PassThrough())).rejects.toMatchObject(refused);
    await expect(client.put('l1', Buffer.from('x'))).rejects.toMatchObject(refused);
    await expect(client.stat('l1/below')).rejects.toMatchObject({
      code: 'INVALID_PATH',
      message: 'too many levels of symbolic links: l1/below',
    });
    expect(env.logs.join('\n')).not.toContain('I/O error');
    // Still a name that can be removed, as the link itself.
    await client.delete('l1');
    expect((await client.list('')).map((entry) => entry.name)).toEqual(['l2']);
  });
});

describe('a disk root that cannot be made', () => {
  it('fails at once, naming it: under /proc, and under a file', async () => {
    // Node's recursive mkdir never settles under /proc (a new name there is ENOENT); the root is
    // made one level at a time instead. The test's own timeout catches a hang.
    await expect(DiskStorage.open({ root: '/proc/muxftp-no-such-root/data' })).rejects.toThrow(
      'cannot use /proc/muxftp-no-such-root/data as the root',
    );
    const dir = await realpath(await mkdtemp(join(tmpdir(), 'muxftp-root-')));
    try {
      await writeFile(join(dir, 'file'), 'x');
      await expect(DiskStorage.open({ root: join(dir, 'file', 'data') })).rejects.toThrow('not a directory');
      // Its missing parents are made.
      const storage = await DiskStorage.open({ root: join(dir, 'a', 'b', 'c') });
      expect(await readdir(join(dir, 'a', 'b'))).toEqual(['c']);
      await storage.close();
    } finally {
      await nodeFs.rm(dir, { recursive: true, force: true });
    }
  }, 15_000);
});
