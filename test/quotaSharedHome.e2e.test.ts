/**
 * Two accounts whose users-file entries name the same home, each with a quota: their uploads fill
 * one directory, so the uploads in flight of each count against the other's quota, as the
 * committed files do. Without that, two uploads started at once (one per account) each fit
 * beside the files, and together left the home past both limits. Real sockets, real files.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const LIMIT = 10_000;
let users: UsersFile;
beforeAll(async () => {
  users = emptyUsersFile();
  for (const name of ['p', 'q']) {
    users = addUser(users, {
      name,
      passwordHash: await hashPassword(`${name}-secret`),
      permissions: [...PERMISSIONS],
      home: 'shared',
      quota: LIMIT,
    });
  }
});

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

/** A session of `user` whose upload of `size` declared bytes was accepted: the answer to its OPEN. */
async function startUpload(port: number, user: string, path: string, size: number) {
  const peer = await RawPeer.open(port);
  peers.push(peer);
  peer.write(encodeAuth({ user, password: `${user}-secret` }));
  await peer.waitFor((f) => f.type === FrameType.AUTH);
  peer.write(encodeOpen(1, { op: 'put', path, size }));
  // Under a quota the first credit comes once the declared size is reserved; a refusal is an ERROR.
  const answer = await peer.waitFor(
    (f) => f.streamId === 1 && (f.type === FrameType.WINDOW || f.type === FrameType.ERROR),
  );
  return { peer, accepted: answer.type === FrameType.WINDOW };
}

function finish(peer: RawPeer, size: number): Promise<unknown> {
  const data = Buffer.alloc(size, 0x62);
  peer.write(
    Buffer.concat([encodeData(1, data), encodeEnd(1, size, 'xxh128', contentDigest('xxh128', data))]),
  );
  return peer.waitFor((f) => f.streamId === 1 && (f.type === FrameType.REPLY || f.type === FrameType.ERROR));
}

describe('quota: two accounts with one home', () => {
  it("count each other's uploads in flight: the home never ends past the limit", async () => {
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const first = await startUpload(env.port, 'p', 'a.bin', 8_000);
    expect(first.accepted).toBe(true);
    const second = await startUpload(env.port, 'q', 'b.bin', 8_000);
    // 8,000 in flight through p + 8,000 > 10,000. Before: accepted, and the home ended at 16,000.
    expect(second.accepted).toBe(false);
    await finish(first.peer, 8_000);
    let total = 0;
    for (const name of await readdir(join(env.root!, 'shared'))) {
      total += (await stat(join(env.root!, 'shared', name))).size;
    }
    expect(total).toBeLessThanOrEqual(LIMIT);
  });
});
