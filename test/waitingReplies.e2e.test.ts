/**
 * A request whose answer waits for room in the server's outbound budget (slow readers hold all
 * of it) stops its connection's reading until the answer has room, without keeping the loop busy
 * meanwhile: the connection was woken at once, every turn, while it held less than its low-water
 * mark (a busy loop: ~100% of a core until room came). Real sockets; the loop's utilization (the
 * share of time it was busy) is measured, not a duration.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeOpen, encodeWindow } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

const MiB = 1024 * 1024;

describe('an answer waiting for room in the server-wide outbound budget', () => {
  it('lets the loop rest until the room comes, then is sent', async () => {
    env = await startServer({ serverOutboundHighWaterBytes: MiB });
    const server = env.server;
    await (await env.connect()).put('f', randomBytes(64 * MiB));
    // Downloads nobody reads: past the budget, each holds a 64 KiB chunk, all together more than it.
    const readers: RawPeer[] = [];
    for (let i = 0; i < 24; i++) {
      const peer = await RawPeer.open(env.port);
      peer.socket.pause();
      peers.push(peer);
      readers.push(peer);
      peer.write(Buffer.concat([encodeOpen(1, { op: 'get', path: 'f' }), encodeWindow(1, 2 ** 31 - 1)]));
    }
    const full = () => server.outboundHeldBytes > MiB;
    for (const started = Date.now(); !full() && Date.now() - started < 10_000; ) await delay(20);
    expect(full()).toBe(true);
    // One of them asks for a stat: holding 64 KiB (under its 1 MiB low-water mark), it gets no room.
    const asking = readers[0]!;
    asking.write(encodeOpen(3, { op: 'stat', path: 'f' }));
    await delay(100);
    // The share of the time the loop was busy (a ratio: load on the machine does not raise it).
    const before = performance.eventLoopUtilization();
    await delay(300);
    const busy = performance.eventLoopUtilization(before).utilization;
    expect(busy).toBeLessThan(0.5);
    // The others go: the budget has room, the answer is sent, the client reads it.
    for (const peer of readers.slice(1)) peer.destroy();
    asking.socket.resume();
    const reply = await asking.waitFor((f) => f.streamId === 3, 10_000);
    expect(reply.type).toBe(FrameType.REPLY);
    // And its requests are read again.
    asking.write(encodeOpen(5, { op: 'stat', path: 'f' }));
    expect((await asking.waitFor((f) => f.streamId === 5, 10_000)).type).toBe(FrameType.REPLY);
  }, 30_000);
});
