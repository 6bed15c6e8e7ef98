/**
 * `muxftp serve --log-format json`: every line serve writes to stderr is one JSON object (time,
 * level, event, msg, and the event's fields), for pipelines that parse the log rather than read
 * it. A real `muxftp serve` child on 127.0.0.1 port 0, a temp dir, real clients.
 */
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, READ_ONLY_PERMISSIONS } from '../server/auth/usersFile.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth, encodeData, encodeOpen } from '../shared/protocol/encoder.js';
import { startServeChild, stopChildren } from './helpers/cliProcess.js';
import { RawPeer } from './helpers/rawPeer.js';
import { TempDirs } from './helpers/tempDirs.js';

const children = new Set<ChildProcess>();
const tempDirs = new TempDirs('muxftp-logformat-');
const peers: RawPeer[] = [];
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  await stopChildren(children);
  await tempDirs.removeAll();
});

type Line = Record<string, unknown> & { time: string; level: string; event: string; msg: string };

/** Every stderr line parsed: each must be a JSON object with the four fields every event has. */
function parseLines(stderr: string): Line[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const parsed = JSON.parse(line) as Line;
      expect(parsed).toMatchObject({
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        level: expect.stringMatching(/^(info|warn|error)$/),
        event: expect.stringMatching(/^[a-z_]+$/),
        msg: expect.any(String),
      });
      return parsed;
    });
}

