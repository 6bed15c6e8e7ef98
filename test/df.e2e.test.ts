/**
 * `space` (muxftp df): the room left for an account's uploads, its quota and the disk under the
 * served files, over real sockets, with real files and the real CLI. Needs dist/ (npm run build).
 */
import { statfs } from 'node:fs/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, type UsersFile } from '../server/auth/usersFile.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const LIMIT = 10_000;
let users: UsersFile;
let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-df-');

beforeAll(async () => {
  const add = async (file: UsersFile, name: string, extra: object) =>
    addUser(file, {
      name,
      passwordHash: await hashPassword(`${name}-secret`),
      permissions: [...PERMISSIONS],
      ...extra,
    });
  users = await add(emptyUsersFile(), 'q', { quota: LIMIT });
  users = await add(users, 'free', {});
  users = await add(users, 'blind', { permissions: ['read', 'write'] });
});

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

describe('space (df)', () => {
  it("reports an account's quota as its uploads fill it, and the disk as statfs sees it", async () => {
    server = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const q = await server.connect({ user: 'q', password: 'q-secret' });
    const before = await q.space();
    expect(before.quota).toEqual({ limitBytes: LIMIT, usedBytes: 0, reservedBytes: 0 });
    const fs = await statfs(server.root!);
    expect(before.disk!.totalBytes).toBe(fs.bsize * fs.blocks);
    // Other processes write too: what is free moves, within a few hundred MiB here.
    expect(Math.abs(before.disk!.freeBytes - fs.bsize * fs.bavail)).toBeLessThan(512 * 1024 * 1024);

    await q.put('a.bin', Buffer.alloc(3000, 1));
    expect((await q.space()).quota).toEqual({ limitBytes: LIMIT, usedBytes: 3000, reservedBytes: 0 });
    await q.delete('a.bin');
    expect((await q.space()).quota?.usedBytes).toBe(0);
    await q.close();

    const free = await server.connect({ user: 'free', password: 'free-secret' });
    expect(Object.keys(await free.space())).toEqual(['disk']);
    await free.close();
    const blind = await server.connect({ user: 'blind', password: 'blind-secret' });
    await expect(blind.space()).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await blind.close();
  });

  it("says what interrupted uploads' kept blocks hold (hidden from listings), in its home only; df prints it", async () => {
    server = await startServer({ backend: 'disk' });
    const MiB = 1024 * 1024;
    const partial = { size: 12 * MiB, algorithm: 'xxh128' as const, source: 'v1' };
    await server.storage.mkdir('d');
    const upload = await server.storage.createUpload('d/big.bin', { expectedSize: 12 * MiB, partial });
    await upload.write([Buffer.alloc(9 * MiB, 7)]);
    expect(await upload.abort({ keepPartial: true })).toBe(8 * MiB);
    const client = await server.connect();
    expect(await client.list('d')).toEqual([]);
    // Before: nothing said where those 8 MiB went.
    expect((await client.space()).disk?.keptBytes).toBe(8 * MiB);
    await client.close();

    const cwd = await tempDirs.make();
    const run = await runCli(['--server', `127.0.0.1:${server.port}`, 'df', '-H'], cwd);
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe(
      "8.00MiB of the disk's used space is interrupted uploads' kept blocks (put -c continues them; the server removes them once they expire)",
    );
    // Without -H, in bytes as the table is, but said so: a bare number in a sentence reads as nothing.
    const plain = await runCli(['--server', `127.0.0.1:${server.port}`, 'df'], cwd);
    expect(plain.stdout.trimEnd().split('\n').at(-1)).toMatch(/^8388608 B of the disk's used space is/);
    // A home holding them says so; another home's are not its to see.
    expect((await (await server.storage.subtree('d')).space?.())?.keptBytes).toBe(8 * MiB);
    expect((await (await server.storage.subtree('elsewhere')).space?.())?.keptBytes).toBe(0);
  });

  it('reports no disk for memory storage', async () => {
    server = await startServer({ backend: 'memory' });
    const client = await server.connect();
    expect(await client.space()).toEqual({});
    await client.close();
  });

  it('muxftp df prints the quota and the disk, in bytes, with -H, or as JSON', async () => {
    server = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const q = await server.connect({ user: 'q', password: 'q-secret' });
    await q.put('a.bin', Buffer.alloc(2048, 1));
    await q.close();
    const cwd = await tempDirs.make();
    const df = (...args: string[]) =>
      runCli(['--server', `127.0.0.1:${server!.port}`, '--user', 'q', ...args], cwd, {
        env: { MUXFTP_PASSWORD: 'q-secret' },
      });

    const plain = await df('df');
    expect(plain.code).toBe(0);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines[0]!.trim().split(/\s+/)).toEqual(['size', 'used', 'available']);
    expect(lines[1]!.split(/\s+/)).toEqual(['quota', String(LIMIT), '2048', String(LIMIT - 2048)]);
    expect(lines[2]!.split(/\s+/)).toEqual([
      'disk',
      expect.stringMatching(/^\d+$/),
      '-',
      expect.stringMatching(/^\d+$/),
    ]);

    const human = await df('df', '-H');
    expect(human.stdout.split('\n')[1]!.split(/\s+/)).toEqual(['quota', '9.77KiB', '2.00KiB', '7.77KiB']);
    // df(1)'s -h says the same (it was this command's help); the disk's room left may have moved
    // meanwhile with other processes' writes.
    const diskRoomMasked = (stdout: string) => stdout.replace(/^(disk\s.*\s)\S+$/m, '$1<room>');
    expect(diskRoomMasked((await df('df', '-h')).stdout)).toBe(diskRoomMasked(human.stdout));

    const json = await df('--json', 'df');
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: true, // as its failure, `{ok: false, error}`, has
      quota: { limitBytes: LIMIT, usedBytes: 2048, reservedBytes: 0 },
      disk: { totalBytes: expect.any(Number), freeBytes: expect.any(Number) },
    });
  });
});
