/**
 * Large REPLYs a client asks for and never reads (a resumed get's, a `partial` query's: up to
 * 2048 block digests each): raw peers that each send their OPENs at once and then read nothing,
 * the server's held control bytes sampled meanwhile; then one peer reading them all, and the
 * server holding nothing once the peers are gone.
 */
import { expect } from 'vitest';
import { FrameType } from '../../shared/protocol/constants.js';
import { encodeOpen } from '../../shared/protocol/encoder.js';
import type { Request } from '../../shared/protocol/messages.js';
import { RawPeer } from './rawPeer.js';
import type { TestServer } from './testServer.js';
import { delay } from './waits.js';

/**
 * Opens `count` peers (pushed onto `peers`, for the file's teardown), each sending `requests`
 * OPENs of `request` on odd stream ids and reading nothing; resolves to the most control bytes
 * the server held over the next 3 s.
 */
export async function peakOfUnreadReplies(
  env: TestServer,
  peers: RawPeer[],
  count: number,
  requests: number,
  request: Request,
): Promise<number> {
  for (let i = 0; i < count; i++) {
    const peer = await RawPeer.open(env.port);
    peer.socket.pause(); // reads nothing from now on
    peers.push(peer);
    peer.write(Buffer.concat(Array.from({ length: requests }, (_, s) => encodeOpen(2 * s + 1, request))));
  }
  let peak = 0;
  for (const started = Date.now(); Date.now() - started < 3_000; ) {
    await delay(20);
    peak = Math.max(peak, env.server.controlHeldBytes);
  }
  return peak;
}

/** The REPLYs `peer` gets once it reads again: all `requests` of them (20 s at most), parsed. */
export async function repliesOnceRead(
  peer: RawPeer,
  requests: number,
): Promise<Array<{ offset: number; blocks: string[] }>> {
  peer.socket.resume();
  const replies = () => peer.frames.filter((f) => f.type === FrameType.REPLY);
  for (const started = Date.now(); replies().length < requests && Date.now() - started < 20_000; )
    await delay(20);
  expect(replies()).toHaveLength(requests);
  return replies().map((f) => JSON.parse(f.payload.toString()) as { offset: number; blocks: string[] });
}

/** Destroys the peers and expects the server to hold no control bytes within 5 s. */
export async function expectAllReleased(env: TestServer, peers: RawPeer[]): Promise<void> {
  for (const peer of peers) peer.destroy();
  for (const started = Date.now(); env.server.controlHeldBytes > 0 && Date.now() - started < 5_000; )
    await delay(10);
  expect(env.server.controlHeldBytes).toBe(0);
}
