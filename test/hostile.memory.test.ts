/**
 * Issue #7, the memory server: a declared size must not buy memory nobody sends, and a replaced
 * file must not stay in memory. Memory is measured after a real collection (helpers/heap.ts),
 * against bounds far from both the fixed and the broken figures.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ListingTurns } from '../server/listingTurns.js';
import type { ServerOptions } from '../server/options.js';
import { DEFAULTS } from '../shared/defaults.js';
import { ContentDigester, contentDigest } from '../shared/integrity/contentDigest.js';
import { Flags, FrameType } from '../shared/protocol/constants.js';
import { FrameDecoder } from '../shared/protocol/decoder.js';
import {
  encodeData,
  encodeEnd,
  encodeFrame,
  encodeOpen,
  encodePing,
  encodeWindow,
} from '../shared/protocol/encoder.js';
import { parseEnd, parseErrorPayload } from '../shared/protocol/messages.js';
import { namesBytes } from '../storage/listingBudget.js';
import { MemoryStorage } from '../storage/memory.js';
import { MiB, retainedBufferBytes } from './helpers/heap.js';
import { holdUploads } from './helpers/heldUploads.js';
import { peakOf } from './helpers/peak.js';
import { ANY_FRAME_PAYLOAD_BYTES, RawPeer } from './helpers/rawPeer.js';
import { probeOtherClients } from './helpers/servedProbe.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { stalledPastTheMark, wholePutOnOpen } from './helpers/stalledDisk.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

const GiB = 1024 * MiB;

describe('declared sizes on the memory server', () => {
  it('4 connections x 64 uploads declaring 4 GiB each reserve nothing and stall no one', async () => {
    env = await startServer({ backend: 'memory' });
    // A server that already holds many small files: each forced collection then costs more.
    const volume = (env.storage as MemoryStorage).volume;
    volume.mkdirSync('/small');
    for (let i = 0; i < 20_000; i++) volume.writeFileSync(`/small/f${i}`, 'x');
    const before = retainedBufferBytes();
    const probe = await probeOtherClients(env.port);
    for (let c = 0; c < 4; c++) {
      const peer = await RawPeer.open(env.port);
      peers.push(peer);
      const opens: Buffer[] = [];
      for (let s = 0; s < 64; s++)
        opens.push(encodeOpen(2 * s + 1, { op: 'put', path: `c${c}-${s}`, size: 4 * GiB }));
      peer.write(Buffer.concat(opens));
    }
    for (const peer of peers) {
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 127, 30_000);
      // One byte each: a claim plus a token of data still buys no reservation.
      const bytes: Buffer[] = [];
      for (let s = 0; s < 64; s++) bytes.push(encodeData(2 * s + 1, Buffer.from('x')));
      peer.write(Buffer.concat(bytes));
    }
    await env.connect().then((c) => c.stats()); // the bytes above have been taken in
    const held = process.memoryUsage().arrayBuffers - before;
    const { worstMs, worstCpuMs, failed } = await probe.stop();
    expect(failed).toBe(0);
    expect(held).toBeLessThan(256 * MiB); // 1 TiB before declared sizes were reserved lazily
    // Stalls no one: no other request waited behind a second of this process's work (a
    // synchronous zero-fill of a reservation would be that); ~15-30 ms here, also at a load of 15
    // on 2 cores, where the wall-clock figure reached 320 ms (the old bound: 2 s of wall clock).
    // The wall-clock bound stays for a wait that costs no CPU, far above what load adds.
    expect(worstCpuMs).toBeLessThan(1_000);
    expect(worstMs).toBeLessThan(10_000);
  });
});

describe('replacing a file on the memory server', () => {
  it('frees the old content: 10 puts and 5 moves over one name, then rm, leave nothing held', async () => {
    env = await startServer({ backend: 'memory' });
    const client = await env.connect();
    const watcher = await env.connect();
    const content = randomBytes(10 * MiB);
    await client.put('big', content);
    // Replacement is atomic for readers: the name never goes missing while it is replaced.
    let replacing = true;
    let missing = 0;
    const watching = (async () => {
      while (replacing) await watcher.stat('big').catch(() => missing++);
    })();
    const before = retainedBufferBytes();
    for (let i = 0; i < 10; i++) await client.put('big', content);
    for (let i = 0; i < 5; i++) {
      await client.put('other', content);
      await client.rename('other', 'big');
    }
    replacing = false;
    await watching;
    expect(missing).toBe(0);
    expect((await client.getBuffer('big')).equals(content)).toBe(true);
    const withOne = retainedBufferBytes() - before;
    await client.delete('big');
    const afterRm = retainedBufferBytes() - before;
    // Leaking, 15 replaced copies of 10 MiB stay: 150 MiB.
    expect(withOne).toBeLessThan(48 * MiB);
    expect(afterRm).toBeLessThan(40 * MiB);
  });
});

describe('connections idle after a download', () => {
  it('keep no frames of their own: 30 of them hold far less than a frame each', async () => {
    // The free frames of all connections together are capped at a quarter of this (2 MiB).
    env = await startServer({ backend: 'memory', serverOutboundHighWaterBytes: 8 * MiB });
    const file = randomBytes(8 * MiB);
    await (await env.connect()).put('f', file);
    const before = retainedBufferBytes();
    const clients = [];
    for (let i = 0; i < 30; i++) {
      const client = await env.connect();
      expect((await client.verify('f')).size).toBe(file.length);
      clients.push(client);
    }
    // Still connected, idle: each once held a few 1 MiB frames of the download.
    const held = retainedBufferBytes() - before;
    expect(held).toBeLessThan(12 * MiB);
  });
});

/**
 * A client that asks for `path` with all the credit it may need and reads nothing until told to;
 * then it hashes what arrives (keeping none of it) and resolves to the size and digest END
 * announced, checked against what it received.
 */
