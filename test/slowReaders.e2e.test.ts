/**
 * A client that reads slowly but steadily is not one that reads nothing. Node keeps a whole
 * corked writev batch (up to the 4 MiB outbound high-water mark) in the socket's writableLength
 * until all of it is in the kernel, so judged by that, a client reading less than one batch per
 * idle timeout looked as if it read nothing, and was closed with IDLE_TIMEOUT (its download
 * failed with STREAM_TIMEOUT first). Over real sockets, with a short idle timeout.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeOpen, encodeWindow } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { parseEnd } from '../shared/protocol/messages.js';
import type { MemoryStorage } from '../storage/memory.js';
import { MiB } from './helpers/heap.js';
import { type OwnedByTest, ownFor } from './helpers/ownedByTest.js';
import { RawPeer } from './helpers/rawPeer.js';
import { makeTestCerts, opensslAvailable, type TestCerts } from './helpers/testCerts.js';
import { delay } from './helpers/waits.js';

let certs: TestCerts | undefined;
beforeAll(async () => {
  if (opensslAvailable) certs = await makeTestCerts();
});
afterAll(async () => {
  await certs?.remove();
});

/** A TLS connection to the test server, trusting the test CA. */
function connectOverTls(port: number, ca: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
  });
}

/**
 * A peer that asks for `path` with all the credit it may ever need, and reads nothing yet; over
 * TLS when given the CA to trust.
 */
async function askForFile(own: OwnedByTest, port: number, path: string, ca?: Buffer): Promise<RawPeer> {
  const peer = own.destroys(await RawPeer.open(ca === undefined ? port : await connectOverTls(port, ca)));
  peer.socket.pause();
  peer.write(Buffer.concat([encodeOpen(1, { op: 'get', path }), encodeWindow(1, 2 ** 31 - 1)]));
  return peer;
}

const TICK_MS = 100;
const BYTES_PER_TICK = 512 * 1024;

/** Reads about `bytesPerTick` every TICK_MS: flowing until the tick's share is in, then paused. */
function readSteadily(own: OwnedByTest, peer: RawPeer, bytesPerTick: number): void {
  let left = bytesPerTick;
  peer.socket.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left <= 0) peer.socket.pause();
  });
  const ticks = setInterval(() => {
    left = bytesPerTick;
    peer.socket.resume();
  }, TICK_MS);
  own.defer(() => clearInterval(ticks));
}

// Over TLS the socket's handle is TLS's, which writes through the TCP handle below it: that one's
// unwritten bytes are the ones the kernel takes. The two mostly wait for a slow reader: at once,
// each letting go of only its own (ownFor).
describe.concurrent.each([
  { transport: 'TCP', tls: false },
  { transport: 'TLS', tls: true },
])('a client that reads slowly but steadily, over $transport', ({ tls }) => {
  it.skipIf(tls && !opensslAvailable)(
    'keeps its connection and gets the whole file verified; one that reads nothing is still closed',
    async (test) => {
      const own = ownFor(test);
      const ca = tls ? certs!.ca : undefined;
      const idleTimeoutMs = 1_000;
      // A 16 MiB outbound mark, so a batch (~13 MiB here) is many times what the kernel takes in
      // one step on loopback (~1.5 MB: a third of its autotuned send buffer), as a 4 MiB batch is
      // over a real slow link, whose kernel buffers stay small.
      const env = await own.server({
        backend: 'memory',
        idleTimeoutMs,
        outboundHighWaterBytes: 16 * MiB,
        ...(tls ? { tls: { cert: certs!.cert, key: certs!.key } } : {}),
      });
      const content = randomBytes(32 * MiB);
      (env.storage as MemoryStorage).volume.writeFileSync('/big', content);

      // ~5 MB/s: a batch takes seconds to reach the kernel whole, while steps come every ~0.3 s.
      const slow = await askForFile(own, env.port, 'big', ca);
      readSteadily(own, slow, BYTES_PER_TICK);
      const idle = await askForFile(own, env.port, 'big', ca);

      // Bounded: 32 MiB at ~5 MB/s is ~7 s; the test's own timeout is above this.
      const ended = (f: Frame) =>
        (f.type === FrameType.END && f.streamId === 1) || (f.type === FrameType.ERROR && f.streamId !== 0);
      const last = await slow.waitFor(ended, 25_000).catch(() => undefined);
      // Nothing failed before the END. (Once every byte is in the kernel and no stream is open, the
      // connection is idle: it may be closed then, behind the END.)
      const untilEnd = slow.frames.slice(0, last === undefined ? undefined : slow.frames.indexOf(last) + 1);
      const errors = untilEnd.filter((f) => f.type === FrameType.ERROR).map((f) => f.payload.toString());
      expect(errors).toEqual([]);
      expect(last?.type).toBe(FrameType.END);
      const data = Buffer.concat(
        slow.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).map((f) => f.payload),
      );
      expect(data.length).toBe(content.length);
      const end = parseEnd(last!);
      expect(end.size).toBe(content.length);
      expect(end.digest.equals(contentDigest(end.algorithm, data))).toBe(true);
      expect(data.equals(content)).toBe(true);

      // The one that read nothing was closed as such (within two timeouts: long since); not the other.
      const closedForReadingNothing = (peer: RawPeer) =>
        env.logs.some((line) =>
          new RegExp(`:${(peer.socket as Socket).localPort}( tls)? read nothing for`).test(line),
        );
      for (let i = 0; i < 100 && !closedForReadingNothing(idle); i++) await delay(50);
      expect(closedForReadingNothing(idle)).toBe(true);
      expect(closedForReadingNothing(slow)).toBe(false);
      expect(env.server.counters.errors.get('STREAM_TIMEOUT') ?? 0).toBeLessThanOrEqual(1); // the idle one's
    },
    40_000,
  );
});
