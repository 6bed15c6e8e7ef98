/**
 * Quota usage kept change by change, over real sockets and real files: the home is walked once,
 * then each upload, delete and rename moves the count by exactly its bytes; a file put in the
 * home from outside is seen once the recount interval has passed. The whole blocks an
 * interrupted resumable upload keeps (issue #8) count like files until they are resumed,
 * discarded or swept.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeCancel, encodeData, encodeOpen } from '../shared/protocol/encoder.js';
import { isPartialName, partialNamesPrefix } from '../shared/temporaryNames.js';
import type { Storage } from '../storage/types.js';
import { codeOf } from './helpers/codeOf.js';
import { onEachHomeView, watchAborts } from './helpers/homeViews.js';
import { RawPeer } from './helpers/rawPeer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

const LIMIT = 10_000;
const BLOCK = INTEGRITY_BLOCK_BYTES;
/** The quota of `r`, who resumes uploads: three blocks. */
const R_LIMIT = 3 * BLOCK;
let users: UsersFile;

beforeAll(async () => {
  const add = async (file: UsersFile, name: string, quota: number, home?: string) =>
    addUser(file, {
      name,
      passwordHash: await hashPassword(`${name}-secret`),
      permissions: [...PERMISSIONS],
      quota,
      ...(home !== undefined ? { home } : {}),
    });
  users = await add(emptyUsersFile(), 'q', LIMIT);
  // Homes that nest: the outer one holds the inner one.
  users = await add(users, 'outer', LIMIT, 'shared');
  users = await add(users, 'inner', 8000, 'shared/in');
  // A home whose name starts with another's, beside it: neither holds the other.
  users = await add(users, 'beside', LIMIT, 'shared2');
  users = await add(users, 'r', R_LIMIT);
  users = await add(users, 'r4', 4 * BLOCK);
  // Nested homes for resumed uploads.
  users = await add(users, 'pouter', R_LIMIT, 'p');
  users = await add(users, 'pinner', R_LIMIT, 'p/in');
});

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-quota-');
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** Counts bytes read from kept partial uploads (to hash them) through every home view. */
function countPartialReads(storage: Storage): { bytes: number } {
  const counter = { bytes: 0 };
  onEachHomeView(storage, (view) => {
    const openPartial = view.openPartial?.bind(view);
    if (openPartial === undefined) return;
    view.openPartial = async (path, key) => {
      const partial = await openPartial(path, key);
      if (partial === undefined) return undefined;
      const read = partial.read.bind(partial);
      return {
        ...partial,
        read: async (...args: Parameters<typeof read>) => {
          const bytesRead = await read(...args);
          counter.bytes += bytesRead;
          return bytesRead;
        },
      };
    };
  });
  return counter;
}

/** Counts directory listings at the storage boundary of every home view the server opens. */
function countHomeListings(storage: Storage): { calls: number } {
  const counter = { calls: 0 };
  onEachHomeView(storage, (view) => {
    // list() goes through listBatches() too: every listing passes here once.
    const listBatches = view.listBatches.bind(view);
    view.listBatches = (dir) => {
      counter.calls++;
      return listBatches(dir);
    };
  });
  return counter;
}

async function start(options: Parameters<typeof startServer>[0] = {}) {
  server = await startServer({ backend: 'disk', accounts: new Accounts({ users }), ...options });
  return server;
}

const bytes = (n: number) => Buffer.alloc(n, 0x61);

/** Exactly `free` bytes fit: one more is refused (declared size, nothing stored); then they are taken. */
async function fillExactly(client: Client, name: string, free: number): Promise<void> {
  expect(await codeOf(client.put(name, bytes(free + 1)))).toBe('QUOTA_EXCEEDED');
  await client.put(name, bytes(free));
}