async function nonReadingDownload(port: number, path: string) {
  const peer = await RawPeer.open(port);
  peers.push(peer);
  peer.socket.pause();
  // From here on DATA is hashed as it comes, not recorded (60 of these would hold 1 GiB).
  peer.socket.removeAllListeners('data');
  const digester = new ContentDigester('xxh128');
  let received = 0;
  const outcome = new Promise<{ size: number; digest: Buffer; received: number; ok: boolean }>(
    (resolve, reject) => {
      const decoder = new FrameDecoder(
        {
          maxFramePayloadBytes: ANY_FRAME_PAYLOAD_BYTES,
          maxControlPayloadBytes: DEFAULTS.maxControlPayloadBytes,
        },
        (frame) => {
          if (frame.type === FrameType.DATA) {
            digester.update(frame.payload);
            received += frame.payload.length;
          } else if (frame.type === FrameType.END) {
            const end = parseEnd(frame);
            const ours = digester.result().digest;
            resolve({ size: end.size, digest: end.digest, received, ok: ours.equals(end.digest) });
          } else if (frame.type === FrameType.ERROR) {
            reject(new Error(`stream failed: ${JSON.stringify(parseErrorPayload(frame))}`));
          }
        },
      );
      peer.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    },
  );
  peer.write(Buffer.concat([encodeOpen(1, { op: 'get', path }), encodeWindow(1, 2 ** 31 - 1)]));
  return { read: () => peer.socket.resume(), outcome };
}

describe('many connections that open a download and read nothing', () => {
  it('hold at most the outbound budget plus a small chunk each, then get their files whole', async () => {
    const budget = 4 * MiB;
    const trickle = 64 * 1024;
    const connections = 60;
    env = await startServer({ backend: 'memory', serverOutboundHighWaterBytes: budget });
    expect(env.server.options.serverOutboundTrickleBytes).toBe(trickle);
    const file = randomBytes(16 * MiB); // more than the kernel's buffers take in for a client
    await (await env.connect()).put('f', file);
    const expected = contentDigest('xxh128', file);
    const before = retainedBufferBytes();
    const downloads = [];
    for (let i = 0; i < connections; i++) downloads.push(await nonReadingDownload(env.port, 'f'));
    // Wait until what the server holds has passed the budget and stops growing (the kernel's
    // buffers are full by then).
    const server = env.server;
    const peak = await peakOf(() => server.outboundHeldBytes, { above: budget, stableMs: 500 });
    const bound = budget + connections * trickle;
    // Before, each connection past the budget took a whole 1 MiB chunk: 4 + 60 MiB here.
    expect(peak).toBeGreaterThan(budget);
    expect(peak).toBeLessThanOrEqual(bound);
    const held = server.connectionFigures().reduce((sum, c) => sum + c.bufferedAmount, 0);
    expect(held).toBeLessThanOrEqual(bound + connections * 1024); // and a REPLY each
    // What the server really holds, its free frames for reuse (a quarter of the budget) included.
    const retained = retainedBufferBytes() - before;
    expect(retained).toBeLessThan(bound + budget / 4 + 4 * MiB);
    // No one stalls: now they read, and each gets the whole file.
    for (const download of downloads) download.read();
    const results = await Promise.all(downloads.map((d) => d.outcome));
    for (const result of results) {
      expect(result).toMatchObject({ size: file.length, received: file.length, ok: true });
      expect(result.digest.equals(expected)).toBe(true);
    }
    for (const started = Date.now(); server.outboundHeldBytes > 0 && Date.now() - started < 5_000; )
      await delay(10);
    expect(server.outboundHeldBytes).toBe(0);
  }, 60_000);
});

