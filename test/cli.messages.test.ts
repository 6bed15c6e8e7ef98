/**
 * What the CLI says when something goes wrong, as a user reads it: one line, in words, said once,
 * naming what failed — a users file that cannot be read, an address serve cannot listen on, a
 * permission the account lacks, `get -c` onto a file that cannot be a partial copy, an `rm -r`
 * that could not remove everything, bench's connect failure — and a transfer summary that counts
 * only what succeeded. Real `muxftp serve` children on 127.0.0.1 port 0 and temp dirs.
 * Needs dist/ (npm run build).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { cliShellLine, runCli, startServeChild, stopChildren } from './helpers/cliProcess.js';
import { closedPort } from './helpers/closedPort.js';
import { TempDirs } from './helpers/tempDirs.js';
import { makeTestCerts, opensslAvailable } from './helpers/testCerts.js';
import { delay } from './helpers/waits.js';

const MiB = 1024 * 1024;
const tempDirs = new TempDirs('muxftp-messages-');
const servers = new Set<ChildProcess>();
/** Directories a test made unwritable: made writable again before they are removed. */
const locked: string[] = [];

afterEach(async () => {
  await stopChildren(servers);
  for (const dir of locked.splice(0)) await chmod(dir, 0o755).catch(() => {});
  await tempDirs.removeAll();
});

/** `muxftp serve --port 0 …` in `cwd`, once it has printed its listening line. */
async function serve(
  args: string[],
  cwd: string,
  as: { uid?: number; gid?: number } = {},
): Promise<{ port: number; server: string[] }> {
  const { port } = await startServeChild(args, servers, { cwd, ...as });
  return { port, server: ['--server', `127.0.0.1:${port}`] };
}

/** What a served root holds, sorted, leaving out the running server's lock (one server per root). */
async function servedFiles(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).filter((name) => name !== SERVED_ROOT_LOCK_NAME).sort();
}

async function addUser(dir: string, name: string, flags: string[]): Promise<string> {
  const users = join(dir, 'users.json');
  const added = await runCli(['user', 'add', name, '--users', users, ...flags], dir, { stdin: 'password\n' });
  expect(added).toMatchObject({ code: 0, stderr: '' });
  return users;
}

describe('a users file that cannot be read', () => {
  it('serve and user say so in one line, in words, and exit 1', async () => {
    const dir = await tempDirs.make();
    const missing = join(dir, 'nonexistent.json');
    const served = await runCli(['serve', '--port', '0', '--root', dir, '--users', missing], dir, {
      timeoutMs: 10_000,
    });
    expect(served).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `muxftp: serve: cannot read users file ${missing}: no such file or directory\n`,
    });
    for (const args of [['list'], ['del', 'alice']]) {
      const user = await runCli(['user', ...args, '--users', missing], dir);
      expect(user).toMatchObject({
        code: 1,
        stderr: `muxftp: user ${args.join(' ')}: cannot read users file ${missing}: no such file or directory\n`,
      });
    }
    // A directory given for the file: the same words as every local error.
    const isDir = await runCli(['user', 'list', '--users', dir], dir);
    expect(isDir).toMatchObject({
      code: 1,
      stderr: `muxftp: user list: cannot read users file ${dir}: is a directory\n`,
    });
  });
});

