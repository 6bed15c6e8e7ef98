/**
 * `muxftp user add|del` as an administrator runs them: several at once must each be kept, and a
 * file root edits for a server running under its own account must stay readable by that account.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../server/auth/passwords.js';
import {
  addUser,
  emptyUsersFile,
  readUsersFile,
  removeUser,
  type UsersFile,
  updateUsersFile,
  writeUsersFile,
} from '../server/auth/usersFile.js';
import { hostTag } from '../shared/hostTag.js';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { IN_NEW_PID_NAMESPACE, unshareRefused } from './helpers/pidNamespace.js';
import { TempDirs } from './helpers/tempDirs.js';
import { canMountTmpfs } from './helpers/tmpfsMount.js';

const dirs = new TempDirs('muxftp-usersfile-');
const HASH = await hashPassword('pw');
afterEach(() => dirs.removeAll());

describe('muxftp user add/del', () => {
  it('keeps every edit when several run at once', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const names = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    const runs = await Promise.all(
      names.map((name) =>
        runCli(['user', 'add', name, '--users', file], dir, { stdin: `password-${name}\n` }),
      ),
    );
    for (const run of runs) expect(run.stderr).toBe('');
    expect(runs.map((run) => run.code)).toEqual(names.map(() => 0));
    expect(Object.keys((await readUsersFile(file)).users).sort()).toEqual(names);
    const dels = await Promise.all(
      ['u1', 'u3', 'u5'].map((name) => runCli(['user', 'del', name, '--users', file], dir)),
    );
    expect(dels.map((run) => run.code)).toEqual([0, 0, 0]);
    expect(Object.keys((await readUsersFile(file)).users).sort()).toEqual(['u2', 'u4', 'u6']);
    // No lock or temporary file is left behind.
    expect((await readdir(dir)).sort()).toEqual(['users.json']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  }, 60_000);

  it('updateUsersFile: edits at once in one process are each kept (the lock, not luck)', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const names = Array.from({ length: 12 }, (_, i) => `lib${i}`);
    await Promise.all(
      names.map((name) =>
        updateUsersFile(
          file,
          (users) => addUser(users, { name, passwordHash: HASH, permissions: ['list'] }),
          {
            missingIsEmpty: true,
          },
        ),
      ),
    );
    expect(Object.keys((await readUsersFile(file)).users).sort()).toEqual([...names].sort());
  });

  it('waits for a lock another edit holds, and says so when it is never released', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    await writeFile(`${file}.lock`, '1\n');
    const add = (users: UsersFile) =>
      addUser(users, { name: 'hal', passwordHash: HASH, permissions: ['list'] });
    const released = setTimeout(() => void rm(`${file}.lock`), 200);
    await updateUsersFile(file, add, { missingIsEmpty: true, lockWaitMs: 5_000 });
    clearTimeout(released);
    expect(Object.keys((await readUsersFile(file)).users)).toEqual(['hal']);
    await writeFile(`${file}.lock`, '1\n');
    // RESOURCE_BUSY: a script told by --json can wait and try again (LOCAL_IO_ERROR said the file was unusable).
    await expect(
      updateUsersFile(file, (users) => removeUser(users, 'hal'), { lockWaitMs: 100 }),
    ).rejects.toMatchObject({
      code: 'RESOURCE_BUSY',
      message: expect.stringContaining(`users file ${file} is locked by another edit (${file}.lock)`),
    });
    expect(Object.keys((await readUsersFile(file)).users)).toEqual(['hal']);
  });

  it('user add reads no more of stdin than a password line can be (it read /dev/zero for ever)', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const zero = openSync('/dev/zero', 'r');
    try {
      // Bounded: killed past 10 s (before: still reading, 480 MB in 30 s).
      const added = spawnSync(process.execPath, [CLI_BIN, 'user', 'add', 'ann', '--users', file], {
        cwd: dir,
        stdio: [zero, 'pipe', 'pipe'],
        timeout: 10_000,
        encoding: 'utf8',
      });
      expect({ status: added.status, signal: added.signal, stderr: added.stderr }).toEqual({
        status: 1,
        signal: null,
        stderr: 'muxftp: user add ann: password must be at most 1024 bytes\n',
      });
    } finally {
      closeSync(zero);
    }
  });

  it('a FIFO under the lock name is a lock held (RESOURCE_BUSY), not waited on in its open for ever', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const lock = `${file}.lock`;
    execFileSync('mkfifo', [lock]);
    const add = (users: UsersFile) =>
      addUser(users, { name: 'hal', passwordHash: HASH, permissions: ['list'] });
    let timer: NodeJS.Timeout | undefined;
    try {
      // Before: the holder's read opened the FIFO and waited for a writer, past any lockWaitMs.
      const outcome = await Promise.race([
        updateUsersFile(file, add, { missingIsEmpty: true, lockWaitMs: 100 }).then(
          () => 'added',
          (error: { code?: string }) => error.code,
        ),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve('still waiting after 5 s'), 5_000);
        }),
      ]);
      expect(outcome).toBe('RESOURCE_BUSY');
    } finally {
      clearTimeout(timer);
      // A reader still blocked in its open (the bug) is let go: opened read-write, then closed.
      closeSync(openSync(lock, constants.O_RDWR | constants.O_NONBLOCK));
    }
  });

  it.skipIf(process.getuid?.() !== 0)(
    'keeps the owner of a file root edits (the server may run as another user)',
    async () => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      expect((await runCli(['user', 'add', 'ann', '--users', file], dir, { stdin: 'password\n' })).code).toBe(
        0,
      );
      await chown(file, 65534, 65534);
      expect((await runCli(['user', 'add', 'bea', '--users', file], dir, { stdin: 'password\n' })).code).toBe(
        0,
      );
      const info = await stat(file);
      expect([info.uid, info.gid, info.mode & 0o777]).toEqual([65534, 65534, 0o600]);
      expect(Object.keys((await readUsersFile(file)).users).sort()).toEqual(['ann', 'bea']);
    },
    40_000,
  );

  it.skipIf(process.getuid?.() !== 0)(
    'keeps the group of a file root edits when only the group is another',
    async () => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      await writeUsersFile(
        file,
        addUser(emptyUsersFile(), { name: 'ann', passwordHash: HASH, permissions: ['list'] }),
      );
      await chown(file, 0, 65534);
      await updateUsersFile(file, (users) =>
        addUser(users, { name: 'bea', passwordHash: HASH, permissions: ['list'] }),
      );
      const info = await stat(file);
      expect([info.uid, info.gid, info.mode & 0o777]).toEqual([0, 65534, 0o600]);
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    "keeps a file root owns readable by its group (the server's account's): group read stays, nothing else",
    async () => {
      const dir = await dirs.make();
      await chmod(dir, 0o755);
      const file = join(dir, 'users.json');
      await writeUsersFile(file, emptyUsersFile());
      // /etc/muxftp/users.json as root:muxftp 0640, the server running as a member of that group.
      await chown(file, 0, 65534);
      await chmod(file, 0o640);
      expect((await runCli(['user', 'add', 'ann', '--users', file], dir, { stdin: 'password\n' })).code).toBe(
        0,
      );
      const info = await stat(file);
      expect([info.uid, info.gid, info.mode & 0o777]).toEqual([0, 65534, 0o640]);
      const read = spawnSync(
        process.execPath,
        ['-e', `require('fs').readFileSync(${JSON.stringify(file)})`],
        {
          uid: 54321,
          gid: 65534,
        },
      );
      expect(read.status).toBe(0);
      // Other bits are never kept: the file holds password hashes.
      await chmod(file, 0o666);
      expect((await runCli(['user', 'add', 'bea', '--users', file], dir, { stdin: 'password\n' })).code).toBe(
        0,
      );
      expect((await stat(file)).mode & 0o777).toBe(0o640);
    },
    40_000,
  );

  it.skipIf(process.getuid?.() !== 0)(
    'an edit that cannot keep the group (its owner not in it) gives no group read: not to the writer’s group',
    async () => {
      const dir = await dirs.make();
      await chmod(dir, 0o777);
      const file = join(dir, 'users.json');
      await writeUsersFile(file, emptyUsersFile());
      // Its owner's, its group (65534) one the owner is not in: the chown back to it is refused.
      await chown(file, 54321, 65534);
      await chmod(file, 0o640);
      const added = spawnSync(process.execPath, [CLI_BIN, 'user', 'add', 'ann', '--users', file], {
        cwd: dir,
        input: 'password\n',
        uid: 54321,
        gid: 54321,
      });
      expect(added.status).toBe(0);
      const info = await stat(file);
      // Before: 54321:54321 0640, group read given to the writer's own group (on a system whose
      // users share one, as `users` on openSUSE, every user could read the hashes).
      expect([info.uid, info.gid, info.mode & 0o777]).toEqual([54321, 54321, 0o600]);
    },
    40_000,
  );

  it("names its holder in the lock it holds, as a killed edit's lock must be recognised by", async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    let held: string | undefined;
    await updateUsersFile(
      file,
      (users) => {
        held = readFileSync(`${file}.lock`, 'utf8');
        return users;
      },
      { missingIsEmpty: true },
    );
    expect(held).toBe(`${process.pid} ${hostname()} ${hostTag()}\n`);
    expect(await readdir(dir)).toEqual(['users.json']);
  });

  it('a lock it made but could not write (a file size limit, a full disk) is removed, not left to block every later edit', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    // `ulimit -f 0`: every write to a file fails EFBIG, the lock's pid first; stderr is a pipe.
    const limited = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(
        'sh',
        [
          '-c',
          'ulimit -f 0 && exec "$@"',
          'sh',
          process.execPath,
          CLI_BIN,
          'user',
          'add',
          'bob',
          '--users',
          file,
        ],
        { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.stdin.end('password\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
    expect(limited.code).toBe(1);
    expect(limited.stderr).toMatch(/^muxftp: user add bob: cannot write users file .*users\.json: /);
    expect(await readdir(dir)).toEqual([]);
    // The next edit goes ahead at once.
    const next = await runCli(['user', 'add', 'bob', '--users', file], dir, { stdin: 'password\n' });
    expect(next).toMatchObject({ code: 0, stderr: '', stdout: `added bob to ${file}\n` });
  });

  it('refuses a limit under one byte rather than read it as no limit (0)', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const quota = await runCli(['user', 'add', 'tiny', '--users', file, '--quota', '0.4'], dir, {
      stdin: 'password\n',
    });
    expect(quota.code).toBe(2);
    expect(quota.stderr).toContain('invalid size "0.4": less than one byte');
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    const rate = await runCli(['serve', '--memory', '--port', '0', '--max-rate', '0.4'], dir);
    expect(rate.code).toBe(2);
    expect(rate.stderr).toContain('invalid size "0.4": less than one byte');
    // A quota of 0 is refused too (the file refuses it), not stored as no quota.
    const zero = await runCli(['user', 'add', 'tiny', '--users', file, '--quota', '0'], dir, {
      stdin: 'password\n',
    });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('leave --quota out for no quota');
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    // Nor a rate of 0, which serve's rates take as none: stored as no rate, the user got serve's
    // --max-user-rate, so it exempted nobody.
    const noRate = await runCli(['user', 'add', 'vip', '--users', file, '--max-rate', '0'], dir, {
      stdin: 'password\n',
    });
    expect(noRate.code).toBe(2);
    expect(noRate.stderr).toContain("leave --max-rate out for the server's --max-user-rate");
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses an empty home (an unset variable) rather than read it as the whole root', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const added = await runCli(['user', 'add', 'q', '--users', file, '--home', ''], dir, {
      stdin: 'password\n',
    });
    expect(added.code).toBe(2);
    expect(added.stderr).toContain(
      "option '--home <dir>' argument '' is invalid. empty (an unset variable?)",
    );
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    // What an unset variable leaves of `./$X`, `$X/`, `$X//`: the whole root, unasked for.
    for (const home of ['.', './', '//', '/./']) {
      const some = await runCli(['user', 'add', 'q', '--users', file, '--home', home], dir, {
        stdin: 'password\n',
      });
      expect({ home, code: some.code }).toEqual({ home, code: 2 });
      expect(some.stderr).toContain('names the whole served root (an unset variable?); give / for that');
    }
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    const root = await runCli(['user', 'add', 'q', '--users', file, '--home', '/'], dir, {
      stdin: 'password\n',
    });
    expect(root).toMatchObject({ code: 0, stderr: '' });
    expect((await readUsersFile(file)).users.q).toMatchObject({ home: '' });
    const served = await runCli(
      ['serve', '--memory', '--port', '0', '--users', file, '--anonymous', '--anonymous-home', ''],
      dir,
    );
    expect(served.code).toBe(2);
    expect(served.stderr).toContain('empty (an unset variable?); give / for the whole served root');
  });

  it('user add to an empty file made first with its mode (install -m 600 /dev/null) adds to it; serve still refuses it', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    await writeFile(file, '', { mode: 0o600 });
    const added = await runCli(['user', 'add', 'bob', '--users', file], dir, { stdin: 'password\n' });
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(Object.keys((await readUsersFile(file)).users)).toEqual(['bob']);
    await writeFile(file, '\n');
    await expect(readUsersFile(file)).rejects.toThrow(/is not valid JSON/);
  });

  it('--replace of a name not in the file (a typo) says it added that user, not that it updated one', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const add = (name: string, json: boolean) =>
      runCli([...(json ? ['--json'] : []), 'user', 'add', name, '--users', file, '--replace'], dir, {
        stdin: 'password\n',
      });
    expect(await add('bob', false)).toMatchObject({ code: 0, stdout: `added bob to ${file}\n` });
    expect(await add('bob', false)).toMatchObject({ code: 0, stdout: `updated bob in ${file}\n` });
    expect(JSON.parse((await add('bbo', true)).stdout)).toEqual({ ok: true, added: 'bbo' });
    expect(JSON.parse((await add('bob', true)).stdout)).toEqual({ ok: true, updated: 'bob' });
  });
});

describe('users file: a hand-edited file is checked entry by entry', () => {
  const entry = { password: HASH, home: 'eve', permissions: ['list'] };
  const fileOf = async (content: unknown): Promise<string> => {
    const file = join(await dirs.make(), 'users.json');
    await writeFile(file, JSON.stringify(content), { mode: 0o600 });
    return file;
  };

  it.each([
    ['another version', { version: 2, users: { eve: entry } }, /"version" must be 1/],
    [
      'a name starting with a dot',
      { version: 1, users: { '.eve': entry } },
      /user "\.eve": invalid user name/,
    ],
    ['the name anonymous', { version: 1, users: { anonymous: entry } }, /user "anonymous": .*reserved/],
    [
      'a home outside the root',
      { version: 1, users: { eve: { ...entry, home: '../etc' } } },
      /user "eve": .*'\.\.'/,
    ],
    ['a list for the file', [{ version: 1, users: { eve: entry } }], /users file must be a JSON object/],
    ['a list of users', { version: 1, users: [entry] }, /"users" must be an object of name -> entry/],
    [
      'an entry that is no object',
      { version: 1, users: { eve: null } },
      /user "eve": entry must be an object/,
    ],
    [
      'a password that is no string',
      { version: 1, users: { eve: { ...entry, password: 5 } } },
      /user "eve": "password" must be a hash string/,
    ],
    [
      'a home that is no string',
      { version: 1, users: { eve: { ...entry, home: ['eve'] } } },
      /user "eve": "home" must be a string/,
    ],
    [
      'an absolute home',
      { version: 1, users: { eve: { ...entry, home: '/etc' } } },
      /user "eve": .*relative to the root/,
    ],
    [
      'permissions written as one string',
      { version: 1, users: { eve: { ...entry, permissions: 'list,read' } } },
      /user "eve": "permissions" must be an array/,
    ],
    ['a quota of 0', { version: 1, users: { eve: { ...entry, quota: 0 } } }, /user "eve": "quota" must be/],
    [
      'a rate of 0',
      { version: 1, users: { eve: { ...entry, maxRate: 0 } } },
      /user "eve": "maxRate" must be/,
    ],
    [
      'an unknown permission',
      { version: 1, users: { eve: { ...entry, permissions: ['admin'] } } },
      /unknown permission "admin"/,
    ],
  ])('refuses %s', async (_what, content, message) => {
    await expect(readUsersFile(await fileOf(content))).rejects.toThrow(message);
  });

  it('reads a home as a normalized path', async () => {
    const file = await fileOf({ version: 1, users: { eve: { ...entry, home: './a//b/' } } });
    expect((await readUsersFile(file)).users.eve!.home).toBe('a/b');
  });

  it('a write that fails leaves the file as it was and no temporary file beside it', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    await writeUsersFile(
      file,
      addUser({ version: 1, users: {} }, { name: 'ann', passwordHash: HASH, permissions: ['list'] }),
    );
    const before = await readFile(file, 'utf8');
    // Refused while the temporary file is written (as a full disk would fail it).
    const bad = { version: 1, users: { ann: { ...entry, quota: -1 } } } as unknown as UsersFile;
    await expect(writeUsersFile(file, bad)).rejects.toThrow(/"quota" must be/);
    expect(await readdir(dir)).toEqual(['users.json']);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('a write whose rename fails leaves no temporary file (with the hashes) beside the file', async () => {
    const dir = await dirs.make();
    // Written whole, then refused by the rename: a directory is never replaced by a file.
    await mkdir(join(dir, 'users.json'));
    await expect(writeUsersFile(join(dir, 'users.json'), emptyUsersFile())).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['users.json']);
  });

  it.skipIf(!canMountTmpfs)(
    'muxftp user add on a file bind-mounted in place (a container) fails, leaving no temporary file',
    async () => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      const source = join(await dirs.make(), 'users.json');
      await writeUsersFile(file, emptyUsersFile());
      await writeUsersFile(source, emptyUsersFile());
      execFileSync('mount', ['--bind', source, file]);
      try {
        // rename(2) onto a mount point: EBUSY.
        const run = await runCli(['user', 'add', 'bob', '--users', file], dir, { stdin: 'password\n' });
        expect(run.code).toBe(1);
        // Said in words, without the temporary file's name, and why.
        expect(run.stderr).toBe(
          `muxftp: user add bob: cannot write users file ${file}: device or resource busy (a mount point, as a file bind-mounted into a container, is never replaced: edit the file mounted there)\n`,
        );
        expect(await readdir(dir)).toEqual(['users.json']);
      } finally {
        execFileSync('umount', [file]);
      }
    },
  );
});

describe('users file: stored password hashes', () => {
  /** A users file whose one entry's hash has these scrypt parameters and salt/key lengths. */
  async function fileWithHash(hash: string): Promise<string> {
    const file = join(await dirs.make(), 'users.json');
    const users = { version: 1, users: { eve: { password: hash, home: 'eve', permissions: ['list'] } } };
    await writeFile(file, JSON.stringify(users), { mode: 0o600 });
    return file;
  }
  const salt = Buffer.alloc(16, 1).toString('base64');
  const key = Buffer.alloc(32, 2).toString('base64');

  it('refuses a hash whose check would take more memory than 128 MiB (a hand-edited N)', async () => {
    const file = await fileWithHash(`scrypt$1048576$8$1$${salt}$${key}`);
    await expect(readUsersFile(file)).rejects.toThrow(/user "eve": .*1024 MiB a check, more than 128 MiB/);
    // The largest allowed cost still loads: N 2^17, r 8 is 128 MiB.
    await expect(
      readUsersFile(await fileWithHash(`scrypt$131072$8$1$${salt}$${key}`)),
    ).resolves.toBeDefined();
  });

  it('mends a too costly hash as its message says: user add NAME --replace, or user del NAME', async () => {
    // Before: add and del read the file as serve does and refused it for that same hash, so the
    // way out the message gave was refused with that message.
    const costly = `scrypt$1048576$8$1$${salt}$${key}`;
    const replaced = await fileWithHash(costly);
    const dir = join(replaced, '..');
    const refused = await runCli(
      ['serve', '--users', replaced, '--port', '0', '--root', join(dir, 'data')],
      dir,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('write it again with `muxftp user add NAME --replace`');
    const other = await runCli(['user', 'add', 'bob', '--users', replaced], dir, { stdin: 'password\n' });
    // Another user's edit still says what is wrong with the file, which it would leave unusable.
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('user "eve": password hash asks scrypt for 1024 MiB');
    const replace = await runCli(['user', 'add', 'eve', '--users', replaced, '--replace'], dir, {
      stdin: 'password\n',
    });
    expect(replace).toMatchObject({ code: 0, stderr: '' });
    expect((await readUsersFile(replaced)).users.eve?.password).toMatch(/^scrypt\$16384\$/);

    const removed = await fileWithHash(costly);
    const del = await runCli(['user', 'del', 'eve', '--users', removed], join(removed, '..'));
    expect(del).toMatchObject({ code: 0, stderr: '' });
    expect((await readUsersFile(removed)).users).toEqual({});
  });

  it("refuses another user's too costly hash before the password is typed, not after", async () => {
    // The read for the edit passes a costly hash (so that its user can be mended), and the write
    // refuses it: in between, `user add bob` asked for bob's password twice, then was refused.
    const file = await fileWithHash(`scrypt$1048576$8$1$${salt}$${key}`);
    const other = await runCli(['user', 'add', 'bob', '--users', file], join(file, '..'), { stdin: '' });
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('user "eve": password hash asks scrypt for 1024 MiB');
  });

  it('refuses a salt or key longer than 64 bytes', async () => {
    const long = Buffer.alloc(65, 3).toString('base64');
    await expect(readUsersFile(await fileWithHash(`scrypt$16384$8$1$${long}$${key}`))).rejects.toThrow(
      /longer than 64 bytes/,
    );
    await expect(readUsersFile(await fileWithHash(`scrypt$16384$8$1$${salt}$${long}`))).rejects.toThrow(
      /longer than 64 bytes/,
    );
  });
});

