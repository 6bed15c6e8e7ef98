/**
 * A `put -c`, `--skip-identical` or `--skip-unchanged` that finds the remote file already whole
 * (landed there by another path: a `mv`, a copy on the server's host, another client's upload
 * cut after that one's commit) skips it: what an interrupted upload of this file version kept on
 * the server is stale then, and the skip drops it (a `partial` request with `drop`), as a put that
 * succeeds drops it, instead of leaving it hidden in the root, on the disk and the account's quota
 * until its retention ends. Only this version's key goes; never what an upload writes now; a
 * server from before the field is not asked. Real server on 127.0.0.1 (disk), the real CLI, real
 * files on both sides.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { cutAndKept, cutPut } from './helpers/cutUploads.js';
import { type FrameProxy, jsonOf, startFrameProxy, withJson } from './helpers/frameProxy.js';
import { watchAborts } from './helpers/homeViews.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;

let env: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-put-skip-kept-');

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

const keptNames = async (root: string) =>
  (await readdir(root)).filter((name) => name.startsWith('.muxftp-partial-'));

/**
 * A server (also `env`) keeping 2 whole blocks of an interrupted put of `dir/big.bin` to big.bin,
 * and the whole file under big.bin, copied there on the server's host (not by an upload, which
 * would have dropped them) with the local file's time: what a later put finds identical, and
 * unchanged. The local file's time is set before the put (it is part of the kept data's key).
 */
async function keptBesideWhole(): Promise<{ server: TestServer; dir: string; content: Buffer }> {
  env = await startServer({
    backend: 'disk',
    streamWindowBytes: 256 * 1024,
    streamWindowMaxBytes: 256 * 1024,
  });
  const content = randomBytes(3 * BLOCK + 1000);
  const dir = await tempDirs.make();
  await writeFile(join(dir, 'big.bin'), content);
  const mtime = new Date(Date.now() - 60_000);
  await utimes(join(dir, 'big.bin'), mtime, mtime);
  await cutAndKept(env, join(dir, 'big.bin'));
  expect(await keptNames(env.root!)).toHaveLength(1);
  await copyFile(join(dir, 'big.bin'), join(env.root!, 'big.bin'));
  await utimes(join(env.root!, 'big.bin'), mtime, mtime);
  return { server: env, dir, content };
}

interface Outcome {
  ok: boolean;
  skipped?: boolean;
}

async function put(args: string[], cwd: string, port: number): Promise<Outcome[]> {
  const run = await runCli(['put', 'big.bin', ...args, '--json', '--server', `127.0.0.1:${port}`], cwd, {
    timeoutMs: 30_000,
  });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as Outcome[];
}

describe('a put that skips a file the server holds whole drops what an interrupted put of it kept', () => {
  it.each([
    ['put -c', ['-c']],
    ['put --skip-identical', ['--skip-identical']],
    ['put --skip-unchanged', ['--skip-unchanged']],
  ])('%s', async (_name, args) => {
    const { server, dir, content } = await keptBesideWhole();
    // Before: the skip left the kept blocks in the root (2 blocks, 8 MiB) until their retention.
    expect(await put(args, dir, server.port)).toEqual([expect.objectContaining({ ok: true, skipped: true })]);
    expect(await keptNames(server.root!)).toEqual([]);
    expect((await readFile(join(server.root!, 'big.bin'))).equals(content)).toBe(true);
  });

  it('a dry run only looks: they stay', async () => {
    const { server, dir } = await keptBesideWhole();
    expect(await put(['-c', '--dry-run'], dir, server.port)).toEqual([expect.objectContaining({ ok: true })]);
    expect(await keptNames(server.root!)).toHaveLength(1);
  });

  it('what another version of the file kept stays (another local file: another key), as put -c would find it', async () => {
    const { server, dir, content } = await keptBesideWhole();
    const other = await tempDirs.make();
    await writeFile(join(other, 'big.bin'), content);
    expect(await put(['-c'], other, server.port)).toEqual([
      expect.objectContaining({ ok: true, skipped: true }),
    ]);
    expect(await keptNames(server.root!)).toHaveLength(1);
    // The interrupted put's own file version, skipped, drops them.
    expect(await put(['-c'], dir, server.port)).toEqual([
      expect.objectContaining({ ok: true, skipped: true }),
    ]);
    expect(await keptNames(server.root!)).toEqual([]);
  });

  it('a server from before `drop` (no `partialDrop` in WELCOME) is not asked: they stay, the skip stands', async () => {
    const { server, dir } = await keptBesideWhole();
    const partials: Array<Record<string, unknown>> = [];
    proxy = await startFrameProxy(server.port, {
      fromServer: (frame) => {
        if (frame.type !== FrameType.WELCOME) return frame;
        const { partialDrop: _, ...older } = jsonOf(frame);
        return withJson(frame, older);
      },
      fromClient: (frame) => {
        if (frame.type === FrameType.OPEN && jsonOf(frame).op === 'partial') partials.push(jsonOf(frame));
        return frame;
      },
    });
    expect(await put(['-c'], dir, proxy.port)).toEqual([
      expect.objectContaining({ ok: true, skipped: true }),
    ]);
    expect(partials).toEqual([]);
    expect(await keptNames(server.root!)).toHaveLength(1);
  });
});

