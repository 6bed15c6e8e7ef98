/**
 * The handshake's initial upload window (docs/PROTOCOL.md "Flow control"): a client that opts in
 * in HELLO is told in WELCOME how much DATA every new `put` may carry before any WINDOW, and the
 * server counts that credit as granted. Over real sockets, with raw peers for the wire rules and
 * the real client through a proxy that drops every WINDOW the server sends.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { DEFAULTS } from '../shared/defaults.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FRAME_TYPE_NAMES, FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeData, encodeEnd, encodeFrame, encodeOpen } from '../shared/protocol/encoder.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { type FrameProxy, startFrameProxy } from './helpers/frameProxy.js';
import { holdSetUp } from './helpers/heldSetUp.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const KiB = 1024;
const N = DEFAULTS.uploadInitialWindowBytes;

let env: TestServer | undefined;
let proxy: FrameProxy | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  // The clients first: the proxy closes once their sockets through it are gone.
  env = await stopServerAndPeers(env, peers);
  await proxy?.close();
  proxy = undefined;
});

async function openPeer(port: number, uploadInitialWindow: boolean): Promise<RawPeer> {
  const peer = await RawPeer.open(port, ['xxh128'], { uploadInitialWindow });
  peers.push(peer);
  return peer;
}

function welcomeLimits(peer: RawPeer): Record<string, unknown> {
  const welcome = peer.frames.find((f) => f.type === FrameType.WELCOME)!;
  return JSON.parse(welcome.payload.toString()).limits;
}

/** OPEN, DATA of `bytes` and END of a put, in one write: nothing waits for a WINDOW. */
function blindPut(peer: RawPeer, id: number, path: string, bytes: Buffer, size?: number): void {
  peer.write(
    Buffer.concat([
      encodeOpen(id, size === undefined ? { op: 'put', path } : { op: 'put', path, size }),
      encodeData(id, bytes),
      encodeEnd(id, bytes.length, 'xxh128', contentDigest('xxh128', bytes)),
    ]),
  );
}

const windowsFor = (peer: RawPeer, id: number): number[] =>
  peer.frames
    .filter((f) => f.type === FrameType.WINDOW && f.streamId === id)
    .map((f) => f.payload.readUInt32BE(0));