describe('a --tls-cert and --tls-key that cannot be used', () => {
  it('serve says why in one line, never as an internal error with a stack', async () => {
    const dir = await tempDirs.make();
    const serveWith = (cert: string, key: string) =>
      runCli(['serve', '--port', '0', '--root', dir, '--tls-cert', cert, '--tls-key', key], dir, {
        timeoutMs: 10_000,
      });
    const missing = join(dir, 'missing.pem');
    const text = join(dir, 'not.pem');
    await writeFile(text, 'not a certificate\n');
    expect(await serveWith(missing, text)).toMatchObject({
      code: 1,
      stderr: `muxftp: serve: cannot read --tls-cert ${missing}: no such file or directory\n`,
    });
    expect(await serveWith(text, text)).toMatchObject({
      code: 1,
      stderr: `muxftp: serve: --tls-cert ${text} and --tls-key ${text} are not a PEM certificate chain and its private key (PEM routines::no start line)\n`,
    });
    if (opensslAvailable) {
      // A certificate with another's key: OpenSSL's "key values mismatch", in the same one line.
      const certs = await makeTestCerts();
      try {
        const mismatch = await serveWith(certs.caPath, certs.keyPath);
        expect(mismatch.code).toBe(1);
        expect(mismatch.stderr).toMatch(
          /^muxftp: serve: --tls-cert .+ and --tls-key .+ are not a PEM certificate chain and its private key \(.*key values mismatch\)\n$/,
        );
        // A key protected by a passphrase, in either PEM form: said so, not OpenSSL's "bad decrypt".
        for (const traditional of [false, true]) {
          const encrypted = join(dir, `encrypted-${traditional}.key`);
          execFileSync('openssl', [
            'pkey',
            '-in',
            certs.keyPath,
            '-out',
            encrypted,
            '-aes256',
            '-passout',
            'pass:secret',
            ...(traditional ? ['-traditional'] : []),
          ]);
          expect(await serveWith(certs.certPath, encrypted)).toMatchObject({
            code: 1,
            stderr: `muxftp: serve: --tls-key ${encrypted} is encrypted with a passphrase, which serve cannot be given: decrypt it (openssl pkey -in ${encrypted} -out plain.key) and keep the copy mode 600\n`,
          });
        }
      } finally {
        await certs.remove();
      }
    }
  });
});

describe("a client's --ca or --credentials file that cannot be read", () => {
  it('is one line in words, before anything connects', async () => {
    const dir = await tempDirs.make();
    const missing = join(dir, 'missing');
    const at = ['--server', `127.0.0.1:${await closedPort()}`];
    expect(await runCli([...at, '--ca', `${missing}.pem`, 'ls'], dir)).toMatchObject({
      code: 1,
      stderr: `muxftp: cannot read --ca ${missing}.pem: no such file or directory (LOCAL_IO_ERROR)\n`,
    });
    // Not a certificate at all (before: "the server's TLS certificate is not signed by the CA given").
    await writeFile(join(dir, 'users.json'), '{"users":[]}');
    expect(await runCli([...at, '--ca', 'users.json', 'ls'], dir)).toMatchObject({
      code: 1,
      stderr:
        'muxftp: --ca users.json holds no PEM certificate (-----BEGIN CERTIFICATE-----) (LOCAL_IO_ERROR)\n',
    });
    if (opensslAvailable) {
      // A certificate cut short (a line lost in a copy): node skips it, and the server's was then
      // said to be "not signed by the CA given".
      const certs = await makeTestCerts();
      try {
        const first = certs.cert.toString().trimEnd().split('\n');
        const lines = certs.ca.toString().split('\n');
        await writeFile(join(dir, 'cut.pem'), [...first, ...lines.slice(0, 3), ...lines.slice(4)].join('\n'));
        const at3 = first.length + 1;
        expect(await runCli([...at, '--ca', 'cut.pem', 'ls'], dir)).toMatchObject({
          code: 1,
          stderr: `muxftp: --ca cut.pem: the certificate from line ${at3} does not parse: cut short or changed in a copy? (LOCAL_IO_ERROR)\n`,
        });
      } finally {
        await certs.remove();
      }
    }
    expect(await runCli([...at, '--credentials', `${missing}.json`, 'ls'], dir)).toMatchObject({
      code: 1,
      stderr: `muxftp: cannot read credentials file ${missing}.json: no such file or directory (LOCAL_IO_ERROR)\n`,
    });
  });
});

