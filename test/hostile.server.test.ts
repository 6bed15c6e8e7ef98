/**
 * Issue #7, the server side: listings and replies a hostile client asks for must stay bounded in
 * memory and in time for everyone else. Stalls are measured by an unrelated client
 * (helpers/servedProbe.ts) against bounds far from both the fixed and the broken figures.
 */
import type { Socket } from 'node:net';
import { Volume } from 'memfs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../client/client.js';
import { MuxServer } from '../server/server.js';
import { DEFAULTS } from '../shared/defaults.js';
import { FrameType, PROTOCOL_VERSION } from '../shared/protocol/constants.js';
import { encodeData, encodeHello, encodeOpen, encodeWindow } from '../shared/protocol/encoder.js';
import { isTemporaryName } from '../shared/temporaryNames.js';
import type { FsPromises } from '../storage/fsApi.js';
import { FsStorage } from '../storage/fsStorage.js';
import { type MemoryStorage, memfsApi } from '../storage/memory.js';
import { MiB } from './helpers/heap.js';
import { RawPeer } from './helpers/rawPeer.js';
import { probeOtherClients } from './helpers/servedProbe.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.useRealTimers();
  env = await stopServerAndPeers(env, peers);
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

function fillDirectory(volume: Volume, dir: string, count: number, padding = ''): void {
  volume.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++)
    volume.writeFileSync(`${dir}/entry-${String(i).padStart(6, '0')}${padding}`, '');
}