describe('peers that ask many listings of a big directory and read none', () => {
  /** A memory server with `big/`: 3,000 names of ~205 bytes (namesBytes ~1.4 MB a listing). */
  async function bigDirectoryServer() {
    const storage = new MemoryStorage();
    const names = 'n'.repeat(200);
    storage.volume.mkdirSync('/big');
    for (let i = 0; i < 3000; i++) storage.volume.writeFileSync(`/big/${i}-${names}`, '');
    storage.volume.mkdirSync('/small');
    storage.volume.writeFileSync('/small/a', '');
    // Listings holding their names: the first batch made, the last not yet.
    const holding = { now: 0, most: 0 };
    const listBatches = storage.listBatches.bind(storage);
    storage.listBatches = async function* (path) {
      let counted = false;
      try {
        for await (const batch of listBatches(path)) {
          if (!counted && path === 'big') {
            counted = true;
            holding.now++;
            holding.most = Math.max(holding.most, holding.now);
          }
          yield batch;
        }
      } finally {
        if (counted) holding.now--;
      }
    };
    env = await startServer({ storage });
    return { env, holding, perListing: namesBytes(storage.volume.readdirSync('/big') as string[]) };
  }

  /** A peer that asks `count` listings of big/ and reads nothing from then on. */
  async function nonReadingListings(port: number, count: number): Promise<void> {
    const peer = await RawPeer.open(port);
    peers.push(peer);
    peer.socket.pause();
    const opens: Buffer[] = [];
    for (let s = 0; s < count; s++) opens.push(encodeOpen(2 * s + 1, { op: 'list', path: 'big' }));
    peer.write(Buffer.concat(opens));
  }

  it('one connection has at most DEFAULTS.listingsAtOncePerConnection under way; others are served', async () => {
    const { env, holding } = await bigDirectoryServer();
    await nonReadingListings(env.port, 128);
    await peakOf(() => holding.now, { above: DEFAULTS.listingsAtOncePerConnection - 1 });
    expect(holding.most).toBe(DEFAULTS.listingsAtOncePerConnection); // before: 32 here
    const other = await env.connect();
    expect((await other.list('big')).length).toBe(3000);
    await other.close();
  });

  it('many connections together hold no more names than DEFAULTS.listingNamesBudgetBytes; a small listing is still answered', async () => {
    const { env, holding, perListing } = await bigDirectoryServer();
    const fit = Math.floor(DEFAULTS.listingNamesBudgetBytes / perListing);
    const connections = Math.ceil((fit + 8) / DEFAULTS.listingsAtOncePerConnection);
    for (let c = 0; c < connections; c++)
      await nonReadingListings(env.port, DEFAULTS.listingsAtOncePerConnection);
    await peakOf(() => holding.now, { above: fit - 1 });
    await delay(300);
    expect(holding.most).toBe(fit); // before: every one of them, connections x 8
    const other = await env.connect();
    expect(await other.list('small')).toMatchObject([{ name: 'a' }]);
    await other.close();
  });
});

