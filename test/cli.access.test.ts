/**
 * The CLI's users, logins and TLS end to end: `muxftp user add|del|list` on a real file, then a
 * real `muxftp serve --users … --tls-cert …` child and client commands as child processes.
 * Needs dist/ (npm run build).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accessFileWarnings,
  homeWarnings,
  servedRootFileWarnings,
  startWarnings,
} from '../cli/serverAccess.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile } from '../server/auth/usersFile.js';
import { CLI_BIN, cliShellLine } from './helpers/cliProcess.js';
import { makeFifo } from './helpers/fifo.js';
import { makeTestCerts, opensslAvailable, type TestCerts } from './helpers/testCerts.js';

const TIMEOUT_MS = 15_000;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
let dir: string;
let usersFile: string;
let certs: TestCerts | undefined;

/** The account a command runs as, when not this process's, and a directory it may enter. */
interface RunAs {
  uid: number;
  gid: number;
  cwd: string;
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, as?: RunAs): ChildProcess {
  const base = { ...process.env };
  delete base.MUXFTP_SERVER;
  delete base.MUXFTP_PASSWORD;
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    cwd: dir,
    ...as,
    env: { ...base, ...env },
    stdio: 'pipe',
    // A session of its own, without a controlling terminal: nothing can prompt on the developer's.
    detached: true,
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function run(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  const child = spawnCli(args, options.env);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${args.join(' ')}; stderr: ${stderr}`));
    }, TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.stdin);
  });
}

/** `muxftp serve` on `root` (default DIR/data: one server per root, the second is refused). */
async function serve(
  args: string[],
  root = join(dir, 'data'),
  as?: RunAs,
): Promise<{ port: number; stderr: () => string; hangUp(): void; stop(): Promise<number | null> }> {
  const child = spawnCli(['serve', '--port', '0', '--root', root, ...args], {}, as);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const match = /listening on [^:]+:(\d+) /.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  return {
    port,
    stderr: () => stderr,
    hangUp: () => child.kill('SIGHUP'),
    /** Stops it with SIGTERM; its exit code. */
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Waits (5 s at most) for `count` matches of `pattern` in the server's stderr. */
async function logged(server: { stderr(): string }, pattern: RegExp, count: number): Promise<void> {
  for (let i = 0; i < 200 && (server.stderr().match(pattern) ?? []).length < count; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  expect((server.stderr().match(pattern) ?? []).length).toBe(count);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muxftp-cli-access-'));
  usersFile = join(dir, 'users.json');
  if (opensslAvailable) certs = await makeTestCerts();
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await certs?.remove();
  await rm(dir, { recursive: true, force: true });
});

describe('muxftp user', () => {
  it('adds users with the password from stdin, lists them without hashes, deletes them', async () => {
    const added = await run(['user', 'add', 'alice', '--users', usersFile, '--quota', '10MiB'], {
      stdin: 'alice-password\n',
    });
    expect(added).toMatchObject({ code: 0, stderr: '' });
    // A leading / means the served root, as `user list` shows homes.
    await run(['user', 'add', 'reader', '--users', usersFile, '--read-only', '--home', '/alice'], {
      stdin: 'reader-password\n',
    });
    await run(['user', 'add', 'temp', '--users', usersFile], { stdin: 'x-password\n' });
    expect(((await stat(usersFile)).mode & 0o777).toString(8)).toBe('600');
    const text = await readFile(usersFile, 'utf8');
    expect(text).not.toContain('alice-password');
    expect(text).toContain('scrypt$');

    const listed = await run(['--json', 'user', 'list', '--users', usersFile]);
    const users = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    expect(users.map((u) => u.name)).toEqual(['alice', 'reader', 'temp']);
    expect(users[0]).toMatchObject({ home: 'alice', quota: 10 * 1024 * 1024 });
    expect(users[1]).toMatchObject({ home: 'alice', permissions: ['list', 'read'] });
    expect(listed.stdout).not.toContain('scrypt');

    expect((await run(['user', 'del', 'temp', '--users', usersFile])).code).toBe(0);
    const again = await run(['user', 'add', 'alice', '--users', usersFile], { stdin: 'other-password\n' });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists already/);
    const noPassword = await run(['user', 'add', 'bob', '--users', usersFile], { stdin: '' });
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toMatch(/no password on stdin/);
    // There is no way to give a password on the command line.
    expect((await run(['user', 'add', 'bob', '--users', usersFile, '--password', 'x'])).code).toBe(2);
    const names = JSON.parse((await run(['--json', 'user', 'list', '--users', usersFile])).stdout) as Array<{
      name: string;
    }>;
    expect(names.map((u) => u.name)).toEqual(['alice', 'reader']);
  });

  it('gives add, del and their failures as JSON with --json', async () => {
    const file = join(dir, 'json.json');
    const added = await run(['--json', 'user', 'add', 'jo', '--users', file], { stdin: 'jo-password\n' });
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toEqual({ ok: true, added: 'jo' });
    const replaced = await run(['--json', 'user', 'add', 'jo', '--users', file, '--replace'], {
      stdin: 'x-password\n',
    });
    expect(JSON.parse(replaced.stdout)).toEqual({ ok: true, updated: 'jo' });
    const twice = await run(['--json', 'user', 'add', 'jo', '--users', file], { stdin: 'y-password\n' });
    expect(twice.code).toBe(1);
    expect(JSON.parse(twice.stdout)).toMatchObject({
      ok: false,
      // The code a script can test, not the LOCAL_IO_ERROR of a file that cannot be read.
      error: { code: 'ALREADY_EXISTS', message: expect.stringMatching(/exists already/) },
    });
    const removed = await run(['--json', 'user', 'del', 'jo', '--users', file]);
    expect(JSON.parse(removed.stdout)).toEqual({ ok: true, removed: 'jo' });
    const gone = await run(['--json', 'user', 'del', 'jo', '--users', file]);
    expect(gone.code).toBe(1);
    expect(JSON.parse(gone.stdout)).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    const missing = await run(['user', 'list', '--json', '--users', join(dir, 'no-such.json')]);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false });
  });

  it('lists users by name whatever order they were added in, and --replace writes one anew', async () => {
    const file = join(dir, 'replace.json');
    for (const name of ['zed', 'amy']) {
      expect((await run(['user', 'add', name, '--users', file], { stdin: `${name}-password\n` })).code).toBe(
        0,
      );
    }
    const list = async () =>
      JSON.parse((await run(['--json', 'user', 'list', '--users', file])).stdout) as Array<{
        name: string;
        permissions: string[];
      }>;
    expect((await list()).map((u) => u.name)).toEqual(['amy', 'zed']);
    const replaced = await run(['user', 'add', 'zed', '--users', file, '--replace', '--read-only'], {
      stdin: 'new-password\n',
    });
    expect(replaced).toMatchObject({ code: 0, stderr: '' });
    expect(await list()).toMatchObject([
      { name: 'amy', permissions: ['list', 'read', 'write', 'delete', 'rename', 'mkdir'] },
      { name: 'zed', permissions: ['list', 'read'] },
    ]);
  });

  it("reports the users file's refusals in one line each, never as an internal error", async () => {
    const file = join(dir, 'refusals.json');
    await run(['user', 'add', 'erin', '--users', file], { stdin: 'erin-password\n' });
    const before = await readFile(file, 'utf8');
    const oneLine = (result: Result, pattern: RegExp): void => {
      expect(result.code).toBe(1);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(pattern);
      expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
    };
    oneLine(
      await run(['user', 'del', 'ghost', '--users', file]),
      /^muxftp: user del ghost: no user ghost\n$/,
    );
    oneLine(
      await run(['user', 'add', 'erin', '--users', file], { stdin: 'again-password\n' }),
      /^muxftp: user add erin: user erin exists already \(use --replace/,
    );
    // A name no user can have is the command line's mistake: a usage error (2), as a bad --quota
    // is, not LOCAL_IO_ERROR (1), which says a file could not be used; for del too.
    for (const [args, pattern] of [
      [
        ['add', 'bad/name'],
        /^muxftp: command-argument value 'bad\/name' is invalid for argument 'name'\. invalid user name/,
      ],
      [
        ['add', 'anonymous', '--json'],
        /^muxftp: command-argument value 'anonymous' is invalid for argument 'name'\. "anonymous" is reserved/,
      ],
      [
        ['del', '../x', '--json'],
        /^muxftp: command-argument value '\.\.\/x' is invalid for argument 'name'\. invalid user name/,
      ],
    ] as const) {
      const refused = await run(['user', ...args, '--users', file], { stdin: 'x-password\n' });
      expect(refused).toMatchObject({ code: 2, stdout: '' });
      expect(refused.stderr).toMatch(pattern);
    }
    oneLine(
      await run(['user', 'list', '--users', join(dir, 'missing.json')]),
      /^muxftp: user list: cannot read users file .*missing\.json/,
    );
    await writeFile(join(dir, 'broken.json'), '{not json');
    oneLine(
      await run(['user', 'list', '--users', join(dir, 'broken.json')]),
      /^muxftp: user list: users file .*broken\.json is not valid JSON/,
    );
    oneLine(
      await run(['user', 'add', 'fred', '--users', join(dir, 'no-such-dir', 'users.json')], {
        stdin: 'x-password\n',
      }),
      /^muxftp: user add fred: cannot write users file .*users\.json: no such file or directory\n$/,
    );
    oneLine(
      await run(['user', 'add', 'long', '--users', file], { stdin: `${'a'.repeat(2000)}\n` }),
      /^muxftp: user add long: password must be at most 1024 bytes\n$/,
    );
    // Before: a 2-character password was taken. Characters count, not bytes: seven é (14 bytes) are too few.
    oneLine(
      await run(['user', 'add', 'short', '--users', file], { stdin: 'ab\n' }),
      /^muxftp: user add short: password must be at least 8 characters\n$/,
    );
    oneLine(
      await run(['user', 'add', 'short', '--users', file], { stdin: 'ééééééé\n' }),
      /^muxftp: user add short: password must be at least 8 characters\n$/,
    );
    // A usage error is said once, with one "muxftp:".
    const both = await run(['user', 'add', 'gina', '--users', file, '--perm', 'list', '--read-only']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^muxftp: user add: give --perm or --read-only, not both\n/);
    expect(await readFile(file, 'utf8')).toBe(before);
  });
});

// script(1) (util-linux) gives `user add` a terminal, where it would prompt for the password.
it.skipIf(spawnSync('script', ['--version']).status !== 0)(
  'user add on a terminal refuses an existing user before asking for a password',
  async () => {
    const file = join(dir, 'terminal.json');
    await run(['user', 'add', 'hal', '--users', file], { stdin: 'hal-password\n' });
    const quoted = cliShellLine(['user', 'add', 'hal', '--users', file]);
    const child = spawn('script', ['-qec', quoted, '/dev/null'], { cwd: dir, stdio: 'pipe' });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let shown = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      shown += chunk.toString();
    });
    // Nothing is typed: a prompt would wait until the timeout.
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`user add waited on the terminal: ${shown}`));
      }, 5_000);
      child.once('close', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code).toBe(1);
    expect(shown).not.toContain('password');
    expect(shown).toMatch(
      /^muxftp: user add hal: user hal exists already \(use --replace to change it\)\r?\n$/,
    );
  },
);

describe('logins from the CLI', () => {
  it('uses $MUXFTP_PASSWORD or a mode-600 credentials file, refuses a readable one, enforces permissions', async () => {
    const server = await serve(['--users', usersFile]);
    try {
      const remote = ['--server', `127.0.0.1:${server.port}`];
      await writeFile(join(dir, 'hello.txt'), 'hello');
      const put = await run([...remote, '--user', 'alice', 'put', 'hello.txt'], {
        env: { MUXFTP_PASSWORD: 'alice-password' },
      });
      expect(put).toMatchObject({ code: 0 });
      expect(await readFile(join(dir, 'data', 'alice', 'hello.txt'), 'utf8')).toBe('hello');

      const wrong = await run([...remote, '--user', 'alice', 'ls'], { env: { MUXFTP_PASSWORD: 'nope' } });
      expect(wrong.code).toBe(3);
      // The connection was made: it is the login that failed, and the message says which user's.
      expect(wrong.stderr).toBe(
        `muxftp: cannot log in to 127.0.0.1:${server.port} as alice: login failed (LOGIN_FAILED)\n`,
      );
      // --json carries the code once, beside the plain sentence, not again inside it.
      const wrongJson = await run([...remote, '--json', '--user', 'alice', 'rm', 'x'], {
        env: { MUXFTP_PASSWORD: 'nope' },
      });
      expect(wrongJson.stderr).toBe(wrong.stderr);
      expect(JSON.parse(wrongJson.stdout)).toEqual([
        {
          path: 'x',
          ok: false,
          error: {
            code: 'LOGIN_FAILED',
            message: `cannot log in to 127.0.0.1:${server.port} as alice: login failed`,
          },
        },
      ]);
      // The server's delay before it says so (longer after each failure) is no silence: a
      // --timeout far shorter than it still bounds only the wait for the server's first word.
      const impatient = await run([...remote, '--timeout', '0.2', '--user', 'alice', 'ls'], {
        env: { MUXFTP_PASSWORD: 'nope' },
      });
      expect(impatient.stderr).toBe(wrong.stderr);
      const nobody = await run([...remote, 'ls']);
      expect(nobody.stderr).toMatch(
        new RegExp(
          `^muxftp: cannot log in to 127\\.0\\.0\\.1:${server.port}: the server requires a login: give a user name \\(--user\\) \\(LOGIN_FAILED\\)\n$`,
        ),
      );
      // The CLI names its flag where the library says only what is wrong.
      const tlsToPlain = await run([...remote, '--tls', 'ls']);
      expect(tlsToPlain.stderr).toMatch(
        /: the server does not seem to speak TLS \(drop --tls\?\) \(CONNECT_FAILED\)\n$/,
      );
      const noPassword = await run([...remote, '--user', 'alice', 'ls']);
      expect(noPassword.stderr).toMatch(/no password for alice/);

      const credentials = join(dir, 'reader.json');
      await writeFile(credentials, JSON.stringify({ user: 'reader', password: 'reader-password' }));
      await chmod(credentials, 0o644);
      const refused = await run([...remote, '--credentials', credentials, 'ls']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/mode 644.*must be 600/);
      await chmod(credentials, 0o600);
      const listed = await run([...remote, '--credentials', credentials, 'ls']);
      expect(listed).toMatchObject({ code: 0 });
      expect(listed.stdout).toContain('hello.txt');
      const removed = await run([...remote, '--credentials', credentials, 'rm', 'hello.txt']);
      expect(removed.code).toBe(1);
      expect(removed.stderr).toContain('PERMISSION_DENIED');
      // A credentials file for another user says so, rather than "use --credentials FILE".
      const mismatch = await run([...remote, '--credentials', credentials, '--user', 'alice', 'ls']);
      expect(mismatch.code).toBe(3);
      expect(mismatch.stderr).toBe(
        `muxftp: no password for alice: the credentials file ${credentials} is for reader (LOGIN_FAILED)\n`,
      );
    } finally {
      await server.stop();
    }
  });

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'asks for the password on the terminal when stdin carries the data (put -)',
    async () => {
      const server = await serve(['--users', usersFile]);
      try {
        const upload = cliShellLine([
          '--server',
          `127.0.0.1:${server.port}`,
          '--user',
          'alice',
          'put',
          '-',
          'piped.txt',
        ]);
        // script(1) gives the command a terminal; its stdin is the pipe.
        const child = spawn('script', ['-qec', `printf piped-bytes | ${upload}`, '/dev/null'], {
          cwd: dir,
          stdio: 'pipe',
        });
        children.add(child);
        child.once('exit', () => children.delete(child));
        let shown = '';
        const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no password prompt: ${shown}`)), 10_000);
          child.stdout!.on('data', (chunk: Buffer) => {
            shown += chunk.toString();
            if (shown.includes('password for alice: ')) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        child.stdin!.write('alice-password\r');
        expect(await closed).toBe(0);
        expect(await readFile(join(dir, 'data', 'alice', 'piped.txt'), 'utf8')).toBe('piped-bytes');
        expect(shown).not.toContain('alice-password'); // not echoed
      } finally {
        await server.stop();
      }
    },
  );

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'Ctrl-D at the login prompt gives no password: said so, exit 1, not as a Ctrl-C',
    async () => {
      const server = await serve(['--users', usersFile]);
      try {
        const line = cliShellLine(['--server', `127.0.0.1:${server.port}`, '--user', 'alice', 'ls']);
        const child = spawn('script', ['-qec', line, '/dev/null'], { cwd: dir, stdio: 'pipe' });
        children.add(child);
        child.once('exit', () => children.delete(child));
        let shown = '';
        const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
        child.stdout!.on('data', (chunk: Buffer) => {
          const before = shown;
          shown += chunk.toString();
          if (!before.includes('password for alice: ') && shown.includes('password for alice: '))
            child.stdin!.write('\u0004');
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const code = await closed;
        clearTimeout(timer);
        // Before: "interrupted while connecting (CANCELLED)", exit 130, as if Ctrl-C.
        expect(shown).toMatch(/muxftp: no password given \(end of input\) \(CANCELLED\)/);
        expect(shown).not.toContain('interrupted');
        expect(code).toBe(1);
      } finally {
        await server.stop();
      }
    },
  );

  it('--user anonymous needs no password where serve --anonymous lets it in, and says where it does not', async () => {
    const open = await serve(['--users', usersFile, '--anonymous', '--anonymous-home', '/public']);
    const closed = await serve(['--users', usersFile], join(dir, 'closed-data'));
    try {
      await mkdir(join(dir, 'data', 'public'), { recursive: true });
      await writeFile(join(dir, 'data', 'public', 'welcome.txt'), 'hi');
      const anonymous = ['--user', 'anonymous', 'ls'];
      // No prompt, no "no password": and a $MUXFTP_PASSWORD meant for others is not sent.
      for (const env of [{}, { MUXFTP_PASSWORD: 'alice-password' }]) {
        const listed = await run(['--server', `127.0.0.1:${open.port}`, ...anonymous], { env });
        expect(listed).toMatchObject({ code: 0, stderr: '' });
        expect(listed.stdout).toContain('welcome.txt');
      }
      const refused = await run(['--server', `127.0.0.1:${closed.port}`, ...anonymous]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/takes no anonymous logins \(LOGIN_FAILED\)\n$/);
    } finally {
      await Promise.all([open.stop(), closed.stop()]);
    }
    // The start's line tells which anonymous it let in: both read "anonymous on (home …)".
    expect(open.stderr()).toMatch(/ users? from .*; anonymous on, read-only \(home public\)\n/);
    const writable = await serve(['--users', usersFile, '--anonymous-write'], join(dir, 'write-data'));
    await writable.stop();
    expect(writable.stderr()).toMatch(
      / users? from .*; anonymous on, with every permission \(home public\)\n/,
    );
  });
});

