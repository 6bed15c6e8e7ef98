/**
 * Signals to a running `muxftp serve`: a SIGHUP (`systemctl reload`, a certificate's deploy hook)
 * that comes while a SIGTERM's drain runs must not kill it; the drain goes on, the transfers in
 * flight land, and it exits 0. The real CLI, real sockets and files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, readdir, rename, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { CLI_BIN, runCli, startServeChild } from './helpers/cliProcess.js';
import { makeFifo } from './helpers/fifo.js';
import { ownFor } from './helpers/ownedByTest.js';
import { makeTestCerts, opensslAvailable } from './helpers/testCerts.js';
import { delay, until } from './helpers/waits.js';

const MiB = 1024 * 1024;
const HOLD_SWEEP = pathToFileURL(join(import.meta.dirname, 'helpers', 'holdRootSweep.mjs')).href;

describe('serve and signals', () => {
  it('a SIGHUP during the drain is a reload, not the end: the upload in flight lands, exit 0', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const local = await own.tempDir();
    const etc = await own.tempDir();
    await mkdir(join(root, 'alice'));
    const usersFile = join(etc, 'users.json');
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    await writeFile(usersFile, `${JSON.stringify(users)}\n`, { mode: 0o600 });
    await writeFile(join(local, 'big'), '');
    await truncate(join(local, 'big'), 6 * MiB);
    const serve = await startServeChild(
      ['--root', root, '--users', usersFile, '--fsync', 'never', '--max-rate', '3MiB'],
      own.children,
    );
    const put = runCli(['--server', `127.0.0.1:${serve.port}`, '--user', 'alice', 'put', 'big'], local, {
      env: { MUXFTP_PASSWORD: 'alice-secret' },
      children: own.children,
      timeoutMs: 30_000,
    });
    const underWay = async () =>
      (await readdir(join(root, 'alice')).catch(() => [])).some((n) => n.startsWith('.muxftp-'));
    await until(underWay, 'the upload under way', { everyMs: 10 });
    serve.child.kill('SIGTERM');
    await until(async () => serve.stderr().includes('shutting down'), 'the drain', { everyMs: 10 });
    serve.child.kill('SIGHUP');
    await delay(100);
    const { code, stderr } = await put;
    expect(code, stderr).toBe(0);
    expect(await serve.exited, serve.stderr()).toBe(0);
    expect(serve.child.signalCode).toBe(null);
    expect((await stat(join(root, 'alice', 'big'))).size).toBe(6 * MiB);
  }, 40_000);

  it("a SIGHUP's reload under way as the drain ends is waited for: `stopped` is the last line", async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    const etc = await own.tempDir();
    // Many users: a reload long enough to be under way when the drain (no transfers) ends.
    const one = addUser(emptyUsersFile(), {
      name: 'u',
      passwordHash: await hashPassword('secret-pass'),
      permissions: ['read'],
    });
    const entry = one.users.u!;
    const users = {
      ...one,
      users: Object.fromEntries(
        Array.from({ length: 10_000 }, (_, i) => [`u${i}`, { ...entry, home: `u${i}` }]),
      ),
    };
    const usersFile = join(etc, 'users.json');
    await writeFile(usersFile, `${JSON.stringify(users)}\n`, { mode: 0o600 });
    for (let round = 0; round < 3; round++) {
      const serve = await startServeChild(['--root', root, '--users', usersFile], own.children);
      serve.child.kill('SIGTERM');
      serve.child.kill('SIGHUP');
      expect(await serve.exited, serve.stderr()).toBe(0);
      const lines = serve.stderr().trimEnd().split('\n');
      expect(lines.at(-1), serve.stderr()).toMatch(/ stopped$/);
    }
  }, 60_000);

  it('off a terminal, a SIGHUP with nothing to read again is ignored: `systemctl reload` ended the service', async (test) => {
    const own = ownFor(test);
    const root = await own.tempDir();
    // stdin /dev/null, stderr a pipe: as systemd runs it.
    const serve = await startServeChild(['--root', root], own.children);
    serve.child.kill('SIGHUP');
    await until(async () => serve.stderr().includes('SIGHUP: ignored'), 'the SIGHUP said', { everyMs: 10 });
    const listed = await runCli(['--server', `127.0.0.1:${serve.port}`, 'ls'], root, {
      children: own.children,
    });
    expect(listed.code, listed.stderr).toBe(0);
    serve.child.kill('SIGTERM');
    expect(await serve.exited, serve.stderr()).toBe(0);
    expect(serve.stderr()).toContain('nothing to read again without --users or --tls-cert');
  }, 30_000);

  it('a SIGTERM or SIGINT while it starts (its sweep of a large root) still removes its lock, and ends it by that signal', async (test) => {
    const own = ownFor(test);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const dir = await own.tempDir();
      const root = join(dir, 'root');
      await mkdir(root);
      const child = spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0', '--root', root], {
        env: { ...process.env, NODE_OPTIONS: `--import ${HOLD_SWEEP}`, MUXFTP_TEST_HOLD_READDIR: root },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      own.children.add(child);
      let output = '';
      for (const stream of [child.stdout, child.stderr]) stream.on('data', (c: Buffer) => (output += c));
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.once('exit', (_code, by) => resolve(by)),
      );
      // The sweep has started: the lock is taken, the shutdown's handlers not yet up.
      await until(
        async () => (await stat(join(dir, 'held')).catch(() => undefined)) !== undefined,
        'the sweep',
      );
      expect((await readdir(root)).filter((name) => name.startsWith('.muxftp-'))).toEqual([
        '.muxftp-serve.lock',
      ]);
      child.kill(signal);
      // Killed by its default action, it left the lock, and the next server on the root had to
      // judge it (silently taken over here; watched for seconds when written from another host).
      expect(await exited, output).toBe(signal);
      expect(await readdir(root), output).toEqual([]);
    }
  }, 30_000);

  it.skipIf(!opensslAvailable || process.platform === 'win32')(
    'a SIGHUP finding a FIFO where the users file or the certificate was refuses it: the reload and the stop never waited',
    async (test) => {
      const own = ownFor(test);
      const root = await own.tempDir();
      const etc = await own.tempDir();
      const certs = await makeTestCerts();
      test.onTestFinished(() => certs.remove());
      const usersFile = join(etc, 'users.json');
      const users = addUser(emptyUsersFile(), {
        name: 'alice',
        passwordHash: await hashPassword('alice-secret'),
        permissions: [...PERMISSIONS],
      });
      await writeFile(usersFile, `${JSON.stringify(users)}\n`, { mode: 0o600 });
      const cert = join(etc, 'cert.pem');
      const key = join(etc, 'key.pem');
      await copyFile(certs.certPath, cert);
      await copyFile(certs.keyPath, key);
      const serve = await startServeChild(
        ['--root', root, '--users', usersFile, '--tls-cert', cert, '--tls-key', key],
        own.children,
      );
      // Swapped for FIFOs nobody writes (by rename, as a deploy would put a file): their open
      // waited for a writer for ever in a thread-pool thread, and the stop waited on that reload,
      // even a second SIGTERM's exit (which waits for that thread): only SIGKILL ended it.
      for (const file of [usersFile, cert]) await rename(makeFifo(`${file}.fifo`), file);
      serve.child.kill('SIGHUP');
      await until(
        async () => serve.stderr().includes('SIGHUP: kept the TLS certificate'),
        'the reload refusing both files',
        { everyMs: 10, timeoutMs: 5_000 },
      );
      expect(serve.stderr()).toContain(
        `SIGHUP: kept the users as they were: cannot read users file ${usersFile}: not a regular file (a FIFO)`,
      );
      expect(serve.stderr()).toContain(
        `SIGHUP: kept the TLS certificate as it was: cannot read --tls-cert ${cert}: not a regular file (a FIFO)`,
      );
      // The users and certificate as they were: alice still logs in over TLS.
      const server = ['--server', `127.0.0.1:${serve.port}`, '--tls', '--ca', certs.caPath];
      const listed = await runCli([...server, '--user', 'alice', 'ls'], root, {
        env: { MUXFTP_PASSWORD: 'alice-secret' },
        children: own.children,
      });
      expect(listed.code, listed.stderr).toBe(0);
      serve.child.kill('SIGTERM');
      expect(await serve.exited, serve.stderr()).toBe(0);
    },
    30_000,
  );

  it.skipIf(spawnSync('python3', ['-c', 'import pty']).status !== 0)(
    'with only stdout on a terminal (`serve </dev/null 2>log`), a SIGHUP is the terminal gone and ends it',
    async (test) => {
      const own = ownFor(test);
      const root = await own.tempDir();
      // Went on, it outlived its terminal; its exit then aborted in node 20 (nodejs/node#51519),
      // setting back the modes of a terminal that is gone: 134, a core file, a native stack trace.
      const run = spawnSync(
        'python3',
        ['-c', ON_PTY_STDOUT, process.execPath, CLI_BIN, 'serve', '--memory', '--port', '0'],
        { cwd: root, encoding: 'utf8', timeout: 40_000 },
      );
      expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
      expect(run.stdout).toContain('ended by SIGHUP');
      expect(run.stdout).not.toContain('SIGHUP: ignored');
    },
    45_000,
  );

  it.skipIf(spawnSync('python3', ['-c', 'import pty']).status !== 0)(
    'on a terminal, a SIGHUP as the listening line is written (the terminal closed as it came up) ends it',
    async (test) => {
      const own = ownFor(test);
      const root = await own.tempDir();
      // Taken by the start-up's holder in the turn that removed it, it was lost: the server went
      // on past its terminal's end.
      for (let round = 0; round < 3; round++) {
        const run = spawnSync(
          'python3',
          ['-c', ON_PTY_STDOUT, process.execPath, CLI_BIN, 'serve', '--memory', '--port', '0'],
          { cwd: root, encoding: 'utf8', timeout: 40_000, env: { ...process.env, HUP_AFTER: '0' } },
        );
        expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
        expect(run.stdout).toContain('ended by SIGHUP');
      }
    },
    90_000,
  );
});

/**
 * python3: runs argv[1:] with stdin /dev/null, stdout a pseudo-terminal and stderr a pipe; once it
 * listens (and half a second more), sends it a SIGHUP and says how it ended (and, should it go on, SIGTERMs it).
 */
const ON_PTY_STDOUT = `
import os, pty, select, signal, subprocess, sys, time
master, slave = os.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
os.close(slave)
seen = b''
deadline = time.time() + 20
while b'listening on' not in seen and time.time() < deadline:
    if select.select([master], [], [], 0.5)[0]:
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
# Once it is up: its start-up holds a SIGHUP until then (cli/startupHangups.ts).
time.sleep(float(os.environ.get('HUP_AFTER', '0.5')))
p.send_signal(signal.SIGHUP)
try:
    code = p.wait(timeout=5)
except subprocess.TimeoutExpired:
    print('went on after the SIGHUP')
    p.terminate()
    code = p.wait(timeout=20)
print('ended by SIGHUP' if code == -signal.SIGHUP else 'ended ' + str(code))
print(p.stderr.read().decode())
`;