describe('a client that opts in to the initial upload window', () => {
  it('is told N in WELCOME, sends OPEN + N bytes + END without a WINDOW, and the file is stored', async () => {
    env = await startServer();
    const release = holdSetUp(env.storage); // no set-up, so no WINDOW it could have waited for
    const peer = await openPeer(env.port, true);
    expect(welcomeLimits(peer).uploadInitialWindow).toBe(N);
    const bytes = Buffer.alloc(N, 0x5a);
    blindPut(peer, 1, 'blind.bin', bytes, bytes.length);
    // Frames are handled in order: once stream 3 is answered, the DATA and END were taken.
    peer.write(encodeOpen(3, { op: 'stat', path: 'nothing-here' }));
    await peer.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 3);
    expect(peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);
    release();
    const reply = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    expect(JSON.parse(reply.payload.toString()).digest).toBe(contentDigest('xxh128', bytes).toString('hex'));
    const client = await env.connect();
    expect((await client.getBuffer('blind.bin')).equals(bytes)).toBe(true);
    // The N bytes count as granted: WINDOW brought only the rest of the stream window.
    const granted = windowsFor(peer, 1).reduce((sum, w) => sum + w, 0);
    expect(granted).toBe(DEFAULTS.streamWindowBytes - N);
  });

  it('that sends more than N before any WINDOW is a FLOW_CONTROL_ERROR; exactly N is not', async () => {
    // A bandwidth limit keeps the rest of the window until the set-up, which is held: the client
    // has N bytes of credit and no more.
    env = await startServer({ maxRateBytesPerSecond: 1024 * 1024 * 1024 });
    const release = holdSetUp(env.storage);
    const exact = await openPeer(env.port, true);
    exact.write(Buffer.concat([encodeOpen(1, { op: 'put', path: 'a' }), encodeData(1, Buffer.alloc(N))]));
    exact.write(encodeOpen(3, { op: 'stat', path: 'a' }));
    await exact.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 3);
    expect(windowsFor(exact, 1)).toEqual([]);
    expect(exact.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);

    const over = await openPeer(env.port, true);
    over.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'b' }),
        encodeData(1, Buffer.alloc(N)),
        encodeData(1, Buffer.alloc(1)),
      ]),
    );
    expect((await over.connectionError()).code).toBe('FLOW_CONTROL_ERROR');
    expect(windowsFor(over, 1)).toEqual([]);
    // Set up, the upload gets the rest of its window: N were granted, and the client has sent them.
    release();
    await exact.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    expect(windowsFor(exact, 1)).toEqual([DEFAULTS.streamWindowBytes - N]);
  });

  it('has its pre-sent DATA and END dropped when the set-up fails, and nothing is stored', async () => {
    env = await startServer({ backend: 'disk' });
    await writeFile(join(env.root!, 'file'), 'a file, not a directory');
    await mkdir(join(env.root!, 'dir'));
    const peer = await openPeer(env.port, true);
    const bytes = Buffer.alloc(64 * KiB, 1);
    blindPut(peer, 1, 'file/under-a-file.bin', bytes, bytes.length); // its parent is a file
    blindPut(peer, 3, 'dir', bytes, bytes.length); // a directory's name
    expect((await peer.streamError(1)).code).toBe('NOT_A_DIRECTORY');
    expect((await peer.streamError(3)).code).toBe('IS_A_DIRECTORY');
    // The connection goes on, and a later upload on it works.
    blindPut(peer, 5, 'ok.bin', bytes, bytes.length);
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 5);
    expect(peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);
    expect((await readdir(env.root!)).sort()).toEqual(['dir', 'file', 'ok.bin']);
    expect(await readdir(join(env.root!, 'dir'))).toEqual([]);
  });

  it('cancelled while its pre-sent bytes wait for the set-up: they are let go at once, nothing is stored', async () => {
    env = await startServer({ backend: 'disk' });
    const release = holdSetUp(env.storage);
    const server = env.server;
    const backlog = () => server.connectionFigures().reduce((sum, c) => sum + c.uploadBacklogBytes, 0);
    const peer = await openPeer(env.port, true);
    peer.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'cancelled.bin', size: 2 * N }),
        encodeData(1, Buffer.alloc(N, 1)),
      ]),
    );
    for (const started = Date.now(); backlog() === 0 && Date.now() - started < 5_000; )
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(backlog()).toBeGreaterThan(0);
    // CANCEL, and DATA that crossed it on the wire: dropped, not a violation.
    peer.write(Buffer.concat([encodeFrame(FrameType.CANCEL, 0, 1), encodeData(1, Buffer.alloc(10))]));
    peer.write(encodeOpen(3, { op: 'stat', path: 'cancelled.bin' }));
    expect((await peer.streamError(3)).code).toBe('NOT_FOUND');
    expect(backlog()).toBe(0);
    release(); // the set-up the stream no longer waits for completes, and is thrown away
    blindPut(peer, 5, 'ok.bin', Buffer.from('ok'));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 5);
    expect(peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);
    // The thrown-away set-up's temporary file goes too.
    let names = await readdir(env.root!);
    for (const started = Date.now(); names.length > 1 && Date.now() - started < 5_000; ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      names = await readdir(env.root!);
    }
    expect(names).toEqual(['ok.bin']);
  });
});

