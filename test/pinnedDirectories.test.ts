/**
 * Path-based calls act in the directory that was checked (storage/pinnedDirectories.ts). The
 * state a racing host user makes — a directory of the served tree swapped for a symbolic link
 * to elsewhere after storage checked the path — is set up here directly, and each call the disk
 * storage makes by path is given a path through it, as the race gives it: every one is refused
 * INVALID_PATH-to-be (ELEDOUTSIDE) and nothing outside changes. Before, a helper's race moved
 * 49 of 50 outside files into a user's home, deleted as many, and planted uploads outside.
 * Real files on disk; Linux only (/proc/self/fd).
 */
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { DiskStorage } from '../storage/disk.js';
import { diskFs } from '../storage/diskFs.js';
import { storageErrorFromFs } from '../storage/fsErrors.js';
import { PinnedDirectories } from '../storage/pinnedDirectories.js';
import { hasProcSelfFd, openDescriptors } from './helpers/openDescriptors.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-pinned-');
afterEach(() => tempDirs.removeAll());

const pinning = process.platform === 'linux' && hasProcSelfFd;

/**
 * A root with home/t/real (a directory) and home/t/swapped (a link to a directory outside, named
 * `outsideName` beside the root).
 */
async function swappedTree(
  outsideName = 'outside',
): Promise<{ root: string; outside: string; fs: ReturnType<typeof diskFs> }> {
  const base = await realpath(await tempDirs.make());
  const root = join(base, 'root');
  const outside = join(base, outsideName);
  await mkdir(join(root, 'home', 't', 'real'), { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, 'victim'), 'not yours\n');
  await mkdir(join(outside, 'victimdir'));
  await writeFile(join(root, 'home', 't', 'real', 'mine'), 'mine\n');
  await symlink(outside, join(root, 'home', 't', 'swapped'));
  const inline = new InlineFileCalls();
  const pins = PinnedDirectories.forRoot(root, inline);
  if (pins === undefined) throw new Error('no /proc/self/fd');
  return { root, outside, fs: diskFs(inline, pins) };
}

