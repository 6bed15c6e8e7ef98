/**
 * Limits and settings given to `muxftp serve` as flags reach the server it runs: the flags are
 * parsed by the CLI, so only a real `serve` child process shows them working (the library options
 * have their own tests). Needs dist/ (npm test builds it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { emptyUsersFile, writeUsersFile } from '../server/auth/usersFile.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeCancel, encodeOpen } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { TempDirs } from './helpers/tempDirs.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'muxftp.js');

const children = new Set<ChildProcess>();
const closers: Array<() => unknown> = [];
const tempDirs = new TempDirs('muxftp-serve-flags-');
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  await tempDirs.removeAll();
});

/** `muxftp serve` (in memory unless `flags` give a --root) on 127.0.0.1, port 0; resolves to its port. */
async function serve(flags: string[]): Promise<number> {
  const storage = flags.includes('--root') ? [] : ['--memory'];
  const child = spawn(process.execPath, [BIN, 'serve', ...storage, '--port', '0', ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on [^ ]+:(\d+) \(/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
}

describe('serve limit flags', () => {
  it('--max-open-files: a get or put beyond the cap fails with SERVER_BUSY; requests go on; a freed file lets the next in', async () => {
    const port = await serve(['--max-open-files', '1']);
    const client = await Client.connect({ host: '127.0.0.1', port });
    closers.push(() => client.destroy());
    await client.put('f', Buffer.alloc(1000, 1));
    // A download that is never granted credit keeps the one file open.
    const holder = await RawPeer.open(port);
    closers.push(() => holder.destroy());
    holder.write(encodeOpen(1, { op: 'get', path: 'f' }));
    await holder.waitFor((f) => f.type === FrameType.REPLY && f.streamId === 1);

    await expect(client.getBuffer('f')).rejects.toMatchObject({
      code: 'SERVER_BUSY',
      message: expect.stringMatching(/1 files are open/),
    });
    await expect(client.put('g', Buffer.from('x'))).rejects.toMatchObject({ code: 'SERVER_BUSY' });
    expect((await client.list('')).map((e) => e.name)).toEqual(['f']);

    holder.write(encodeCancel(1));
    // The server takes the CANCEL a moment later: until then, refusals only (bounded).
    for (let i = 0; ; i++) {
      const outcome = await client.getBuffer('f').catch((error: { code: string }) => error);
      if (Buffer.isBuffer(outcome)) {
        expect(outcome.equals(Buffer.alloc(1000, 1))).toBe(true);
        break;
      }
      expect(outcome.code).toBe('SERVER_BUSY');
      if (i === 250) throw new Error('the cancelled download never freed its file');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it('--handshake-timeout: a connection that sends nothing is closed with IDLE_TIMEOUT after it, not the default 10 s', async () => {
    const port = await serve(['--handshake-timeout', '1']);
    const silent = await RawPeer.connect(port);
    closers.push(() => silent.destroy());
    // 6 s: five times the flag's 1 s, for a loaded machine, and well short of the default 10 s.
    expect(await silent.connectionError(6_000)).toEqual({
      code: 'IDLE_TIMEOUT',
      message: 'no HELLO received in time',
    });
    await silent.closed;
  });

  it('--anonymous-home: anonymous logs in to that directory of the root', async () => {
    const root = await tempDirs.make();
    const users = join(await tempDirs.make(), 'users.json');
    await writeUsersFile(users, emptyUsersFile());
    await mkdir(join(root, 'public'));
    await writeFile(join(root, 'public', 'default-home.txt'), 'x');
    await mkdir(join(root, 'drop'));
    await writeFile(join(root, 'drop', 'chosen-home.txt'), 'y');
    const port = await serve(['--root', root, '--users', users, '--anonymous', '--anonymous-home', 'drop']);
    const anonymous = await Client.connect({ host: '127.0.0.1', port, user: 'anonymous' });
    closers.push(() => anonymous.destroy());
    expect((await anonymous.list('')).map((e) => e.name)).toEqual(['chosen-home.txt']);
  });

  it('--partial-retention 0: an interrupted resumable upload keeps nothing', async () => {
    const root = await tempDirs.make();
    const source = join(await tempDirs.make(), 'source.bin');
    await writeFile(source, randomBytes(2 * INTEGRITY_BLOCK_BYTES));
    const port = await serve(['--root', root, '--fsync', 'never', '--partial-retention', '0']);
    const client = await Client.connect({ host: '127.0.0.1', port });
    const cutAt = INTEGRITY_BLOCK_BYTES + INTEGRITY_BLOCK_BYTES / 2; // a whole block sent, and more
    const upload = client.put('big.bin', source, {
      resumable: true,
      onProgress: (done) => {
        if (done >= cutAt) void client.destroy();
      },
    });
    await expect(upload).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    // The server drops the upload's temporary file once it sees the connection go (up to 10 s).
    const hidden = async () => (await readdir(root)).filter((name) => name.startsWith('.muxftp-'));
    for (let i = 0; i < 500 && (await hidden()).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await hidden()).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  });
});
