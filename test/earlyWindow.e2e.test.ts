/**
 * An upload's first window goes out as soon as its OPEN is read, while the server is still
 * setting the upload up (temporary file, hints): the client's first bytes travel meanwhile
 * instead of waiting for the set-up. Bytes that arrive before the set-up is done are kept and
 * written once it is; an upload whose set-up then fails is refused, and its late frames are
 * dropped without harm to the connection.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { holdSetUp } from './helpers/heldSetUp.js';
import { RawPeer } from './helpers/rawPeer.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('the first window of an upload', () => {
  it('is not sent once END is in: a put that came whole before its set-up (under a quota) gets its REPLY alone', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
      quota: 10 * 1024 * 1024,
    });
    env = await startServer({ accounts: new Accounts({ users }) });
    const peer = await RawPeer.open(env.port, ['xxh128'], { uploadInitialWindow: true });
    peer.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    await peer.waitFor((f) => f.type === FrameType.AUTH);
    const bytes = Buffer.from('all of it on the initial window');
    peer.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'whole.txt', size: bytes.length }),
        encodeData(1, bytes),
        encodeEnd(1, bytes.length, 'xxh128', contentDigest('xxh128', bytes)),
      ]),
    );
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    // Before: a WINDOW of the whole stream window came first, after END (no more DATA can follow).
    expect(peer.frames.filter((f) => f.streamId === 1).map((f) => f.type)).toEqual([FrameType.REPLY]);
    peer.destroy();
  });

  it('comes before the upload is set up; what arrives meanwhile is stored once it is', async () => {
    env = await startServer();
    const release = holdSetUp(env.storage);
    const peer = await RawPeer.open(env.port);
    const bytes = Buffer.from('sent before the upload was set up');
    peer.write(encodeOpen(1, { op: 'put', path: 'early.bin', size: bytes.length }));
    const window = await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    expect(window.payload.readUInt32BE(0)).toBeGreaterThanOrEqual(bytes.length);
    peer.write(encodeData(1, bytes));
    peer.write(encodeEnd(1, bytes.length, 'xxh128', contentDigest('xxh128', bytes)));
    // A listing opened after the END is answered only once the END was handled (frames are
    // handled in order): from then on the upload is complete on the server's side, and held.
    peer.write(encodeOpen(3, { op: 'list', path: '' }));
    const listing = await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    expect(JSON.parse(listing.payload.toString()).entries).toEqual([]); // no name yet
    expect(peer.frames.some((f) => f.type === FrameType.REPLY && f.streamId === 1)).toBe(false);
    expect(env.server.connectionFigures()[0]?.uploadBacklogBytes).toBe(bytes.length); // kept
    release();
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);
    const client = await env.connect();
    expect((await client.getBuffer('early.bin')).equals(bytes)).toBe(true);
    peer.destroy();
  });

  it('refuses an upload whose set-up fails after bytes arrived, and the connection goes on', async () => {
    env = await startServer();
    const release = holdSetUp(env.storage, true);
    const peer = await RawPeer.open(env.port);
    const bytes = Buffer.alloc(1000, 7);
    peer.write(encodeOpen(1, { op: 'put', path: 'refused.bin', size: bytes.length }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, bytes));
    release();
    const refused = await peer.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 1);
    expect(parseErrorPayload(refused).code).toBe('IO_ERROR');
    // Its END arrives after the refusal: dropped, not a connection error.
    peer.write(encodeEnd(1, bytes.length, 'xxh128', contentDigest('xxh128', bytes)));
    peer.write(encodeOpen(3, { op: 'list', path: '' }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 3);
    expect(peer.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);
    const client = await env.connect();
    expect(await client.list('')).toEqual([]);
    peer.destroy();
  });
});