describe.skipIf(!pinning)('calls through a directory swapped for a link out of the root', () => {
  it('are refused, and nothing outside is read, moved, removed, made or touched', async () => {
    const { root, outside, fs } = await swappedTree();
    const through = (name: string): string => join(root, 'home', 't', 'swapped', name);
    const refused = { code: 'ELEDOUTSIDE' };

    await expect(fs.rename(through('victim'), join(root, 'home', 'stolen'))).rejects.toMatchObject(refused);
    await expect(
      fs.renameOntoNothing!(through('victim'), join(root, 'home', 'stolen')),
    ).rejects.toMatchObject(refused);
    // Uploaded bytes pushed out: a commit's rename into the swapped directory.
    await expect(
      fs.rename(join(root, 'home', 't', 'real', 'mine'), through('planted')),
    ).rejects.toMatchObject(refused);
    await expect(fs.unlink(through('victim'))).rejects.toMatchObject(refused);
    await expect(fs.rmdir(through('victimdir'))).rejects.toMatchObject(refused);
    await expect(fs.mkdir(through('made'))).rejects.toMatchObject(refused);
    await expect(fs.open(through('.muxftp-0123.part'), 'wx')).rejects.toMatchObject(refused);
    await expect(fs.lutimes!(through('victim'), 0, 0)).rejects.toMatchObject(refused);
    await expect(fs.readdir(join(root, 'home', 't', 'swapped'))).rejects.toMatchObject(refused);

    expect((await readdir(outside)).sort()).toEqual(['victim', 'victimdir']);
    expect(await readFile(join(outside, 'victim'), 'utf8')).toBe('not yours\n');
    expect((await lstat(join(outside, 'victim'))).mtimeMs).toBeGreaterThan(0);
    expect(await readdir(join(root, 'home'))).toEqual(['t']);
    // Said as the path rule says it, about the client's path.
    const error = await fs.unlink(through('victim')).catch((caught: unknown) => caught);
    expect(storageErrorFromFs(error, 't/swapped/victim')).toMatchObject({
      code: 'INVALID_PATH',
      message: 'path leads outside the root: t/swapped/victim',
    });
  });

  it("are refused into a directory beside the root whose name begins with the root's (root-private)", async () => {
    const { root, outside, fs } = await swappedTree('root-private');
    const through = (name: string): string => join(root, 'home', 't', 'swapped', name);
    await expect(fs.unlink(through('victim'))).rejects.toMatchObject({ code: 'ELEDOUTSIDE' });
    await expect(fs.mkdir(through('made'))).rejects.toMatchObject({ code: 'ELEDOUTSIDE' });
    await expect(fs.readdir(join(root, 'home', 't', 'swapped'))).rejects.toMatchObject({
      code: 'ELEDOUTSIDE',
    });
    expect((await readdir(outside)).sort()).toEqual(['victim', 'victimdir']);
  });

  it('inside the root, every one of them works as before (the root itself too)', async () => {
    const { root, fs } = await swappedTree();
    const real = join(root, 'home', 't', 'real');
    await fs.mkdir(join(real, 'made'));
    const handle = await fs.open(join(real, 'made', 'new'), 'wx');
    await handle.close();
    await fs.rename(join(real, 'mine'), join(real, 'made', 'moved'));
    await fs.renameOntoNothing!(join(real, 'made', 'moved'), join(root, 'top'));
    await fs.lutimes!(join(root, 'top'), 0, 1_000_000);
    expect((await lstat(join(root, 'top'))).mtimeMs).toBe(1_000_000_000);
    expect([...(await fs.readdir(root))].sort()).toEqual(['home', 'top']);
    await fs.unlink(join(real, 'made', 'new'));
    await fs.rmdir(join(real, 'made'));
    await fs.lutimes!(root, 0, 2_000_000);
    expect((await lstat(root)).mtimeMs).toBe(2_000_000_000);
    expect(await readdir(real)).toEqual([]);
    // A link inside the root to a directory inside it is followed as before.
    await symlink(real, join(root, 'inner'));
    await fs.mkdir(join(root, 'inner', 'via-link'));
    expect(await readdir(real)).toEqual(['via-link']);
  });

  it("confined to a user's home, they are refused through a link into another home", async () => {
    const { root, fs } = await swappedTree();
    await mkdir(join(root, 'bob'));
    await writeFile(join(root, 'bob', 'secret'), "bob's\n");
    await symlink(join(root, 'bob'), join(root, 'home', 't', 'tobob'));
    const home = fs.confinedTo!(join(root, 'home'));
    await expect(
      home.rename(join(root, 'home', 't', 'tobob', 'secret'), join(root, 'home', 'mine')),
    ).rejects.toMatchObject({ code: 'ELEDOUTSIDE' });
    await expect(home.unlink(join(root, 'home', 't', 'tobob', 'secret'))).rejects.toMatchObject({
      code: 'ELEDOUTSIDE',
    });
    expect(await readFile(join(root, 'bob', 'secret'), 'utf8')).toBe("bob's\n");
    // The served root's own calls may go there: bob's home is inside it.
    await fs.rename(join(root, 'home', 't', 'tobob', 'secret'), join(root, 'bob', 'kept'));
    expect(await readdir(join(root, 'bob'))).toEqual(['kept']);
  });

  it('an upload whose directory was swapped after it began leaves its temporary file nowhere', async () => {
    const base = await realpath(await tempDirs.make());
    const root = join(base, 'root');
    const outside = join(base, 'outside');
    await mkdir(join(root, 'd'), { recursive: true });
    await mkdir(outside);
    const storage = await DiskStorage.open({ root, durable: false });
    try {
      for (const finish of ['commit', 'abort'] as const) {
        const upload = await storage.createUpload(`d/${finish}.txt`);
        await upload.write([Buffer.from('the client bytes\n')]);
        // The racer: the directory moves away, a link out takes its name.
        await rename(join(root, 'd'), join(root, `moved-${finish}`));
        await symlink(outside, join(root, 'd'));
        if (finish === 'commit')
          await expect(upload.commit()).rejects.toMatchObject({ code: 'INVALID_PATH' });
        else await upload.abort();
        // Its path led out (refused), so it stayed where it was made, with the client's bytes.
        expect(await readdir(join(root, `moved-${finish}`))).toEqual([]);
        expect(await readdir(outside)).toEqual([]);
        await unlink(join(root, 'd'));
        await rename(join(root, `moved-${finish}`), join(root, 'd'));
      }
    } finally {
      await storage.close();
    }
  });

  it('hold at most DEFAULTS.maxPinnedCalls directories at once, however many calls come', async () => {
    const { root, fs } = await swappedTree();
    const dir = join(root, 'home', 't', 'real');
    for (let i = 0; i < 300; i++) await writeFile(join(dir, `f${i}`), '');
    const before = openDescriptors();
    let most = before;
    let removing = true;
    const watch = (async () => {
      while (removing) {
        most = Math.max(most, openDescriptors());
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    // Each held its directory's descriptor while it waited for the threadpool: 512 removals at
    // once held 230 descriptors, out of the server's reserve for accepting connections.
    await Promise.all(Array.from({ length: 300 }, (_, i) => fs.unlink(join(dir, `f${i}`))));
    removing = false;
    await watch;
    expect(await readdir(dir)).toEqual(['mine']);
    expect(most - before).toBeLessThanOrEqual(DEFAULTS.maxPinnedCalls + 4);
  });
});