describe("a listing waiting for memory that other clients' listings hold", () => {
  /**
   * A memory server with `big/`: 25,000 names of ~206 bytes, so each listing's share of the
   * listing budget is ~11.6 MB and only `fit` go at once. The first `fit` listings keep their
   * share until letGo() (a slow disk under them): a holder connection has asked them, and they
   * have looked entries up. `looked` collects the listings (by call) that looked entries up.
   */
  async function budgetHeldElsewhere(options: Partial<ServerOptions> = {}) {
    const storage = new MemoryStorage();
    const tail = 'n'.repeat(200);
    storage.volume.mkdirSync('/big');
    for (let i = 0; i < 25_000; i++) storage.volume.writeFileSync(`/big/${i}-${tail}`, '');
    const fit = Math.floor(
      DEFAULTS.listingNamesBudgetBytes / namesBytes(storage.volume.readdirSync('/big') as string[]),
    );
    const state = { calls: 0, looked: new Set<number>(), waitingForMemory: 0, letGo: () => {} };
    const gate = new Promise<void>((resolve) => {
      state.letGo = resolve;
    });
    const listBatches = storage.listBatches.bind(storage);
    storage.listBatches = async function* (path, listing) {
      const call = state.calls++;
      // Counts the listings waiting for the budget (storage tells the server through this).
      const told = listing?.onWaitingForMemory;
      if (listing !== undefined)
        listing.onWaitingForMemory = (waiting) => {
          state.waitingForMemory += waiting ? 1 : -1;
          told?.(waiting);
        };
      for await (const batch of listBatches(path, listing)) {
        state.looked.add(call);
        if (call < fit) await gate;
        yield batch;
      }
    };
    env = await startServer({ storage, ...options });
    const holder = await RawPeer.open(env.port);
    peers.push(holder);
    holder.write(
      Buffer.concat(
        Array.from({ length: fit }, (_, s) => encodeOpen(2 * s + 1, { op: 'list', path: 'big' })),
      ),
    );
    for (const started = Date.now(); state.looked.size < fit && Date.now() - started < 10_000; )
      await delay(10);
    expect(state.looked.size).toBe(fit);
    return { env, fit, state };
  }

  /** A connection asking `count` listings of big/ (ids 1, 3, …). */
  async function listingsOf(port: number, count: number): Promise<{ peer: RawPeer; ids: number[] }> {
    const peer = await RawPeer.open(port);
    peers.push(peer);
    const ids = Array.from({ length: count }, (_, s) => 2 * s + 1);
    peer.write(Buffer.concat(ids.map((id) => encodeOpen(id, { op: 'list', path: 'big' }))));
    return { peer, ids };
  }

  it("is the server's wait: its connection is still read, it is not timed out, and cancelled it leaves the line", async () => {
    // Each listing reads and sorts its 25,000 names before it finds the budget taken and waits:
    // the server's work, one listing after another, which a loaded machine took ~0.2 s each for
    // (the eighth waited from 1.9 s on). Against a 400 ms idle timeout those not waiting yet were
    // timed out. So a timeout the set-up fits in, and the wait for the timeouts that must not
    // come starts once every listing in its turn waits: two whole intervals from then.
    const idleTimeoutMs = 2_000;
    const { env, fit, state } = await budgetHeldElsewhere({ idleTimeoutMs });
    // Every listing in its turn waits for memory, and two more wait their turn behind them.
    const count = DEFAULTS.listingsAtOncePerConnection + 2;
    const { peer: waiter, ids } = await listingsOf(env.port, count);
    await until(
      () => state.waitingForMemory === DEFAULTS.listingsAtOncePerConnection,
      "the waiter's listings in their turn all waiting for memory",
    );
    await delay(2 * idleTimeoutMs + 200);
    // Before: each failed STREAM_TIMEOUT, yet stayed in the line.
    expect(waiter.frames.filter((f) => ids.includes(f.streamId))).toEqual([]);
    // Before: the queued two counted as answers waiting, and nothing more was read.
    const statId = 2 * count + 1;
    waiter.write(
      Buffer.concat([encodeOpen(statId, { op: 'stat', path: 'big' }), encodePing(Buffer.alloc(8))]),
    );
    await waiter.waitFor((f) => f.type === FrameType.REPLY && f.streamId === statId, 3_000);
    await waiter.waitFor((f) => f.type === FrameType.PING && f.flags === Flags.ACK, 3_000);

    // Cancelled, they leave the line: once the holder lets go, none of them looks anything up.
    // (The stat after them is answered once they have been read.)
    const cancels = ids.map((id) => encodeFrame(FrameType.CANCEL, 0, id));
    waiter.write(Buffer.concat([...cancels, encodeOpen(statId + 2, { op: 'stat', path: 'big' })]));
    await waiter.waitFor((f) => f.type === FrameType.REPLY && f.streamId === statId + 2, 3_000);
    const other = await env.connect();
    const waiterCalls = state.calls; // the holder's, then the waiter's in their turn (the queued never began)
    expect(waiterCalls).toBe(fit + DEFAULTS.listingsAtOncePerConnection);
    state.letGo();
    expect((await other.list('big')).length).toBe(25_000);
    await other.close();
    expect([...state.looked].filter((call) => call >= fit && call < waiterCalls)).toEqual([]);
  }, 30_000);

  it('hold no room in the output meanwhile: connections of such listings pin nothing of the server-wide budgets', async () => {
    const { env, state } = await budgetHeldElsewhere({ idleTimeoutMs: 400 });
    const before = { control: env.server.controlHeldBytes, outbound: env.server.outboundHeldBytes };
    for (let c = 0; c < 8; c++) await listingsOf(env.port, DEFAULTS.listingsAtOncePerConnection);
    await delay(1_200); // three idle timeouts
    // Before: a frame's room each (up to 128 KiB), for as long as they waited: 4.5 MiB here.
    expect(env.server.controlHeldBytes - before.control).toBeLessThan(64 * 1024);
    expect(env.server.outboundHeldBytes - before.outbound).toBeLessThan(64 * 1024);
    state.letGo();
  }, 30_000);

  it('listings opened and cancelled behind them meanwhile do not pile up in the line', async () => {
    let inLine = 0;
    const run = ListingTurns.prototype.run;
    ListingTurns.prototype.run = function (this: ListingTurns, ...args: Parameters<typeof run>) {
      inLine++;
      return run.apply(this, args).finally(() => inLine--);
    };
    try {
      const { env, state } = await budgetHeldElsewhere();
      const { peer } = await listingsOf(env.port, DEFAULTS.listingsAtOncePerConnection);
      let id = 2 * DEFAULTS.listingsAtOncePerConnection + 1;
      for (let round = 0; round < 5; round++) {
        const frames: Buffer[] = [];
        for (let s = 0; s < 10_000; s++, id += 2)
          frames.push(encodeOpen(id, { op: 'list', path: 'big' }), encodeFrame(FrameType.CANCEL, 0, id));
        const statId = id;
        id += 2;
        frames.push(encodeOpen(statId, { op: 'stat', path: 'big' }));
        peer.write(Buffer.concat(frames));
        await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === statId, 20_000);
      }
      // Before: all 50,000 stood in the line, each holding its closed stream (+736 MiB at 200,000).
      expect(inLine).toBeLessThan(100);
      state.letGo();
    } finally {
      ListingTurns.prototype.run = run;
    }
  }, 60_000);
});

