/**
 * A memory server whose disk is stalled: every upload write waits for `held.release()`, and one
 * client's 6 MiB upload holds the server-wide upload backlog past `mark` (its connection alone may
 * hold 8 MiB). Then, on request, clients that took the initial window each send a whole put with
 * its OPEN until the backlog is past the ceiling (a quarter above the mark).
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { Client, PutResult } from '../../client/client.js';
import type { ServerOptions } from '../../server/options.js';
import { DEFAULTS } from '../../shared/defaults.js';
import { contentDigest } from '../../shared/integrity/contentDigest.js';
import { encodeData, encodeEnd, encodeOpen } from '../../shared/protocol/encoder.js';
import { MemoryStorage } from '../../storage/memory.js';
import { type HeldUploads, holdUploads } from './heldUploads.js';
import { RawPeer } from './rawPeer.js';
import { startServer, type TestServer } from './testServer.js';
import { delay } from './waits.js';

const MiB = 1024 * 1024;

export interface StalledDisk {
  env: TestServer;
  storage: MemoryStorage;
  held: HeldUploads;
  /** Memory holding upload bytes for the disk, all connections together. */
  total(): number;
  filler: Client;
  /** The filler's 6 MiB put, settled once the disk catches up. */
  filled: Promise<PutResult>;
  big: Buffer;
}

/** Stream 1's whole put of `content`, sent with its OPEN on the initial window (no WINDOW awaited). */
export function wholePutOnOpen(path: string, content: Buffer, digest: Buffer): Buffer {
  return Buffer.concat([
    encodeOpen(1, { op: 'put', path, size: content.length }),
    encodeData(1, content),
    encodeEnd(1, content.length, 'xxh128', digest),
  ]);
}

/**
 * Starts the server (handed to `started` at once, so the test's teardown stops it whatever
 * happens next) with `storage` (a fresh MemoryStorage by default) and holds it past `mark`.
 */
export async function stalledPastTheMark(
  mark: number,
  started: (env: TestServer) => void,
  options: Partial<ServerOptions> & { storage?: MemoryStorage } = {},
): Promise<StalledDisk> {
  const storage = options.storage ?? new MemoryStorage();
  const held = holdUploads(storage);
  const env = await startServer({ ...options, storage, serverUploadBacklogHighWaterBytes: mark });
  started(env);
  const server = env.server;
  const total = () => server.connectionFigures().reduce((sum, c) => sum + c.uploadBacklogBytes, 0);
  const filler = await env.connect();
  const big = randomBytes(6 * MiB);
  const filled = filler.put('big', big);
  filled.catch(() => {});
  await held.holding;
  for (const started = Date.now(); total() <= mark && Date.now() - started < 10_000; ) await delay(5);
  expect(total()).toBeGreaterThan(mark);
  return { env, storage, held, total, filler, filled, big };
}

/**
 * Takes the stalled server past its ceiling: clients that took the initial window (added to
 * `peers`, for the teardown) each send a whole put of N bytes with its OPEN, one at a time.
 */
export async function pushPastTheCeiling(
  port: number,
  total: () => number,
  mark: number,
  peers: RawPeer[],
): Promise<void> {
  const ceiling = mark + mark / 4;
  const content = randomBytes(DEFAULTS.uploadInitialWindowBytes);
  const digest = contentDigest('xxh128', content);
  for (let i = 0; i < 30 && total() <= ceiling; i++) {
    const peer = await RawPeer.open(port, ['xxh128'], { uploadInitialWindow: true });
    peers.push(peer);
    peer.write(wholePutOnOpen(`push${i}`, content, digest));
    for (const started = Date.now(); Date.now() - started < 100 && total() <= ceiling; ) await delay(5);
  }
  expect(total()).toBeGreaterThan(ceiling);
}
