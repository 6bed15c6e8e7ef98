/**
 * Ctrl-C outside transfers: while the CLI is still connecting (a server that accepts TCP but never
 * answers the handshake) or waiting on a request (a server that answers the handshake, then
 * nothing). Each says what was interrupted in one line and exits 130; with --json the command's
 * usual failure shape is on stdout. Real child processes and sockets on 127.0.0.1 port 0.
 * Needs dist/ (npm run build).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeReply } from '../shared/protocol/encoder.js';
import { CLI_BIN, cliShellLine, runCli } from './helpers/cliProcess.js';
import { startScriptedServer } from './helpers/scriptedServer.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

const tempDirs = new TempDirs('muxftp-interrupt-');
const servers: Server[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  await tempDirs.removeAll();
});

/** Accepts connections (on `port`, else a free one) and never says a word. */
async function silentServer(port = 0): Promise<{ port: number; connected: () => Promise<void> }> {
  let arrived: (() => void) | undefined;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    arrived?.();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connected: () =>
      new Promise<void>((resolve) => {
        arrived = resolve;
      }),
  };
}

/** Runs the CLI; once `ready` resolves, sends SIGINT; resolves with what it printed and its exit. */
function interruptCli(args: string[], cwd: string, ready: Promise<void>) {
  // The CLI's handlers are installed before it connects: once the server saw the connection, they are there.
  return runCli(args, cwd, { interruptWhen: ready, timeoutMs: 15_000 });
}

describe('Ctrl-C while connecting', () => {
  it('to a server that never answers the handshake: one line naming the address, exit 130', async () => {
    const cwd = await tempDirs.make();
    for (const command of [['ls'], ['get', 'a.bin'], ['mkdir', 'd']]) {
      const { port, connected } = await silentServer();
      const result = await interruptCli([...command, '--server', `127.0.0.1:${port}`], cwd, connected());
      expect(result.signal).toBe(null);
      expect(result.code).toBe(130);
      expect(result.stderr).toBe(
        `muxftp: ${command[0]}: interrupted while connecting to 127.0.0.1:${port} (CANCELLED)\n`,
      );
      expect(result.stdout).toBe('');
    }
  });

  it('with --json, prints the command failure shape with CANCELLED', async () => {
    const cwd = await tempDirs.make();
    const { port, connected } = await silentServer();
    const result = await interruptCli(
      ['rm', 'a', 'b', '--json', '--server', `127.0.0.1:${port}`],
      cwd,
      connected(),
    );
    expect(result.code).toBe(130);
    const message = `interrupted while connecting to 127.0.0.1:${port}`;
    expect(JSON.parse(result.stdout)).toEqual([
      { path: 'a', ok: false, error: { code: 'CANCELLED', message } },
      { path: 'b', ok: false, error: { code: 'CANCELLED', message } },
    ]);
  });
});

describe('Ctrl-C while waiting on the server after connecting', () => {
  it('says the command was interrupted, once, and exits 130', async () => {
    const cwd = await tempDirs.make();
    let asked: () => void = () => {};
    const requested = new Promise<void>((resolve) => {
      asked = resolve;
    });
    // Answers the handshake, then swallows every request.
    const { server, port } = await startScriptedServer((socket) => {
      sockets.add(socket);
      asked();
    });
    servers.push(server);
    const result = await interruptCli(['stat', 'x', '--server', `127.0.0.1:${port}`], cwd, requested);
    expect(result.code).toBe(130);
    expect(result.stderr).toBe('muxftp: stat: interrupted (CANCELLED)\n');
  });
});