describe('serve that cannot listen', () => {
  // 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails locally, no packet leaves.
  it('says why once, not also as a server log line', async () => {
    const dir = await tempDirs.make();
    const result = await runCli(['serve', '--host', '192.0.2.1', '--port', '0', '--root', dir], dir, {
      timeoutMs: 10_000,
    });
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'muxftp: serve: cannot listen on 192.0.2.1:0: not an address of this machine\n',
    });
    const metrics = await runCli(['serve', '--port', '0', '--root', dir, '--metrics', '192.0.2.1:9'], dir, {
      timeoutMs: 10_000,
    });
    expect(metrics).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'muxftp: serve: cannot serve metrics on 192.0.2.1:9: not an address of this machine\n',
    });
  });

  // procfs refuses a new directory to everyone, root included.
  it.skipIf(process.platform !== 'linux')('a --root that cannot be made says why in words', async () => {
    const dir = await tempDirs.make();
    const root = '/proc/muxftp-no-such-dir/data';
    const result = await runCli(['serve', '--port', '0', '--root', root], dir, { timeoutMs: 10_000 });
    expect(result).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `muxftp: serve: cannot use ${root} as the root: no such file or directory\n`,
    });
  });
});

describe('permission refusals', () => {
  it('name the command and path once, then what the account lacks; --json keeps {code, message}', async () => {
    const dir = await tempDirs.make();
    const users = await addUser(dir, 'alice', ['--perm', 'list,read']);
    await mkdir(join(dir, 'data', 'alice'), { recursive: true });
    await writeFile(join(dir, 'data', 'alice', 'h.txt'), 'remote');
    await writeFile(join(dir, 'h.txt'), 'local');
    const { server } = await serve(['--root', join(dir, 'data'), '--users', users], dir);
    const as = { env: { MUXFTP_PASSWORD: 'password' } };
    const alice = [...server, '--user', 'alice'];
    const cases: Array<[string[], string]> = [
      [['put', 'h.txt'], 'put h.txt: permission denied: user alice has no write permission'],
      [['rm', 'h.txt'], 'rm h.txt: permission denied: user alice has no delete permission'],
      [['mkdir', 'd'], 'mkdir d: permission denied: user alice has no mkdir permission'],
      [['mv', 'h.txt', 'g.txt'], 'mv h.txt: permission denied: user alice has no rename permission'],
    ];
    for (const [args, line] of cases) {
      const result = await runCli([...alice, ...args], dir, as);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stderr: `muxftp: ${line} (PERMISSION_DENIED)\n`,
      });
    }
    const json = await runCli([...alice, '--json', 'put', 'h.txt'], dir, as);
    expect(json.code).toBe(1);
    const [outcome] = JSON.parse(json.stdout);
    // The file's 5 bytes go right behind the OPEN, on the initial upload window, unless the
    // refusal is back before they were read from disk: `bytes` counts what was sent.
    expect([0, 5]).toContain(outcome.bytes);
    expect([{ ...outcome, bytes: 0 }]).toEqual([
      {
        local: 'h.txt',
        remote: 'h.txt',
        ok: false,
        bytes: 0,
        error: {
          code: 'PERMISSION_DENIED',
          message: 'permission denied: user alice has no write permission',
        },
      },
    ]);
    expect(await readFile(join(dir, 'data', 'alice', 'h.txt'), 'utf8')).toBe('remote');
  });

  it('without the mkdir permission: a put (or mkdir -p) into directories that are there succeeds; a tree directory that is not is said once, and what goes in it fails with it, unsent', async () => {
    const dir = await tempDirs.make();
    const users = await addUser(dir, 'alice', ['--perm', 'list,read,write']);
    await mkdir(join(dir, 'data', 'alice', 'd', 'tree', 'in'), { recursive: true });
    await mkdir(join(dir, 'tree', 'in'), { recursive: true });
    await writeFile(join(dir, 'tree', 'a'), 'a');
    await writeFile(join(dir, 'tree', 'in', 'b'), 'b');
    const { server } = await serve(['--root', join(dir, 'data'), '--users', users], dir);
    const as = { env: { MUXFTP_PASSWORD: 'password' } };
    const alice = [...server, '--user', 'alice'];
    // mkdir -p of a directory that is there makes nothing: it was refused, and failed the run (1)
    // after every file went; put -p sent nothing at all.
    for (const args of [
      ['put', '-r', 'tree', '--to', 'd'],
      ['put', '-p', 'tree/a', 'd/tree/in/a2'],
      ['mkdir', '-p', 'd/tree/in'],
    ]) {
      const result = await runCli([...alice, ...args], dir, as);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    expect(await readFile(join(dir, 'data', 'alice', 'd', 'tree', 'in', 'b'), 'utf8')).toBe('b');
    expect(await readFile(join(dir, 'data', 'alice', 'd', 'tree', 'in', 'a2'), 'utf8')).toBe('a');
    // Where the tree is not: its directory's refusal, once; its files were each sent and failed
    // NOT_FOUND, "add -p to create it", which -p does not help.
    const refused = 'permission denied: user alice has no mkdir permission';
    const made = await runCli([...alice, 'mkdir', '-p', 'd/new'], dir, as);
    expect({ code: made.code, stderr: made.stderr }).toEqual({
      code: 1,
      stderr: `muxftp: mkdir d/new: ${refused} (PERMISSION_DENIED)\n`,
    });
    const result = await runCli([...alice, '--json', 'put', '-r', 'tree'], dir, as);
    expect(result.stderr).toBe(`muxftp: put tree: ${refused} (PERMISSION_DENIED)\n`);
    expect(result.code).toBe(1);
    const outcomes = JSON.parse(result.stdout) as Array<{ remote: string; ok: boolean; error: unknown }>;
    expect(
      outcomes
        .map(({ remote, ok, error }) => ({ remote, ok, error }))
        .sort((x, y) => (x.remote < y.remote ? -1 : 1)),
    ).toEqual(
      ['tree', 'tree/a', 'tree/in', 'tree/in/b'].map((remote) => ({
        remote,
        ok: false,
        error: { code: 'PERMISSION_DENIED', message: refused },
      })),
    );
  });
});