describe('digests of many large files asked at once', () => {
  /**
   * Reads of `storage`'s files that `hangs` picks wait until letGo() (a dying disk); `onRead`
   * hears each read begin (+1) and end (-1), by path.
   */
  function hangingReads(
    storage: MemoryStorage,
    hangs: (path: string) => boolean,
    onRead: (path: string, delta: number) => void = () => {},
  ): { letGo: () => void } {
    const held = { letGo: () => {} };
    const gate = new Promise<void>((resolve) => {
      held.letGo = resolve;
    });
    const openRead = storage.openRead.bind(storage);
    storage.openRead = async (path) => {
      const handle = await openRead(path);
      if (!hangs(path)) return handle;
      const read = handle.read.bind(handle);
      handle.read = async (...args) => {
        onRead(path, 1);
        await gate;
        onRead(path, -1);
        return read(...args);
      };
      return handle;
    };
    return held;
  }

  it('are read through a few shared buffers, a few per connection: the rest wait their turn (not timed out), then all are right', async () => {
    const storage = new MemoryStorage();
    // 6 connections asking 8 each: past the share of each (4), and together past all 16.
    const connections = 6;
    const each = 2 * DEFAULTS.hashReadBuffersPerOwner;
    const count = connections * each;
    const contents = Array.from({ length: count }, () => randomBytes(2 * DEFAULTS.hashReadUnsharedBytes));
    for (const [i, content] of contents.entries()) storage.volume.writeFileSync(`/f${i}`, content);
    // Every read waits until the test lets go: each reader holds its buffer meanwhile. Reads in
    // progress by the connection that asked (f<i>: i / each).
    const reading = new Map<number, number>();
    const readingNow = () => [...reading.values()].reduce((sum, n) => sum + n, 0);
    // Files whose read began, so hung: only their streams may be timed out.
    const entered = new Set<number>();
    const { letGo } = hangingReads(
      storage,
      () => true,
      (path, delta) => {
        const asker = Math.floor(Number(path.slice(1)) / each);
        reading.set(asker, (reading.get(asker) ?? 0) + delta);
        if (delta > 0) entered.add(Number(path.slice(1)));
      },
    );
    // The idle timeout is the stall check's period (3 s).
    const idleTimeoutMs = 3_000;
    env = await startServer({ storage, idleTimeoutMs });
    const askers: RawPeer[] = [];
    for (let c = 0; c < connections; c++) {
      const peer = await RawPeer.open(env.port);
      peers.push(peer);
      askers.push(peer);
      const files = Array.from({ length: each }, (_, k) => c * each + k);
      peer.write(
        Buffer.concat(
          files.map((f, k) => encodeOpen(2 * k + 1, { op: 'digest', path: `f${f}`, algorithm: 'xxh128' })),
        ),
      );
    }
    await peakOf(readingNow, { above: DEFAULTS.hashReadBuffers - 1 });
    // Before: each had a buffer of its own, all `count` reading at once.
    expect(readingNow()).toBe(DEFAULTS.hashReadBuffers);
    for (const n of reading.values()) expect(n).toBeLessThanOrEqual(DEFAULTS.hashReadBuffersPerOwner);
    // At the first stall check, those whose read hangs (the disk, here) are stalled; those
    // waiting for a buffer are not (their turn comes as the hung ones give theirs up).
    const firstStalled = await Promise.race(
      askers.map((peer) => peer.waitFor((f) => f.type === FrameType.ERROR, 15_000)),
    );
    expect(parseErrorPayload(firstStalled).code).toBe('STREAM_TIMEOUT');
    // Held past one more check, where the streams waiting for a buffer have moved nothing for a
    // whole interval: still not timed out (the wait is the server's). Then the others get their
    // answers.
    await delay(idleTimeoutMs + 500);
    letGo();
    // Each stream ends in its answer or, if its read began and hung, in STREAM_TIMEOUT (each
    // connection checks on its own timer, so these come spread out).
    let answered = 0;
    const timedOutNotRead: number[] = [];
    for (const [c, peer] of askers.entries()) {
      for (let k = 0; k < each; k++) {
        const id = 2 * k + 1;
        const end = await peer.waitFor(
          (f) => (f.type === FrameType.REPLY || f.type === FrameType.ERROR) && f.streamId === id,
          10_000,
        );
        if (end.type === FrameType.ERROR) {
          expect(parseErrorPayload(end).code).toBe('STREAM_TIMEOUT');
          if (!entered.has(c * each + k)) timedOutNotRead.push(c * each + k);
          continue;
        }
        expect(JSON.parse(end.payload.toString()).digest).toBe(
          contentDigest('xxh128', contents[c * each + k]!).toString('hex'),
        );
        answered++;
      }
    }
    // Before: each waiting stream failed STREAM_TIMEOUT at the second check.
    expect(timedOutNotRead).toEqual([]);
    expect(answered).toBeGreaterThanOrEqual(count - entered.size);
  }, 30_000);

  it('reads hung on one file (a dying disk) hold no buffer once their streams are over: others are hashed', async () => {
    const storage = new MemoryStorage();
    const content = randomBytes(2 * DEFAULTS.hashReadUnsharedBytes);
    storage.volume.writeFileSync('/hung', content);
    storage.volume.writeFileSync('/ok', content);
    const { letGo } = hangingReads(storage, (path) => path === 'hung');
    try {
      env = await startServer({ storage, idleTimeoutMs: 400 });
      const hung = await RawPeer.open(env.port);
      peers.push(hung);
      const ids = Array.from({ length: DEFAULTS.hashReadBuffers }, (_, i) => 2 * i + 1);
      hung.write(
        Buffer.concat(ids.map((id) => encodeOpen(id, { op: 'digest', path: 'hung', algorithm: 'xxh128' }))),
      );
      for (const id of ids) await hung.waitFor((f) => f.type === FrameType.ERROR && f.streamId === id, 5_000);
      // Another client, a healthy file. Before: it waited for a buffer the hung reads kept, for ever.
      const other = await RawPeer.open(env.port);
      peers.push(other);
      other.write(encodeOpen(1, { op: 'digest', path: 'ok', algorithm: 'xxh128' }));
      const reply = await other.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1, 3_000);
      expect(JSON.parse(reply.payload.toString()).digest).toBe(
        contentDigest('xxh128', content).toString('hex'),
      );
    } finally {
      letGo();
    }
  }, 30_000);
});

