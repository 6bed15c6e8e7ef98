/**
 * The per-address refusal of failed logins holds for connections that were already open when it
 * began: an attacker who opens many connections first must not keep guessing on them. Password
 * checks run a few at a time (a ConcurrencyLimit), so a flood of attempts neither holds the thread pool
 * the disk needs nor gets checked past the refusal.
 */
import { symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth } from '../shared/protocol/encoder.js';
import { storageErrorFromFs } from '../storage/fsErrors.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage } from '../storage/types.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let users: UsersFile;
beforeAll(async () => {
  users = addUser(emptyUsersFile(), {
    name: 'alice',
    passwordHash: await hashPassword('alice-secret'),
    permissions: [...PERMISSIONS],
  });
});

let server: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  server = await stopServerAndPeers(server, peers);
});

describe('a login refusal in force', () => {
  it('also stops attempts on connections opened before it began, the right password and anonymous included', async () => {
    server = await startServer({
      accounts: new Accounts({ users, anonymous: 'read' }),
      loginFailureDelayMs: 1,
      maxLoginFailureDelayMs: 1,
      loginFailuresPerAddress: 3,
      loginBlockMs: 60_000,
    });
    const early = await RawPeer.open(server.port);
    const earlyAnonymous = await RawPeer.open(server.port);
    const failing = await RawPeer.open(server.port);
    peers.push(early, earlyAnonymous, failing);
    for (let attempt = 1; attempt <= 3; attempt++) {
      failing.write(encodeAuth({ user: 'alice', password: `wrong${attempt}` }));
      if (attempt < 3) {
        await failing.waitFor(
          (f) =>
            f.type === FrameType.AUTH &&
            failing.frames.filter((g) => g.type === FrameType.AUTH).length === attempt,
        );
      }
    }
    expect((await failing.connectionError()).code).toBe('LOGIN_FAILED');
    // The address is now refused: a new connection is turned away before it is read...
    const late = await RawPeer.connect(server.port);
    peers.push(late);
    expect((await late.connectionError()).code).toBe('TEMPORARILY_REFUSED');
    // ...and so is a login on the connection opened before, even with the right password.
    early.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    const error = await early.connectionError();
    expect(error.code).toBe('TEMPORARILY_REFUSED');
    expect(error.message).toMatch(/too many failed logins/);
    expect(early.frames.some((f) => f.type === FrameType.AUTH)).toBe(false);
    await early.closed;
    // The address is refused, as at accept, whoever it logs in as: anonymous needs no check, but
    // is no way around the refusal either.
    earlyAnonymous.write(encodeAuth({ user: 'anonymous' }));
    expect((await earlyAnonymous.connectionError()).code).toBe('TEMPORARILY_REFUSED');
    expect(earlyAnonymous.frames.some((f) => f.type === FrameType.AUTH)).toBe(false);
    await earlyAnonymous.closed;
  });
});

