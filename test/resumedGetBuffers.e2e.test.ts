/**
 * A resumed `get` hashes the prefix its client already has before it answers (END's D covers the
 * whole file). Those reads go through the server's few shared hash buffers, as a `digest`'s do:
 * each took a 1 MiB buffer of its own, so clients opening many resumed gets of large files held
 * a MiB each outside every budget, up to the open-file cap (1,024: a GiB). Real server on
 * 127.0.0.1 (memory storage), raw peers, reads held until the test lets them go.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeCancel, encodeOpen } from '../shared/protocol/encoder.js';
import { hashReadBuffers } from '../storage/hashReadBuffers.js';
import { MemoryStorage } from '../storage/memory.js';
import { peakOf } from './helpers/peak.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

it('resumed gets hash their prefix through the shared buffers, a few per connection, then all are answered', async () => {
  const storage = new MemoryStorage();
  storage.volume.writeFileSync('/big', randomBytes(INTEGRITY_BLOCK_BYTES + 10));
  // Every read waits until the test lets go, its reader holding its buffer meanwhile.
  let reading = 0;
  let letGo: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  const openRead = storage.openRead.bind(storage);
  storage.openRead = async (path) => {
    const handle = await openRead(path);
    const read = handle.read.bind(handle);
    handle.read = async (...args) => {
      reading++;
      await gate;
      reading--;
      return read(...args);
    };
    return handle;
  };
  env = await startServer({ storage });
  // 6 connections asking 8 each: past the share of each, and together past all the buffers.
  const connections = 6;
  const each = 2 * DEFAULTS.hashReadBuffersPerOwner;
  for (let c = 0; c < connections; c++) {
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    const ids = Array.from({ length: each }, (_, k) => 2 * k + 1);
    peer.write(
      Buffer.concat(
        ids.map((id) => encodeOpen(id, { op: 'get', path: 'big', offset: INTEGRITY_BLOCK_BYTES })),
      ),
    );
  }
  const peak = await peakOf(() => reading, {
    above: DEFAULTS.hashReadBuffers - 1,
    stableMs: 500,
    timeoutMs: 5_000,
  });
  letGo();
  // Before: every stream read at once, each through a MiB of its own.
  expect(peak).toBeLessThanOrEqual(DEFAULTS.hashReadBuffers);
  for (const peer of peers) {
    for (let k = 0; k < each; k++) {
      const id = 2 * k + 1;
      const reply = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === id, 10_000);
      expect(JSON.parse(reply.payload.toString()).offset).toBe(INTEGRITY_BLOCK_BYTES);
    }
  }
}, 30_000);

it('resumed gets waiting for a buffer give their place back when cancelled or their connection goes', async () => {
  const storage = new MemoryStorage();
  storage.volume.writeFileSync('/big', randomBytes(INTEGRITY_BLOCK_BYTES + 10));
  // Every read waits until the test lets go, its reader holding its buffer meanwhile.
  let letGo: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  const openRead = storage.openRead.bind(storage);
  storage.openRead = async (path) => {
    const handle = await openRead(path);
    const read = handle.read.bind(handle);
    handle.read = async (...args) => {
      await gate;
      return read(...args);
    };
    return handle;
  };
  env = await startServer({ storage });
  const connections = 6;
  const each = 2 * DEFAULTS.hashReadBuffersPerOwner;
  const ids = Array.from({ length: each }, (_, k) => 2 * k + 1);
  for (let c = 0; c < connections; c++) {
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(
      Buffer.concat(
        ids.map((id) => encodeOpen(id, { op: 'get', path: 'big', offset: INTEGRITY_BLOCK_BYTES })),
      ),
    );
  }
  const all = connections * each;
  await until(
    () =>
      hashReadBuffers.lent === DEFAULTS.hashReadBuffers &&
      hashReadBuffers.waitingCount === all - DEFAULTS.hashReadBuffers,
    'every stream to hold a buffer or wait for one',
  );
  // Two connections go (Ctrl-C twice, a cable pulled), a third cancels all its streams (Ctrl-C):
  // what they held or waited for goes to the other three, which then hold all they may.
  peers[0]!.destroy();
  peers[1]!.destroy();
  peers[2]!.write(Buffer.concat(ids.map((id) => encodeCancel(id))));
  const share = 3 * DEFAULTS.hashReadBuffersPerOwner;
  await until(
    () => hashReadBuffers.lent === share && hashReadBuffers.waitingCount === 3 * each - share,
    'the places of the streams that went to be given back',
  );
  letGo();
  for (const peer of peers.slice(3)) {
    for (const id of ids) {
      const reply = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === id, 10_000);
      expect(JSON.parse(reply.payload.toString()).offset).toBe(INTEGRITY_BLOCK_BYTES);
    }
  }
  await until(() => hashReadBuffers.lent === 0 && hashReadBuffers.waitingCount === 0, 'every buffer back');
}, 30_000);
