/**
 * A server draining for shutdown closes each connection once its last stream is over: a put that
 * fails then (its bytes proved wrong at END) is still told why, before the connection's
 * SHUTTING_DOWN. Real server on 127.0.0.1 (disk storage), a raw protocol peer.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

describe('a server draining for shutdown', () => {
  it('tells a put that fails as its last stream why, before SHUTTING_DOWN', async () => {
    env = await startServer({ backend: 'disk' });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    const content = randomBytes(100_000);
    peer.write(encodeOpen(1, { op: 'put', path: 'x.bin', size: content.length }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, content));
    const closed = env.server.close(10_000);
    // The digest of other bytes: the put fails INTEGRITY_ERROR, and with it the last stream.
    peer.write(encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', Buffer.from('other'))));
    await closed;
    await peer.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 0);
    const errors = peer.frames
      .filter((f) => f.type === FrameType.ERROR)
      .map((f) => [f.streamId, JSON.parse(f.payload.toString()).code]);
    // Before, its ERROR waited for the temporary file to go, came after the connection ended,
    // and was lost: the client saw only SHUTTING_DOWN, as for a put the shutdown cut.
    expect(errors, env.logs.join('\n')).toEqual([
      [1, 'INTEGRITY_ERROR'],
      [0, 'SHUTTING_DOWN'],
    ]);
    await until(async () => (await readdir(env!.root!)).length === 0, 'the temporary file removed');
  });

  it('tells a put that failed just before the drain began why, before SHUTTING_DOWN', async () => {
    env = await startServer({ backend: 'disk' });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    const content = randomBytes(1000);
    peer.write(encodeOpen(1, { op: 'put', path: 'x.bin', size: content.length }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, content));
    await new Promise((resolve) => setTimeout(resolve, 200)); // written by now
    // The drain begins just after the put failed (in the turn its END came), while its answer
    // waits for the temporary file to go.
    let closed: Promise<void> | undefined;
    const logs = env.logs;
    const push = logs.push.bind(logs);
    logs.push = (...lines: string[]) => {
      if (lines.some((line) => line.includes('digest mismatch')))
        queueMicrotask(() => {
          closed = env!.server.close(10_000);
        });
      return push(...lines);
    };
    peer.write(encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', Buffer.from('other'))));
    await until(() => closed !== undefined, 'the drain begun');
    await closed;
    await peer.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 0);
    const errors = peer.frames
      .filter((f) => f.type === FrameType.ERROR)
      .map((f) => [f.streamId, JSON.parse(f.payload.toString()).code]);
    expect(errors, env.logs.join('\n')).toEqual([
      [1, 'INTEGRITY_ERROR'],
      [0, 'SHUTTING_DOWN'],
    ]);
  });
});
