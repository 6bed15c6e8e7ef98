/**
 * A users file read again (SIGHUP) that changes an account's quota, or anything else about it,
 * gives later logins a new quota while earlier sessions keep theirs. Both fill the same home, so
 * the uploads in flight of each must count against the other: the new quota knew nothing of the
 * earlier sessions' uploads in flight, and let the home past its limit by their declared sizes.
 * Real sockets, real files.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import { codeOf } from './helpers/codeOf.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const LIMIT = 10_000;
let users: UsersFile;
beforeAll(async () => {
  users = addUser(emptyUsersFile(), {
    name: 'q',
    passwordHash: await hashPassword('q-secret'),
    permissions: [...PERMISSIONS],
    quota: LIMIT,
  });
});

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

/** A session of q that has an upload of `size` declared bytes accepted (reserved) and in flight. */
async function uploadInFlight(port: number, path: string, size: number): Promise<RawPeer> {
  const peer = await RawPeer.open(port);
  peers.push(peer);
  peer.write(encodeAuth({ user: 'q', password: 'q-secret' }));
  await peer.waitFor((f) => f.type === FrameType.AUTH);
  peer.write(encodeOpen(1, { op: 'put', path, size }));
  // Under a quota the first credit comes once the declared size is reserved.
  await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
  return peer;
}

function finish(peer: RawPeer, size: number): Promise<unknown> {
  const data = Buffer.alloc(size, 0x62);
  peer.write(
    Buffer.concat([encodeData(1, data), encodeEnd(1, size, 'xxh128', contentDigest('xxh128', data))]),
  );
  return peer.waitFor((f) => f.streamId === 1 && (f.type === FrameType.REPLY || f.type === FrameType.ERROR));
}

const reloaded = (quota: number) =>
  new Accounts({ users: { version: 1, users: { q: { ...users.users.q!, quota } } } });

describe('quota: uploads in flight across a users-file reload', () => {
  it("a login after the reload counts the earlier session's upload in flight", async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const earlier = await uploadInFlight(env.port, 'a.bin', 8_000);
    env.server.replaceAccounts(reloaded(12_000));
    const later = await env.connect({ user: 'q', password: 'q-secret' });
    // 8,000 in flight + 8,000 > 12,000. Before: accepted, and the home ended at 16,000.
    expect(await codeOf(later.put('b.bin', Buffer.alloc(8_000)))).toBe('QUOTA_EXCEEDED');
    await later.put('b.bin', Buffer.alloc(4_000));
    await finish(earlier, 8_000);
    expect(await codeOf(later.put('c.bin', Buffer.alloc(1)))).toBe('QUOTA_EXCEEDED');
  });

  it("the earlier session counts a later session's upload in flight", async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const earlier = await env.connect({ user: 'q', password: 'q-secret' });
    await earlier.put('seed.bin', Buffer.alloc(1_000)); // counted under the old quota
    env.server.replaceAccounts(reloaded(20_000));
    const later = await uploadInFlight(env.port, 'a.bin', 6_000);
    // Under its own limit of 10,000: 1,000 used + 6,000 in flight + 4,000 does not fit.
    expect(await codeOf(earlier.put('b.bin', Buffer.alloc(4_000)))).toBe('QUOTA_EXCEEDED');
    await earlier.put('b.bin', Buffer.alloc(3_000));
    await finish(later, 6_000);
  });
});