/** The first line of `event` (with `fields`, where given), waiting up to 5 s for serve to write it. */
async function lineOf(stderr: () => string, event: string, fields: object = {}): Promise<Line> {
  for (let i = 0; i < 250; i++) {
    const found = parseLines(stderr()).find(
      (line) => line.event === event && Object.entries(fields).every(([k, v]) => line[k] === v),
    );
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no ${event} event with ${JSON.stringify(fields)} in:\n${stderr()}`);
}

describe('serve --log-format json', () => {
  it('writes each event as one JSON line with its fields', async () => {
    const dir = await tempDirs.make();
    const usersFile = join(dir, 'users.json');
    let users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-pw'),
      permissions: [...PERMISSIONS],
      home: '',
    });
    users = addUser(users, {
      name: 'reader',
      passwordHash: await hashPassword('reader-pw'),
      permissions: [...READ_ONLY_PERMISSIONS],
      home: '',
    });
    await writeFile(usersFile, JSON.stringify(users));
    // Readable by all: a start-up warning.
    await chmod(usersFile, 0o644);
    await mkdir(join(dir, 'data'));
    const serve = await startServeChild(
      [
        '--root',
        join(dir, 'data'),
        '--users',
        usersFile,
        '--log-format',
        'json',
        '--max-connections-per-ip',
        '2',
      ],
      children,
    );
    const { port } = serve;
    const listening = await lineOf(serve.stderr, 'listening');
    expect(listening).toMatchObject({ level: 'info', address: `127.0.0.1:${port}` });
    const warning = await lineOf(serve.stderr, 'warning');
    expect(warning).toMatchObject({ level: 'warn', msg: expect.stringContaining('readable by every user') });
    expect(await lineOf(serve.stderr, 'users_loaded')).toMatchObject({
      count: 2,
      file: usersFile,
      anonymous: 'off',
    });

    // A third connection from one address, past --max-connections-per-ip 2.
    const held = [await RawPeer.open(port), await RawPeer.open(port)];
    peers.push(...held);
    const refusedSocket = connect(port, '127.0.0.1');
    refusedSocket.resume();
    await new Promise((resolve) => refusedSocket.once('close', resolve));
    const refusedConnection = await lineOf(serve.stderr, 'connection_refused');
    expect(refusedConnection).toMatchObject({
      level: 'warn',
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      code: 'SERVER_BUSY',
      reason: 'server busy: at most 2 connections from one address',
    });
    for (const peer of held) peer.destroy();
    await lineOf(serve.stderr, 'closed', { conn: 2 });
    await lineOf(serve.stderr, 'closed', { conn: 1 });

    await expect(
      Client.connect({ host: '127.0.0.1', port, user: 'alice', password: 'wrong' }),
    ).rejects.toMatchObject({ code: 'LOGIN_FAILED' });
    expect(await lineOf(serve.stderr, 'login_failed')).toMatchObject({
      level: 'warn',
      user: 'alice',
      conn: 3,
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      attempts_left: 2,
    });
    await lineOf(serve.stderr, 'closed', { conn: 3 });

    // A name with a space and a bidi override: raw in its field, escaped in the line.
    const name = 'my \u202ereport.txt';
    const alice = await Client.connect({ host: '127.0.0.1', port, user: 'alice', password: 'alice-pw' });
    await alice.put(name, Buffer.alloc(3000, 1));
    expect(await alice.getBuffer(name)).toHaveLength(3000);
    await alice.mkdir('docs');
    await alice.rename(name, 'docs/r.txt');
    await alice.delete('docs/r.txt');
    await alice.close();
    const aliceConn = { conn: 4, user: 'alice' };
    expect(await lineOf(serve.stderr, 'logged_in', aliceConn)).toMatchObject({ level: 'info' });
    const received = await lineOf(serve.stderr, 'received', aliceConn);
    expect(received).toMatchObject({ path: name, bytes: 3000, ms: expect.any(Number) });
    expect(received.msg).toMatch(/^conn#4 127\.0\.0\.1:\d+ received "my \?report\.txt" 3000 B in /);
    expect(await lineOf(serve.stderr, 'sent', aliceConn)).toMatchObject({ path: name, bytes: 3000 });
    expect(await lineOf(serve.stderr, 'made_directory', aliceConn)).toMatchObject({ path: 'docs' });
    expect(await lineOf(serve.stderr, 'renamed', aliceConn)).toMatchObject({ path: name, to: 'docs/r.txt' });
    expect(await lineOf(serve.stderr, 'deleted', aliceConn)).toMatchObject({ path: 'docs/r.txt' });
    expect(await lineOf(serve.stderr, 'closed', aliceConn)).toMatchObject({
      streams: 5,
      bytes_in: expect.any(Number),
      bytes_out: expect.any(Number),
    });
    // The bidi control never reaches the log raw: JSON-escaped, it parses back to the name.
    expect(serve.stderr()).not.toContain('\u202e');
    expect(serve.stderr()).toContain('my \\u202ereport.txt');

    const reader = await Client.connect({ host: '127.0.0.1', port, user: 'reader', password: 'reader-pw' });
    await expect(reader.put('nope.txt', Buffer.from('x'))).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
    });
    await reader.close();
    expect(await lineOf(serve.stderr, 'refused', { user: 'reader' })).toMatchObject({
      level: 'warn',
      conn: 5,
      op: 'put',
      path: 'nope.txt',
      code: 'PERMISSION_DENIED',
      reason: expect.stringContaining('permission'),
    });
    await lineOf(serve.stderr, 'closed', { conn: 5 });

    // An upload cut by a lost connection: how far it got.
    const uploader = await RawPeer.open(port);
    peers.push(uploader);
    uploader.write(encodeAuth({ user: 'alice', password: 'alice-pw' }));
    await uploader.waitFor((f) => f.type === FrameType.AUTH);
    uploader.write(encodeOpen(1, { op: 'put', path: 'cut.bin', size: 1024 * 1024 }));
    await uploader.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    uploader.write(encodeData(1, Buffer.alloc(1000, 2)));
    await new Promise((resolve) => setTimeout(resolve, 200));
    uploader.destroy();
    expect(await lineOf(serve.stderr, 'cut')).toMatchObject({
      level: 'warn',
      conn: 6,
      user: 'alice',
      op: 'put',
      path: 'cut.bin',
      bytes: 1000,
      size: 1024 * 1024,
      code: 'CONNECTION_LOST',
    });

    await stopChildren(children);
    const lines = parseLines(serve.stderr());
    expect(lines.at(-2)).toMatchObject({ event: 'stopping', signal: 'SIGTERM', ms: 10_000 });
    expect(lines.at(-1)).toMatchObject({ event: 'stopped', msg: 'stopped' });
  });

  it('gives anonymous access in fields of its own, not only in msg', async () => {
    const dir = await tempDirs.make();
    const usersFile = join(dir, 'users.json');
    await writeFile(usersFile, JSON.stringify(emptyUsersFile()), { mode: 0o600 });
    await mkdir(join(dir, 'data'));
    const root = join(dir, 'data');
    const args = ['--root', root, '--users', usersFile, '--log-format', 'json'];
    const write = await startServeChild([...args, '--anonymous-write'], children);
    expect(await lineOf(write.stderr, 'users_loaded')).toMatchObject({
      anonymous: 'write',
      path: '/public',
      msg: expect.stringContaining('anonymous on, with every permission'),
    });
    await stopChildren(children);
    const read = await startServeChild([...args, '--anonymous', '--anonymous-home', 'pub'], children);
    expect(await lineOf(read.stderr, 'users_loaded')).toMatchObject({ anonymous: 'read', path: '/pub' });
  });
});