// script(1) (util-linux) runs the command on a pseudo-terminal: the summary is drawn only there.
describe.skipIf(spawnSync('script', ['--version']).status !== 0)('the transfer summary', () => {
  it('counts the bytes of the transfers that succeeded only, and says how many failed', async () => {
    const dir = await tempDirs.make();
    // 3 MiB from stdin (no size declared) into a 1 MiB quota: refused once its bytes stop
    // fitting, after they were sent.
    const users = await addUser(dir, 'bob', ['--quota', '1MiB']);
    const { port } = await serve(['--root', join(dir, 'data'), '--users', users], dir);
    const upload = `head -c ${3 * MiB} /dev/zero | ${cliShellLine()} --server 127.0.0.1:${port} --user bob put - big.bin`;
    const env: NodeJS.ProcessEnv = { ...process.env, MUXFTP_PASSWORD: 'password' };
    delete env.MUXFTP_SERVER;
    const child = spawn('script', ['-qec', upload, '/dev/null'], { cwd: dir, env, stdio: 'pipe' });
    servers.add(child); // killed after the test if it hangs
    let shown = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      shown += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(shown).toContain('muxftp: put -: quota exceeded');
    expect(code).toBe(1);
    expect(shown).toMatch(/muxftp: 0 files \(0 B\), 1 failed in /);
  });
});

describe('get -c onto a local file the remote one cannot have been cut from', () => {
  it('says the local file is larger, leaves it as it was, and says what to do', async () => {
    const dir = await tempDirs.make();
    const root = join(dir, 'data');
    await mkdir(root);
    await writeFile(join(root, 'small.bin'), randomBytes(1000));
    await writeFile(join(root, 'five.bin'), randomBytes(5 * MiB)); // one whole 4 MiB block
    await writeFile(join(root, 'tiny.bin'), randomBytes(1000));
    const local = join(dir, 'local');
    await mkdir(local);
    const mine = randomBytes(9 * MiB);
    // Under one block: no block to compare on either side, and still not a partial copy.
    const mineTiny = randomBytes(3000);
    await writeFile(join(local, 'small.bin'), mine);
    await writeFile(join(local, 'five.bin'), mine);
    await writeFile(join(local, 'tiny.bin'), mineTiny);
    const { server } = await serve(['--root', root], dir);
    const hint = '; remove the local file, or get without -c to replace it\n';
    for (const [name, size, localBytes] of [
      ['small.bin', 1000, mine],
      ['five.bin', 5 * MiB, mine],
      ['tiny.bin', 1000, mineTiny],
    ] as const) {
      const result = await runCli([...server, 'get', '-c', name], local);
      expect({ name, code: result.code, stderr: result.stderr }).toEqual({
        name,
        code: 1,
        stderr: `muxftp: get ${name}: the local file is larger than the server's (${localBytes.length} > ${size} bytes), so it is not a partial copy of it: not continued, left as it was (INTEGRITY_ERROR)${hint}`,
      });
      expect((await readFile(join(local, name))).equals(localBytes)).toBe(true);
    }
    expect((await readdir(local)).sort()).toEqual(['five.bin', 'small.bin', 'tiny.bin']);
  });
});