describe('Ctrl-C while reconnecting (--retries)', () => {
  it('gives up the connect at once instead of waiting out its timeout, and says the transfer was cancelled', async () => {
    const cwd = await tempDirs.make();
    // The first server answers get's stat, then drops the connection when the download opens...
    let dropped: () => void = () => {};
    const wasDropped = new Promise<void>((resolve) => {
      dropped = resolve;
    });
    const first = await startScriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      const { op } = JSON.parse(frame.payload.toString()) as { op: string };
      if (op === 'stat') {
        const entry = { name: 'a.txt', type: 'file', size: 3, mtime: 1_700_000_000_000 };
        socket.write(encodeReply(frame.streamId, { entry }));
      } else {
        socket.destroy();
        dropped();
      }
    });
    servers.push(first.server);
    const args = ['get', 'a.txt', '--retries', '3', '--server', `127.0.0.1:${first.port}`];
    const reconnecting = wasDropped.then(async () => {
      // ...and a server on the same port that never answers takes the reconnect (10 s to time out).
      await new Promise((resolve) => first.server.close(resolve));
      const silent = await silentServer(first.port);
      await silent.connected();
    });
    const interruptedAt = { ms: 0 };
    const result = await interruptCli(
      args,
      cwd,
      reconnecting.then(() => {
        interruptedAt.ms = performance.now();
      }),
    );
    const exitedAfterMs = performance.now() - interruptedAt.ms;
    expect(result.code).toBe(130);
    expect(result.stderr).toMatch(/retry 1\/3 in [\d.]+ s\nmuxftp: get a\.txt: cancelled \(CANCELLED\)\n$/);
    // Well under the connect timeout (10 s) it would otherwise have waited.
    expect(exitedAfterMs).toBeLessThan(5000);
  });
});

describe('a signal while transfers are in flight', () => {
  // `timeout` and CI runners stop a job with SIGTERM: its status says so (128 + 15), as it does
  // outside transfers, where the command exits at once.
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s: each transfer is cancelled, and the exit status is %i', async (signal, exitCode) => {
    const cwd = await tempDirs.make();
    let opened: () => void = () => {};
    const downloading = new Promise<void>((resolve) => {
      opened = resolve;
    });
    // Answers get's stat, then never the download's open: the transfer waits until the signal.
    const scripted = await startScriptedServer((socket, frame) => {
      if (frame.type !== FrameType.OPEN) return;
      const { op } = JSON.parse(frame.payload.toString()) as { op: string };
      if (op === 'stat') {
        const entry = { name: 'a.txt', type: 'file', size: 3, mtime: 1_700_000_000_000 };
        socket.write(encodeReply(frame.streamId, { entry }));
      } else opened();
    });
    servers.push(scripted.server);
    const result = await runCli(['get', 'a.txt', '--server', `127.0.0.1:${scripted.port}`], cwd, {
      interruptWhen: downloading,
      interruptSignal: signal,
      timeoutMs: 15_000,
    });
    expect(result.stderr).toBe('muxftp: get a.txt: cancelled (CANCELLED)\n');
    expect(result.code).toBe(exitCode);
  });
});