describe('a huge listing', () => {
  it('four clients listing 20,000 entries get them all, in order, while others are served', async () => {
    env = await startServer({ backend: 'memory' });
    fillDirectory((env.storage as MemoryStorage).volume, '/huge', 20_000);
    const probe = await probeOtherClients(env.port);
    const listers = await Promise.all([0, 1, 2, 3].map(() => env!.connect()));
    const listedFrom = performance.now();
    const listings = await Promise.all(listers.map((c) => c.list('huge')));
    const listingMs = performance.now() - listedFrom;
    const { worstMs, worstCpuMs, failed } = await probe.stop();
    for (const entries of listings) {
      expect(entries).toHaveLength(20_000);
      expect(entries[19_999]!.name).toBe('entry-019999');
    }
    expect(failed).toBe(0);
    // Others wait for a batch, not for a listing: no request of theirs waited behind 400 ms of
    // this process's work (150-210 ms here, also at a load of 14 on 2 cores; 590-640 ms when the
    // listing did not let the loop turn between batches: listingTurns.test.ts checks the turns
    // themselves, untimed). In wall-clock time, under 1.5 s on a quiet machine as before, and never
    // half the listings' own time, which a loaded machine stretches as it stretches every wait
    // (the full suite: 2.6 s once, when 1.5 s was the bound).
    expect(worstCpuMs).toBeLessThan(400);
    expect(worstMs).toBeLessThan(Math.max(1_500, listingMs / 2));
  });

  it('looks entries up in bounded batches, and stops when its client goes away', async () => {
    const volume = new Volume();
    // Long names: ~30 MB of answers, more than the kernel's socket buffers absorb.
    fillDirectory(volume, '/big', 100_000, 'n'.repeat(200));
    // A second listing, made once the first client has gone: 40 batches, so 40 turns of the loop
    // in which a listing that went on after its client left would have gone on looking up.
    fillDirectory(volume, '/after', 40 * DEFAULTS.listBatchEntries);
    let lstats = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const fs = volume.promises;
    const counting: FsPromises = {
      ...memfsApi(volume),
      lstat: async (p) => {
        if (!String(p).startsWith('/big/')) return fs.lstat(p);
        lstats++;
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        try {
          return await fs.lstat(p);
        } finally {
          inFlight--;
        }
      },
    };
    const storage = new FsStorage({ fs: counting, root: '/', durable: false });
    const server = new MuxServer({ storage, host: '127.0.0.1', port: 0, log: () => {} });
    const { port } = await server.listen();
    cleanups.push(async () => {
      await server.close(0);
      await storage.close();
    });
    const peer = await RawPeer.open(port);
    peer.socket.pause(); // reads nothing: the listing can only proceed as far as the budget allows
    peer.write(encodeOpen(1, { op: 'list', path: 'big' }));
    // Until the listing has started and then stalled on the budget (no lookup for 200 ms), up to
    // 10 s: a fixed 300 ms could end before the server began on a loaded machine. A turn of I/O
    // before each look: descheduled past 200 ms, this process wakes to its timers first, and would
    // see the count stand still before the socket's room that came meanwhile let the listing on.
    let seen = -1;
    for (let i = 0; i < 50 && (lstats === 0 || lstats !== seen); i++) {
      seen = lstats;
      await delay(200);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const whileConnected = lstats;
    expect(whileConnected).toBeGreaterThan(0);
    peer.destroy();
    for (let i = 0; i < 250 && server.connectionFigures().length > 0; i++) await delay(20);
    expect(server.connectionFigures()).toEqual([]);
    const other = await Client.connect({ host: '127.0.0.1', port });
    cleanups.push(() => other.destroy());
    expect(await other.list('after')).toHaveLength(40 * DEFAULTS.listBatchEntries);
    // Bounded batches, produced only as they can be sent, and nothing after the client left.
    expect(maxInFlight).toBeLessThanOrEqual(DEFAULTS.listBatchEntries); // 100,000 at once before
    expect(whileConnected).toBeLessThan(60_000);
    expect(lstats - whileConnected).toBeLessThan(2_000);
  });
});

describe('replies to a client that never reads', () => {
  it('4 connections x 128 listings of 2,000 entries, never read: memory stays bounded, others are served', async () => {
    env = await startServer({ backend: 'memory' });
    fillDirectory((env.storage as MemoryStorage).volume, '/dir', 2_000);
    const probe = await probeOtherClients(env.port);
    for (let c = 0; c < 4; c++) {
      const peer = await RawPeer.open(env.port);
      peers.push(peer);
      peer.socket.pause();
      const opens: Buffer[] = [];
      for (let s = 0; s < 128; s++) opens.push(encodeOpen(2 * s + 1, { op: 'list', path: 'dir' }));
      peer.write(Buffer.concat(opens));
    }
    // Until every one of them holds what its budget allows (2 MiB or more: the server did answer
    // them) and the total has not changed for 200 ms, at most 10 s. Unbounded, it would have gone
    // on growing towards 19 MB each.
    const labels = peers.map((peer) => ` 127.0.0.1:${(peer.socket as Socket).localPort}`);
    const attackers = () =>
      env!.server.connectionFigures().filter((c) => labels.some((label) => c.label.endsWith(label)));
    const everyAttackerHeld = () =>
      attackers().length === 4 && attackers().every((c) => c.bufferedAmount >= 2 * MiB);
    let peak = 0;
    for (let i = 0, last = -1, still = 0; i < 200 && (still < 4 || !everyAttackerHeld()); i++) {
      await delay(50);
      const held = env.server.connectionFigures().reduce((sum, c) => sum + c.bufferedAmount, 0);
      peak = Math.max(peak, held);
      still = held === last ? still + 1 : 0;
      last = held;
    }
    expect(everyAttackerHeld()).toBe(true);
    const { worstMs, worstCpuMs, failed } = await probe.stop();
    expect(failed).toBe(0);
    // A few MiB per connection (the high-water mark, the socket's buffer); unbounded before:
    // 128 listings of ~150 KB each, 19 MB per connection.
    expect(peak).toBeLessThan(4 * 6 * MiB);
    // Others are served: no request of theirs waited behind 300 ms of this process's work.
    // 75-100 ms of CPU (15-25 ms of wall clock) with memory storage's calls held to the loop's
    // turn budget; 730-1,120 ms without it (each turn looked up a batch for every listing at
    // once, and memfs asked the kernel for the user twice a lookup), which failed CI. The
    // wall-clock bound stays for a wait that costs no CPU, far above what load adds.
    expect(worstCpuMs).toBeLessThan(300);
    expect(worstMs).toBeLessThan(10_000);
    // Once a client reads, it gets every answer.
    const reader = peers[0]!;
    reader.socket.resume();
    await reader.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 255 && f.flags === 0, 20_000);
  });
});