/** Process `pid` has started bench --local's server (a child process). */
function startedLocalServer(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' '))
      .filter(Boolean)
      .some((child) => readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('localServerProcess'));
  } catch {
    return false;
  }
}

describe('bench', () => {
  it('--local reads no $MUXFTP_SERVER, and takes no --server', async () => {
    const dir = await tempDirs.make();
    const local = ['bench', '--local', '--op', 'connect', '--clients', '1', '--workers', '1'];
    const result = await runCli([...local, '--json'], dir, {
      env: { MUXFTP_SERVER: 'bad:::x' },
      timeoutMs: 60_000,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, op: 'connect', errors: {} });
    const both = await runCli([...local, '--server', '127.0.0.1:1'], dir);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^muxftp: bench: --local starts its own server: --server does not apply\n/);
    const login = await runCli([...local, '--user', 'alice'], dir);
    expect(login.code).toBe(2);
    expect(login.stderr).toMatch(
      /^muxftp: bench: --local starts a server without users: --user and --credentials do not apply\n/,
    );
  }, 70_000);

  it('--html that cannot be written: said in words before the run, or after it without losing the report', async () => {
    const dir = await tempDirs.make();
    const local = ['bench', '--local', '--op', 'connect', '--clients', '1', '--workers', '1'];
    const missing = join(dir, 'missing', 'report.html');
    const before = await runCli([...local, '--html', missing], dir);
    expect(before).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `muxftp: bench: cannot write --html ${missing}: no such file or directory (LOCAL_IO_ERROR)\n`,
    });
    // A directory is refused before the run too (it passed the check, and failed after the run).
    const directory = await runCli([...local, '--html', dir], dir);
    expect(directory).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `muxftp: bench: cannot write --html ${dir}: is a directory (LOCAL_IO_ERROR)\n`,
    });
    // Its directory removed during the run: the write after it fails, the report is out.
    const going = join(dir, 'going');
    await mkdir(going);
    const target = join(going, 'report.html');
    let bench: ChildProcess | undefined;
    const running = runCli([...local, '--duration', '2s', '--json', '--html', target], dir, {
      timeoutMs: 60_000,
      children: { add: (child) => (bench = child) },
    });
    // The local server is started after the check.
    while (bench?.pid === undefined || !startedLocalServer(bench.pid)) await delay(50);
    await rm(going, { recursive: true });
    const after = await running;
    expect(after.stderr).toBe(
      `muxftp: bench: cannot write --html ${target}: no such file or directory (LOCAL_IO_ERROR)\n`,
    );
    expect(after.code).toBe(1);
    // ...and `ok` says what the exit status says.
    expect(JSON.parse(after.stdout)).toMatchObject({
      ok: false,
      error: {
        code: 'LOCAL_IO_ERROR',
        message: `bench: cannot write --html ${target}: no such file or directory`,
      },
      op: 'connect',
      errors: {},
    });
  }, 70_000);

  it('words a failure to connect as every other command does', async () => {
    const dir = await tempDirs.make();
    const at = ['--server', `127.0.0.1:${await closedPort()}`];
    const ls = await runCli([...at, 'ls'], dir);
    const bench = await runCli([...at, 'bench', '--op', 'connect', '--clients', '1', '--workers', '1'], dir);
    expect(ls.code).toBe(3);
    expect(ls.stderr).toMatch(/^muxftp: cannot connect to 127\.0\.0\.1:\d+: connection refused/);
    expect({ code: bench.code, stderr: bench.stderr }).toEqual({ code: 3, stderr: ls.stderr });
  });
});