/** A pid that was this host's and is no longer running: a child's, once it has exited. */
function deadPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', '']);
  expect(() => process.kill(pid!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  return pid!;
}

describe('a users-file lock left by a killed edit', () => {
  it('is taken over, with a warning, when the pid it names no longer runs on this host', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const pid = deadPid();
    await writeFile(`${file}.lock`, `${pid} ${hostname()} ${hostTag()}\n`);
    const added = await runCli(['user', 'add', 'ann', '--users', file], dir, { stdin: 'password\n' });
    expect(added.code).toBe(0);
    expect(added.stderr).toBe(
      `muxftp: warning: removed ${file}.lock, left by an edit that is no longer running (pid ${pid})\n`,
    );
    expect(Object.keys((await readUsersFile(file)).users)).toEqual(['ann']);
    expect((await readdir(dir)).sort()).toEqual(['users.json']);
  }, 30_000);

  it('is taken over when an edit killed while taking it over left its take-over mark too', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const pid = deadPid();
    // Killed in its read of the lock under `.takeover`: both name it. Before, every later edit
    // failed at the mark (RESOURCE_BUSY naming only the lock), for good.
    await writeFile(`${file}.lock`, `${pid} ${hostname()} ${hostTag()}\n`);
    await writeFile(`${file}.lock.takeover`, `${pid} ${hostname()} ${hostTag()}\n`);
    const added = await runCli(['user', 'add', 'ann', '--users', file], dir, { stdin: 'password\n' });
    expect(added.stderr).toBe(
      `muxftp: warning: removed ${file}.lock, left by an edit that is no longer running (pid ${pid})\n`,
    );
    expect(added.code).toBe(0);
    expect((await readdir(dir)).sort()).toEqual(['users.json']);

    // A mark whose holder runs, or that names none (an older muxftp's), stays, and is named.
    for (const mark of [`${process.pid} ${hostname()} ${hostTag()}\n`, '']) {
      await writeFile(`${file}.lock`, `${pid} ${hostname()} ${hostTag()}\n`);
      await writeFile(`${file}.lock.takeover`, mark);
      await expect(updateUsersFile(file, (users) => users, { lockWaitMs: 100 })).rejects.toThrow(
        `is locked by another edit (${file}.lock, and ${file}.lock.takeover); if no muxftp user command is running, remove both`,
      );
      expect(await readFile(`${file}.lock.takeover`, 'utf8')).toBe(mark);
    }
  }, 30_000);

  it.skipIf(process.getuid?.() !== 0)(
    "takes with it what root's edit killed after handing its temporary file to the file's owner left",
    async () => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      await writeUsersFile(file, emptyUsersFile());
      // A users file of another user's, edited by root: its temporary file is chowned to that
      // owner while it is written (writeUsersFileAt), so root's edit killed then leaves it theirs.
      await chown(file, 12_345, 12_345);
      const left = `.0123abcd.${hostTag()}-${deadPid()}-89abcdef.users.tmp`;
      // Beside it, a third user's under such a name: not root's edit's, left alone.
      const stranger = `.4567cdef.${hostTag()}-${deadPid()}-89abcdef.users.tmp`;
      for (const [name, uid] of [
        [left, 12_345],
        [stranger, 23_456],
      ] as const) {
        await writeFile(join(dir, name), '{}\n', { mode: 0o600 });
        await chown(join(dir, name), uid, uid);
      }
      await updateUsersFile(file, (users) => users);
      expect((await readdir(dir)).sort()).toEqual([stranger, 'users.json'].sort());
    },
  );

  it('takes with it the temporary file (the hashes) an edit killed while writing left, and only that', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const module = join(import.meta.dirname, '..', 'dist', 'server', 'auth', 'usersFile.js');
    // An edit that stops for good once its temporary file is open (the file's users read in its
    // write), there to be killed: as a SIGKILL or the OOM killer catches one in its write or fsync.
    const script = `
      import { writeSync } from 'node:fs';
      import { addUser, updateUsersFile } from ${JSON.stringify(module)};
      await updateUsersFile(${JSON.stringify(file)}, (file) => {
        const users = addUser(file, { name: 'old', passwordHash: ${JSON.stringify(HASH)}, permissions: ['list'] }).users;
        return { version: 1, get users() { writeSync(1, 'writing\\n'); for (;;); return users; } };
      }, { missingIsEmpty: true });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('writing') && resolve());
        child.once('exit', (code) => reject(new Error(`the edit exited (${code}) before it wrote`)));
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((resolve) => child.once('close', resolve));
    const left = (await readdir(dir)).filter((name) => name.endsWith('.users.tmp'));
    expect(left).toHaveLength(1);

    // Beside it: one being written by a process that runs, one of another host tag's, and one an
    // older muxftp left (its name says no writer): left alone.
    const otherTag = hostTag() === '0'.repeat(16) ? '1'.repeat(16) : '0'.repeat(16);
    const stay = [
      `.0123abcd.${hostTag()}-${process.ppid}-89abcdef.users.tmp`,
      `.0123abcd.${otherTag}-${deadPid()}-89abcdef.users.tmp`,
      `.${'ab'.repeat(8)}.users.tmp`,
    ];
    for (const name of stay) await writeFile(join(dir, name), '{}\n', { mode: 0o600 });
    const added = await runCli(['user', 'add', 'ann', '--users', file], dir, { stdin: 'password\n' });
    expect(added.code).toBe(0);
    expect(added.stderr).toBe(
      `muxftp: warning: removed ${file}.lock, left by an edit that is no longer running (pid ${child.pid})\n`,
    );
    expect(Object.keys((await readUsersFile(file)).users)).toEqual(['ann']);
    // Before: its name (`.<16 hex digits>.users.tmp`) said no writer, and it stayed, for good.
    expect((await readdir(dir)).sort()).toEqual(['users.json', ...stay].sort());
  }, 30_000);

  it("is not taken over when its holder runs, is of another host or namespace, or is an older muxftp's", async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    const add = (users: UsersFile) =>
      addUser(users, { name: 'hal', passwordHash: HASH, permissions: ['list'] });
    const onStaleLock = () => {
      throw new Error('taken over');
    };
    const otherTag = hostTag() === '0'.repeat(16) ? '1'.repeat(16) : '0'.repeat(16);
    for (const holder of [
      `${process.pid} ${hostname()} ${hostTag()}`,
      `${deadPid()} not-${hostname()} ${otherTag}`,
      // Another container or pid namespace of this hostname: that pid is not this namespace's.
      `${deadPid()} ${hostname()} ${otherTag}`,
      // An older muxftp's, `PID HOST` (another container of this hostname may hold it) or a pid alone.
      `${deadPid()} ${hostname()}`,
      `${deadPid()}`,
    ]) {
      await writeFile(`${file}.lock`, `${holder}\n`);
      await expect(
        updateUsersFile(file, add, { missingIsEmpty: true, lockWaitMs: 100, onStaleLock }),
        holder,
      ).rejects.toThrow(`is locked by another edit (${file}.lock)`);
      expect(await readFile(`${file}.lock`, 'utf8')).toBe(`${holder}\n`);
    }
  });

  const unshareSkip = unshareRefused();

  it.skipIf(unshareSkip !== undefined)(
    `is not taken over by an edit in another pid namespace of this hostname while its holder runs${unshareSkip === undefined ? '' : ` (skipped: ${unshareSkip})`}`,
    async () => {
      const dir = await dirs.make();
      const file = join(dir, 'users.json');
      const module = join(import.meta.dirname, '..', 'dist', 'server', 'auth', 'usersFile.js');
      // Another container of this hostname editing the same file (a volume), where this pid runs nothing.
      const script = `
        import { addUser, updateUsersFile } from ${JSON.stringify(module)};
        const add = (users) => addUser(users, { name: 'ann', passwordHash: ${JSON.stringify(HASH)}, permissions: ['list'] });
        await updateUsersFile(${JSON.stringify(file)}, add, {
          missingIsEmpty: true,
          lockWaitMs: 300,
          onStaleLock: () => console.log('taken over'),
        }).then(() => console.log('written'), (error) => console.log(error.code ?? error.message));`;
      let other: { stdout: string; status: number | null } | undefined;
      await updateUsersFile(
        file,
        (users) => {
          const run = spawnSync(
            'unshare',
            [...IN_NEW_PID_NAMESPACE, process.execPath, '--input-type=module', '-e', script],
            { encoding: 'utf8', timeout: 20_000 },
          );
          other = { stdout: run.stdout, status: run.status };
          return addUser(users, { name: 'hal', passwordHash: HASH, permissions: ['list'] });
        },
        { missingIsEmpty: true },
      );
      // Before: it took this live edit's lock for a killed one's, wrote ann, and this edit's
      // write then dropped ann (it had read the file before).
      expect(other).toEqual({ stdout: 'RESOURCE_BUSY\n', status: 0 });
      expect(Object.keys((await readUsersFile(file)).users)).toEqual(['hal']);
      expect(await readdir(dir)).toEqual(['users.json']);
    },
    30_000,
  );

  it('is taken over by an edit that asked to be told of none (no onStaleLock)', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    await writeFile(`${file}.lock`, `${deadPid()} ${hostname()} ${hostTag()}\n`);
    await updateUsersFile(
      file,
      (users) => addUser(users, { name: 'ann', passwordHash: HASH, permissions: ['list'] }),
      {
        missingIsEmpty: true,
        lockWaitMs: 100,
      },
    );
    expect(Object.keys((await readUsersFile(file)).users)).toEqual(['ann']);
    expect(await readdir(dir)).toEqual(['users.json']);
  });

  it('is taken over by one of several edits at once, and every edit is kept', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'users.json');
    await writeFile(`${file}.lock`, `${deadPid()} ${hostname()} ${hostTag()}\n`);
    let takenOver = 0;
    const names = Array.from({ length: 8 }, (_, i) => `s${i}`);
    await Promise.all(
      names.map((name) =>
        updateUsersFile(
          file,
          (users) => addUser(users, { name, passwordHash: HASH, permissions: ['list'] }),
          {
            missingIsEmpty: true,
            onStaleLock: () => takenOver++,
          },
        ),
      ),
    );
    expect(takenOver).toBe(1);
    expect(Object.keys((await readUsersFile(file)).users).sort()).toEqual(names);
    expect(await readdir(dir)).toEqual(['users.json']);
  });
});

describe('a users file reached through a symbolic link', () => {
  it('muxftp user add/del write the file the link names, and leave the link a link', async () => {
    const dir = await dirs.make();
    await mkdir(join(dir, 'conf'));
    const target = join(dir, 'conf', 'users.json');
    const link = join(dir, 'users.json');
    await symlink('conf/users.json', link);
    const bob = await runCli(['user', 'add', 'bob', '--users', target], dir, { stdin: 'password-bob\n' });
    expect(bob).toMatchObject({ code: 0, stderr: '' });

    const alice = await runCli(['user', 'add', 'alice', '--users', link], dir, { stdin: 'password-alice\n' });
    expect(alice).toMatchObject({ code: 0, stderr: '' });
    const del = await runCli(['user', 'del', 'bob', '--users', link], dir);
    expect(del).toMatchObject({ code: 0, stderr: '' });

    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('conf/users.json');
    expect(Object.keys((await readUsersFile(target)).users)).toEqual(['alice']);
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    // No lock or temporary file left, beside the link or the file.
    expect((await readdir(dir)).sort()).toEqual(['conf', 'users.json']);
    expect(await readdir(join(dir, 'conf'))).toEqual(['users.json']);
  }, 60_000);

  it('through a chain of links to a file not made yet, and under the lock beside that file', async () => {
    const dir = await dirs.make();
    await mkdir(join(dir, 'real'));
    await mkdir(join(dir, 'etc'));
    const target = join(dir, 'real', 'users.json');
    const first = join(dir, 'etc', 'users.json');
    await symlink('../middle.json', first);
    await symlink('real/users.json', join(dir, 'middle.json'));
    const add = (name: string) => (users: UsersFile) =>
      addUser(users, { name, passwordHash: HASH, permissions: ['list'] });

    await updateUsersFile(first, add('u1'), { missingIsEmpty: true });
    expect(Object.keys((await readUsersFile(target)).users)).toEqual(['u1']);
    expect((await lstat(first)).isSymbolicLink()).toBe(true);
    expect((await lstat(join(dir, 'middle.json'))).isSymbolicLink()).toBe(true);

    // An edit of the file itself holds its lock: one through the links waits for the same lock.
    await writeFile(`${target}.lock`, '1\n');
    await expect(updateUsersFile(first, add('u2'), { lockWaitMs: 100 })).rejects.toThrow(
      `locked by another edit (${target}.lock)`,
    );
    await rm(`${target}.lock`);
    await writeUsersFile(first, add('u3')(await readUsersFile(first)));
    expect(Object.keys((await readUsersFile(target)).users).sort()).toEqual(['u1', 'u3']);
    expect((await lstat(first)).isSymbolicLink()).toBe(true);
    expect((await readdir(join(dir, 'real'))).sort()).toEqual(['users.json']);
  });

  it('follows a chain of 40 links (as the kernel does), and refuses 41 or a loop with ELOOP', async () => {
    const dir = await dirs.make();
    const add = (users: UsersFile) =>
      addUser(users, { name: 'u', passwordHash: HASH, permissions: ['list'] });
    // link0 -> link1 -> ... -> linkN-1 -> file: N links.
    const chain = async (prefix: string, links: number) => {
      for (let i = 0; i < links; i++) {
        await symlink(
          i === links - 1 ? `${prefix}-file.json` : `${prefix}${i + 1}`,
          join(dir, `${prefix}${i}`),
        );
      }
      return join(dir, `${prefix}0`);
    };
    const forty = await chain('a', 40);
    await updateUsersFile(forty, add, { missingIsEmpty: true });
    expect(Object.keys((await readUsersFile(join(dir, 'a-file.json'))).users)).toEqual(['u']);
    expect((await lstat(forty)).isSymbolicLink()).toBe(true);
    const fortyOne = await chain('b', 41);
    await expect(updateUsersFile(fortyOne, add, { missingIsEmpty: true })).rejects.toThrow(
      /cannot write users file .*: .*too many levels of symbolic links/,
    );
    await symlink('loop1', join(dir, 'loop0'));
    await symlink('loop0', join(dir, 'loop1'));
    await expect(writeUsersFile(join(dir, 'loop0'), emptyUsersFile())).rejects.toMatchObject({
      code: 'ELOOP',
    });
    expect((await readdir(dir)).filter((name) => !/^(a|b|loop)\d+$/.test(name))).toEqual(['a-file.json']);
  });

  it('says why it cannot take the lock when the directory is missing, not "locked by another edit" after waiting', async () => {
    const dir = await dirs.make();
    const file = join(dir, 'missing', 'users.json');
    await expect(
      // A lock wait past the test's timeout: waiting it out (as for a held lock) fails the test.
      updateUsersFile(file, (users) => users, { missingIsEmpty: true, lockWaitMs: 60_000 }),
    ).rejects.toThrow(`cannot write users file ${file}: `);
  });
});