describe('a stream that moves nothing', () => {
  it('a get that never grants credit fails with STREAM_TIMEOUT and releases its file', async () => {
    env = await startServer({ backend: 'memory', idleTimeoutMs: 400 });
    // Written into storage directly: a put through the server, its OPEN more than 400 ms after
    // its login on a loaded machine, failed IDLE_TIMEOUT ("connection idle for too long").
    (env.storage as MemoryStorage).volume.writeFileSync('/f', Buffer.alloc(1024, 1));
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'get', path: 'f' })); // and no WINDOW, ever
    const error = await peer.streamError(1);
    expect(error.code).toBe('STREAM_TIMEOUT');
    expect(env.server.counters.openFiles).toBe(0);
  });
});

describe('an answer the client never reads', () => {
  it('fails its stream with STREAM_TIMEOUT at the idle timeout; a client that then reads gets every outcome', async () => {
    const idleTimeoutMs = 1_000;
    env = await startServer({ backend: 'memory', idleTimeoutMs });
    // The server's timers and clock are faked (sockets and storage are real): the connection's
    // timer is restarted by the first OPEN, a moment before the streams exist, and on a real
    // clock its first check may come less than the timeout after them; for a client that reads
    // nothing the second check closes the connection (IDLE_TIMEOUT) instead. On a still clock
    // the first check finds them exactly the timeout old.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    // Long names: ~270 KB per listing, ~21 MB in all, more than the outbound budget and the
    // sockets' buffers hold, so most listings wait for room that does not come.
    fillDirectory((env.storage as MemoryStorage).volume, '/dir', 1_000, 'n'.repeat(200));
    const peer = await RawPeer.connect(env.port);
    peers.push(peer);
    peer.write(
      encodeHello({
        protocol: 'muxftp',
        versions: [PROTOCOL_VERSION],
        maxFramePayload: DEFAULTS.maxFramePayloadBytes,
        integrity: ['xxh128'],
      }),
    );
    await until(() => peer.frames.length > 0, 'WELCOME', { everyMs: 10 });
    peer.socket.pause();
    const ids = Array.from({ length: 80 }, (_, s) => 2 * s + 1);
    peer.write(Buffer.concat(ids.map((id) => encodeOpen(id, { op: 'list', path: 'dir' }))));
    // Until the server holds its whole budget and is stuck (no change for 200 ms, at most 10 s).
    const held = () => env!.server.connectionFigures()[0]?.bufferedAmount ?? 0;
    let last = -1;
    for (let i = 0; i < 50 && (held() === 0 || held() !== last); i++) {
      last = held();
      await delay(200);
    }
    const timedOut = () => env!.server.counters.errors.get('STREAM_TIMEOUT') ?? 0;
    await vi.advanceTimersByTimeAsync(idleTimeoutMs - 1);
    expect(timedOut(), 'a stream timed out before the idle timeout').toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(timedOut(), 'no stream waiting for room timed out').toBeGreaterThan(0);
    vi.useRealTimers();
    // Once it reads, each listing ends, with its last REPLY or with STREAM_TIMEOUT, and the
    // connection goes on.
    peer.socket.resume();
    const outcome = async (id: number): Promise<string> => {
      const frame = await peer.waitFor(
        (f) =>
          f.streamId === id && (f.type === FrameType.ERROR || (f.type === FrameType.REPLY && f.flags === 0)),
        20_000,
      );
      return frame.type === FrameType.REPLY ? 'answered' : (await peer.streamError(id)).code;
    };
    const outcomes = await Promise.all(ids.map(outcome));
    expect(outcomes).toContain('STREAM_TIMEOUT');
    expect(outcomes.filter((o) => o !== 'answered' && o !== 'STREAM_TIMEOUT')).toEqual([]);
    expect(outcomes.filter((o) => o === 'STREAM_TIMEOUT')).toHaveLength(timedOut());
    const error = await peer.streamError(ids[outcomes.indexOf('STREAM_TIMEOUT')]!);
    expect(error.message).toBe('stream moved no data for 1 s');
    expect(peer.socket.destroyed).toBe(false);
    expect(env.server.connectionFigures()).toHaveLength(1);
    expect(env.server.counters.errors.get('IDLE_TIMEOUT')).toBeUndefined();
  });
});