describe('rm -r that cannot remove everything', () => {
  // The server's filesystem refuses (a directory it may not write): muxftp's own permissions are
  // per account, never per path. Root may write anywhere, so the server then runs as nobody.
  const root = process.getuid?.() === 0;
  it('names the first path that failed and why, how many failed, and does not claim success', async () => {
    const dir = await tempDirs.make();
    const data = join(dir, 'data');
    for (const sub of ['d/sub', 'd/locked']) await mkdir(join(data, sub), { recursive: true });
    for (const file of ['d/a.txt', 'd/b.txt', 'd/sub/e.txt', 'd/locked/c.txt'])
      await writeFile(join(data, file), file);
    if (root) {
      await chmod(dir, 0o755);
      for (const path of [
        data,
        'd',
        'd/sub',
        'd/locked',
        'd/a.txt',
        'd/b.txt',
        'd/sub/e.txt',
        'd/locked/c.txt',
      ])
        await chown(path === data ? data : join(data, path), 65534, 65534);
    }
    await chmod(join(data, 'd', 'locked'), 0o555);
    locked.push(join(data, 'd', 'locked'));
    const { server } = await serve(['--root', data], dir, root ? { uid: 65534, gid: 65534 } : {});

    const removed = await runCli([...server, 'rm', '-r', 'd'], dir);
    expect({ code: removed.code, stdout: removed.stdout, stderr: removed.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'muxftp: rm d: permission denied: d/locked/c.txt (PERMISSION_DENIED); ' +
        '1 of 4 files could not be removed (3 were), so its directories are kept\n',
    });
    // The files it could remove are gone; the one it could not, and every directory, are kept.
    expect(await servedFiles(data)).toEqual(['d', 'd/locked', 'd/locked/c.txt', 'd/sub']);

    const json = await runCli([...server, '--json', 'rm', '-r', 'd'], dir);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual([
      {
        path: 'd',
        ok: false,
        error: { code: 'PERMISSION_DENIED', message: 'permission denied: d/locked/c.txt' },
      },
    ]);
  });
});

describe("rm of a path ending in '.'", () => {
  it('is refused, as GNU rm refuses it: rm -r d/. does not remove d', async () => {
    const dir = await tempDirs.make();
    const data = join(dir, 'data');
    await mkdir(join(data, 'd'), { recursive: true });
    await writeFile(join(data, 'd', 'f.txt'), 'kept');
    const { server } = await serve(['--root', data], dir);
    for (const argument of ['d/.', 'd/./']) {
      const result = await runCli([...server, 'rm', '-r', argument], dir);
      expect({ code: result.code, stderr: result.stderr }).toEqual({
        code: 1,
        stderr: `muxftp: rm ${argument}: refusing to remove '.' (name the directory itself) (INVALID_PATH)\n`,
      });
    }
    // Before: `rm -r d/.` removed d and everything in it.
    expect(await servedFiles(data)).toEqual(['d', 'd/f.txt']);
    expect(await runCli([...server, 'rm', '-r', 'd'], dir)).toMatchObject({ code: 0 });
  });
});