describe('a client that does not opt in (written before the initial window)', () => {
  it('is announced none, has no credit before its first WINDOW, and uploads as before', async () => {
    env = await startServer({ maxRateBytesPerSecond: 1024 * 1024 * 1024 });
    const release = holdSetUp(env.storage);
    const blind = await openPeer(env.port, false);
    expect(welcomeLimits(blind)).not.toHaveProperty('uploadInitialWindow');
    blind.write(Buffer.concat([encodeOpen(1, { op: 'put', path: 'a' }), encodeData(1, Buffer.alloc(1))]));
    expect((await blind.connectionError()).code).toBe('FLOW_CONTROL_ERROR');

    const waits = await openPeer(env.port, false);
    const bytes = Buffer.alloc(100 * KiB, 3);
    waits.write(encodeOpen(1, { op: 'put', path: 'waited.bin', size: bytes.length }));
    release();
    const window = await waits.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    // All of the window: nothing was counted as granted for a client that did not ask.
    expect(window.payload.readUInt32BE(0)).toBe(DEFAULTS.streamWindowBytes);
    waits.write(encodeData(1, bytes));
    waits.write(encodeEnd(1, bytes.length, 'xxh128', contentDigest('xxh128', bytes)));
    await waits.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    const client = await env.connect();
    expect((await client.getBuffer('waited.bin')).equals(bytes)).toBe(true);
  });
});

describe('refusals before the set-up', () => {
  let users: UsersFile;
  beforeAll(async () => {
    users = addUser(emptyUsersFile(), {
      name: 'small',
      passwordHash: await hashPassword('small-secret'),
      permissions: [...PERMISSIONS],
      quota: 1024 * KiB,
    });
  });

  async function loggedIn(port: number, user: string, password?: string): Promise<RawPeer> {
    const peer = await openPeer(port, true);
    peer.write(encodeAuth(password === undefined ? { user } : { user, password }));
    await peer.waitFor((f) => f.type === FrameType.AUTH);
    return peer;
  }

  it('a put without the write permission, its DATA and END already sent, is refused and stores nothing', async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users, anonymous: 'read' }) });
    const peer = await loggedIn(env.port, 'anonymous');
    expect(welcomeLimits(peer).uploadInitialWindow).toBe(N);
    blindPut(peer, 1, 'nope.bin', Buffer.alloc(10 * KiB), 10 * KiB);
    expect((await peer.streamError(1)).code).toBe('PERMISSION_DENIED');
    peer.write(encodeOpen(3, { op: 'list', path: '' }));
    const listing = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    expect(JSON.parse(listing.payload.toString()).entries).toEqual([]);
    expect(peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);
  });

  it("under a quota: bytes sent before the quota's check count once, and a refused put gives all back", async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const peer = await loggedIn(env.port, 'small', 'small-secret');
    // Declares more than the quota: refused, though N bytes came with its OPEN.
    blindPut(peer, 1, 'too-big.bin', Buffer.alloc(N, 1), 2048 * KiB);
    expect((await peer.streamError(1)).code).toBe('QUOTA_EXCEEDED');
    // No declared size: the N bytes arrive before the reservation is made, the rest after.
    const first = Buffer.alloc(N, 2);
    const rest = Buffer.alloc(344 * KiB, 3);
    const whole = Buffer.concat([first, rest]);
    peer.write(Buffer.concat([encodeOpen(3, { op: 'put', path: 'grown.bin' }), encodeData(3, first)]));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 3);
    peer.write(encodeData(3, rest));
    peer.write(encodeEnd(3, whole.length, 'xxh128', contentDigest('xxh128', whole)));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    peer.write(encodeOpen(5, { op: 'delete', path: 'grown.bin' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 5);
    // Nothing stayed reserved: a put of 1000 KiB still fits the 1024 KiB quota (counted twice, or
    // left over, the first bytes would not let it).
    const almostAll = Buffer.alloc(1000 * KiB, 4);
    peer.write(encodeOpen(7, { op: 'put', path: 'almost-all.bin', size: almostAll.length }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 7);
    peer.write(encodeData(7, almostAll));
    peer.write(encodeEnd(7, almostAll.length, 'xxh128', contentDigest('xxh128', almostAll)));
    const done = await peer.waitFor(
      (f) => (f.type === FrameType.REPLY || f.type === FrameType.ERROR) && f.streamId === 7,
    );
    expect(done.type === FrameType.ERROR ? parseErrorPayload(done).code : 'stored').toBe('stored');
  });
});

