/**
 * The no-echo password prompt on a real terminal: `script` gives the CLI a pseudo-terminal, and
 * what is "typed" is written to it once the prompt is up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword, parsePasswordHash, verifyPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, readUsersFile } from '../server/auth/usersFile.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const dirs = new TempDirs('muxftp-prompt-');
let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await dirs.removeAll();
});

const hasScript = spawnSync('script', ['--version']).status === 0;

/**
 * Runs `muxftp ARGS` on a pseudo-terminal; each key string is typed once the output shows `prompt`.
 * `redirect`: what the shell adds after the command (` 2>/dev/null`).
 */
function onTerminal(
  args: string[],
  keys: string[],
  prompt: RegExp,
  redirect = '',
): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI_BIN, ...args].map((a) => `'${a}'`).join(' ') + redirect;
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let typed = 0;
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    // One key string per prompt seen so far.
    const prompts = output.match(new RegExp(prompt.source, 'g'))?.length ?? 0;
    while (typed < prompts && typed < keys.length) child.stdin.write(keys[typed++]!);
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** A shell `command` run on a terminal (script(1)), killed past 8 s: all it showed, its exit code. */
async function shownOnTerminal(
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ output: string; code: number | null }> {
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { output, code };
}

describe.skipIf(!hasScript)('the password prompt on a terminal', () => {
  it('Ctrl-D ends it: no password, the command fails (exit 1, not as a signal) and writes nothing', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const { code, output } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      ['abc\u0004'],
      /password for bob: /,
    );
    expect(output).toMatch(/no password given \(end of input\)/);
    expect(code).toBe(1);
    expect(existsSync(file)).toBe(false);
  }, 20_000);

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    'a %s sent while it waits ends it as Ctrl-C does: one line, exit %i (128 + its number), nothing written',
    async (signal, exitCode) => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      const command = [process.execPath, CLI_BIN, 'user', 'add', 'bob', '--users', file]
        .map((a) => `'${a}'`)
        .join(' ');
      const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      let output = '';
      let sent = false;
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (sent || !/password for bob: /.test(output)) return;
        sent = true;
        // The CLI itself, not the terminal: as `kill` from another shell would.
        const pid = Number(
          spawnSync('pgrep', ['-f', `${CLI_BIN} user add bob --users ${file}`])
            .stdout.toString()
            .trim()
            .split('\n')[0],
        );
        process.kill(pid, signal);
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(timer);
      expect(sent).toBe(true);
      expect(output).toContain('muxftp: user add bob: interrupted (CANCELLED)');
      expect(code).toBe(exitCode);
      expect(existsSync(file)).toBe(false);
    },
    20_000,
  );

  it('Ctrl-U starts the line again and keys such as arrows add nothing to the password', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const typing = 'wrong\u0015pass\u001b[Dword\r';
    const { code } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      [typing, typing],
      /(password for bob|again): /,
    );
    expect(code).toBe(0);
    const hash = parsePasswordHash((await readUsersFile(file)).users.bob!.password);
    expect(await verifyPassword('password', hash)).toBe(true);
  }, 20_000);

  it('Backspace takes back a whole character, an emoji (two UTF-16 units) too', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    // Before: half of the emoji stayed, and the password kept a U+FFFD in place of it.
    const typing = 'pass\u{1F600}\u007fword\r';
    const { code } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      [typing, typing],
      /(password for bob|again): /,
    );
    expect(code).toBe(0);
    const hash = parsePasswordHash((await readUsersFile(file)).users.bob!.password);
    expect(await verifyPassword('password', hash)).toBe(true);
  }, 20_000);

  it('a lone Escape key adds nothing and takes nothing: the key after it is typed', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    // Escape before a letter, before Backspace, and twice before an arrow's sequence.
    const typing = 'pa\u001bss\u001bx\u001b\u007fwo\u001b\u001b\u001b[Crd\r';
    const { code } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      [typing, typing],
      /(password for bob|again): /,
    );
    expect(code).toBe(0);
    const hash = parsePasswordHash((await readUsersFile(file)).users.bob!.password);
    expect(await verifyPassword('password', hash)).toBe(true);
  }, 20_000);

  it('an empty password is refused at once, and a slip gets another try, as passwd gives', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    // Empty (refused before "again:"), then two that differ, then two that match.
    const { code, output } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      ['\r', 'one-pass\r', 'two-pass\r', 'three-pass\r', 'three-pass\r'],
      /(password for bob|again): /,
    );
    expect(output).toMatch(/muxftp: password must not be empty: try again/);
    expect(output).toMatch(/muxftp: the passwords do not match: try again/);
    expect(code).toBe(0);
    const hash = parsePasswordHash((await readUsersFile(file)).users.bob!.password);
    expect(await verifyPassword('three-pass', hash)).toBe(true);
  }, 20_000);

  it('a password under 8 characters is refused at once, before "again:", and another is asked for', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const { code, output } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      ['ab\r', 'longer-pass\r', 'longer-pass\r'],
      /(password for bob|again): /,
    );
    expect(output).toMatch(/muxftp: password must be at least 8 characters: try again/);
    expect(code).toBe(0);
    const hash = parsePasswordHash((await readUsersFile(file)).users.bob!.password);
    expect(await verifyPassword('longer-pass', hash)).toBe(true);
  }, 20_000);

  it('with stderr sent elsewhere (2>log), says on the terminal why it asks again', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    // Before: the prompt came back with no word of why, the reason written to the log.
    const { code, output } = await onTerminal(
      ['user', 'add', 'bob', '--users', file],
      ['one-pass\r', 'two-pass\r', 'three-pass\r', 'three-pass\r'],
      /(password for bob|again): /,
      ' 2>/dev/null',
    );
    expect(output).toMatch(/muxftp: the passwords do not match: try again/);
    expect(code).toBe(0);
    const hash = parsePasswordHash((await readUsersFile(file)).users.bob!.password);
    expect(await verifyPassword('three-pass', hash)).toBe(true);
  }, 20_000);
});

