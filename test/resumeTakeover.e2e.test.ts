/**
 * A resumed upload (put -c) must never commit kept bytes it did not check. It used to hash the
 * kept prefix through one file handle, then take the kept data over by opening it again: a second
 * upload with the same key could take it over in between, rewrite the prefix and be cut off, and
 * the first then went on with a digest of bytes no longer on disk, passed, and published a file
 * whose first blocks no one had verified. Here a Storage wrapper holds the resumed upload just
 * before its takeover while the second one does exactly that, over real sockets.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { partialName } from '../shared/temporaryNames.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage } from '../storage/types.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;
let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

/** `storage`, except that a resumed upload's createUpload waits until release() is called. */
function holdingResumes(storage: Storage): { storage: Storage; held: Promise<void>; release: () => void } {
  let reached: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const wrapped = new Proxy(storage, {
    get(target, property) {
      if (property === 'createUpload') {
        return async (path: string, options?: Parameters<Storage['createUpload']>[1]) => {
          if ((options?.resumeFrom ?? 0) > 0) {
            reached();
            await released;
          }
          return target.createUpload(path, options);
        };
      }
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { storage: wrapped, held, release };
}

/** Sends `bytes` as DATA on stream `id` as the server's credit allows. */
async function sendWithCredit(peer: RawPeer, id: number, bytes: Buffer): Promise<void> {
  const credit = () =>
    peer.frames
      .filter((f) => f.type === FrameType.WINDOW && f.streamId === id)
      .reduce((sum, f) => sum + f.payload.readUInt32BE(0), 0);
  for (let sent = 0; sent < bytes.length; ) {
    if (credit() <= sent) await peer.waitFor(() => credit() > sent, 10_000);
    const length = Math.min(256 * 1024, credit() - sent, bytes.length - sent);
    peer.write(encodeData(id, bytes.subarray(sent, sent + length)));
    sent += length;
  }
}

describe('a resumed upload and another upload of the same key', () => {
  it('never publishes kept bytes the resumed upload did not check', async () => {
    const memory = new MemoryStorage();
    const { storage, held, release } = holdingResumes(memory);
    env = await startServer({ storage });
    const content = randomBytes(3 * BLOCK + 1000);
    const key = { size: content.length, algorithm: 'xxh128' as const, source: 'the same file' };
    const keptPath = `/${partialName('f', key)}`;
    // What an interrupted upload of `content` kept: its first two blocks.
    memory.volume.writeFileSync(keptPath, content.subarray(0, 2 * BLOCK));

    // The resumed upload gets as far as taking the kept data over, and is held there.
    const resumed = await RawPeer.open(env.port);
    peers.push(resumed);
    resumed.write(
      encodeOpen(1, { op: 'put', path: 'f', size: key.size, source: key.source, offset: 2 * BLOCK }),
    );
    await held;

    // Meanwhile another upload of the same key takes the kept data over, rewrites its two blocks
    // with other bytes, and is cut off: they are kept.
    const other = randomBytes(2 * BLOCK);
    const intruder = await RawPeer.open(env.port);
    peers.push(intruder);
    intruder.write(encodeOpen(1, { op: 'put', path: 'f', size: key.size, source: key.source }));
    await sendWithCredit(intruder, 1, other);
    await until(
      () => (memory.volume.readFileSync(keptPath) as Buffer).subarray(0, 2 * BLOCK).equals(other),
      'the rewrite',
    );
    intruder.destroy();
    await until(async () => {
      const kept = await memory.openPartial('f', key);
      await kept?.close();
      return kept?.size === 2 * BLOCK;
    }, 'the cut-off upload to be over');

    // The resumed upload goes on and sends the rest of `content`, and END with its digest.
    release();
    await sendWithCredit(resumed, 1, content.subarray(2 * BLOCK));
    resumed.write(encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)));
    const answer = await resumed.waitFor(
      (f) => f.streamId === 1 && (f.type === FrameType.REPLY || f.type === FrameType.ERROR),
      20_000,
    );
    // Before, REPLY: `f` was published with the intruder's first two blocks.
    const published = memory.volume.existsSync('/f')
      ? (memory.volume.readFileSync('/f') as Buffer)
      : undefined;
    expect(published === undefined || published.equals(content), 'a published file is the content').toBe(
      true,
    );
    expect(answer.type).toBe(FrameType.ERROR);
    expect(parseErrorPayload(answer).code).toBe('INTEGRITY_ERROR');
    expect(published).toBeUndefined();
  });
});