describe('an initial window as large as the stream window', () => {
  it('earns no WINDOW before the set-up where credit waits for it (a bandwidth limit); the put completes after', async () => {
    const window = 512 * KiB;
    env = await startServer({
      maxRateBytesPerSecond: 1024 * 1024 * 1024,
      streamWindowBytes: window,
      streamWindowMaxBytes: window,
      uploadInitialWindowBytes: window,
    });
    const release = holdSetUp(env.storage);
    const peer = await openPeer(env.port, true);
    expect(welcomeLimits(peer).uploadInitialWindow).toBe(window);
    // The whole initial window, past half the stream window, before the set-up is done.
    const first = Buffer.alloc(window, 6);
    peer.write(Buffer.concat([encodeOpen(1, { op: 'put', path: 'roomy.bin' }), encodeData(1, first)]));
    peer.write(encodeOpen(3, { op: 'stat', path: 'nothing-here' }));
    await peer.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 3);
    expect(windowsFor(peer, 1)).toEqual([]);
    release();
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    const rest = Buffer.alloc(100 * KiB, 7);
    const whole = Buffer.concat([first, rest]);
    peer.write(encodeData(1, rest));
    peer.write(encodeEnd(1, whole.length, 'xxh128', contentDigest('xxh128', whole)));
    const done = await peer.waitFor(
      (f) => (f.type === FrameType.REPLY || f.type === FrameType.ERROR) && f.streamId === 1,
    );
    expect(done.type === FrameType.ERROR ? parseErrorPayload(done).code : 'stored').toBe('stored');
    const client = await env.connect();
    expect((await client.getBuffer('roomy.bin')).equals(whole)).toBe(true);
    await client.close();
  });
});

/**
 * A proxy in front of the server that records the frame types the client sends, in order, and
 * drops every WINDOW the server sends: an upload through it completes only on credit the client
 * held without a WINDOW.
 */
async function windowDroppingProxy(serverPort: number): Promise<{ port: number; sent: string[] }> {
  const sent: string[] = [];
  proxy = await startFrameProxy(serverPort, {
    fromClient: (frame) => {
      sent.push(`${FRAME_TYPE_NAMES[frame.type]} ${frame.streamId}`);
      return frame;
    },
    fromServer: (frame) => (frame.type === FrameType.WINDOW ? undefined : frame),
  });
  return { port: proxy.port, sent };
}

describe('the real client', () => {
  it("sends a small file's DATA and END right behind its OPEN, before any WINDOW", async () => {
    env = await startServer();
    const { port, sent } = await windowDroppingProxy(env.port);
    const client = await env.connect({ port });
    const bytes = Buffer.alloc(64 * KiB, 9);
    const result = await client.put('small.bin', bytes, { signal: AbortSignal.timeout(5_000) });
    expect(result.digest).toBe(contentDigest('xxh128', bytes).toString('hex'));
    expect(sent.filter((f) => !f.endsWith(' 0'))).toEqual(['OPEN 1', 'DATA 1', 'END 1']);
    // A file larger than N needs the WINDOWs this proxy drops: it does not complete.
    const large = client.put('large.bin', Buffer.alloc(N + 1), { signal: AbortSignal.timeout(500) });
    await expect(large).rejects.toMatchObject({ code: 'CANCELLED' });
    const direct = await env.connect();
    expect((await direct.getBuffer('small.bin')).equals(bytes)).toBe(true);
  });

  it('waits for the first WINDOW when the server announces none (serve --upload-initial-window 0)', async () => {
    env = await startServer({ uploadInitialWindowBytes: 0 });
    const { port } = await windowDroppingProxy(env.port);
    const viaProxy = await env.connect({ port });
    expect(viaProxy.serverInfo.limits.uploadInitialWindow).toBe(0);
    const small = Buffer.alloc(1024, 7);
    const stuck = viaProxy.put('stuck.bin', small, { signal: AbortSignal.timeout(500) });
    await expect(stuck).rejects.toMatchObject({ code: 'CANCELLED' });
    const direct = await env.connect();
    expect((await direct.put('fine.bin', small)).digest).toBe(contentDigest('xxh128', small).toString('hex'));
    expect(await direct.list('')).toMatchObject([{ name: 'fine.bin' }]);
  });
});