describe('--user against a server that takes no logins', () => {
  it('connects with no password asked and says once that the name is not used', async () => {
    const open = await serve([], join(dir, 'open-data'));
    try {
      const at = ['--server', `127.0.0.1:${open.port}`];
      const listed = await run([...at, '--user', 'alice', 'ls'], {
        env: { MUXFTP_PASSWORD: 'alice-password' },
      });
      expect(listed).toMatchObject({
        code: 0,
        stderr: `muxftp: warning: 127.0.0.1:${open.port} takes no logins: --user alice is not used (connected as anyone is)\n`,
      });
      // Without --user, nothing to say.
      expect(await run([...at, 'ls'])).toMatchObject({ code: 0, stderr: '' });
    } finally {
      await open.stop();
    }
  });
});

describe('serve re-reads its users file on SIGHUP', () => {
  /** Waits (bounded) until the server's log has `count` lines matching `pattern`. */
  it('lets a user added since start log in after SIGHUP, and keeps the users when the file is broken', async () => {
    const file = join(dir, 'hup-users.json');
    await run(['user', 'add', 'carol', '--users', file], { stdin: 'carol-password\n' });
    const server = await serve(['--users', file]);
    try {
      const remote = ['--server', `127.0.0.1:${server.port}`];
      const as = (user: string) =>
        run([...remote, '--user', user, 'ls'], { env: { MUXFTP_PASSWORD: `${user}-password` } });
      expect((await as('carol')).code).toBe(0);
      expect(server.stderr()).toMatch(/ 1 user from .*hup-users\.json; anonymous off\n/);
      await run(['user', 'add', 'dave', '--users', file], { stdin: 'dave-password\n' });
      expect((await as('dave')).stderr).toContain('LOGIN_FAILED'); // not read again yet

      server.hangUp();
      await logged(server, /SIGHUP: 2 users from /g, 1);
      expect((await as('dave')).code).toBe(0);

      await writeFile(file, '{ not json');
      server.hangUp();
      await logged(server, /SIGHUP: kept the users as they were: /g, 1);
      expect((await as('dave')).code).toBe(0);
      expect((await as('carol')).code).toBe(0);
    } finally {
      await server.stop();
    }
  });
});