describe('put of a FIFO or device named alone', () => {
  it('is refused without reading it, the others go, and the line says how to send a stream', async () => {
    const dir = await tempDirs.make();
    const { server } = await serve(['--port', '0', '--root', 'root'], dir);
    expect(spawnSync('mkfifo', [join(dir, 'pipe')]).status).toBe(0);
    expect(spawnSync('mkfifo', [join(dir, "it's a pipe")]).status).toBe(0);
    await writeFile(join(dir, 'a.txt'), 'a');

    // No writer ever comes to the FIFO, and /dev/zero never ends: either read would not return.
    const result = await runCli(
      [...server, 'put', 'pipe', '/dev/zero', "it's a pipe", 'a.txt', '--to', 'in/', '-p', '-q'],
      dir,
      {
        timeoutMs: 10_000,
      },
    );

    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'muxftp: put pipe: not a regular file: pipe (UNSUPPORTED); to send what it gives, make it stdin: put - in/pipe < pipe\n' +
        'muxftp: put /dev/zero: not a regular file: /dev/zero (UNSUPPORTED); to send what it gives, make it stdin: put - in/zero < /dev/zero\n' +
        // Quoted as a shell reads it back.
        "muxftp: put it's a pipe: not a regular file: it's a pipe (UNSUPPORTED); to send what it gives, make it stdin: put - 'in/it'\\''s a pipe' < 'it'\\''s a pipe'\n",
    );
    expect(await readdir(join(dir, 'root', 'in'))).toEqual(['a.txt']);
  });
});

describe('an empty path argument', () => {
  it("is refused as INVALID_PATH in words, shown as '', never read as the root or the working directory", async () => {
    const dir = await tempDirs.make();
    const data = join(dir, 'data');
    await mkdir(join(data, 'kept'), { recursive: true });
    await writeFile(join(data, 'kept', 'f.txt'), 'remote');
    await writeFile(join(dir, 'local.txt'), 'local');
    const { server } = await serve(['--root', data], dir);
    const cases: Array<[string[], string]> = [
      [['mkdir', ''], "mkdir '': empty remote path"],
      [['mkdir', '-p', ''], "mkdir '': empty remote path"],
      [['rm', ''], "rm '': empty remote path"],
      [['rm', '-r', ''], "rm '': empty remote path"],
      [['rmdir', ''], "rmdir '': empty remote path"],
      [['mv', '', 'x'], "mv '': empty remote path"],
      [['mv', 'kept/f.txt', ''], 'mv kept/f.txt: empty remote path to move it to'],
      [['stat', ''], "stat '': empty remote path"],
      [['ls', ''], "ls '': empty remote path"],
      [['get', ''], "get '': empty remote path"],
      [['get', '-r', ''], "get '': empty remote path"],
      [['get', 'kept/f.txt', ''], "get '': empty local path"],
      [['get', 'kept/f.txt', '--to', ''], "get '': empty local path"],
      [['put', 'local.txt', ''], "put '': empty remote path"],
      [['put', '-r', '.', ''], "put '': empty remote path"],
      [['put', 'local.txt', '--to', ''], "put '': empty remote path"],
      [['put', '', 'x.txt'], "put '': empty local path"],
    ];
    for (const [args, line] of cases) {
      const result = await runCli([...server, ...args], dir);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stderr: `muxftp: ${line} (INVALID_PATH)\n`,
      });
    }
    // Nothing was made, moved, removed or uploaded on the server, nor downloaded here.
    expect(await servedFiles(data)).toEqual(['kept', 'kept/f.txt']);
    expect((await readdir(dir)).sort()).toEqual(['data', 'local.txt']);

    // Among other paths, only the empty one fails.
    const mixed = await runCli([...server, '--json', 'mkdir', 'a', '', 'b'], dir);
    expect(mixed.code).toBe(1);
    expect(JSON.parse(mixed.stdout)).toEqual([
      { path: 'a', ok: true },
      { path: '', ok: false, error: { code: 'INVALID_PATH', message: 'empty remote path' } },
      { path: 'b', ok: true },
    ]);
    const got = await runCli([...server, '--json', 'get', 'kept/f.txt', '', '--to', 'out', '-p'], dir);
    expect(got.code).toBe(1);
    expect(JSON.parse(got.stdout)).toMatchObject([
      { remote: '', ok: false, error: { code: 'INVALID_PATH', message: 'empty remote path' } },
      { remote: 'kept/f.txt', ok: true },
    ]);
    expect(await readFile(join(dir, 'out', 'f.txt'), 'utf8')).toBe('remote');
  });
});
