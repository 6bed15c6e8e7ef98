/**
 * --max-open-files covers every request that holds a stored file open while it reads it, not
 * only get and put: a `digest` (stat --hash) reads the whole file, a `partial` query the data an
 * interrupted upload kept. Uncounted, 256 of them per connection held descriptors past the cap
 * and into the reserve kept for accepting and answering. Real sockets; reads are held open by
 * the test so that the requests overlap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeOpen } from '../shared/protocol/encoder.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { partialName } from '../shared/temporaryNames.js';
import { MemoryStorage } from '../storage/memory.js';
import type { PartialRead, ReadHandle, Storage } from '../storage/types.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
let releaseReads: () => void = () => {};
afterEach(async () => {
  releaseReads();
  env = await stopServerAndPeers(env, peers);
});

/** `storage` whose file reads wait until released; counts the files open for reading. */
function heldReads(storage: Storage): { storage: Storage; open(): number; release(): void } {
  let open = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const hold = <T extends ReadHandle | PartialRead>(handle: T): T => {
    open++;
    let closed = false;
    return new Proxy(handle, {
      get(target, property) {
        if (property === 'read') {
          return async (buffer: Buffer, offset: number, length: number, position: number) => {
            await released;
            return target.read(buffer, offset, length, position);
          };
        }
        if (property === 'close') {
          return () => {
            if (!closed) open--;
            closed = true;
            return target.close();
          };
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  const wrapped = new Proxy(storage, {
    get(target, property) {
      if (property === 'openRead') return async (path: string) => hold(await target.openRead(path));
      if (property === 'openPartial') {
        return async (...args: Parameters<NonNullable<Storage['openPartial']>>) => {
          const partial = await target.openPartial!(...args);
          return partial === undefined ? undefined : hold(partial);
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { storage: wrapped, open: () => open, release };
}

/** Each stream's outcome: its REPLY, or its ERROR's code. */
async function outcomes(peer: RawPeer, ids: readonly number[]): Promise<string[]> {
  return Promise.all(
    ids.map(async (id) => {
      const frame = await peer.waitFor(
        (f) => f.streamId === id && (f.type === FrameType.REPLY || f.type === FrameType.ERROR),
      );
      return frame.type === FrameType.REPLY ? 'answered' : parseErrorPayload(frame).code;
    }),
  );
}

const CAP = 3;
const REQUESTS = 6;

describe('--max-open-files counts requests that read a stored file', () => {
  it('digest: past the cap, SERVER_BUSY; the others are answered once their reads go on', async () => {
    const memory = new MemoryStorage();
    memory.volume.writeFileSync('/f.bin', Buffer.alloc(3 * 1024 * 1024, 1));
    const held = heldReads(memory);
    releaseReads = held.release;
    env = await startServer({ storage: held.storage, maxOpenFiles: CAP });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    const ids = Array.from({ length: REQUESTS }, (_, i) => 2 * i + 1);
    peer.write(
      Buffer.concat(ids.map((id) => encodeOpen(id, { op: 'digest', path: 'f.bin', algorithm: 'xxh128' }))),
    );
    const busy = await Promise.all(
      ids.slice(CAP).map(async (id) => parseErrorPayload(await peer.waitFor((f) => f.streamId === id)).code),
    );
    // Before: every digest opened the file (6 open, none refused).
    expect(busy).toEqual(Array(REQUESTS - CAP).fill('SERVER_BUSY'));
    expect(held.open()).toBe(CAP);
    held.release();
    expect(await outcomes(peer, ids.slice(0, CAP))).toEqual(Array(CAP).fill('answered'));
    expect(env.server.counters.openFiles).toBe(0);
    expect(held.open()).toBe(0);
  });

  it('partial: past the cap, SERVER_BUSY', async () => {
    const memory = new MemoryStorage();
    const key = { size: 8 * 1024 * 1024, algorithm: 'xxh128' as const, source: 'src' };
    memory.volume.writeFileSync(`/${partialName('big.bin', key)}`, Buffer.alloc(4 * 1024 * 1024, 2));
    const held = heldReads(memory);
    releaseReads = held.release;
    env = await startServer({ storage: held.storage, maxOpenFiles: CAP });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    const ids = Array.from({ length: REQUESTS }, (_, i) => 2 * i + 1);
    peer.write(Buffer.concat(ids.map((id) => encodeOpen(id, { op: 'partial', path: 'big.bin', ...key }))));
    const busy = await Promise.all(
      ids.slice(CAP).map(async (id) => parseErrorPayload(await peer.waitFor((f) => f.streamId === id)).code),
    );
    expect(busy).toEqual(Array(REQUESTS - CAP).fill('SERVER_BUSY'));
    expect(held.open()).toBe(CAP);
    held.release();
    expect(await outcomes(peer, ids.slice(0, CAP))).toEqual(Array(CAP).fill('answered'));
    expect(env.server.counters.openFiles).toBe(0);
  });
});
