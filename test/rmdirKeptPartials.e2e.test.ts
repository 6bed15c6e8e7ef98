/**
 * rmdir of a directory whose only content is what an interrupted resumable upload kept (issue
 * #8: hidden, for `put -c`): the listing shows it empty and no client can name the kept file, so
 * the directory goes, the kept data with it, and a quota frees its bytes. A directory with
 * something else in it, or with an upload in flight, stays as it was. Real sockets, real files.
 */
import { randomBytes } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import { downloadPartialName, isPartialName } from '../shared/temporaryNames.js';
import { codeOf } from './helpers/codeOf.js';
import { watchAborts } from './helpers/homeViews.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;
const LIMIT = 3 * BLOCK;
let users: UsersFile;

beforeAll(async () => {
  users = addUser(emptyUsersFile(), {
    name: 'r',
    passwordHash: await hashPassword('r-secret'),
    permissions: [...PERMISSIONS],
    quota: LIMIT,
  });
});

let server: TestServer | undefined;
const peers: RawPeer[] = [];
const tempDirs = new TempDirs('muxftp-rmdir-');
afterEach(async () => {
  server = await stopServerAndPeers(server, peers);
  await tempDirs.removeAll();
});

/** Sizes of the kept partial uploads in a host directory. */
async function keptSizes(dir: string): Promise<number[]> {
  const names = (await readdir(dir)).filter(isPartialName);
  return Promise.all(names.map(async (name) => (await stat(join(dir, name))).size));
}

/**
 * A resumable put of 2.5 blocks to `remote` whose connection is destroyed once 1.5 blocks were
 * sent; resolves once the server has kept its whole block.
 */
async function interruptedPut(
  s: TestServer,
  aborts: { settled(): Promise<void> },
  remote: string,
  login: { user?: string; password?: string },
): Promise<void> {
  const source = join(await tempDirs.make(), 'source.bin');
  await writeFile(source, randomBytes(2 * BLOCK + BLOCK / 2));
  const client = await s.connect(login);
  const upload = client.put(remote, source, {
    resumable: true,
    onProgress: (done) => {
      if (done >= BLOCK + BLOCK / 2) void client.destroy();
    },
  });
  await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
  await until(() => s.server.stats().streams === 0, 'the server to drop the upload');
  await aborts.settled();
}

/** Credit in small steps, so that a cut connection has sent little past the cut. */
const smallWindows = { streamWindowBytes: 256 * 1024, streamWindowMaxBytes: 256 * 1024 };

describe('rmdir of a directory holding only kept partial uploads', () => {
  it('removes the directory and the kept data, and the quota frees its bytes', async () => {
    server = await startServer({ backend: 'disk', accounts: new Accounts({ users }), ...smallWindows });
    const aborts = watchAborts(server.storage);
    const r = await server.connect({ user: 'r', password: 'r-secret' });
    await r.mkdir('d');
    await interruptedPut(server, aborts, 'd/big.bin', { user: 'r', password: 'r-secret' });
    const dir = join(server.root!, 'r', 'd');
    expect(await keptSizes(dir)).toEqual([BLOCK]);
    // The kept block counts against the quota; the directory looks empty.
    expect(await codeOf(r.put('all.bin', Buffer.alloc(LIMIT)))).toBe('QUOTA_EXCEEDED');
    expect(await r.list('d')).toEqual([]);
    // Before: DIRECTORY_NOT_EMPTY, and nothing a client could do about it for the retention time.
    await r.rmdir('d');
    expect(await readdir(join(server.root!, 'r'))).toEqual([]);
    // Its bytes are free again at once.
    await r.put('all.bin', Buffer.alloc(LIMIT));
  });

  it('leaves a directory that holds anything else, its kept data included', async () => {
    server = await startServer({ backend: 'disk', ...smallWindows });
    const aborts = watchAborts(server.storage);
    const client = await server.connect();
    await client.mkdir('d');
    await interruptedPut(server, aborts, 'd/big.bin', {});
    await client.put('d/visible.txt', Buffer.from('x'));
    expect(await codeOf(client.rmdir('d'))).toBe('DIRECTORY_NOT_EMPTY');
    expect(await keptSizes(join(server.root!, 'd'))).toEqual([BLOCK]);
  });

  it('leaves a directory with an upload in flight, and the upload completes', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('d');
    const peer = await RawPeer.open(server.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'put', path: 'd/f' }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, Buffer.from('abc')));
    // It lists as empty: the refusal says what is in it.
    expect(await client.list('d')).toEqual([]);
    await expect(client.rmdir('d')).rejects.toMatchObject({
      code: 'DIRECTORY_NOT_EMPTY',
      message: 'directory not empty: d (an upload into it is in progress, hidden from listings)',
      details: { keptBy: 'upload' },
    });
    peer.write(encodeEnd(1, 3, 'xxh128', contentDigest('xxh128', Buffer.from('abc'))));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    expect((await client.getBuffer('d/f')).toString()).toBe('abc');
  });

  it('removes a directory holding only another hidden file (what a local get left), which the sweep leaves', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.mkdir('d');
    await writeFile(join(server.root!, 'd', downloadPartialName('x')), 'x');
    // It lists as empty, and nothing of the server's is writing there: nothing keeps it.
    expect(await client.list('d')).toEqual([]);
    await client.rmdir('d');
    expect(await readdir(server.root!)).toEqual([]);
  });
});