describe('uploads that send a byte and wait', () => {
  it('4 connections x 256 uploads of 1 byte hold no receive block each, and then complete', async () => {
    env = await startServer({ backend: 'disk' });
    const before = retainedBufferBytes();
    const streams = 256;
    const uploaders: RawPeer[] = [];
    for (let c = 0; c < 4; c++) {
      const peer = await RawPeer.open(env.port);
      peers.push(peer);
      uploaders.push(peer);
      const opens: Buffer[] = [];
      for (let s = 0; s < streams; s++) opens.push(encodeOpen(2 * s + 1, { op: 'put', path: `c${c}-${s}` }));
      peer.write(Buffer.concat(opens));
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 2 * streams - 1, 10_000);
      const bytes: Buffer[] = [];
      for (let s = 0; s < streams; s++) bytes.push(encodeData(2 * s + 1, Buffer.from('x')));
      // Answered in order (TOO_MANY_STREAMS: all 256 are open): once the answer is back, every
      // byte before it has been taken in.
      bytes.push(encodeOpen(2 * streams + 1, { op: 'stats' }));
      peer.write(Buffer.concat(bytes));
    }
    for (const peer of uploaders) await peer.waitFor((f) => f.streamId === 2 * streams + 1, 10_000);
    // And written (nothing waits for the disk).
    const server = env.server;
    const written = () => server.connectionFigures().every((c) => c.uploadBacklogBytes === 0);
    for (const started = Date.now(); !written() && Date.now() - started < 10_000; ) await delay(10);
    expect(written()).toBe(true);
    // Each stream kept a 256 KiB receive block for its one byte: 4 x 256 of them, 256 MiB.
    const held = retainedBufferBytes() - before;
    expect(held).toBeLessThan(16 * MiB);
    // Nothing is lost: each upload completes.
    const digest = contentDigest('xxh128', Buffer.from('x'));
    for (const peer of uploaders) {
      const ends: Buffer[] = [];
      for (let s = 0; s < streams; s++) ends.push(encodeEnd(2 * s + 1, 1, 'xxh128', digest));
      peer.write(Buffer.concat(ends));
    }
    // Every stream's REPLY: they come as commits finish, not in the order of the ids.
    for (const peer of uploaders)
      for (let s = 0; s < streams; s++)
        await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 2 * s + 1, 20_000);
    for (const peer of uploaders) {
      expect(peer.frames.filter((f) => f.type === FrameType.REPLY)).toHaveLength(streams);
      expect(peer.frames.filter((f) => f.type === FrameType.ERROR && f.streamId < 2 * streams)).toHaveLength(
        0,
      );
    }
    expect((await (await env.connect()).getBuffer('c3-255')).toString()).toBe('x');
  }, 60_000);
});

describe('a peer that makes the server send small frames and reads none', () => {
  /** Sends `rounds` batches of requests, reading nothing; resolves once the server dropped it. */
  async function flood(batch: (firstId: number) => Buffer[], rounds: number) {
    const server = env!.server;
    const peer = await RawPeer.open(env!.port);
    peers.push(peer);
    peer.socket.pause();
    let id = 1;
    for (let round = 0; round < rounds && !peer.socket.destroyed; round++) {
      const frames = batch(id);
      id += 2 * frames.length;
      peer.write(Buffer.concat(frames));
      await delay(20);
    }
    const gone = () => server.connectionFigures().length === 1; // the probe's is left
    for (const started = Date.now(); !gone() && Date.now() - started < 10_000; ) await delay(20);
    return gone();
  }

  it('is closed with FRAME_FLOOD, bad OPENs or downloads alike, holding little, others served', async () => {
    env = await startServer({ backend: 'memory' });
    const client = await env.connect();
    await client.put('small', randomBytes(100));
    await client.close();
    const probe = await probeOtherClients(env.port);
    const before = retainedBufferBytes();
    // Each OPEN of an unknown op (22 bytes) is answered by an ERROR (~100 bytes).
    const badOpens = (first: number) =>
      Array.from({ length: 10_000 }, (_, i) => encodeOpen(first + 2 * i, { op: 'nope' } as never));
    expect(await flood(badOpens, 20)).toBe(true);
    // Each get of a small file is answered by REPLY, DATA and END, and frees its stream slot.
    const gets = (first: number) =>
      Array.from({ length: 2_500 }, (_, i) =>
        Buffer.concat([
          encodeOpen(first + 2 * i, { op: 'get', path: 'small' }),
          encodeWindow(first + 2 * i, 100),
        ]),
      );
    expect(await flood(gets, 20)).toBe(true);
    const floods = env.logs.filter((line) => line.includes('(FRAME_FLOOD:'));
    expect(floods, env.logs.filter((l) => l.includes('closed after')).join('\n')).toHaveLength(2);
    // Unread, each held ~8 MiB of frames (its byte mark) in ~32 MiB of buffers and write requests.
    expect(retainedBufferBytes() - before).toBeLessThan(8 * MiB);
    const { failed, worstCpuMs } = await probe.stop();
    expect(failed).toBe(0);
    expect(worstCpuMs).toBeLessThan(1_000);
  }, 60_000);
});

