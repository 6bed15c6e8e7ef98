/**
 * A stream cancelled while its storage call is still under way (a stat on a slow disk) counts
 * against --max-streams-per-connection until that call settles: its slot was free at the CANCEL,
 * so a client sending OPEN, then CANCEL once the call had started, round after round, had any
 * number of calls under way with no stream open (34,863 stats after 1 s against a disk doing one
 * at a time). Now the connection stops reading once its open streams and those closed ones reach
 * the cap, and reads again as their work settles. Real sockets; the storage's stats wait for the
 * test, and the client writes each frame only once the server has acted on the one before, so
 * each comes in a read of its own.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Flags, FrameType, PROTOCOL_VERSION } from '../shared/protocol/constants.js';
import { encodeCancel, encodeHello, encodeOpen, encodePing } from '../shared/protocol/encoder.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage } from '../storage/types.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
let releaseStats: () => void = () => {};
afterEach(async () => {
  releaseStats();
  env = await stopServerAndPeers(env, peers);
});

/** `storage` whose stats wait until released; counts the stats started. */
function heldStats(storage: Storage): { storage: Storage; started(): number; release(): void } {
  let started = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const wrapped = new Proxy(storage, {
    get(target, property) {
      if (property === 'stat') {
        return async (path: string) => {
          started++;
          await released;
          return target.stat(path);
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { storage: wrapped, started: () => started, release };
}

const CAP = 8;
/** Rounds the client tries: without the bound, every one of them starts a stat. */
const ROUNDS = 3 * CAP;

/** A connection that asked for keepalive PINGs: the server sends them while it does not read it. */
async function keepalivePeer(port: number): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  peers.push(peer);
  peer.write(
    encodeHello({
      protocol: 'muxftp',
      versions: [PROTOCOL_VERSION],
      maxFramePayload: 1024 * 1024,
      integrity: ['xxh128'],
      keepaliveMs: 1000,
    }),
  );
  await peer.waitFor((f) => f.type === FrameType.WELCOME);
  return peer;
}

/** A PING of the server's own (not an answer to ours): its reading is held. */
const isServerPing = (f: { type: number; flags: number }) =>
  f.type === FrameType.PING && (f.flags & Flags.ACK) === 0;

/**
 * OPEN stat, wait until its stat has started (or the server, no longer reading, sends a
 * keepalive PING), CANCEL; round after round. Returns once the server stopped reading, or after
 * ROUNDS rounds.
 */
async function flood(
  peer: RawPeer,
  held: { started(): number },
  request: Parameters<typeof encodeOpen>[1] = { op: 'stat', path: 'missing' },
): Promise<void> {
  for (let i = 0; i < ROUNDS; i++) {
    const id = 2 * i + 1;
    const before = held.started();
    peer.write(encodeOpen(id, request));
    let stopped = false;
    await vi.waitFor(
      () => {
        stopped = peer.frames.some(isServerPing);
        if (!stopped) expect(held.started()).toBe(before + 1);
      },
      { timeout: 5000, interval: 2 },
    );
    if (stopped) return;
    peer.write(encodeCancel(id));
  }
}

describe('--max-streams-per-connection counts cancelled streams whose storage call still runs', () => {
  it('OPEN + CANCEL rounds against a held disk start at most the cap of stats; then the connection answers', async () => {
    const memory = new MemoryStorage();
    memory.volume.writeFileSync('/f', 'four');
    const held = heldStats(memory);
    releaseStats = held.release;
    env = await startServer({ storage: held.storage, maxStreamsPerConnection: CAP });
    const peer = await keepalivePeer(env.port);
    await flood(peer, held);
    // Before: all 24 started, none open, and the server read on (no keepalive PING came).
    expect(held.started()).toBeLessThanOrEqual(CAP);
    expect(peer.frames.some(isServerPing)).toBe(true);
    // The disk answers: the stats settle, the server reads again and answers.
    held.release();
    peer.write(encodePing(Buffer.from('still-on')));
    await peer.waitFor((f) => f.type === FrameType.PING && (f.flags & Flags.ACK) !== 0);
    const id = 2 * ROUNDS + 1;
    peer.write(encodeOpen(id, { op: 'stat', path: 'f' }));
    const reply = await peer.waitFor((f) => f.streamId === id);
    expect(reply.type).toBe(FrameType.REPLY);
    expect(JSON.parse(reply.payload.toString())).toMatchObject({ entry: { name: 'f', size: 4 } });
    expect(env.server.counters.streams).toBe(0);
  });

  it('a connection gone while its reading is held closes, and the work settling after it leaves nothing behind', async () => {
    const memory = new MemoryStorage();
    const held = heldStats(memory);
    releaseStats = held.release;
    env = await startServer({ storage: held.storage, maxStreamsPerConnection: CAP });
    const peer = await keepalivePeer(env.port);
    await flood(peer, held);
    expect(peer.frames.some(isServerPing)).toBe(true);
    peer.destroy();
    await vi.waitFor(() => expect(env!.server.counters.connections).toBe(0), { timeout: 5000 });
    held.release();
    // A new connection is read and answered as usual.
    const next = await RawPeer.open(env.port);
    peers.push(next);
    next.write(encodeOpen(1, { op: 'stat', path: 'missing' }));
    expect((await next.streamError(1)).code).toBe('NOT_FOUND');
  });

  it('a connection held at the cap on a hung disk is closed SERVER_BUSY (storage), not said idle', async () => {
    // Its OPEN sent after the cancels waits unread: it was closed IDLE_TIMEOUT, "idle for …" in
    // the log, counted as an idle client, though the client was not idle: the server held it.
    const memory = new MemoryStorage();
    const held = heldStats(memory);
    releaseStats = held.release;
    // Longer than the keepalive (1 s): the flood ends on the server's PING before the close (at
    // 500 ms, a loaded machine's close came first and the flood waited out its 5 s).
    env = await startServer({ storage: held.storage, maxStreamsPerConnection: CAP, idleTimeoutMs: 2000 });
    const peer = await keepalivePeer(env.port);
    await flood(peer, held);
    expect(peer.frames.some(isServerPing)).toBe(true);
    const error = await peer.connectionError();
    expect(error).toMatchObject({ code: 'SERVER_BUSY', details: { limit: 'storage' } });
    expect(error.message).toMatch(/storage has not finished/);
    await peer.closed;
    expect(env.logs.join('\n')).toMatch(
      /reading held 2000 ms for its storage work \(\d+ storage calls of streams over, 0 B for the disk\), closing/,
    );
    expect(env.logs.join('\n')).not.toMatch(/idle for/);
    await vi.waitFor(() => expect(env!.server.counters.connections).toBe(0), { timeout: 5000 });
    expect(env.server.counters.errors.get('IDLE_TIMEOUT')).toBeUndefined();
    expect(env.server.counters.errors.get('SERVER_BUSY')).toBe(1);
  }, 15_000);

  it("a put cancelled during its set-up's storage call (a path ending in '/' is looked up) counts too", async () => {
    const memory = new MemoryStorage();
    const held = heldStats(memory);
    releaseStats = held.release;
    env = await startServer({ storage: held.storage, maxStreamsPerConnection: CAP });
    const peer = await keepalivePeer(env.port);
    await flood(peer, held, { op: 'put', path: 'd/', size: 1 });
    // Before: the set-up before the file is asked for was not counted, all 24 stats started.
    expect(held.started()).toBeLessThanOrEqual(CAP);
    expect(peer.frames.some(isServerPing)).toBe(true);
    held.release();
    const id = 2 * ROUNDS + 1;
    peer.write(encodeOpen(id, { op: 'stat', path: 'missing' }));
    expect((await peer.streamError(id)).code).toBe('NOT_FOUND');
  });
});
