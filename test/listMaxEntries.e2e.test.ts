/**
 * A `list` with `maxEntries`: a directory holding more entries is refused at once (UNSUPPORTED),
 * before the server sorts it or looks anything up, so a client that wants a few names of a large
 * directory can ask for them one by one instead without the server reading it all (get's
 * planning, put's skip checks: cli/crowdedDirectories.ts). Over a real socket, a server on disk.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeOpen } from '../shared/protocol/encoder.js';
import { isTemporaryName, newTemporaryName } from '../shared/temporaryNames.js';
import { diskFs } from '../storage/diskFs.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];

afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
});

async function serverWith(names: number) {
  env = await startServer({ backend: 'disk' });
  const client = await env.connect();
  await client.mkdir('d');
  await client.close();
  for (let i = 0; i < names; i++) await writeFile(join(env.root!, 'd', `n${String(i).padStart(3, '0')}`), '');
  return env;
}

describe('list with maxEntries', () => {
  it('lists a directory of at most that many entries whole, and refuses a larger one before sorting it', async () => {
    const env = await serverWith(50);
    const client = await env.connect();
    try {
      expect((await client.list('d', { maxEntries: 50 })).map((e) => e.name)).toHaveLength(50);
      const sorts: number[] = [];
      const sort = Array.prototype.sort;
      // The refusal comes before the sort: no array of names is sorted for it.
      Array.prototype.sort = function (this: unknown[], ...args) {
        if (this.length === 50) sorts.push(this.length);
        return sort.apply(this, args) as never;
      };
      try {
        await expect(client.list('d', { maxEntries: 49 })).rejects.toMatchObject({
          code: 'UNSUPPORTED',
          message: expect.stringContaining('holds more than the 49 entries asked for'),
        });
      } finally {
        Array.prototype.sort = sort;
      }
      expect(sorts).toEqual([]);
      // Without it, as before: everything.
      expect(await client.list('d')).toHaveLength(50);
    } finally {
      await client.close();
    }
  });

  it('sends no entry of a refused listing: the answer is one ERROR', async () => {
    const env = await serverWith(300);
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    peer.write(encodeOpen(1, { op: 'list', path: 'd', maxEntries: 10 }));
    expect(await peer.streamError(1)).toMatchObject({ code: 'UNSUPPORTED' });
    expect(peer.frames.filter((f) => f.type === FrameType.REPLY)).toEqual([]);
  });

  it('refuses a maxEntries that is not a positive integer: BAD_REQUEST, the connection goes on', async () => {
    const env = await serverWith(1);
    const peer = await RawPeer.open(env.port);
    peers.push(peer);
    const wrong = [0, -1, 1.5, '3', null];
    wrong.forEach((maxEntries, i) => {
      peer.write(encodeOpen(2 * i + 1, { op: 'list', path: 'd', maxEntries } as never));
    });
    for (const [i] of wrong.entries())
      expect(await peer.streamError(2 * i + 1)).toMatchObject({ code: 'BAD_REQUEST' });
    peer.write(encodeOpen(99, { op: 'list', path: 'd', maxEntries: 1 }));
    await peer.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 99);
  });

  it('holds for a server in memory too', async () => {
    env = await startServer();
    const client = await env.connect();
    try {
      await client.mkdir('m');
      for (let i = 0; i < 5; i++) await client.put(`m/f${i}`, Buffer.from('x'));
      await expect(client.list('m', { maxEntries: 4 })).rejects.toMatchObject({
        code: 'UNSUPPORTED',
        message: expect.stringContaining('holds more than the 4 entries asked for'),
      });
      expect(await client.list('m', { maxEntries: 5 })).toHaveLength(5);
    } finally {
      await client.close();
    }
  });
});

describe("the disk's readdirAtMost", () => {
  it("gives a directory's names it wants while there are at most a count of them, hidden ones left out", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'muxftp-atmost-'));
    try {
      for (let i = 0; i < 600; i++) await writeFile(join(dir, `f${i}`), '');
      for (let i = 0; i < 5; i++) await writeFile(join(dir, newTemporaryName()), '');
      const fs = diskFs(new InlineFileCalls());
      const listed = (name: string) => !isTemporaryName(name);
      expect(await fs.readdirAtMost!(dir, 599, listed)).toBeUndefined();
      const names = await fs.readdirAtMost!(dir, 600, listed);
      expect(names?.sort()).toEqual(Array.from({ length: 600 }, (_, i) => `f${i}`).sort());
      expect(await fs.readdirAtMost!(dir, 604, () => true)).toBeUndefined();
      expect(await fs.readdirAtMost!(dir, 605, () => true)).toHaveLength(605);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