/** The stalled-disk server (helpers/stalledDisk.ts), stopped after each test like the others. */
const stalledPastTheMarkHere = (mark: number) =>
  stalledPastTheMark(mark, (started) => {
    env = started;
  });

describe('uploads while the disk is stalled', () => {
  it('30 connections with an upload open bring nothing in past the server-wide mark, then complete', async () => {
    const mark = 2 * MiB;
    const { held, total, filled, big } = await stalledPastTheMarkHere(mark);
    const base = total();
    // Thirty others each open an upload, get its credit once it is set up, and send 512 KiB.
    const content = randomBytes(512 * 1024);
    const uploaders: RawPeer[] = [];
    for (let i = 0; i < 30; i++) {
      const peer = await RawPeer.open(env!.port);
      peers.push(peer);
      uploaders.push(peer);
      peer.write(encodeOpen(1, { op: 'put', path: `p${i}`, size: content.length }));
    }
    for (const peer of uploaders) {
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
      peer.write(encodeData(1, content));
    }
    let peak = total();
    for (let i = 0; i < 50; i++) {
      peak = Math.max(peak, total());
      await delay(10);
    }
    // None is read until the mark is released (0 here). Each used to read one slice before it
    // stopped (up to 256 KiB, in a block or two: 1.97 MB here, ~2.5 GiB at 10,000 connections).
    expect(peak - base).toBeLessThan(256 * 1024);
    // The others are still answered.
    const other = await env!.connect();
    await expect(other.stat('big')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    held.release();
    expect((await filled).digest).toBe(contentDigest('xxh128', big).toString('hex'));
    const digest = contentDigest('xxh128', content);
    for (const peer of uploaders) peer.write(encodeEnd(1, content.length, 'xxh128', digest));
    for (const peer of uploaders)
      await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1, 10_000);
    expect((await other.getBuffer('p29')).equals(content)).toBe(true);
    for (const started = Date.now(); total() > 0 && Date.now() - started < 5_000; ) await delay(10);
    expect(total()).toBe(0);
  }, 60_000);
});

describe('uploads sent with their OPEN while the disk is stalled (the initial window)', () => {
  it('64 streams on one connection each sending N with its OPEN: the connection stops at its own mark, then all complete', async () => {
    const storage = new MemoryStorage();
    const held = holdUploads(storage); // every write waits for release()
    env = await startServer({ storage });
    const server = env.server;
    const backlog = () => server.connectionFigures().reduce((sum, c) => sum + c.uploadBacklogBytes, 0);
    const peer = await RawPeer.open(env.port, ['xxh128'], { uploadInitialWindow: true });
    peers.push(peer);
    const content = randomBytes(DEFAULTS.uploadInitialWindowBytes);
    const digest = contentDigest('xxh128', content);
    const streams = 64; // 16 MiB sent blindly, twice the connection's mark
    const frames: Buffer[] = [];
    for (let s = 0; s < streams; s++) {
      const id = 2 * s + 1;
      frames.push(
        encodeOpen(id, { op: 'put', path: `s${s}`, size: content.length }),
        encodeData(id, content),
        encodeEnd(id, content.length, 'xxh128', digest),
      );
    }
    peer.write(Buffer.concat(frames));
    await held.holding;
    // Until past half the mark and no longer growing: 50 samples 10 ms apart could end before.
    const peak = await peakOf(backlog, { above: DEFAULTS.uploadBacklogHighWaterBytes / 2 });
    // Its own mark, then the rest of one read (in at most two blocks and an own buffer): the
    // server stopped reading, and the rest waits in the kernel's buffers, pushed back by TCP.
    expect(peak).toBeGreaterThan(DEFAULTS.uploadBacklogHighWaterBytes / 2);
    expect(peak).toBeLessThanOrEqual(
      DEFAULTS.uploadBacklogHighWaterBytes +
        2 * DEFAULTS.receivedBlockBytes +
        DEFAULTS.receivedOwnBufferBytes,
    );
    held.release();
    for (let s = 0; s < streams; s++)
      await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 2 * s + 1, 10_000);
    const reader = await env.connect();
    expect((await reader.getBuffer(`s${streams - 1}`)).equals(content)).toBe(true);
    for (const started = Date.now(); backlog() > 0 && Date.now() - started < 5_000; ) await delay(10);
    expect(backlog()).toBe(0);
  }, 60_000);

  it('30 connections each sending N bytes with an OPEN stop at the ceiling (the rest refused), old clients are answered, all taken complete', async () => {
    const mark = 2 * MiB;
    const { held, total, filled, big } = await stalledPastTheMarkHere(mark);
    // Thirty clients that took the initial window each send a whole upload at once, no WINDOW
    // awaited: each connection's is taken while it holds nothing, until the ceiling is passed;
    // from there they are refused (SERVER_BUSY) and their bytes dropped.
    const content = randomBytes(DEFAULTS.uploadInitialWindowBytes);
    const digest = contentDigest('xxh128', content);
    // All connected first: one connecting past the ceiling would get no initial window.
    const uploaders: RawPeer[] = [];
    for (let i = 0; i < 30; i++) {
      const peer = await RawPeer.open(env!.port, ['xxh128'], { uploadInitialWindow: true });
      peers.push(peer);
      uploaders.push(peer);
    }
    for (const [i, peer] of uploaders.entries()) peer.write(wholePutOnOpen(`p${i}`, content, digest));
    let peak = total();
    for (let i = 0; i < 50; i++) {
      peak = Math.max(peak, total());
      await delay(10);
    }
    // The ceiling (a quarter past the mark), then at most the rest of one read (256 KiB, in at
    // most two receive blocks, and a stream's first few KiB in a buffer of their own). Without
    // the ceiling each of the 30 brought its read: 9.75 MiB here (2.75 MiB with it).
    const ceiling = mark + mark / 4;
    expect(peak).toBeLessThanOrEqual(
      ceiling + 2 * DEFAULTS.receivedBlockBytes + DEFAULTS.receivedOwnBufferBytes,
    );
    // A client without the initial window can bring nothing with an OPEN: it is still answered.
    const old = await RawPeer.open(env!.port);
    peers.push(old);
    old.write(encodeOpen(1, { op: 'stat', path: 'big' }));
    expect(parseErrorPayload(await old.waitFor((f) => f.streamId === 1)).code).toBe('NOT_FOUND');
    held.release();
    expect((await filled).digest).toBe(contentDigest('xxh128', big).toString('hex'));
    const taken: number[] = [];
    for (const [i, peer] of uploaders.entries()) {
      const answer = await peer.waitFor(
        (f) => (f.type === FrameType.REPLY || f.type === FrameType.ERROR) && f.streamId === 1,
        10_000,
      );
      if (answer.type === FrameType.REPLY) taken.push(i);
      else expect(parseErrorPayload(answer).code).toBe('SERVER_BUSY');
    }
    expect(taken.length).toBeGreaterThan(0);
    expect(taken.length).toBeLessThan(30);
    const reader = await env!.connect();
    const last = taken[taken.length - 1]!;
    expect((await reader.getBuffer(`p${last}`)).equals(content)).toBe(true);
    expect(await reader.list('')).toHaveLength(taken.length + 1);
    for (const started = Date.now(); total() > 0 && Date.now() - started < 5_000; ) await delay(10);
    expect(total()).toBe(0);
  }, 60_000);
});

