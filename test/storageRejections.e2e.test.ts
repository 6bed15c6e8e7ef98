/**
 * Storage is a public interface: an implementation whose close() or abort() rejects must cost
 * the one stream, never the server. A rejection nothing handled is fatal in Node 20 (the process
 * exits), so the server handles each one it starts and does not wait for. Real sockets, memfs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeCancel, encodeData, encodeOpen } from '../shared/protocol/encoder.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage } from '../storage/types.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
afterEach(async () => {
  process.off('unhandledRejection', onUnhandled);
  unhandled.length = 0;
  failingCalls = 0;
  env = await stopServerAndPeers(env, peers);
});

/** `storage` with `override` in place of some of its calls. */
function withCalls(storage: Storage, override: Partial<Storage>): Storage {
  return new Proxy(storage, {
    get(target, property) {
      if (property in override) return override[property as keyof Storage];
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

let failingCalls = 0;
const failing = () => {
  failingCalls++;
  return Promise.reject(new Error('the storage failed to let go'));
};

/**
 * Once the server has called the failing release (up to 5 s), a few turns of the loop: long
 * enough for its rejection to be reported if unhandled. A fixed 50 ms alone could end before
 * the call on a loaded machine, and the test then passed without a rejection to look at.
 */
async function afterTheFailingCall(): Promise<void> {
  for (let i = 0; i < 500 && failingCalls === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(failingCalls, 'the server never called the failing release').toBe(1);
  await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('a storage whose release calls reject', () => {
  it('a get cancelled while its file opens: the close that fails is handled', async () => {
    process.on('unhandledRejection', onUnhandled);
    const memory = new MemoryStorage();
    memory.volume.writeFileSync('/f', 'content');
    let opened!: () => void;
    const openCalled = new Promise<void>((resolve) => {
      opened = resolve;
    });
    let letOpen!: () => void;
    const mayOpen = new Promise<void>((resolve) => {
      letOpen = resolve;
    });
    env = await startServer({
      storage: withCalls(memory, {
        openRead: async (path) => {
          opened();
          await mayOpen;
          const handle = await memory.openRead(path);
          await handle.close();
          return { ...handle, knownDigest: () => undefined, rememberDigest: () => {}, close: failing };
        },
      }),
    });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'get', path: 'f' }));
    await openCalled;
    peer.write(encodeCancel(1));
    peer.write(encodeOpen(3, { op: 'stats' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    letOpen();
    await afterTheFailingCall();
    expect(unhandled).toEqual([]);
  });

  it('an upload cancelled: the abort that fails is handled', async () => {
    process.on('unhandledRejection', onUnhandled);
    const memory = new MemoryStorage();
    env = await startServer({
      storage: withCalls(memory, {
        createUpload: async (path, options) => {
          const upload = await memory.createUpload(path, options);
          return Object.assign(Object.create(upload) as typeof upload, {
            write: (chunks: readonly Buffer[]) => upload.write(chunks),
            abort: () => upload.abort().then(failing),
          });
        },
      }),
    });
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'put', path: 'f' }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(Buffer.concat([encodeData(1, Buffer.from('abc')), encodeCancel(1)]));
    peer.write(encodeOpen(3, { op: 'stats' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    await afterTheFailingCall();
    expect(unhandled).toEqual([]);
  });
});