/** Sum of file sizes under a host directory. */
async function bytesOnDisk(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await bytesOnDisk(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

describe('quota usage', () => {
  it('stays exact when a delete lands between an upload’s rename and its commit settling (directory flush)', async () => {
    const s = await start();
    // The commit renames the file into place, then (fsync always) flushes its directory and looks
    // at it: held here after the rename, so the file is under its name while usage has not grown.
    let releaseCommit!: () => void;
    const commitHeld = new Promise<void>((resolve) => {
      releaseCommit = resolve;
    });
    let renamed!: () => void;
    const renamedNow = new Promise<void>((resolve) => {
      renamed = resolve;
    });
    onEachHomeView(s.storage, (view) => {
      const createUpload = view.createUpload.bind(view);
      view.createUpload = async (path, options) => {
        const handle = await createUpload(path, options);
        return {
          ...handle,
          write: (chunks) => handle.write(chunks),
          abort: () => handle.abort(),
          commit: async (digest, commitOptions) => {
            const entry = await handle.commit(digest, commitOptions);
            renamed();
            await commitHeld;
            return entry;
          },
        };
      };
    });
    const uploader = await s.connect({ user: 'q', password: 'q-secret' });
    const remover = await s.connect({ user: 'q', password: 'q-secret' });
    const upload = uploader.put('x.bin', bytes(6000));
    await renamedNow;
    await remover.delete('x.bin');
    releaseCommit();
    await upload;
    expect(await bytesOnDisk(join(s.root!, 'q'))).toBe(0);
    // Before: the delete's −6000 was lost below 0 and the put's +6000 landed: 6000 counted, 0 stored.
    expect((await remover.space()).quota?.usedBytes).toBe(0);
    await fillExactly(remover, 'fits.bin', LIMIT);
  });

  it('walks the home once, not again after each upload', async () => {
    const s = await start();
    const listings = countHomeListings(s.storage);
    // A home with many directories: a walk lists each of them.
    const home = join(s.root!, 'q');
    for (let i = 0; i < 40; i++) await mkdir(join(home, `dir${i}`, 'sub'), { recursive: true });
    await writeFile(join(home, 'dir7', 'sub', 'old.bin'), bytes(1000));
    const q = await s.connect({ user: 'q', password: 'q-secret' });
    await q.put('first.bin', bytes(100));
    const oneWalk = listings.calls;
    expect(oneWalk).toBe(1 + 40 * 2); // the home, each dirN, each dirN/sub
    for (let i = 0; i < 10; i++) await q.put(`dir${i}/f${i}.bin`, bytes(100));
    // Two at once, from two connections of the account.
    const q2 = await s.connect({ user: 'q', password: 'q-secret' });
    await Promise.all([q.put('a.bin', bytes(100)), q2.put('b.bin', bytes(100))]);
    await q.delete('a.bin');
    await q2.rename('b.bin', 'dir3/b.bin');
    expect(listings.calls).toBe(oneWalk);
    // And the count is right: 1000 + 12 × 100 bytes are used.
    await fillExactly(q, 'rest.bin', LIMIT - 2200);
  });

  it('ends its walk in a link loop in the home: links to directories are followed at most 4 deep', async () => {
    const s = await start();
    const listings = countHomeListings(s.storage);
    const home = join(s.root!, 'q');
    await mkdir(join(home, 'loop'), { recursive: true });
    await writeFile(join(home, 'loop', 'f.bin'), bytes(10));
    // Two links to the directory itself: a walk following every link would never end.
    await symlink('.', join(home, 'loop', 'a'));
    await symlink('.', join(home, 'loop', 'b'));
    const q = await s.connect({ user: 'q', password: 'q-secret' });
    await q.put('first.bin', bytes(100));
    // The home, loop, and the 2 + 4 + 8 + 16 directories four levels of links lead to.
    expect(listings.calls).toBe(2 + 30);
    // f.bin counted in each of the 31 directories it is seen in (links are followed, as before).
    await fillExactly(q, 'rest.bin', LIMIT - 100 - 31 * 10);
  });

  it('frees exactly what deletes, overwrites and renames replace', async () => {
    const s = await start();
    const listings = countHomeListings(s.storage);
    const q = await s.connect({ user: 'q', password: 'q-secret' });
    await q.put('a.bin', bytes(6000));
    await q.put('b.bin', bytes(3000));
    const walked = listings.calls;

    // An overwrite counts what the home holds after it (the old file's bytes leave usage).
    await q.put('a.bin', bytes(1000)); // frees the old size beyond the new
    await fillExactly(q, 'c.bin', 6000); // a 1000, b 3000, c 6000

    await q.delete('b.bin');
    await fillExactly(q, 'd.bin', 3000); // a 1000, c 6000, d 3000

    await q.rename('c.bin', 'a.bin'); // replaces a (1000); c's bytes move with it
    await fillExactly(q, 'e.bin', 1000); // a 6000, d 3000, e 1000

    await q.mkdir('dir');
    await q.rename('e.bin', 'dir/e.bin'); // replaces nothing
    await q.mkdir('empty');
    await q.rmdir('empty');
    expect(await codeOf(q.put('f.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');

    await q.rename('d.bin', 'dir/e.bin'); // replaces e (1000) with d (3000)
    await fillExactly(q, 'f.bin', 1000); // a 6000, dir/e 3000, f 1000
    expect(await bytesOnDisk(join(s.root!, 'q'))).toBe(LIMIT);
    expect(listings.calls).toBe(walked); // every step above was a delta, not a walk
  });

  it('keeps the count exact when one account uploads onto one name from two connections at once', async () => {
    const s = await start();
    const q1 = await s.connect({ user: 'q', password: 'q-secret' });
    const q2 = await s.connect({ user: 'q', password: 'q-secret' });
    await q1.put('same.bin', bytes(1000));
    const sizes = [1500, 2000, 500, 2500, 1000, 1200]; // with the 1000 used, all fit at once
    await Promise.all(sizes.map((size, i) => (i % 2 === 0 ? q1 : q2).put('same.bin', bytes(size))));
    const used = await bytesOnDisk(join(s.root!, 'q'));
    expect(sizes).toContain(used);
    await fillExactly(q1, 'rest.bin', LIMIT - used);
  });

  it('keeps counting for connections that logged in before the users file changed the quota', async () => {
    const s = await start();
    const before = await s.connect({ user: 'q', password: 'q-secret' });
    await before.put('first.bin', bytes(1000));
    // The users file read again (SIGHUP) gives q a larger quota: later logins count against it.
    const q = users.users.q!;
    s.server.replaceAccounts(
      new Accounts({ users: { version: 1, users: { ...users.users, q: { ...q, quota: 2 * LIMIT } } } }),
    );
    const after = await s.connect({ user: 'q', password: 'q-secret' });
    await after.put('second.bin', bytes(6000));
    // The earlier connection still has the old limit, and counts the later one's upload: 7000
    // of its 10,000 bytes are used.
    await fillExactly(before, 'third.bin', LIMIT - 7000);
    // The later connection has the new limit: 10,000 used of 20,000.
    await fillExactly(after, 'fourth.bin', LIMIT);
  });

  it('lets only what fits through when two connections of the account upload at once', async () => {
    const s = await start();
    const q1 = await s.connect({ user: 'q', password: 'q-secret' });
    const q2 = await s.connect({ user: 'q', password: 'q-secret' });
    await q1.put('seed.bin', bytes(1000));
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => (i % 2 === 0 ? q1 : q2).put(`p${i}.bin`, bytes(3000))),
    );
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason.code).toBe('QUOTA_EXCEEDED');
    expect(await bytesOnDisk(join(s.root!, 'q'))).toBe(10_000);
    expect(await codeOf(q2.put('more.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');
  });

  it('keeps an upload counted while its commit finishes after its connection is gone', async () => {
    const s = await start();
    // The commit of a.bin waits for `releaseCommits`; `committing` resolves when it starts.
    let releaseCommits = () => {};
    const commitsHeld = new Promise<void>((resolve) => {
      releaseCommits = resolve;
    });
    let onCommitting = () => {};
    const committing = new Promise<void>((resolve) => {
      onCommitting = resolve;
    });
    const subtree = s.storage.subtree.bind(s.storage);
    s.storage.subtree = async (path) => {
      const view = await subtree(path);
      const createUpload = view.createUpload.bind(view);
      view.createUpload = async (target, options) => {
        const handle = await createUpload(target, options);
        return {
          write: (chunks) => handle.write(chunks),
          commit: async (digest, commitOptions) => {
            if (target === 'a.bin') {
              onCommitting();
              await commitsHeld;
            }
            return handle.commit(digest, commitOptions);
          },
          abort: (abortOptions) => handle.abort(abortOptions),
        };
      };
      return view;
    };
    const q1 = await s.connect({ user: 'q', password: 'q-secret' });
    const q2 = await s.connect({ user: 'q', password: 'q-secret' });
    const first = q1.put('a.bin', bytes(6000));
    first.catch(() => {}); // its connection goes before the answer
    await committing;
    // Gone for good (a reset): a FIN alone is a half-close, which the server answers first.
    const socket = (q1 as unknown as { transport: { socket: Socket } }).transport.socket;
    socket.resetAndDestroy();
    for (let i = 0; i < 500 && s.server.connectionFigures().length > 1; i++) {
      await delay(10);
    }
    expect(s.server.connectionFigures()).toHaveLength(1);
    // a.bin is still being committed: its 6000 bytes count, so 6000 more do not fit.
    expect(await codeOf(q2.put('b.bin', bytes(6000)))).toBe('QUOTA_EXCEEDED');
    releaseCommits();
    for (let i = 0; i < 500 && !(await readdir(join(s.root!, 'q'))).includes('a.bin'); i++) {
      await delay(10);
    }
    expect(await readdir(join(s.root!, 'q'))).toEqual(['a.bin']);
    await fillExactly(q2, 'b.bin', 4000);
  });

  it('sees a file put in the home from outside once the recount interval has passed', async () => {
    const intervalMs = 300;
    const s = await start({ quotaRecountIntervalMs: intervalMs });
    const listings = countHomeListings(s.storage);
    const q = await s.connect({ user: 'q', password: 'q-secret' });
    await q.put('mine.bin', bytes(1000));
    const walksBefore = listings.calls;
    await writeFile(join(s.root!, 'q', 'dropped.bin'), bytes(6000));
    await delay(intervalMs + 50);
    // 1000 + 6000 used: 3001 do not fit, 3000 do.
    await fillExactly(q, 'rest.bin', 3000);
    expect(listings.calls).toBeGreaterThan(walksBefore);
  });

  it('counts changes made through another account whose home nests in or holds its own', async () => {
    const s = await start();
    const listings = countHomeListings(s.storage);
    const outer = await s.connect({ user: 'outer', password: 'outer-secret' });
    const inner = await s.connect({ user: 'inner', password: 'inner-secret' });
    await outer.put('o1.bin', bytes(1000)); // outer: 1000
    await inner.put('f.bin', bytes(6000)); // inner: 6000; outer: 7000
    const walked = listings.calls;
    await fillExactly(outer, 'o2.bin', 3000); // outer: 10000

    await outer.rename('in/f.bin', 'g.bin'); // out of inner's home: inner 0, outer the same
    expect(await codeOf(outer.put('x.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');
    await fillExactly(inner, 'x.bin', 8000); // inner: 8000; outer: 18000

    await inner.delete('x.bin'); // inner: 0; outer: 10000
    await outer.rename('g.bin', 'in/h.bin'); // into inner's home: inner 6000, outer the same
    expect(await codeOf(outer.put('y.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');
    await fillExactly(inner, 'y.bin', 2000); // inner: 8000; outer: 12000
    await outer.delete('in/h.bin'); // inner: 2000; outer: 6000
    await fillExactly(inner, 'z.bin', 6000); // inner: 8000; outer: 12000
    await outer.delete('o1.bin');
    await outer.delete('o2.bin'); // outer: 8000
    await fillExactly(outer, 'w.bin', 2000);
    expect(listings.calls).toBe(walked); // all by deltas
    expect(await bytesOnDisk(join(s.root!, 'shared'))).toBe(LIMIT);
    expect(await bytesOnDisk(join(s.root!, 'shared', 'in'))).toBe(8000);
  });

  it("does not count a change in a home whose name only starts with its own ('shared2' beside 'shared')", async () => {
    const s = await start();
    const outer = await s.connect({ user: 'outer', password: 'outer-secret' });
    const beside = await s.connect({ user: 'beside', password: 'beside-secret' });
    await outer.put('o.bin', bytes(1000)); // outer: 1000, counted from here by deltas
    await beside.put('b.bin', bytes(6000)); // beside: 6000; outer: still 1000
    await fillExactly(outer, 'rest.bin', LIMIT - 1000);
  });
});

describe('puts cancelled while their quota is checked', () => {
  it('open no file once cancelled: their open-file slots are free at once', async () => {
    const s = await start();
    // The look at what each put replaces waits (a home on a slow disk) until letGo().
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const made = { uploads: 0 };
    onEachHomeView(s.storage, (view) => {
      const stat = view.stat.bind(view);
      view.stat = async (path) => {
        await gate;
        return stat(path);
      };
      const createUpload = view.createUpload.bind(view);
      view.createUpload = (path, options) => {
        made.uploads++;
        return createUpload(path, options);
      };
    });
    const peer = await RawPeer.open(s.port);
    try {
      peer.write(encodeAuth({ user: 'q', password: 'q-secret' }));
      await peer.waitFor((f) => f.type === FrameType.AUTH);
      const count = 32;
      peer.write(
        Buffer.concat(
          Array.from({ length: count }, (_, i) => [
            encodeOpen(2 * i + 1, { op: 'put', path: `p${i}`, size: 10 }),
            encodeCancel(2 * i + 1),
          ]).flat(),
        ),
      );
      // The cancels have been read once a later request is answered: every slot is free again.
      peer.write(encodeOpen(1001, { op: 'stats' }));
      await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1001);
      expect(s.server.counters.openFiles).toBe(0);
      letGo();
      await delay(500);
      // Before, each made its temporary file all the same, past the open-file cap: a client
      // opening and cancelling puts while a quota was checked had any number of files open.
      expect(made.uploads).toBe(0);
      expect(await readdir(join(s.root!, 'q'))).toEqual([]);
    } finally {
      peer.destroy();
    }
  });

  it('a resumable put cancelled meanwhile fails no stalled upload of the same file', async () => {
    const s = await start({ stalledUploadTakeoverMs: 100 });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const held = { on: false };
    onEachHomeView(s.storage, (view) => {
      const stat = view.stat.bind(view);
      view.stat = async (path) => {
        if (held.on) await gate;
        return stat(path);
      };
    });
    const login = async () => {
      const peer = await RawPeer.open(s.port);
      peer.write(encodeAuth({ user: 'r', password: 'r-secret' }));
      await peer.waitFor((f) => f.type === FrameType.AUTH);
      return peer;
    };
    const resumable = {
      op: 'put',
      path: 'r.bin',
      size: BLOCK,
      source: 'same-source',
      offset: 0,
    } as const;
    const holder = await login();
    const other = await login();
    try {
      // One upload holds the data kept for r.bin, then moves nothing: stalled past 100 ms.
      holder.write(encodeOpen(1, resumable));
      await holder.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
      holder.write(encodeData(1, bytes(64 * 1024)));
      await delay(300);
      held.on = true;
      // Another connection's put of the same data, cancelled while its quota is checked.
      other.write(Buffer.concat([encodeOpen(1, resumable), encodeCancel(1)]));
      other.write(encodeOpen(3, { op: 'stats' }));
      await other.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
      letGo();
      await delay(300);
      // Before, the cancelled put took the upload over all the same: the holder's failed.
      expect(holder.frames.filter((f) => f.type === FrameType.ERROR)).toEqual([]);
    } finally {
      holder.destroy();
      other.destroy();
    }
  });
});

describe('quota on overwrite', () => {
  it('counts what the home will hold after the commit: the replaced file leaves usage', async () => {
    const s = await start();
    const listings = countHomeListings(s.storage);
    const q = await s.connect({ user: 'q', password: 'q-secret' });
    await q.put('a.bin', bytes(5000));
    await q.put('b.bin', bytes(3000));
    const walked = listings.calls;
    // 8000 of 10,000 used: a new version of a.bin as large fits (5000 more would not).
    expect(await codeOf(q.put('new.bin', bytes(5000)))).toBe('QUOTA_EXCEEDED');
    await q.put('a.bin', Buffer.alloc(5000, 0x62));
    // 8000 − 5000 + 7000 is the limit; one byte more is not.
    expect(await codeOf(q.put('a.bin', bytes(7001)))).toBe('QUOTA_EXCEEDED');
    await q.put('a.bin', bytes(7000));
    expect(await codeOf(q.put('x.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');
    // A directory is not a file the upload replaces: nothing is credited for it.
    await q.mkdir('dir');
    expect(await codeOf(q.put('dir', bytes(1)))).toBe('QUOTA_EXCEEDED');
    // Without a declared size, the bytes as they arrive are checked the same way.
    await q.put('b.bin', Readable.from([bytes(2000), bytes(1000)]));
    expect(await codeOf(q.put('b.bin', Readable.from([bytes(3000), bytes(1)])))).toBe('QUOTA_EXCEEDED');
    // Usage after each commit is exact: a 1000 frees 6000.
    await q.put('a.bin', bytes(1000));
    await fillExactly(q, 'c.bin', 6000);
    expect(await bytesOnDisk(join(s.root!, 'q'))).toBe(LIMIT);
    expect(listings.calls).toBe(walked); // all by deltas
  });

  it('counts a link to a file at the size of what it names, from the start to the commit', async () => {
    const s = await start();
    const home = join(s.root!, 'q');
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'a.bin'), bytes(3000));
    await writeFile(join(home, 'b.bin'), bytes(3000));
    await symlink('a.bin', join(home, 'link.bin'));
    const q = await s.connect({ user: 'q', password: 'q-secret' });
    // A walk counts the link as a.bin's 3000 bytes (listings show it so): 9000 used. Replacing it
    // frees those, so 4000 fit; the commit must see it the same way, not refuse it after the bytes.
    await q.put('link.bin', Buffer.alloc(4000, 0x62));
    // The rename replaced the link itself: a.bin is as it was.
    expect((await lstat(join(home, 'link.bin'))).isFile()).toBe(true);
    expect(await readFile(join(home, 'a.bin'))).toEqual(bytes(3000));
    // And usage is exact: 3000 + 3000 + 4000.
    expect(await codeOf(q.put('x.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');
    await q.delete('b.bin');
    await fillExactly(q, 'c.bin', 3000);
  });

  it('credits a file once to the uploads replacing it at once, and only if it is there at the commit', async () => {
    const s = await start();
    // The next commit of a.bin waits for `release`; `committing` resolves when it starts.
    let hold = false;
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let onCommitting = () => {};
    const committing = new Promise<void>((resolve) => {
      onCommitting = resolve;
    });
    onEachHomeView(s.storage, (view) => {
      const createUpload = view.createUpload.bind(view);
      view.createUpload = async (target, options) => {
        const handle = await createUpload(target, options);
        const commit = handle.commit.bind(handle);
        handle.commit = async (digest, commitOptions) => {
          if (target === 'a.bin' && hold) {
            hold = false;
            onCommitting();
            await held;
          }
          return commit(digest, commitOptions);
        };
        return handle;
      };
    });
    const q1 = await s.connect({ user: 'q', password: 'q-secret' });
    const q2 = await s.connect({ user: 'q', password: 'q-secret' });
    await q1.put('a.bin', bytes(5000));
    await q1.put('b.bin', bytes(3000));
    hold = true;
    const first = q1.put('a.bin', Buffer.alloc(5000, 0x62));
    await committing;
    // The first upload counts a.bin's 5000 bytes as freed: a second one at the same time does not.
    expect(await codeOf(q2.put('a.bin', bytes(5000)))).toBe('QUOTA_EXCEEDED');
    // a.bin goes before the first commit: 3000 used, and the first upload reserved nothing.
    await q2.delete('a.bin');
    await q2.put('c.bin', bytes(7000));
    release();
    // Committed now it would add 5000 bytes to a full home: refused, and nothing is left of it.
    expect(await codeOf(first)).toBe('QUOTA_EXCEEDED');
    expect((await readdir(join(s.root!, 'q'))).sort()).toEqual(['b.bin', 'c.bin']);
    expect(await codeOf(q2.put('x.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');
    await q2.delete('c.bin');
    await fillExactly(q2, 'd.bin', 7000);
  });
});

/** Sizes of the kept partial uploads in a host directory (one the sweep removes meanwhile is gone). */
async function keptSizes(dir: string): Promise<number[]> {
  const names = (await readdir(dir)).filter(isPartialName);
  const sizes = await Promise.all(
    names.map(async (name) => {
      try {
        return (await stat(join(dir, name))).size;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    }),
  );
  return sizes.filter((size): size is number => size !== undefined);
}

describe('quota usage of kept partial uploads (issue #8)', () => {
  /** Credit in small steps, so that a cut connection has sent little past the cut. */
  const smallWindows = { streamWindowBytes: 256 * 1024, streamWindowMaxBytes: 256 * 1024 };
  const login = { user: 'r', password: 'r-secret' };

  async function sourceFile(size: number): Promise<string> {
    const path = join(await tempDirs.make(), 'source.bin');
    await writeFile(path, randomBytes(size));
    return path;
  }

  /**
   * A resumable put of `source` as big.bin whose connection is destroyed once `cutAfter` bytes
   * were sent; resolves once the server has kept what it keeps, to the bytes kept.
   */
  async function interruptedPut(
    s: TestServer,
    aborts: { settled(): Promise<void> },
    source: string,
    cutAfter: number,
    options: { user?: string; home?: string; resume?: boolean } = {},
  ): Promise<number> {
    const { user = 'r', home = user, resume = false } = options;
    const client = await s.connect({ user, password: `${user}-secret` });
    const upload = client.put('big.bin', source, {
      ...(resume ? { continue: true } : { resumable: true }),
      onProgress: (done) => {
        if (done >= cutAfter) void client.destroy();
      },
    });
    await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    await until(() => s.server.stats().streams === 0, 'the server to drop the upload');
    await aborts.settled();
    const sizes = await keptSizes(join(s.root!, home));
    return sizes.reduce((sum, size) => sum + size, 0);
  }

  it('counts the kept blocks until a resume takes them over, then the file once, not twice', async () => {
    const s = await start(smallWindows);
    const aborts = watchAborts(s.storage);
    const partialReads = countPartialReads(s.storage);
    const fileSize = 2 * BLOCK + 1000;
    const source = await sourceFile(fileSize);
    const kept = await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2);
    expect(kept).toBe(BLOCK);
    const r = await s.connect(login);

    // The kept block counts: what would fit without it is refused.
    await fillExactly(r, 'other.bin', R_LIMIT - kept);
    // A resume that does not fit is refused like any upload, and leaves the kept data whole and
    // counted. It is refused before its kept prefix is read to be hashed: the kept block is read
    // once, to answer the client's question of what is kept, and not a second time.
    const readBefore = partialReads.bytes;
    expect(await codeOf(r.put('big.bin', source, { continue: true }))).toBe('QUOTA_EXCEEDED');
    expect(partialReads.bytes - readBefore).toBe(kept);
    await aborts.settled();
    expect(await keptSizes(join(s.root!, 'r'))).toEqual([kept]);
    expect(await codeOf(r.put('one.bin', bytes(1)))).toBe('QUOTA_EXCEEDED');

    // Room for the file, not for the file and the kept block besides: the resume fits all the same.
    await r.delete('other.bin');
    expect(kept + fileSize).toBeGreaterThan(R_LIMIT);
    const before = s.server.stats().bytesIn;
    const result = await r.put('big.bin', source, { continue: true });
    expect(result.entry.size).toBe(fileSize);
    expect(s.server.stats().bytesIn - before).toBe(fileSize - kept); // it did resume
    expect(await keptSizes(join(s.root!, 'r'))).toEqual([]);
    // Usage is the file's size.
    await fillExactly(r, 'rest.bin', R_LIMIT - fileSize);
    expect(await bytesOnDisk(join(s.root!, 'r'))).toBe(R_LIMIT);
  });

  it("a resume under a key nothing is kept for is refused before the quota drops another key's blocks", async () => {
    const s = await start(smallWindows);
    const aborts = watchAborts(s.storage);
    const source = await sourceFile(2 * BLOCK);
    const kept = await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2);
    expect(kept).toBe(BLOCK);
    const peer = await RawPeer.open(s.port);
    peer.write(encodeAuth(login));
    await peer.waitFor((f) => f.type === FrameType.AUTH);
    peer.write(
      encodeOpen(1, { op: 'put', path: 'big.bin', size: 2 * BLOCK, source: 'another', offset: BLOCK }),
    );
    expect((await peer.streamError(1)).code).toBe('NOT_FOUND');
    peer.destroy();
    expect(await keptSizes(join(s.root!, 'r'))).toEqual([kept]);
    // Still counted, and still continued.
    const r = await s.connect(login);
    expect(await codeOf(r.put('one.bin', bytes(R_LIMIT - kept + 1)))).toBe('QUOTA_EXCEEDED');
    const before = s.server.stats().bytesIn;
    await r.put('big.bin', source, { continue: true });
    expect(s.server.stats().bytesIn - before).toBe(2 * BLOCK - kept);
  });

  it("a put of the file's path with a '/' is refused before the quota drops the file's kept blocks", async () => {
    const s = await start(smallWindows);
    const aborts = watchAborts(s.storage);
    const source = await sourceFile(2 * BLOCK);
    const r = await s.connect(login);
    await r.put('big.bin', Buffer.from('an older version'));
    const kept = await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2);
    expect(kept).toBe(BLOCK);
    // `put f/` of a file f: NOT_A_DIRECTORY, and what is kept of f stays (the quota's check
    // dropped it first).
    const peer = await RawPeer.open(s.port);
    peer.write(encodeAuth(login));
    await peer.waitFor((f) => f.type === FrameType.AUTH);
    peer.write(encodeOpen(1, { op: 'put', path: 'big.bin/', size: 10 }));
    expect((await peer.streamError(1)).code).toBe('NOT_A_DIRECTORY');
    peer.destroy();
    await aborts.settled();
    expect(await keptSizes(join(s.root!, 'r'))).toEqual([kept]);
    const before = s.server.stats().bytesIn;
    await r.put('big.bin', source, { continue: true });
    expect(s.server.stats().bytesIn - before).toBe(2 * BLOCK - kept);
  });

  it('counts kept blocks resumed and cut again once, at their new size', async () => {
    const s = await start(smallWindows);
    const aborts = watchAborts(s.storage);
    const limit = 4 * BLOCK;
    const fileSize = 3 * BLOCK + 1000;
    const source = await sourceFile(fileSize);
    const as = { user: 'r4' };
    expect(await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2, as)).toBe(BLOCK);
    // Resumed from the kept block (progress counts from there), and cut again.
    const kept = await interruptedPut(s, aborts, source, 2 * BLOCK + BLOCK / 2, { ...as, resume: true });
    expect(kept).toBe(2 * BLOCK);
    expect(await keptSizes(join(s.root!, 'r4'))).toEqual([kept]);
    const r4 = await s.connect({ user: 'r4', password: 'r4-secret' });
    await fillExactly(r4, 'rest.bin', limit - kept);
  });

  it('counts kept blocks in a nested home for the home that holds it too, once', async () => {
    const s = await start(smallWindows);
    const listings = countHomeListings(s.storage);
    const aborts = watchAborts(s.storage);
    const outer = await s.connect({ user: 'pouter', password: 'pouter-secret' });
    await outer.put('seed.bin', bytes(1000)); // the first walks
    const walks = listings.calls;
    const fileSize = 2 * BLOCK;
    const source = await sourceFile(fileSize);
    const kept = await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2, {
      user: 'pinner',
      home: 'p/in',
    });
    expect(kept).toBe(BLOCK);
    expect(await codeOf(outer.put('x.bin', bytes(R_LIMIT - 1000 - kept + 1)))).toBe('QUOTA_EXCEEDED');
    // Resumed and committed through the inner home: the outer one counts the file alone.
    const inner = await s.connect({ user: 'pinner', password: 'pinner-secret' });
    await inner.put('big.bin', source, { continue: true });
    await fillExactly(outer, 'rest.bin', R_LIMIT - 1000 - fileSize);
    expect(listings.calls).toBe(walks + 1); // the inner home's first walk; the rest by deltas
  });

  it('a walk of the home counts kept blocks as the running count does', async () => {
    const intervalMs = 200;
    const s = await start({ ...smallWindows, quotaRecountIntervalMs: intervalMs });
    const listings = countHomeListings(s.storage);
    const aborts = watchAborts(s.storage);
    const kept = await interruptedPut(s, aborts, await sourceFile(2 * BLOCK), BLOCK + BLOCK / 2);
    expect(kept).toBe(BLOCK);
    await delay(intervalMs + 50);
    const walks = listings.calls;
    const r = await s.connect(login);
    await fillExactly(r, 'rest.bin', R_LIMIT - kept);
    expect(listings.calls).toBeGreaterThan(walks); // counted by a walk
  });

  it('frees kept blocks an upload takes over and discards', async () => {
    const s = await start(smallWindows);
    const listings = countHomeListings(s.storage);
    const aborts = watchAborts(s.storage);
    const source = await sourceFile(2 * BLOCK);
    const kept = await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2);
    expect(kept).toBe(BLOCK);
    const r = await s.connect(login);
    expect(await codeOf(r.put('one.bin', bytes(R_LIMIT - kept + 1)))).toBe('QUOTA_EXCEEDED');
    const walks = listings.calls;
    // Started over (no continue): the same key's data is taken over and overwritten, and this
    // upload is cut before it has written a whole block, so nothing is kept.
    expect(await interruptedPut(s, aborts, source, BLOCK / 2)).toBe(0);
    expect(await readdir(join(s.root!, 'r'))).toEqual([]);
    await fillExactly(r, 'all.bin', R_LIMIT);
    expect(listings.calls).toBe(walks); // by deltas
  });

  it('credits the file a resumable upload replaces, and keeps its blocks only if they fit', async () => {
    const s = await start(smallWindows);
    const aborts = watchAborts(s.storage);
    const fileSize = 2 * BLOCK + 1000;
    const r = await s.connect(login);
    await r.put('big.bin', await sourceFile(fileSize), { resumable: true });
    // A new version: the file and it together would not fit in three blocks; after the commit they do.
    expect(2 * fileSize).toBeGreaterThan(R_LIMIT);
    await r.put('big.bin', await sourceFile(fileSize), { resumable: true });
    // Cut after a block was written: kept beside the file it would pass the limit, so it goes.
    expect(await interruptedPut(s, aborts, await sourceFile(fileSize), BLOCK + BLOCK / 2)).toBe(0);
    await fillExactly(r, 'rest.bin', R_LIMIT - fileSize);
    expect(await bytesOnDisk(join(s.root!, 'r'))).toBe(R_LIMIT);

    // With room for it (four blocks), the block is kept and counted, and a resume finishes.
    const r4 = await s.connect({ user: 'r4', password: 'r4-secret' });
    await r4.put('big.bin', await sourceFile(fileSize), { resumable: true });
    const source = await sourceFile(fileSize);
    const kept = await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2, { user: 'r4' });
    expect(kept).toBe(BLOCK);
    expect(await codeOf(r4.put('one.bin', bytes(4 * BLOCK - fileSize - kept + 1)))).toBe('QUOTA_EXCEEDED');
    const before = s.server.stats().bytesIn;
    await r4.put('big.bin', source, { continue: true });
    expect(s.server.stats().bytesIn - before).toBe(fileSize - kept); // it did resume
    await fillExactly(r4, 'rest.bin', 4 * BLOCK - fileSize);
  });

  it('keeps one kept upload per file: a new upload of it, or its removal, drops the others and frees them', async () => {
    const s = await start(smallWindows);
    const aborts = watchAborts(s.storage);
    const source = await sourceFile(2 * BLOCK);
    expect(await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2)).toBe(BLOCK);
    // Kept for another file beside it: stays through all of this.
    const cut = await s.connect(login);
    const other = cut.put('other.bin', source, {
      resumable: true,
      onProgress: (done) => {
        if (done >= BLOCK + BLOCK / 2) void cut.destroy();
      },
    });
    await expect(other).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    await until(() => s.server.stats().streams === 0, 'the server to drop the upload');
    await aborts.settled();
    const keptNames = async () => (await readdir(join(s.root!, 'r'))).filter(isPartialName);
    expect(await keptNames()).toHaveLength(2);

    // The source changed: what was kept of it can never be continued. Two blocks fit beside
    // other.bin's kept one, not beside both: the upload drops big.bin's and goes in.
    await writeFile(source, randomBytes(2 * BLOCK));
    const r = await s.connect(login);
    expect(await codeOf(r.put('x.bin', bytes(2 * BLOCK)))).toBe('QUOTA_EXCEEDED'); // both kept blocks count
    await r.put('big.bin', source);
    await aborts.settled();
    expect(await keptNames()).toEqual([
      expect.stringMatching(new RegExp(`^${partialNamesPrefix('other.bin')}`)),
    ]);

    // Kept again beside the file, then the file removed: what was kept for it goes with it.
    await r.put('big.bin', bytes(10));
    expect(await interruptedPut(s, aborts, source, BLOCK + BLOCK / 2)).toBe(2 * BLOCK);
    await r.delete('big.bin');
    expect(await keptNames()).toEqual([
      expect.stringMatching(new RegExp(`^${partialNamesPrefix('other.bin')}`)),
    ]);
    // Usage is other.bin's kept block alone.
    await fillExactly(r, 'rest.bin', R_LIMIT - BLOCK);
  });

  it('frees kept blocks the retention sweep removes', async () => {
    const retentionMs = 1500;
    const s = await start({ ...smallWindows, partialRetentionMs: retentionMs });
    const listings = countHomeListings(s.storage);
    const aborts = watchAborts(s.storage);
    const kept = await interruptedPut(s, aborts, await sourceFile(2 * BLOCK), BLOCK + BLOCK / 2);
    expect(kept).toBe(BLOCK);
    const r = await s.connect(login);
    expect(await codeOf(r.put('one.bin', bytes(R_LIMIT - kept + 1)))).toBe('QUOTA_EXCEEDED');
    const walks = listings.calls;
    await until(async () => (await keptSizes(join(s.root!, 'r'))).length === 0, 'the sweep', {
      timeoutMs: 4 * retentionMs,
    });
    // The file goes from the disk a moment before the server hears the unlink done and frees its
    // bytes (on a loaded machine the put below came in between): wait for the quota to say so.
    await until(async () => (await r.space()).quota?.usedBytes === 0, 'the kept bytes freed');
    await fillExactly(r, 'all.bin', R_LIMIT);
    expect(listings.calls).toBe(walks); // by deltas
  });
});