describe('past the ceiling, clients that took the initial window and upload nothing', () => {
  it('are still read and answered; a put from one is refused at once (SERVER_BUSY), not held, not hung; one connecting then gets no initial window, and its put waits', async () => {
    const mark = 2 * MiB;
    const ceiling = mark + mark / 4;
    const { held, total, filled, big } = await stalledPastTheMarkHere(mark);
    // Today's client, connected before the ceiling is passed, takes the initial window.
    const client = await env!.connect();
    expect(client.uploadInitialWindow).toBe(DEFAULTS.uploadInitialWindowBytes);
    // Uploads sent with their OPEN take the total past the ceiling.
    const content = randomBytes(DEFAULTS.uploadInitialWindowBytes);
    const digest = contentDigest('xxh128', content);
    for (let i = 0; i < 30 && total() <= ceiling; i++) {
      const peer = await RawPeer.open(env!.port, ['xxh128'], { uploadInitialWindow: true });
      peers.push(peer);
      peer.write(wholePutOnOpen(`p${i}`, content, digest));
      for (const started = Date.now(); Date.now() - started < 100 && total() <= ceiling; ) await delay(5);
    }
    expect(total()).toBeGreaterThan(ceiling);
    const before = total();
    // With no upload open it holds nothing: a stat, a listing must be answered while the disk is
    // stalled, as an old client's are.
    const within = <T>(promise: Promise<T>): Promise<T> =>
      Promise.race([
        promise,
        new Promise<T>((_, reject) => setTimeout(() => reject(new Error('not answered within 3 s')), 3_000)),
      ]);
    await expect(within(client.stat('big'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await within(client.list(''))).length).toBe(0);
    // Its put would bring bytes with the OPEN: refused, and what it sent is not held.
    await expect(within(client.put('small', Buffer.from('hello')))).rejects.toMatchObject({
      code: 'SERVER_BUSY',
    });
    await expect(within(client.stat('small'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(total()).toBeLessThanOrEqual(before);
    // A client connecting now is announced no initial window: its put brings nothing with its
    // OPEN, so it is not refused; it waits for credit, as before there was an initial window.
    const late = await env!.connect();
    expect(late.uploadInitialWindow).toBe(0);
    const waiting = late.put('late', Buffer.from('waited'));
    waiting.catch(() => {});
    await delay(200);
    held.release();
    expect((await filled).digest).toBe(contentDigest('xxh128', big).toString('hex'));
    expect((await waiting).entry.size).toBe(6);
    for (const started = Date.now(); total() > 0 && Date.now() - started < 5_000; ) await delay(10);
    // Once the disk caught up, the same client uploads as usual.
    expect((await client.put('small', Buffer.from('hello'))).entry.size).toBe(5);
  }, 60_000);
});
