/**
 * The summary line's time is the run's, from its connect (a password prompt's wait left out): not
 * only its transfers. Before, a `put -r --retries 1` that spent 15 s in its planning (mkdirs refused
 * SHUTTING_DOWN, each waiting for the server's close) ended `… in 8.7 s` after 25 s. Here the
 * connection drops at the planning's first request (through a proxy), so the run waits out a
 * retry's backoff before any transfer; the line must count that wait. Real server on 127.0.0.1
 * (disk), the built CLI; not on a terminal, so the run has a failed directory to end with the line.
 */
import { spawn, spawnSync } from 'node:child_process';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { type FrameProxy, proxyDroppingFirst } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { writeTree } from './helpers/tree.js';

let server: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-summary-time-');

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

/** The proxy's address: its first connection drops when the client asks its first `op`. */
async function droppingFirst(op: string): Promise<string[]> {
  proxy = await proxyDroppingFirst(server!.port, op);
  return ['--server', `127.0.0.1:${proxy.port}`];
}

/** `in 1.2 s (…)` or `in 35 ms (…)` at the end of the summary line, in ms. */
function summaryMs(stderr: string): number {
  const last = stderr.trimEnd().split('\n').at(-1)!;
  const match = / in (\d+(?:\.\d)?) (ms|s) \([^)]*\)$/.exec(last);
  expect(match, last).not.toBeNull();
  return Number(match![1]) * (match![2] === 's' ? 1_000 : 1);
}

/** The backoff the retry line announced (`retry 1/2 in 1.4 s`), in ms. */
function retryWaitMs(stderr: string): number {
  const match = /retry 1\/2 in (\d+\.\d) s$/m.exec(stderr);
  expect(match, stderr).not.toBeNull();
  return Number(match![1]) * 1_000;
}

it.each([
  ['put -r', 'mkdir'],
  ['get -r', 'list'],
] as const)('%s: the summary times the whole run, its planning retry included', async (command, op) => {
  server = await startServer({ backend: 'disk' });
  const dir = await tempDirs.make();
  // put: tree/a, tree/sub/b and tree/sub/up, a link loop (a directory that fails).
  await writeTree(dir, { 'tree/a': 'a', 'tree/sub/b': 'b' });
  await symlink('..', join(dir, 'tree', 'sub', 'up'));
  // get: srv/x and srv/d/y, where out/srv/d is a file in the way (a directory that fails).
  await writeTree(server.root!, { 'srv/x': 'x', 'srv/d/y': 'y' });
  await writeTree(dir, { 'out/srv/d': 'in the way' });
  const at = await droppingFirst(op);
  const args =
    command === 'put -r' ? ['put', '-r', 'tree', '--to', 't1/', '-p'] : ['get', '-r', 'srv', '--to', 'out'];
  const began = performance.now();
  const result = await runCli([...at, ...args, '--retries', '2'], dir);
  const wall = performance.now() - began;
  expect(result.code, result.stderr).toBe(1);
  expect(result.stderr).toMatch(/directory failed in /);
  // Before: some tens of ms, the transfers' alone, after a wait of a second or more to retry.
  const took = summaryMs(result.stderr);
  expect(took).toBeGreaterThanOrEqual(retryWaitMs(result.stderr) - 50);
  expect(took).toBeLessThanOrEqual(wall + 50);
});

const hasScript = spawnSync('script', ['--version']).status === 0;

/**
 * The password prompt is shown inside the first connect (once the server's WELCOME says it wants
 * one), so a start taken before that connect counted the user's typing: a put whose password was
 * typed after 1.5 s said `in 1.5 s`. Here the password is typed 3 s after the prompt shows, on
 * a terminal (script(1)); the run itself takes some tens of ms, and up to 1.3 s on a loaded
 * machine (its connect and login again, a scrypt on the server), which failed a bound of 1 s
 * when the password came after 1.5 s.
 */
it.skipIf(!hasScript)(
  'the time the password took to type is no part of the run',
  async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'bob',
      passwordHash: await hashPassword('bob-secret'),
      permissions: [...PERMISSIONS],
    });
    server = await startServer({ backend: 'memory', accounts: new Accounts({ users, anonymous: 'off' }) });
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'a'), 'a');
    const args = ['--server', `127.0.0.1:${server.port}`, '--user', 'bob', 'put', join(dir, 'a')];
    const command = [process.execPath, CLI_BIN, ...args].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    let output = '';
    let typing: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (typing === undefined && output.includes('password for bob: '))
        typing = setTimeout(() => child.stdin.write('bob-secret\r'), 3_000);
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(killer);
    clearTimeout(typing);
    expect(code, output).toBe(0);
    const match = /muxftp: 1 file \([^)]*\) in (\d+(?:\.\d)?) (ms|s) /.exec(output);
    expect(match, output).not.toBeNull();
    // Before: 3 s or more.
    expect(Number(match![1]) * (match![2] === 's' ? 1_000 : 1), output).toBeLessThan(2_500);
  },
  30_000,
);