describe.skipIf(!opensslAvailable)('a certificate signed by an intermediate CA', () => {
  it('served without the intermediate: the client says the chain may lack it; with it, connects', async () => {
    // CA -> intermediate -> leaf, the leaf alone in --tls-cert: a renewal's cert.pem in place of
    // its fullchain.pem, the most common mistake.
    const pki = await mkdtemp(join(dir, 'chain-'));
    const openssl = (...args: string[]) => spawnSync('openssl', args, { cwd: pki, stdio: 'pipe' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await writeFile(
      join(pki, 'ca.ext'),
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
    );
    await writeFile(join(pki, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    const sign = (csr: string, ca: string, out: string, ext: string) =>
      openssl(
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        `${ca}.pem`,
        '-CAkey',
        `${ca}.key`,
        '-CAcreateserial',
        '-out',
        out,
        '-days',
        '2',
        '-extfile',
        ext,
      );
    openssl(
      'req',
      ...ec,
      '-keyout',
      'inter.key',
      '-out',
      'inter.csr',
      '-subj',
      '/CN=muxftp test intermediate',
    );
    openssl('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1');
    await writeFile(join(pki, 'root.pem'), certs!.ca);
    await writeFile(join(pki, 'root.key'), await readFile(join(certs!.dir, 'ca.key')));
    sign('inter.csr', 'root', 'inter.pem', 'ca.ext');
    sign('leaf.csr', 'inter', 'leaf.pem', 'leaf.ext');
    await chmod(join(pki, 'leaf.key'), 0o600);
    const leaf = await readFile(join(pki, 'leaf.pem'));
    await writeFile(join(pki, 'full.pem'), Buffer.concat([leaf, await readFile(join(pki, 'inter.pem'))]));

    for (const [certFile, expected] of [
      [
        'leaf.pem',
        /: is --ca the server's CA\? If it is, the server sends no intermediate certificate between its own and that CA: its --tls-cert needs the full chain \(CONNECT_FAILED\)\n/,
      ],
      ['full.pem', undefined],
    ] as const) {
      const server = await serve(['--tls-cert', join(pki, certFile), '--tls-key', join(pki, 'leaf.key')]);
      try {
        const ls = await run(['--server', `127.0.0.1:${server.port}`, '--ca', join(pki, 'root.pem'), 'ls']);
        if (expected === undefined) expect(ls).toMatchObject({ code: 0, stderr: '' });
        else {
          expect(ls.code).toBe(3);
          // Before: ": is --ca the server's CA?" alone, though --ca was right.
          expect(ls.stderr).toMatch(expected);
        }
      } finally {
        await server.stop();
      }
    }
  });
});

describe.skipIf(!opensslAvailable)('serve re-reads its TLS certificate on SIGHUP', () => {
  it('serves a renewed certificate to new connections, and keeps the old one when the new files do not load', async () => {
    const renewed = await makeTestCerts();
    const cert = join(dir, 'hup-cert.pem');
    const key = join(dir, 'hup-key.pem');
    await writeFile(cert, certs!.cert);
    await writeFile(key, certs!.key, { mode: 0o600 });
    const server = await serve(['--tls-cert', cert, '--tls-key', key]);
    try {
      const ls = (ca: string) => run(['--server', `127.0.0.1:${server.port}`, '--ca', ca, 'ls']);
      expect((await ls(certs!.caPath)).code).toBe(0);
      await writeFile(cert, renewed.cert);
      await writeFile(key, renewed.key);
      expect((await ls(renewed.caPath)).stderr).toMatch(/not signed by the CA given/); // not read again yet
      server.hangUp();
      await logged(server, /SIGHUP: TLS certificate from /g, 1);
      // The test certificate expires in 2 days: warned of behind a timestamp, as runtime lines are.
      await logged(server, /^\d{4}-\d\d-\d\dT\S+ warning: --tls-cert .* expires on /gm, 1);
      expect((await ls(renewed.caPath)).code).toBe(0);
      expect((await ls(certs!.caPath)).stderr).toMatch(/not signed by the CA given/);
      // A key that is not the certificate's changes nothing.
      await writeFile(key, certs!.key);
      server.hangUp();
      await logged(server, /SIGHUP: kept the TLS certificate as it was: /g, 1);
      expect((await ls(renewed.caPath)).code).toBe(0);
    } finally {
      await server.stop();
      await renewed.remove();
    }
  });
});

describe('bench against a server with users', () => {
  it('logs every connection in with --user and $MUXFTP_PASSWORD; without it the server refuses', async () => {
    const server = await serve(['--users', usersFile]);
    try {
      const remote = ['--server', `127.0.0.1:${server.port}`];
      const workload = ['bench', '--op', 'mixed', '--clients', '2', '--streams', '2', '--files', '8'];
      const sized = [...workload, '--size', '64KiB', '--workers', '1'];
      const loggedIn = await run([...remote, '--json', '--user', 'alice', ...sized], {
        env: { MUXFTP_PASSWORD: 'alice-password' },
      });
      expect(loggedIn.code).toBe(0);
      const report = JSON.parse(loggedIn.stdout) as { ops: number; verified: number; error_count: number };
      expect(report).toMatchObject({ ops: 8, verified: 8, error_count: 0 });

      const anonymous = await run([...remote, ...sized]);
      expect(anonymous.code).toBe(3);
      expect(anonymous.stderr).toMatch(/requires a login/);
      const local = await run(['--user', 'alice', 'bench', '--local', '--files', '1']);
      expect(local.code).not.toBe(0);
      expect(local.stderr).toMatch(/--local starts a server without users/);
    } finally {
      await server.stop();
    }
  });

  it('--op connect writes nothing: a read-only account runs it (it was refused making its directory)', async () => {
    const server = await serve(['--users', usersFile]);
    try {
      const connects = await run(
        ['--server', `127.0.0.1:${server.port}`, '--json', '--user', 'reader', 'bench', '--op', 'connect'],
        { env: { MUXFTP_PASSWORD: 'reader-password' } },
      );
      expect(connects.stderr).toBe('');
      expect(connects.code).toBe(0);
      expect(JSON.parse(connects.stdout)).toMatchObject({ ok: true, ops: 10, error_count: 0 });
    } finally {
      await server.stop();
    }
  });

  it('an account that may not delete: the files the run wrote stay, and a warning says where (it said nothing)', async () => {
    const added = await run(
      ['user', 'add', 'keeper', '--users', usersFile, '--perm', 'list,read,write,mkdir'],
      {
        stdin: 'keeper-password\n',
      },
    );
    expect(added.code).toBe(0);
    const server = await serve(['--users', usersFile]);
    try {
      const result = await run(
        [
          ...['--server', `127.0.0.1:${server.port}`, '--user', 'keeper', 'bench', '--op', 'upload'],
          ...['--clients', '1', '--files', '2', '--size', '1KiB', '--quiet'],
        ],
        { env: { MUXFTP_PASSWORD: 'keeper-password' } },
      );
      // The run measured what it was asked to: its results stand.
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/operations {3}2 \(2 verified, 0 errors\)/);
      const left =
        /^muxftp: warning: bench: could not remove (bench-\d+-\w+)\/, its files on the server: permission denied: user keeper has no delete permission \(PERMISSION_DENIED\)\n$/.exec(
          result.stderr,
        );
      expect(left, result.stderr).not.toBeNull();
      expect(await readdir(join(dir, 'data', 'keeper', left![1]!))).toEqual(['w0-c0-s0.bin']);
    } finally {
      await server.stop();
    }
  });
});

describe.skipIf(!opensslAvailable)('TLS from the CLI', () => {
  it('serves TLS with --tls-cert/--tls-key; --tls --ca round-trips, --insecure warns, plain meets --tls-only with a clear error', async () => {
    const server = await serve([
      '--users',
      usersFile,
      '--tls-cert',
      certs!.certPath,
      '--tls-key',
      certs!.keyPath,
      '--tls-only',
    ]);
    try {
      const remote = ['--server', `127.0.0.1:${server.port}`];
      const env = { MUXFTP_PASSWORD: 'alice-password' };
      await writeFile(join(dir, 'secure.txt'), 'over tls');
      const put = await run([...remote, '--user', 'alice', '--ca', certs!.caPath, 'put', 'secure.txt'], {
        env,
      });
      expect(put).toMatchObject({ code: 0 });
      const got = await run(
        [...remote, '--user', 'alice', '--tls', '--ca', certs!.caPath, 'get', 'secure.txt', '-'],
        { env },
      );
      expect(got.stdout).toBe('over tls');
      const untrusted = await run([...remote, '--user', 'alice', '--tls', 'ls'], { env });
      expect(untrusted.stderr).toMatch(
        /not trusted \(\w+\): pass its CA with --ca FILE \(CONNECT_FAILED\)\n$/,
      );
      const insecure = await run([...remote, '--user', 'alice', '--insecure', 'ls'], { env });
      expect(insecure.code).toBe(0);
      expect(insecure.stderr).toMatch(/WARNING: --insecure/);
      const plain = await run([...remote, '--user', 'alice', 'ls'], { env });
      expect(plain.code).toBe(3);
      expect(plain.stderr).toMatch(/TLS connections only.*\(TLS_REQUIRED\)/);
    } finally {
      await server.stop();
    }
  });
});

describe.skipIf(!opensslAvailable)('a --ca file as node reads it', () => {
  it('an indented PEM in its notes (a YAML excerpt) is not taken for a certificate: node reads none there', async () => {
    const server = await serve(['--tls-cert', certs!.certPath, '--tls-key', certs!.keyPath]);
    try {
      const ls = (ca: string) => run(['--server', `127.0.0.1:${server.port}`, '--ca', ca, 'ls']);
      // OpenSSL takes a BEGIN line at the start of a line only: an indented block is text to it.
      const indented = (pem: Buffer) =>
        pem
          .toString()
          .trimEnd()
          .split('\n')
          .map((line) => `      ${line}`)
          .join('\n');
      const yaml = `tls:\n  ca: |\n${indented(certs!.cert)}\n`;
      await writeFile(join(dir, 'notes-ca.pem'), `${certs!.ca.toString()}\n# as deployed:\n${yaml}`);
      // Before: "--ca …: the certificate from line 14 does not parse", where node connects.
      expect(await ls('notes-ca.pem')).toMatchObject({ code: 0, stderr: '' });
      // A UTF-8 BOM before the first line OpenSSL skips.
      await writeFile(join(dir, 'bom-ca.pem'), `\uFEFF${certs!.ca.toString()}`);
      expect(await ls('bom-ca.pem')).toMatchObject({ code: 0, stderr: '' });
      // With no certificate at a line's start node has none: said before connecting, and where
      // the one it holds is (before: "holds no PEM certificate", of a file that shows one).
      await writeFile(join(dir, 'yaml-ca.pem'), yaml);
      expect(await ls('yaml-ca.pem')).toMatchObject({
        code: 1,
        stderr:
          'muxftp: --ca yaml-ca.pem holds no PEM certificate OpenSSL reads: the -----BEGIN CERTIFICATE----- on line 3 does not start its line (indented, or after other text), and only one that does is read (LOCAL_IO_ERROR)\n',
      });
      // Glued to notes that had no final newline (cat notes.txt ca.pem).
      await writeFile(join(dir, 'glued-ca.pem'), `# our CA${certs!.ca.toString()}`);
      expect(await ls('glued-ca.pem')).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(
          /glued-ca\.pem holds no PEM certificate OpenSSL reads: the .* on line 1 does not start its line/,
        ),
      });
      // A file with none at all is still said so.
      await writeFile(join(dir, 'key-only.pem'), certs!.key);
      expect(await ls('key-only.pem')).toMatchObject({
        code: 1,
        stderr:
          'muxftp: --ca key-only.pem holds no PEM certificate (-----BEGIN CERTIFICATE-----) (LOCAL_IO_ERROR)\n',
      });
    } finally {
      await server.stop();
    }
  });

  it("OpenSSL's TRUSTED CERTIFICATE, which node reads, is one", async () => {
    const server = await serve(['--tls-cert', certs!.certPath, '--tls-key', certs!.keyPath]);
    try {
      const ls = (ca: string) => run(['--server', `127.0.0.1:${server.port}`, '--ca', ca, 'ls']);
      // With its trust settings (Fedora's ca-bundle.trust.crt).
      const trusted = spawnSync('openssl', [
        'x509',
        '-in',
        certs!.caPath,
        '-trustout',
        '-addtrust',
        'serverAuth',
      ]);
      await writeFile(join(dir, 'trusted-ca.pem'), trusted.stdout);
      // Before: "--ca trusted-ca.pem holds no PEM certificate (-----BEGIN CERTIFICATE-----)".
      expect(await ls('trusted-ca.pem')).toMatchObject({ code: 0, stderr: '' });
    } finally {
      await server.stop();
    }
  });
});

describe.skipIf(!opensslAvailable)('a --ca FIFO', () => {
  it('nobody writes: Ctrl-C ends the command (it hung, even after Ctrl-C, in the open of the FIFO)', async () => {
    const fifo = makeFifo(join(dir, 'unwritten-ca.pem'));
    const child = spawnCli(['--server', '127.0.0.1:1', '--ca', fifo, 'ls']);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 1_000));
    child.kill('SIGINT');
    const code = await Promise.race([
      exited,
      new Promise((r) => setTimeout(() => r('still running'), 5_000)),
    ]);
    expect(code, stderr).toBe(130);
  });

  it('written to later, or `--ca <(…)`, is read', async () => {
    const server = await serve(['--tls-cert', certs!.certPath, '--tls-key', certs!.keyPath]);
    try {
      const fifo = makeFifo(join(dir, 'later-ca.pem'));
      const ls = run(['--server', `127.0.0.1:${server.port}`, '--ca', fifo, 'ls']);
      await new Promise((r) => setTimeout(r, 300));
      await writeFile(fifo, certs!.ca);
      expect(await ls).toMatchObject({ code: 0, stderr: '' });
      const line = `${cliShellLine(['--server', `127.0.0.1:${server.port}`, '--ca'])} <(cat '${certs!.caPath}') ls`;
      const substituted = spawnSync('bash', ['-c', line], { encoding: 'utf8', timeout: TIMEOUT_MS });
      expect(substituted).toMatchObject({ status: 0, stderr: '' });
    } finally {
      await server.stop();
    }
  });
});

