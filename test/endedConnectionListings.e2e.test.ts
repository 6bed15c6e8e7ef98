/**
 * A connection the server ends (its client read nothing for the idle timeout) while its listings
 * wait for room in its output: each listing holds a share of storage's listing budget, which every
 * connection shares, and must give it back once its connection is gone. Real sockets, the memory
 * server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { encodeOpen } from '../shared/protocol/encoder.js';
import { namesBytes } from '../storage/listingBudget.js';
import { MemoryStorage } from '../storage/memory.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

describe('listings of a connection the server ended', () => {
  it('give their share of the listing budget back once the connection is gone', async () => {
    // big/: 15,000 names of ~206 bytes: ~7 MB of names a listing, so `fit` of them fill the
    // listing budget, and ~4 MB of answer each: more than the sockets take of a client reading nothing.
    const storage = new MemoryStorage();
    const tail = 'n'.repeat(200);
    storage.volume.mkdirSync('/big');
    for (let i = 0; i < 15_000; i++) storage.volume.writeFileSync(`/big/${i}-${tail}`, '');
    const fit = Math.floor(
      DEFAULTS.listingNamesBudgetBytes / namesBytes(storage.volume.readdirSync('/big') as string[]),
    );
    // Listings begun and not over (those waiting for the budget too), and those holding a share.
    const listings = { begun: 0, holding: 0 };
    const listBatches = storage.listBatches.bind(storage);
    storage.listBatches = async function* (path, options) {
      listings.begun++;
      let holding = false;
      try {
        for await (const batch of listBatches(path, options)) {
          if (!holding) listings.holding++;
          holding = true;
          yield batch;
        }
      } finally {
        listings.begun--;
        if (holding) listings.holding--;
      }
    };
    // Time enough for every listing to take its share first on a busy machine (at 500 ms, a
    // connection ended before its listings held the whole budget in a loaded full run).
    env = await startServer({ storage, idleTimeoutMs: 2_000 });
    // Clients that ask for listings of big/ and read nothing: together, more than fit.
    const perConnection = DEFAULTS.listingsAtOncePerConnection;
    for (let c = 0; c < Math.ceil((fit + 1) / perConnection); c++) {
      const peer = await RawPeer.open(env.port);
      peers.push(peer);
      peer.socket.pause();
      peer.write(
        Buffer.concat(
          Array.from({ length: perConnection }, (_, s) => encodeOpen(2 * s + 1, { op: 'list', path: 'big' })),
        ),
      );
    }
    await until(() => listings.holding === fit, 'the listings holding the whole budget');
    // IDLE_TIMEOUT: the server ends each connection (they read nothing), and its socket goes.
    await until(() => env!.server.connectionFigures().length === 0, 'the connections closed');
    await until(() => listings.begun === 0, 'the listings of the closed connections over', {
      timeoutMs: 5_000,
    });
    // What a user sees: with the shares held for good, a listing of big/ waited for memory forever.
    const other = await env.connect();
    const listing = await Promise.race([other.list('big'), delay(5_000).then(() => 'waited 5 s' as const)]);
    expect(listing === 'waited 5 s' ? listing : listing.length).toBe(15_000);
    await other.close();
  }, 30_000);
});