describe('password checks under a flood of attempts', () => {
  it('checks a few at a time, and refuses those whose turn comes after their address was refused', async () => {
    server = await startServer({
      accounts: new Accounts({ users }),
      loginFailureDelayMs: 1,
      maxLoginFailureDelayMs: 1,
      loginFailuresPerAddress: 3,
      loginBlockMs: 60_000,
      maxConcurrentLoginChecks: 2,
    });
    const flood = await Promise.all(Array.from({ length: 20 }, () => RawPeer.open(server!.port)));
    peers.push(...flood);
    // All sent before any is answered: each passes the check made when its AUTH arrives.
    flood.forEach((peer, i) => {
      peer.write(encodeAuth({ user: 'alice', password: `guess${i}` }));
    });
    const outcomes = await Promise.all(
      flood.map((peer) =>
        peer.waitFor((f) => f.type === FrameType.AUTH || (f.type === FrameType.ERROR && f.streamId === 0)),
      ),
    );
    const checked = server.logs.filter((line) => line.includes('failed login as')).length;
    // The third failure refuses the address; a check already running when it did may fail too.
    expect(checked).toBeGreaterThanOrEqual(3);
    expect(checked).toBeLessThanOrEqual(3 + 2 - 1);
    const refused = flood.filter((peer) =>
      peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0),
    );
    expect(outcomes).toHaveLength(20);
    expect(refused.length).toBe(20 - checked);
    for (const peer of refused) expect((await peer.connectionError()).code).toBe('TEMPORARILY_REFUSED');
    // Logged as refusals at accept are: the first, then a count (here, when the server closes).
    expect(server.logs.filter((line) => line.includes('login refused'))).toHaveLength(1);
    const logs = server.logs;
    await server.stop();
    server = undefined;
    const counted = new RegExp(`^refused ${refused.length - 1} more connections \\(too many failed logins`);
    expect(logs.filter((line) => counted.test(line))).toHaveLength(1);
  });

  it('drops the waiting checks of connections that close (the handshake timeout), not when their turn comes', async () => {
    // One check held until released: those behind it wait, as behind scrypt under a flood. The
    // socket is not read while a check is pending, so a client going away is seen at the handshake
    // timeout; before, its check still held a place in the line until its turn.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let checksRun = 0;
    class HeldAccounts extends Accounts {
      override async verify(name: string, password: string) {
        checksRun++;
        await held;
        return super.verify(name, password);
      }
    }
    server = await startServer({
      accounts: new HeldAccounts({ users }),
      maxConcurrentLoginChecks: 1,
      handshakeTimeoutMs: 1_000,
    });
    const first = await RawPeer.open(server.port);
    peers.push(first);
    first.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    const flood = await Promise.all(Array.from({ length: 30 }, () => RawPeer.open(server!.port)));
    peers.push(...flood);
    for (const peer of flood) peer.write(encodeAuth({ user: 'alice', password: 'guess' }));
    const deadline = Date.now() + 8_000;
    while (server.server.loginChecksWaiting < flood.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(server.server.loginChecksWaiting).toBe(flood.length);
    await Promise.all(flood.map((peer) => peer.closed));
    while (server.server.loginChecksWaiting > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // Gone while the first check still runs: the line holds nothing for them.
    expect(server.server.loginChecksWaiting).toBe(0);
    release();
    await first.closed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(checksRun).toBe(1);
    expect(server.logs.join('\n')).not.toMatch(/login error/);
  });

  /** A server whose password checks wait for release(), with a 300 ms handshake timeout; checkStarted once one runs. */
  async function serverWithHeldChecks() {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let checking!: () => void;
    const checkStarted = new Promise<void>((resolve) => {
      checking = resolve;
    });
    class HeldAccounts extends Accounts {
      override async verify(name: string, password: string) {
        checking();
        await held;
        return super.verify(name, password);
      }
    }
    server = await startServer({ accounts: new HeldAccounts({ users }), handshakeTimeoutMs: 300 });
    return { release, checkStarted };
  }

  it('logs nobody in whose connection closed (its handshake timeout) during the password check, the right password too', async () => {
    const { release, checkStarted } = await serverWithHeldChecks();
    const peer = await RawPeer.open(server!.port);
    peers.push(peer);
    peer.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    await checkStarted;
    await peer.closed;
    release();
    // The check's answer is dropped: no session opens for a connection that is gone.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server!.logs.join('\n')).not.toMatch(/logged in as|login error/);
  });

  it('logs a wrong password whose connection closed during its check (the handshake timeout), as any other', async () => {
    const { release, checkStarted } = await serverWithHeldChecks();
    const peer = await RawPeer.open(server!.port);
    peers.push(peer);
    peer.write(encodeAuth({ user: 'alice', password: 'guess' }));
    await checkStarted;
    // The check still runs when the handshake times out and the connection closes.
    await peer.closed;
    release();
    const deadline = Date.now() + 5_000;
    const failed = () => server!.logs.find((line) => line.includes('failed login as alice'));
    while (failed() === undefined && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    // Before: counted (metrics, the address's refusal), but no line for an operator or fail2ban.
    expect(failed()).toMatch(/failed login as alice \(the connection closed before the answer\)$/);
  });

  it("the login checks' ConcurrencyLimit runs at most its max at once, in arrival order", async () => {
    const queue = new ConcurrencyLimit(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const check = (id: number) => async () => {
      running++;
      most = Math.max(most, running);
      order.push(id);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      if (id === 3) throw new Error('a failed check frees its turn too');
      return id;
    };
    const results = await Promise.allSettled([1, 2, 3, 4, 5, 6].map((id) => queue.run(check(id))));
    expect(most).toBe(2);
    expect(order).toEqual([1, 2, 3, 4, 5, 6]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    expect(queue.waitingCount).toBe(0);
    expect(() => new ConcurrencyLimit(0)).toThrow(TypeError);
  });
});

describe('a home the users file names that cannot be used', () => {
  it('fails the login with IO_ERROR and says why in the log, not as an internal error', async () => {
    const linked = addUser(users, {
      name: 'linky',
      passwordHash: await hashPassword('linky-secret'),
      permissions: [...PERMISSIONS],
      home: 'out',
    });
    server = await startServer({ backend: 'disk', accounts: new Accounts({ users: linked }) });
    await symlink(tmpdir(), `${server.root!}/out`);
    const error = await server.connect({ user: 'linky', password: 'linky-secret' }).then(
      () => undefined,
      (e: { code: string; message: string }) => e,
    );
    expect(error).toMatchObject({ code: 'IO_ERROR' });
    expect(error!.message).toContain("the account's home directory cannot be used");
    expect(server.logs.join('\n')).toMatch(/cannot use home \/out of linky: path leads outside the root/);
    // Others log in as before.
    const alice = await server.connect({ user: 'alice', password: 'alice-secret' });
    expect(await alice.list('')).toEqual([]);
  });

  /** A memory storage whose subtree() (the home's view, after the password check) does as told. */
  function storageWithSubtree(
    subtree: (path: string, real: (path: string) => Promise<Storage>) => Promise<Storage>,
  ) {
    const storage = new MemoryStorage();
    const real = storage.subtree.bind(storage);
    storage.subtree = (path: string) => subtree(path, real);
    return storage;
  }

  it('fails a home that fails for another reason (a bug) as an internal error, said as a login error', async () => {
    const storage = storageWithSubtree(async () => {
      throw new TypeError('a bug in subtree');
    });
    server = await startServer({ storage, accounts: new Accounts({ users }) });
    const error = await server.connect({ user: 'alice', password: 'alice-secret' }).then(
      () => undefined,
      (e: { code: string }) => e,
    );
    expect(error).toMatchObject({ code: 'INTERNAL_ERROR' });
    expect(server.logs.join('\n')).toMatch(/login error: TypeError: a bug in subtree/);
    expect(server.logs.join('\n')).not.toMatch(/cannot use home/);
  });

  it('refuses a login whose home could not be opened for want of a file descriptor SERVER_BUSY, as a connection near the limit is', async () => {
    // EMFILE is SERVER_BUSY (storage/fsErrors.ts), which a client waits out and connects again;
    // this path made any storage error IO_ERROR "home cannot be used", failed for good, and
    // logged the home as unusable for the operator to fix.
    let starved = true;
    const storage = storageWithSubtree(async (path, real) => {
      if (!starved) return real(path);
      throw storageErrorFromFs(
        Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' }),
        path,
      );
    });
    server = await startServer({ storage, accounts: new Accounts({ users }) });
    const error = await server.connect({ user: 'alice', password: 'alice-secret' }).then(
      () => undefined,
      (e: { code: string; details?: unknown }) => e,
    );
    expect(error).toMatchObject({ code: 'SERVER_BUSY', details: { limit: 'fileDescriptors' } });
    expect(server.logs.join('\n')).not.toMatch(/cannot use home/);
    expect(server.logs.join('\n')).toMatch(/login refused: server busy: out of file descriptors/);
    starved = false;
    const alice = await server.connect({ user: 'alice', password: 'alice-secret' });
    expect(await alice.list('')).toEqual([]);
  });

  it('logs nobody in whose connection closed (its handshake timeout) while the home was being opened', async () => {
    let entered!: () => void;
    const inSubtree = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const storage = storageWithSubtree(async (path, real) => {
      entered();
      await released;
      return real(path);
    });
    const events: string[] = [];
    server = await startServer({
      storage,
      accounts: new Accounts({ users }),
      // Counted from accept: long enough for the password check (scrypt, ~80 ms; more on a loaded
      // machine) to reach the home, or the connection closes before it and inSubtree never comes.
      handshakeTimeoutMs: 2_000,
      logEvent: (e) => events.push(e.event),
    });
    const peer = await RawPeer.open(server.port);
    peers.push(peer);
    peer.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    await inSubtree;
    // Reading is paused while a login is checked: the handshake timeout is what closes it.
    for (let i = 0; i < 500 && !events.includes('closed'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(events).toContain('closed');
    release();
    await new Promise((r) => setTimeout(r, 300));
    expect(events).not.toContain('logged_in');
    expect(server.logs.join('\n')).not.toMatch(/logged in as alice/);
  });
});

describe('a login failure delay past what a timer holds (~24.8 days)', () => {
  it('still delays the answer: node waited 1 ms for it, so there was none', async () => {
    server = await startServer({
      accounts: new Accounts({ users }),
      loginFailureDelayMs: 2 ** 32,
      maxLoginFailureDelayMs: 2 ** 33,
    });
    const peer = await RawPeer.open(server.port);
    peers.push(peer);
    peer.write(encodeAuth({ user: 'alice', password: 'wrong' }));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(peer.frames.filter((f) => f.type === FrameType.AUTH)).toEqual([]);
  });
});