describe.skipIf(!opensslAvailable)('bench --tls', () => {
  it('runs a verified workload against a TLS-only local server', async () => {
    const result = await run([
      '--json',
      'bench',
      '--local',
      '--tls',
      '--op',
      'mixed',
      '--clients',
      '2',
      '--streams',
      '2',
      '--files',
      '8',
      '--size',
      '256KiB',
      '--workers',
      '1',
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { ops: number; verified: number; error_count: number };
    // The report says it was over TLS, beside plain TCP's figures.
    expect(report).toMatchObject({ tls: true, ops: 8, verified: 8, error_count: 0 });
  });
});

describe('start warnings', () => {
  it('warns beyond loopback without TLS or without a users file, never on loopback', () => {
    const open = { tls: false, tlsOnly: false, users: false, root: 'data' };
    expect(startWarnings('127.0.0.1', open)).toEqual([]);
    expect(startWarnings('::1', open)).toEqual([]);
    const wide = startWarnings('0.0.0.0', open);
    expect(wide.join('\n')).toMatch(/no users file/);
    expect(wide.join('\n')).toMatch(/without TLS/);
    expect(startWarnings('10.0.0.5', { ...open, users: true, tls: true, tlsOnly: true })).toEqual([]);
    expect(startWarnings('10.0.0.5', { ...open, users: true, tls: true }).join()).toMatch(/--tls-only/);
    const anonymousWrite = { ...open, users: true, tls: true, tlsOnly: true, anonymousWriteHome: 'public' };
    expect(startWarnings('10.0.0.5', anonymousWrite)).toEqual([
      'listening on 10.0.0.5 with --anonymous-write: anyone who can reach it may upload, overwrite, rename and delete in /public without a password or a quota',
    ]);
    expect(startWarnings('127.0.0.1', anonymousWrite)).toEqual([]);
  });
});

describe.skipIf(!opensslAvailable)('start warnings about the files given', () => {
  it('warns of a users file or TLS key every local user can read, and of a certificate out of date', async () => {
    const users = join(dir, 'warned-users.json');
    await writeFile(users, '{"version": 1, "users": {}}');
    const key = join(dir, 'warned.key');
    await writeFile(key, await readFile(certs!.keyPath));
    const flags = { users, tlsCert: certs!.certPath, tlsKey: key, anonymousHome: 'public' };
    const validFrom = Date.parse(new X509Certificate(certs!.cert).validFrom);
    const inside = validFrom + 3_600_000;
    await chmod(users, 0o644);
    await chmod(key, 0o644);
    const open = await accessFileWarnings(flags, certs!, inside);
    expect(open).toContain(
      `users file (password hashes) ${users} is readable by every user of this machine (mode 644): chmod 600 ${users}`,
    );
    expect(open).toContain(
      `--tls-key ${key} is readable by every user of this machine (mode 644): chmod 600 ${key}`,
    );
    await chmod(users, 0o600);
    await chmod(key, 0o640);
    // The test certificate is valid for 2 days: inside them it expires soon.
    expect(await accessFileWarnings(flags, certs!, inside)).toEqual([
      expect.stringMatching(
        /^--tls-cert .* expires on \d{4}-\d\d-\d\d, in 2 days: renew it, then send serve SIGHUP to load it \(no restart\)$/,
      ),
    ]);
    expect(await accessFileWarnings(flags, certs!, validFrom + 5 * 86_400_000)).toEqual([
      expect.stringMatching(/^--tls-cert .* expired on \d{4}-\d\d-\d\d: clients will refuse it$/),
    ]);
    expect(await accessFileWarnings(flags, certs!, validFrom - 86_400_000)).toEqual([
      expect.stringMatching(/^--tls-cert .* is not valid before \d{4}-\d\d-\d\d: clients will refuse it$/),
    ]);
    // Each is said by serve at start, before its listening line.
    await chmod(key, 0o644);
    const server = await serve(['--users', users, '--tls-cert', certs!.certPath, '--tls-key', key]);
    await server.stop();
    expect(server.stderr()).toContain(`warning: --tls-key ${key} is readable by every user of this machine`);
    expect(server.stderr()).toMatch(/warning: --tls-cert .* expires on/);
  });

  it('warns of the certificate it serves, read once: not of the file read again (a pipe gives it once)', async () => {
    // A pipe gives what it holds once, as a file a renewal replaces between two reads gives two
    // certificates. Before, the warnings read --tls-cert again after loadTls: that open of a FIFO
    // waited for a writer that never came, and serve never said it was listening.
    const fifo = join(dir, 'cert-fifo.pem');
    expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
    const written = writeFile(fifo, certs!.cert);
    const server = await serve(['--tls-cert', fifo, '--tls-key', certs!.keyPath]);
    await written;
    expect(await server.stop()).toBe(0);
    expect(server.stderr()).toMatch(/warning: --tls-cert .*cert-fifo\.pem expires on/);
  });
});

describe('start warnings about the files given that lie in the served root', () => {
  it('warns of a users file or TLS key a client could download there, or replace, themselves or through a link', async () => {
    // A helper's run: `serve --root . --users users.json` served the hashes to a user whose home
    // was / (`get users.json`), and one who may write there could replace the file and take any
    // account at the next SIGHUP; nothing said so.
    const root = join(dir, 'served-with-its-files');
    await mkdir(join(root, 'etc'), { recursive: true });
    const users = join(root, 'etc', 'users.json');
    await writeFile(users, '{"version": 1, "users": {}}', { mode: 0o600 });
    const key = join(dir, 'outside.key');
    await writeFile(key, 'not read here', { mode: 0o600 });
    const flags = { users, tlsKey: key, anonymousHome: 'public' };
    const usersWarning = `users file (password hashes) ${users} is inside the served root ${root}: a user whose home holds it can download it, and one who may write there replace it (and log in as anyone at the next SIGHUP): keep it outside the root`;
    expect(await servedRootFileWarnings(flags, root)).toEqual([usersWarning]);
    // A link in the root to a key outside: a client may replace the link with a file of its own.
    const linked = join(root, 'key.pem');
    await symlink(key, linked);
    expect(await servedRootFileWarnings({ ...flags, tlsKey: linked }, root)).toEqual([
      usersWarning,
      `--tls-key ${linked} is inside the served root ${root}: a user whose home holds it can download it, and one who may write there replace it: keep it outside the root`,
    ]);
    // Outside the root (the root named through a link, too): nothing to say.
    await symlink(join(root, 'etc'), join(dir, 'served-root-link'));
    expect(
      await servedRootFileWarnings({ ...flags, users: usersFile }, join(dir, 'served-root-link')),
    ).toEqual([]);
    // Said by serve at start, before its listening line.
    await writeFile(users, '{"version": 1, "users": {}}');
    await chmod(users, 0o600);
    const server = await serve(['--users', users], root);
    await server.stop();
    expect(server.stderr()).toContain(`warning: ${usersWarning}`);
  });
});

// Needs root, to start the server as another account (nobody) over a root that account cannot
// write, and a checkout that account can run (not one under a private home, say).
const nobodyRunsTheCli =
  process.getuid?.() === 0 &&
  spawnSync(process.execPath, [CLI_BIN, '--version'], { uid: 65534, gid: 65534, stdio: 'ignore' }).status ===
    0;

describe.skipIf(!nobodyRunsTheCli)('a served root the server may not write', () => {
  it("is said at start as the operator's to fix, not only as each client's PERMISSION_DENIED", async () => {
    // Beside the test's private directory (0700, which nobody could not enter), removed after.
    const parent = await mkdtemp(join(tmpdir(), 'muxftp-unwritable-'));
    await chmod(parent, 0o755);
    const root = join(parent, 'data');
    await mkdir(root, { mode: 0o755 });
    try {
      const server = await serve([], root, { uid: 65534, gid: 65534, cwd: parent });
      expect(await server.stop()).toBe(0);
      // Before: only that its lock file could not be written, which says nothing of uploads.
      expect(server.stderr()).toMatch(
        new RegExp(
          `warning: ${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not writable by this server \\(uid 65534\\): uploads, mkdir, rename and delete there will fail with PERMISSION_DENIED`,
        ),
      );
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!nobodyRunsTheCli)('a served root the server may not enter', () => {
  it('is refused at start (exit 1), not served with a warning of failed uploads while every request is PERMISSION_DENIED', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'muxftp-unenterable-'));
    await chmod(parent, 0o755);
    const root = join(parent, 'data');
    // Root's, 0700: a service account outside its owner and group.
    await mkdir(root);
    await chmod(root, 0o700);
    try {
      const result = spawnSync(process.execPath, [CLI_BIN, 'serve', '--port', '0', '--root', root], {
        uid: 65534,
        gid: 65534,
        cwd: parent,
        encoding: 'utf8',
        timeout: 10_000,
      });
      expect({ status: result.status, stdout: result.stdout }).toEqual({ status: 1, stdout: '' });
      expect(result.stderr).toBe(
        `muxftp: serve: cannot use ${root} as the root: permission denied (this server, uid 65534, may not enter it: nothing in it could be listed, read or written)\n`,
      );
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});

describe('the homes warned of at start', () => {
  it('looks at the first homes of many only, and says the rest are checked at each login', async () => {
    const root = join(dir, 'homes-root');
    await mkdir(join(root, 'fine'), { recursive: true });
    await writeFile(join(root, 'file1'), '');
    await writeFile(join(root, 'file2'), '');
    // Missing homes a login cannot make either: under a link out of the root (INVALID_PATH at
    // login), or through a link to nothing (NOT_FOUND): realpath's ENOENT took both for missing.
    await symlink(tmpdir(), join(root, 'out'));
    await symlink('nowhere', join(root, 'dangling'));
    let users = emptyUsersFile();
    const passwordHash = await hashPassword('pw');
    for (const [name, home] of [
      ['ann', 'fine'],
      ['bea', 'file1'],
      ['cid', 'file2'],
      ['dan', 'missing'],
      ['eve', 'out/muxftp-no-such-home'],
      ['fay', 'dangling'],
      ['gus', 'dangling/below'],
    ] as const)
      users = addUser(users, { name, home, passwordHash, permissions: ['list'] });
    const accounts = new Accounts({ users });
    expect(await homeWarnings(accounts, root)).toEqual([
      'home /file1 of bea cannot be used (not a directory): its login fails (IO_ERROR) until it is fixed',
      'home /file2 of cid cannot be used (not a directory): its login fails (IO_ERROR) until it is fixed',
      'home /out/muxftp-no-such-home of eve cannot be used (it leads outside the served root): its login fails (IO_ERROR) until it is fixed',
      'home /dangling of fay cannot be used (/dangling is a symbolic link to nothing): its login fails (IO_ERROR) until it is fixed',
      'home /dangling/below of gus cannot be used (/dangling is a symbolic link to nothing): its login fails (IO_ERROR) until it is fixed',
    ]);
    expect(await homeWarnings(accounts, root, 2)).toEqual([
      'home /file1 of bea cannot be used (not a directory): its login fails (IO_ERROR) until it is fixed',
      'checked the first 2 of 7 homes; the others are checked at each login only',
    ]);
    // Named up to a count, the rest counted: thousands of users yet to log in to a read-only root
    // were a line each at every start and SIGHUP.
    expect(await homeWarnings(accounts, root, 10_000, 2)).toEqual([
      'home /file1 of bea cannot be used (not a directory): its login fails (IO_ERROR) until it is fixed',
      'home /file2 of cid cannot be used (not a directory): its login fails (IO_ERROR) until it is fixed',
      '3 more homes cannot be used (not named here): their logins fail (IO_ERROR)',
    ]);
    expect((await homeWarnings(accounts, root, 10_000, 4)).at(-1)).toBe(
      '1 more home cannot be used (not named here): their logins fail (IO_ERROR)',
    );
  });
});

describe.skipIf(!nobodyRunsTheCli)('a home the server may not enter', () => {
  it('refuses its login (IO_ERROR, the reason in the log), not let in to have every request PERMISSION_DENIED; warned of at start and on SIGHUP', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'muxftp-closed-home-'));
    await chmod(parent, 0o755);
    const root = join(parent, 'data');
    await mkdir(join(root, 'carol'), { recursive: true });
    await chmod(root, 0o755);
    await chown(root, 65534, 65534);
    // Its own, mode 000: the server may not enter it.
    await chown(join(root, 'carol'), 65534, 65534);
    await chmod(join(root, 'carol'), 0o000);
    const users = join(parent, 'users.json');
    try {
      expect(
        (await run(['user', 'add', 'carol', '--users', users], { stdin: 'carol-password\n' })).code,
      ).toBe(0);
      await chown(users, 65534, 65534);
      const server = await serve(['--users', users], root, { uid: 65534, gid: 65534, cwd: parent });
      const ls = await run(['--server', `127.0.0.1:${server.port}`, '--user', 'carol', 'ls'], {
        env: { MUXFTP_PASSWORD: 'carol-password' },
      });
      // Before: logged in, then `ls /: permission denied: / (PERMISSION_DENIED)`, exit 1, and
      // every other request the same, the log saying nothing of the home.
      expect(ls.stderr).toMatch(
        /the account's home directory cannot be used \(the server's log says why\) \(IO_ERROR\)\n$/,
      );
      expect(ls.code).toBe(3);
      await logged(
        server,
        /cannot use home \/carol of carol: permission denied: carol \(PERMISSION_DENIED\)/,
        1,
      );
      // Said at start too, before any login, and again on SIGHUP for the homes it reads (a file, a link out).
      expect(server.stderr()).toContain(
        'muxftp: warning: home /carol of carol cannot be used (this server, uid 65534, may not enter it): its login fails (IO_ERROR) until it is fixed\n',
      );
      await writeFile(join(root, 'plain'), 'a file');
      await symlink(tmpdir(), join(root, 'out'));
      // Root's, 755: a home missing there cannot be made at its first login.
      await mkdir(join(root, 'ro'), { mode: 0o755 });
      for (const [name, home] of [
        ['bob', 'plain'],
        ['dave', 'out'],
        ['fay', 'ro/fay'],
      ] as const)
        expect(
          (await run(['user', 'add', name, '--home', home, '--users', users], { stdin: 'password\n' })).code,
        ).toBe(0);
      await chown(users, 65534, 65534);
      server.hangUp();
      await logged(server, /warning: home \/plain of bob cannot be used \(not a directory\)/, 1);
      await logged(
        server,
        /warning: home \/out of dave cannot be used \(it leads outside the served root\)/,
        1,
      );
      await logged(
        server,
        /warning: home \/ro\/fay of fay cannot be used \(missing, and this server, uid 65534, may not make it in \/ro\)/,
        1,
      );
      await logged(server, /warning: home \/carol of carol cannot be used/g, 2);
      expect(await server.stop()).toBe(0);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});

describe('an empty $MUXFTP_PASSWORD', () => {
  it('(a CI secret that is not defined) fails LOGIN_FAILED saying so, before connecting', async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const result = await run(['--server', `127.0.0.1:${port}`, '--user', 'ci', '--json', 'ls'], {
        env: { MUXFTP_PASSWORD: '' },
      });
      expect(result.code).toBe(3);
      expect(result.stderr).toBe(
        'muxftp: no password for ci: $MUXFTP_PASSWORD is set but empty (a CI secret that is not defined?) (LOGIN_FAILED)\n',
      );
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, error: { code: 'LOGIN_FAILED' } });
      expect(connections).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('an empty user name (an unset variable) is refused before connecting, not as a connect failure', async () => {
    // Before: `cannot connect to …: client: user must be a non-empty string (LOCAL_IO_ERROR)`, exit 3.
    const argument = await run(['--server', '127.0.0.1:1', '--user', '', 'ls'], {
      env: { MUXFTP_PASSWORD: 'pw' },
    });
    expect(argument.stderr).toMatch(
      /^muxftp: option '--user <name>' argument '' is invalid\. empty \(an unset variable\?\)/,
    );
    expect(argument.code).toBe(2);
    const credentials = join(dir, 'empty-user.json');
    await writeFile(credentials, '{"user": "", "password": "pw"}', { mode: 0o600 });
    const fromFile = await run(['--server', '127.0.0.1:1', '--credentials', credentials, 'ls']);
    expect(fromFile.stderr).toBe(
      `muxftp: credentials file ${credentials}: "user" must be a non-empty string (LOCAL_IO_ERROR)\n`,
    );
    expect(fromFile.code).toBe(1);
  });

  it('a credentials path that is a directory says so, not that it is not valid JSON', async () => {
    const credentials = join(dir, 'credentials-dir');
    await mkdir(credentials, { mode: 0o700 });
    const result = await run(['--server', '127.0.0.1:1', '--credentials', credentials, 'ls']);
    expect(result.stderr).toBe(
      `muxftp: cannot read credentials file ${credentials}: is a directory (LOCAL_IO_ERROR)\n`,
    );
    expect(result.code).toBe(1);
  });

  it('a credentials file past 64 KiB is refused at its cap, not read into memory however large', async () => {
    // Sparse: 64 KiB and a byte of nothing. Before, it was read whole (a mode-600 pipe fed by
    // `yes`: half a GiB, then "Invalid string length"), and refused only as not JSON.
    const credentials = join(dir, 'big-credentials.json');
    await writeFile(credentials, '', { mode: 0o600 });
    await truncate(credentials, 64 * 1024 + 1);
    const result = await run(['--server', '127.0.0.1:1', '--credentials', credentials, 'ls']);
    expect(result.stderr).toBe(
      `muxftp: cannot read credentials file ${credentials}: larger than 64 KiB: not a credentials file (LOCAL_IO_ERROR)\n`,
    );
    expect(result.code).toBe(1);
  });

  it('a credentials file with an empty password fails before connecting, as an empty $MUXFTP_PASSWORD does', async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const credentials = join(dir, 'empty-password.json');
      await writeFile(credentials, '{"user": "ci", "password": ""}\n', { mode: 0o600 });
      const result = await run(['--server', `127.0.0.1:${port}`, '--credentials', credentials, 'ls']);
      // Before: sent, it cost a failed login towards the server's refusal of the address.
      expect(result.stderr).toBe(
        `muxftp: no password for ci: the credentials file ${credentials} has an empty "password" (LOGIN_FAILED)\n`,
      );
      expect(result.code).toBe(3);
      expect(connections).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