describe('Ctrl-C during put -r', () => {
  it('sets no directory times after it: no request each, which a stalled server held for --timeout', async () => {
    const server = await startServer({ backend: 'disk' });
    try {
      const cwd = await tempDirs.make();
      const old = new Date('2001-01-01T00:00:00Z');
      for (const name of ['a', 'b', 'c']) {
        await mkdir(join(cwd, 'tree', name), { recursive: true });
        await writeFile(join(cwd, 'tree', name, 'f'), name);
      }
      // At 1 MiB/s still under way when the signal comes, the small files long in.
      await writeFile(join(cwd, 'tree', 'big'), Buffer.alloc(16 * 1024 * 1024));
      for (const name of ['a', 'b', 'c']) await utimes(join(cwd, 'tree', name), old, old);
      const remote = (name: string) => join(server.root!, 'tree', name);
      const smallFilesIn = until(async () => {
        for (const name of ['a', 'b', 'c']) if (!existsSync(join(remote(name), 'f'))) return false;
        return true;
      }, 'the small files on the server');
      const args = ['--server', `127.0.0.1:${server.port}`, 'put', '-r', 'tree', '--limit-rate', '1MiB'];
      const result = await runCli(args, cwd, { interruptWhen: smallFilesIn, timeoutMs: 15_000 });
      expect(result.stderr).toMatch(
        /^muxftp: put tree\/big: cancelled \(CANCELLED\)\nmuxftp: 3 files \(3 B\), 1 failed in /,
      );
      expect(result.code).toBe(130);
      // Before, each directory was given its local time (2001) after the Ctrl-C.
      for (const name of ['a', 'b', 'c'])
        expect((await stat(remote(name))).mtime.getTime()).not.toBe(old.getTime());
    } finally {
      await server.stop();
    }
  });

  it('get -r: the same, the local directories keep the times of their writing', async () => {
    const server = await startServer({ backend: 'disk' });
    try {
      const cwd = await tempDirs.make();
      const old = new Date('2001-01-01T00:00:00Z');
      const tree = join(server.root!, 'tree');
      for (const name of ['a', 'b', 'c']) {
        await mkdir(join(tree, name), { recursive: true });
        await writeFile(join(tree, name, 'f'), name);
      }
      await writeFile(join(tree, 'big'), Buffer.alloc(16 * 1024 * 1024));
      for (const name of ['a', 'b', 'c']) await utimes(join(tree, name), old, old);
      const local = (name: string) => join(cwd, 'tree', name);
      const smallFilesIn = until(async () => {
        for (const name of ['a', 'b', 'c']) if (!existsSync(join(local(name), 'f'))) return false;
        return true;
      }, 'the small files here');
      const args = ['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'tree', '--limit-rate', '1MiB'];
      const result = await runCli(args, cwd, { interruptWhen: smallFilesIn, timeoutMs: 15_000 });
      expect(result.code).toBe(130);
      // Before, each was given the remote one's time (2001) after the Ctrl-C, half filled.
      for (const name of ['a', 'b', 'c'])
        expect((await stat(local(name))).mtime.getTime()).not.toBe(old.getTime());
    } finally {
      await server.stop();
    }
  });
});

describe('Ctrl-C while put - reads the stdin it skipped to its end (--ignore-existing)', () => {
  it('--json gives the file skipped, not failed CANCELLED', async () => {
    const server = await startServer();
    try {
      await (await server.connect()).put('x', Buffer.from('there already'));
      const cwd = await tempDirs.make();
      const args = ['--server', `127.0.0.1:${server.port}`, 'put', '-', 'x', '--ignore-existing', '--json'];
      const child = spawn(process.execPath, [CLI_BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.stdin.on('error', () => {});
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      // More than a pipe holds: written through only once the CLI reads it, after the skip.
      await new Promise<void>((resolve) => child.stdin.write(Buffer.alloc(4 << 20), () => resolve()));
      child.kill('SIGINT');
      const code = await exited;
      clearTimeout(timer);
      expect(code).toBe(130);
      expect(stderr).toMatch(/muxftp: put: interrupted \(CANCELLED\)\n$/);
      // Before: `[{"local": "-", "remote": "x", "ok": false, "error": CANCELLED}]`, the file skipped.
      expect(JSON.parse(stdout)).toEqual([expect.objectContaining({ remote: 'x', ok: true, skipped: true })]);
    } finally {
      await server.stop();
    }
  });
});

describe('Ctrl-C during put -r --delete, after the uploads', () => {
  it('--json gives what was done (the upload, the removals so far), not every file failed', async () => {
    const server = await startServer({ backend: 'disk' });
    try {
      const cwd = await tempDirs.make();
      await mkdir(join(cwd, 'src'));
      await writeFile(join(cwd, 'src', 'a.txt'), 'hi');
      const extra = join(server.root!, 'mir', 'src');
      await mkdir(extra, { recursive: true });
      const EXTRA = 3_000;
      for (let i = 0; i < EXTRA; i++) await writeFile(join(extra, `x${i}`), '');
      const removing = until(async () => (await readdir(extra)).length < EXTRA, 'the removals under way', {
        everyMs: 5,
      });
      const args = [
        '--server',
        `127.0.0.1:${server.port}`,
        'put',
        '-r',
        'src',
        '--to',
        'mir',
        '--delete',
        '--json',
      ];
      const result = await runCli(args, cwd, { interruptWhen: removing, timeoutMs: 15_000 });
      expect(result.code).toBe(130);
      expect(result.stderr).toMatch(/muxftp: put: interrupted \(CANCELLED\)\n$/);
      const left = (await readdir(extra)).filter((name) => name.startsWith('x')).length;
      const outcomes = JSON.parse(result.stdout) as Array<{ remote: string; ok: boolean; deleted?: true }>;
      // Before: `[{local: "src", remote: "mir/src", ok: false, error: CANCELLED}]`, the upload done.
      expect(outcomes.find((outcome) => outcome.remote === 'mir/src/a.txt')).toMatchObject({ ok: true });
      const deleted = outcomes.filter((outcome) => outcome.deleted === true && outcome.ok);
      expect(deleted.length).toBeGreaterThan(0);
      // Each removal said, perhaps one more done as the signal came.
      expect(EXTRA - left - deleted.length).toBeGreaterThanOrEqual(0);
      expect(EXTRA - left - deleted.length).toBeLessThanOrEqual(64);
    } finally {
      await server.stop();
    }
  });
});

/**
 * Runs the CLI on a terminal (script(1), util-linux), types Ctrl-C once `prompt` shows, and
 * resolves with everything the terminal showed and the exit code.
 */
async function ctrlCAtPrompt(
  args: string[],
  cwd: string,
  prompt: string,
): Promise<{ code: number | null; shown: string }> {
  const env = { ...process.env };
  delete env.MUXFTP_SERVER;
  delete env.MUXFTP_PASSWORD;
  const child = spawn('script', ['-qec', cliShellLine(args), '/dev/null'], { cwd, env, stdio: 'pipe' });
  let shown = '';
  let typed = false;
  child.stdout.on('data', (chunk: Buffer) => {
    shown += chunk.toString();
    if (!typed && shown.includes(prompt)) {
      typed = true;
      child.stdin.write('\u0003');
    }
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  return { code, shown };
}

describe.skipIf(spawnSync('script', ['--version']).status !== 0)('Ctrl-C at the password prompt', () => {
  it('of a client command: the line of Ctrl-C while connecting, exit 130', async () => {
    const cwd = await tempDirs.make();
    // A server that wants a password: the prompt shows once its WELCOME says so.
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    const server = await startServer({ accounts: new Accounts({ users, anonymous: 'off' }) });
    const { port } = server;
    const result = await ctrlCAtPrompt(
      ['--user', 'alice', 'ls', '--server', `127.0.0.1:${port}`],
      cwd,
      'password for alice: ',
    ).finally(() => server.stop());
    expect(result.code).toBe(130);
    expect(result.shown).toMatch(
      new RegExp(
        `password for alice: \\r?\\nmuxftp: ls: interrupted while connecting to 127\\.0\\.0\\.1:${port} \\(CANCELLED\\)\\r?\\n$`,
      ),
    );
  });

  it('of user add: says so and exits 130, writing nothing', async () => {
    const cwd = await tempDirs.make();
    const result = await ctrlCAtPrompt(
      ['user', 'add', 'hal', '--users', 'users.json'],
      cwd,
      'new password for hal: ',
    );
    expect(result.code).toBe(130);
    expect(result.shown).toMatch(
      /new password for hal: \r?\nmuxftp: user add hal: interrupted \(CANCELLED\)\r?\n$/,
    );
    await expect(access(join(cwd, 'users.json'))).rejects.toThrow();
  });
});