describe.skipIf(!hasScript)('a client command with --user on a terminal', () => {
  it('asks for the password only when the server wants one: not of a server that takes no logins', async () => {
    server = await startServer({ backend: 'memory' });
    await (await server.connect()).put('here.txt', Buffer.from('x'));
    const open = await onTerminal(
      ['--server', `127.0.0.1:${server.port}`, '--user', 'bob', 'ls'],
      ['typed-for-nothing\r'],
      /password for bob: /,
    );
    expect(open.output).not.toContain('password for bob');
    expect(open.output).toContain('here.txt');
    expect(open.code).toBe(0);
    await server.stop();

    const users = addUser(emptyUsersFile(), {
      name: 'bob',
      passwordHash: await hashPassword('bob-secret'),
      permissions: [...PERMISSIONS],
    });
    server = await startServer({ backend: 'memory', accounts: new Accounts({ users, anonymous: 'off' }) });
    await (await server.connect({ user: 'bob', password: 'bob-secret' })).put('bobs.txt', Buffer.from('x'));
    const asked = await onTerminal(
      ['--server', `127.0.0.1:${server.port}`, '--user', 'bob', 'ls'],
      ['bob-secret\r'],
      /password for bob: /,
    );
    expect(asked.output.match(/password for bob: /g)).toHaveLength(1);
    expect(asked.output).toContain('bobs.txt');
    expect(asked.code).toBe(0);
    // The connection that learnt a password is wanted sent none: no failed login.
    expect(server.logs.filter((line) => line.includes('failed login'))).toEqual([]);
  }, 30_000);

  it('asks on the terminal when stderr goes elsewhere (2>log), as ssh and sudo do', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'bob',
      passwordHash: await hashPassword('bob-secret'),
      permissions: [...PERMISSIONS],
    });
    server = await startServer({ backend: 'memory', accounts: new Accounts({ users, anonymous: 'off' }) });
    await (await server.connect({ user: 'bob', password: 'bob-secret' })).put('bobs.txt', Buffer.from('x'));
    // Before: the prompt went to /dev/null and the command waited, to all appearances hung.
    const asked = await onTerminal(
      ['--server', `127.0.0.1:${server.port}`, '--user', 'bob', 'ls'],
      ['bob-secret\r'],
      /password for bob: /,
      ' 2>/dev/null',
    );
    expect(asked.output.match(/password for bob: /g)).toHaveLength(1);
    expect(asked.output).toContain('bobs.txt');
    expect(asked.code).toBe(0);
  }, 30_000);
});

describe.skipIf(!hasScript || process.platform !== 'linux')(
  'no prompt in the background of a terminal',
  () => {
    // `timeout` runs its command in a process group of its own: a prompt there stopped the process
    // (SIGTTOU) before it showed, and timeout's SIGTERM could not end it.
    it.each([
      ['stdin is the terminal', ''],
      ['stdin is not a terminal', ' </dev/null'],
    ])(
      'under timeout, %s: fails at once saying how to give the password',
      async (_, redirect) => {
        // `; exit $?`: the shell then runs timeout as its child, as in a script, rather than exec it as
        // the session's leader, whose group stays the foreground one.
        const command = `timeout 10 '${process.execPath}' '${CLI_BIN}' --server 127.0.0.1:1 --user ci ls${redirect}; exit $?`;
        const env = { ...process.env };
        delete env.MUXFTP_PASSWORD;
        delete env.MUXFTP_SERVER;
        const { output, code } = await shownOnTerminal(command, env);
        expect(output).toContain(
          'muxftp: no password for ci: set $MUXFTP_PASSWORD or use --credentials FILE',
        );
        expect(output).not.toContain('password for ci: \r');
        expect(code).toBe(3); // could not log in
      },
      15_000,
    );
  },
);

describe.skipIf(!hasScript || process.platform !== 'linux')(
  'user add in the background of a terminal',
  () => {
    it('under timeout: fails at once, saying to give the password on stdin, and writes nothing', async () => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      // `; exit $?`: timeout runs as the shell's child, as in a script (see above).
      const command = `timeout 10 '${process.execPath}' '${CLI_BIN}' user add bob --users '${file}'; exit $?`;
      const { output, code } = await shownOnTerminal(command);
      expect(output).toContain(
        'muxftp: user add bob: no password: the process is in the background of its terminal',
      );
      expect(code).toBe(1);
      expect(existsSync(file)).toBe(false);
    }, 15_000);
  },
);