describe('`partial` with `drop`', () => {
  it('leaves kept data an upload continues now: that upload completes from it, the drop leaves it', async () => {
    env = await startServer({
      backend: 'disk',
      streamWindowBytes: 256 * 1024,
      streamWindowMaxBytes: 256 * 1024,
    });
    const server = env;
    const content = randomBytes(3 * BLOCK + 1000);
    const source = join(await tempDirs.make(), 'big.bin');
    await writeFile(source, content);
    await cutAndKept(server, source);

    const dropper = await server.connect();
    const createUpload = server.storage.createUpload.bind(server.storage);
    let dropped: boolean | undefined;
    let keptWhileInUse: string[] = [];
    server.storage.createUpload = async (path, options) => {
      const upload = await createUpload(path, options);
      if ((options?.resumeFrom ?? 0) > 0 && dropped === undefined) {
        dropped = await dropper.dropPartial('big.bin', source);
        keptWhileInUse = await keptNames(server.root!);
      }
      return upload;
    };
    const client = await server.connect();
    const result = await client.put('big.bin', source, { continue: true });
    expect(dropped).toBe(true);
    expect(keptWhileInUse).toHaveLength(1);
    expect(result.continuedFrom).toBe(2 * BLOCK);
    expect((await readFile(join(server.root!, 'big.bin'))).equals(content)).toBe(true);
    expect(await keptNames(server.root!)).toEqual([]);
  });

  it("frees the account's quota of the bytes it drops", async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'q',
      passwordHash: await hashPassword('q-secret'),
      permissions: [...PERMISSIONS],
      quota: 10 * BLOCK,
    });
    env = await startServer({
      backend: 'disk',
      accounts: new Accounts({ users }),
      streamWindowBytes: 256 * 1024,
      streamWindowMaxBytes: 256 * 1024,
    });
    const login = { user: 'q', password: 'q-secret' };
    const source = join(await tempDirs.make(), 'big.bin');
    await writeFile(source, randomBytes(3 * BLOCK + 1000));
    // Cut after 2.5 blocks; the home's view keeps 2 once the abort settles.
    const aborts = watchAborts(env.storage);
    await cutPut(await env.connect(login), source);
    await until(() => env!.server.stats().streams === 0, 'the server to drop the upload');
    await aborts.settled();
    const client = await env.connect(login);
    const used = async () => (await client.space()).quota!.usedBytes;
    expect(await used()).toBe(2 * BLOCK);
    // What a put skip looks at first (KeptUploads): the home's kept bytes.
    expect((await client.space()).disk?.keptBytes).toBe(2 * BLOCK);
    expect(await client.dropPartial('big.bin', source)).toBe(true);
    expect(await keptNames(join(env.root!, 'q'))).toEqual([]);
    expect(await used()).toBe(0);
  });
});

describe('what a skip asks the server', () => {
  it('put -r --skip-unchanged of large files none of which has anything kept: no `partial` per file, one `space`', async () => {
    env = await startServer({ backend: 'disk' });
    const server = env;
    const dir = await tempDirs.make();
    const mtime = new Date(Date.now() - 60_000);
    const names = ['a.bin', 'b.bin', 'c.bin'];
    for (const name of names) {
      await writeFile(join(dir, name), randomBytes(BLOCK + 10));
      await utimes(join(dir, name), mtime, mtime);
      await copyFile(join(dir, name), join(server.root!, name));
      await utimes(join(server.root!, name), mtime, mtime);
    }
    const ops: string[] = [];
    proxy = await startFrameProxy(server.port, {
      fromClient: (frame) => {
        if (frame.type === FrameType.OPEN) ops.push(String(jsonOf(frame).op));
        return frame;
      },
    });
    const run = await runCli(
      ['put', ...names, '--to', '/', '--skip-unchanged', '--json', '--server', `127.0.0.1:${proxy.port}`],
      dir,
      { timeoutMs: 30_000 },
    );
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(run.stdout) as Outcome[]).every((outcome) => outcome.skipped === true)).toBe(true);
    // Before: one `partial` with `drop` per skipped file (a round trip each), nothing kept to drop.
    expect(ops.filter((op) => op === 'partial')).toEqual([]);
    expect(ops.filter((op) => op === 'space')).toEqual(['space']);
  });

  it('an account that may not write is not asked to drop (each refusal was logged by the server)', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'r',
      passwordHash: await hashPassword('r-secret'),
      permissions: ['list', 'read'],
    });
    env = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const source = join(await tempDirs.make(), 'big.bin');
    await writeFile(source, randomBytes(BLOCK + 10));
    const client = await env.connect({ user: 'r', password: 'r-secret' });
    // Before: sent, and refused PERMISSION_DENIED (a line in the server's log for each skip).
    expect(await client.dropPartial('big.bin', source)).toBe(false);
    expect(env.logs.filter((line) => line.includes('permission denied'))).toEqual([]);
  });
});
