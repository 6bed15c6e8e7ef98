/**
 * A SIGHUP while `muxftp serve` starts (a deploy hook's `kill -HUP` right after the start) must
 * not kill it: it is held and applied, once, when the server is up. The users file is a FIFO, so
 * serve is held in its start-up, reading it, until the test writes it: the SIGHUPs arrive then,
 * whatever the machine's speed (a regular file takes its name meanwhile: a reload reads no FIFO).
 * Needs dist/ (npm run build) and mkfifo.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { type FileHandle, mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { delay } from './helpers/waits.js';

const hasMkfifo = process.platform !== 'win32' && spawnSync('mkfifo', ['--version']).status === 0;
const WAIT_MS = 10_000;

let dir: string | undefined;
let child: ChildProcess | undefined;
afterEach(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * Opens the FIFO for writing: this waits until serve opens it for reading. Bounded: past WAIT_MS
 * a reader of our own lets the open finish, and the test fails.
 */
async function openWhenRead(fifo: string): Promise<FileHandle> {
  let unblocked = false;
  const timer = setTimeout(() => {
    unblocked = true;
    closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
  }, WAIT_MS);
  const handle = await open(fifo, 'w');
  clearTimeout(timer);
  if (unblocked) {
    await handle.close();
    throw new Error('serve did not read its users file');
  }
  return handle;
}

describe.skipIf(!hasMkfifo)('serve and SIGHUP while it starts', () => {
  it('survives several, and reads its users file again once, when up', async () => {
    dir = await mkdtemp(join(tmpdir(), 'muxftp-hangup-'));
    const fifo = join(dir, 'users.json');
    expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
    const users = `${JSON.stringify(
      addUser(emptyUsersFile(), {
        name: 'alice',
        passwordHash: await hashPassword('alice-secret'),
        permissions: [...PERMISSIONS],
      }),
    )}\n`;
    const serve = spawn(
      process.execPath,
      [CLI_BIN, 'serve', '--port', '0', '--root', join(dir, 'data'), '--users', fifo],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = serve;
    let stdout = '';
    let stderr = '';
    serve.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    serve.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<void>((resolve) => serve.once('exit', () => resolve()));
    const alive = () => serve.exitCode === null && serve.signalCode === null;

    // serve has opened its users file: it is starting. A regular file takes the FIFO's name (a
    // SIGHUP's reload reads no FIFO), three SIGHUPs, then the file serve is reading.
    const starting = await openWhenRead(fifo);
    const regular = join(dir, 'users.json.new');
    await writeFile(regular, users, { mode: 0o600 });
    await rename(regular, fifo);
    for (let i = 0; i < 3; i++) {
      serve.kill('SIGHUP');
      await delay(20);
    }
    await starting.writeFile(users).catch(() => {});
    await starting.close();
    for (let i = 0; i < WAIT_MS / 20 && alive() && !stdout.includes('listening on'); i++) await delay(20);
    expect({ signal: serve.signalCode, code: serve.exitCode, stderr }).toEqual({
      signal: null,
      code: null,
      stderr: expect.any(String),
    });
    expect(stdout).toMatch(/^muxftp listening on /);

    // Up: the held SIGHUP reads the file again.
    for (let i = 0; i < WAIT_MS / 20 && !stderr.includes('SIGHUP: 1 user from'); i++) await delay(20);
    expect(stderr.match(/SIGHUP: 1 user from /g)).toHaveLength(1);
    expect(stderr).not.toMatch(/SIGHUP: kept the users/);

    serve.kill('SIGTERM');
    await exited;
    expect(serve.exitCode).toBe(0);
    expect(stderr.match(/SIGHUP: /g)).toHaveLength(1);
  });
});