describe('a client that reads nothing of a download', () => {
  it('is closed after the idle timeout, however much credit it granted', async () => {
    env = await startServer({ backend: 'memory', idleTimeoutMs: 400 });
    // Written into storage directly: a 64 MiB put through the server, under its 400 ms stream
    // timeout, failed with STREAM_TIMEOUT on a loaded machine. The attacker is the only connection.
    (env.storage as MemoryStorage).volume.writeFileSync('/big', Buffer.alloc(64 * MiB, 2));
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.socket.pause();
    peer.write(Buffer.concat([encodeOpen(1, { op: 'get', path: 'big' }), encodeWindow(1, 2 ** 31 - 1)]));
    // Closed either for reading nothing, or (its stream failed first with STREAM_TIMEOUT) as idle.
    const attackerGone = () => env!.server.connectionFigures().length === 0;
    for (let waited = 0; waited < 5_000 && !attackerGone(); waited += 50) await delay(50);
    expect(attackerGone()).toBe(true);
    expect(env.logs.some((line) => /read nothing|idle for/.test(line))).toBe(true);
  });
});

describe('declared sizes on one connection', () => {
  it('by default reserves a 1 GiB upload whole once 16 MiB of it arrived, and frees it when the client goes', async () => {
    // Beyond the caps memfs grows the file by doubling, each step one synchronous copy: 512 MiB
    // at once on this file (bench/README.md: other clients waited ~0.4 s, the upload ran slower).
    env = await startServer({ backend: 'memory', streamWindowBytes: 32 * MiB });
    const storage = env.storage as MemoryStorage;
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'put', path: 'big.bin', size: 1024 * MiB }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    const part = Buffer.alloc(MiB, 1);
    peer.write(Buffer.concat(Array.from({ length: 16 }, () => encodeData(1, part))));
    for (let i = 0; i < 250 && storage.reservedBytes < 1024 * MiB; i++) await delay(20);
    expect(storage.reservedBytes).toBe(1024 * MiB);
    peer.destroy();
    for (let i = 0; i < 250 && storage.reservedBytes > 0; i++) await delay(20);
    expect(storage.reservedBytes).toBe(0);
  });

  it('reserve at most maxReservedBytesPerConnection; another connection has a share of its own', async () => {
    env = await startServer({ backend: 'memory', maxReservedBytesPerConnection: 3 * MiB });
    const storage = env.storage as MemoryStorage;
    const reservedReaches = async (bytes: number): Promise<void> => {
      for (let i = 0; i < 250 && storage.reservedBytes < bytes; i++) await delay(20);
    };
    // More than 1/64 of each declared 2 MiB, so each upload asks for its reservation.
    const part = Buffer.alloc(512 * 1024, 1);
    const first = await RawPeer.open(env.port);
    peers.push(first);
    first.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'a.bin', size: 2 * MiB }),
        encodeOpen(3, { op: 'put', path: 'b.bin', size: 2 * MiB }),
      ]),
    );
    for (const id of [1, 3]) await first.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === id);
    first.write(Buffer.concat([encodeData(1, part), encodeData(3, part)]));
    // Each upload decides on its reservation just before its first write: wait for both writes,
    // in the two temporary files.
    const written = () =>
      storage.volume
        .readdirSync('/')
        .filter(
          (name) => isTemporaryName(String(name)) && storage.volume.statSync(`/${name}`).size >= part.length,
        );
    for (let i = 0; i < 250 && written().length < 2; i++) await delay(20);
    expect(written()).toHaveLength(2);
    expect(storage.reservedBytes).toBe(2 * MiB); // the second upload did not fit this connection's share

    const second = await RawPeer.open(env.port);
    peers.push(second);
    second.write(encodeOpen(1, { op: 'put', path: 'c.bin', size: 2 * MiB }));
    await second.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    second.write(encodeData(1, part));
    await reservedReaches(4 * MiB);
    expect(storage.reservedBytes).toBe(4 * MiB);
  });
});
