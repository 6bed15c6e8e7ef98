/**
 * A client that reads nothing, on a real clock: each answer it leaves unread fails with
 * STREAM_TIMEOUT before the connection is closed with IDLE_TIMEOUT, whenever in the timer's
 * interval its stream opened. The connection's timer is restarted by the OPEN that opens its first
 * stream; before, it was restarted just before that stream existed, and streams that opened
 * later in the interval were not a whole timeout old at the first check, so at the second one the
 * connection was closed (read nothing) before they were failed: they never got STREAM_TIMEOUT.
 */
import type { Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeOpen } from '../shared/protocol/encoder.js';
import type { MemoryStorage } from '../storage/memory.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

function fillDirectory(volume: Volume, dir: string, count: number, padding: string): void {
  volume.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++)
    volume.writeFileSync(`${dir}/entry-${String(i).padStart(6, '0')}${padding}`, '');
}

describe('a client that reads nothing of its answers', () => {
  it('gets STREAM_TIMEOUT on every unanswered stream before the connection closes with IDLE_TIMEOUT', async () => {
    // Long enough that all 60 OPENs are read before the first check, on a loaded machine too
    // (500 ms left a stall of ~450 ms to fail `open > 30`); the later ones still open well
    // inside the timer's first interval.
    const idleTimeoutMs = 1_500;
    env = await startServer({ backend: 'memory', idleTimeoutMs });
    // Long names: ~270 KB per listing, ~16 MB for 60, more than the outbound budget and the
    // sockets' buffers hold, so most listings wait for room that does not come.
    fillDirectory((env.storage as MemoryStorage).volume, '/dir', 1_000, 'n'.repeat(200));
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.socket.pause();
    peer.write(encodeOpen(1, { op: 'list', path: 'dir' }));
    // The others open later in the timer's interval (a real clock: no fake timers here).
    await delay(50);
    const later = Array.from({ length: 59 }, (_, s) => 2 * s + 3);
    peer.write(Buffer.concat(later.map((id) => encodeOpen(id, { op: 'list', path: 'dir' }))));
    // Until the connection is closed (within two timeouts; bounded at 10 s), noting how many
    // streams it had open before any timed out: once the budget is full none of them can finish.
    const counted = (code: 'IDLE_TIMEOUT' | 'STREAM_TIMEOUT') => env!.server.counters.errors.get(code) ?? 0;
    let open = 0;
    for (let i = 0; i < 200 && counted('IDLE_TIMEOUT') === 0; i++) {
      if (counted('STREAM_TIMEOUT') === 0) open = env.server.connectionFigures()[0]?.openStreams ?? 0;
      await delay(50);
    }
    expect(counted('IDLE_TIMEOUT')).toBe(1);
    expect(open).toBeGreaterThan(30);
    expect(counted('STREAM_TIMEOUT')).toBe(open);
    for (let i = 0; i < 100 && env.server.connectionFigures().length > 0; i++) await delay(50);
    expect(env.server.connectionFigures()).toEqual([]);
  });
});

describe('an upload that sends only empty DATA frames', () => {
  it('moves no data, so it fails STREAM_TIMEOUT as a silent one does', async () => {
    env = await startServer({ backend: 'memory', idleTimeoutMs: 400 });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'put', path: 'never.bin', size: 10 }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    // Before: each empty frame counted as progress, and the stream (its temporary file, its
    // open-file slot) was held for as long as they came.
    let failed = false;
    const error = peer.streamError(1).finally(() => {
      failed = true;
    });
    // Within two timeouts of the last real progress (the timer's check), with room to spare.
    let sent = 0;
    for (; sent < 60 && !failed; sent++) {
      peer.write(encodeData(1, Buffer.alloc(0)));
      await delay(50);
    }
    expect(failed).toBe(true);
    expect(await error).toMatchObject({ code: 'STREAM_TIMEOUT' });
  });
});

describe('a transfer that stops moving', () => {
  it('fails STREAM_TIMEOUT, and the log names it and how far it got, as it names one cut by a lost connection', async () => {
    // Found by stopping a client (kill -STOP) mid-put under --idle-timeout 3: its upload was
    // failed and then its connection closed, and no line named the file.
    env = await startServer({ backend: 'memory', idleTimeoutMs: 400 });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'put', path: 'stopped.bin', size: 10 }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, Buffer.alloc(4)));
    // Within two timeouts of its last progress; bounded by the test's own timeout.
    expect(await peer.streamError(1)).toMatchObject({ code: 'STREAM_TIMEOUT' });
    expect(env.logs.filter((line) => line.includes('stopped.bin'))).toEqual([
      expect.stringMatching(/ upload of stopped\.bin cut after 4 of 10 B \(STREAM_TIMEOUT\)$/),
    ]);
  });
});
