/**
 * `muxftp serve --config FILE` (cli/serveConfig.ts): the file's options reach the server it runs,
 * the command line's override them, and every mistake in the file is a usage error (exit 2) that
 * names FILE:LINE and the option, before anything starts. Real `serve` processes on 127.0.0.1,
 * port 0 (the file's). Needs dist/ (npm test builds it).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigLineError, configLines } from '../cli/serveConfig.js';
import { Client } from '../client/client.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS, writeUsersFile } from '../server/auth/usersFile.js';
import { runCli, startServeChild } from './helpers/cliProcess.js';
import { type OwnedByTest, ownFor } from './helpers/ownedByTest.js';
import { makeTestCerts, opensslAvailable } from './helpers/testCerts.js';
import { until } from './helpers/waits.js';

/** `text` written to DIR/serve.conf; resolves to its path. */
async function writeConfig(dir: string, text: string): Promise<string> {
  const path = join(dir, 'serve.conf');
  await writeFile(path, text);
  return path;
}

/** Whether a second connection is let in while `first` holds one: false when it is refused SERVER_BUSY. */
async function secondConnectionLetIn(own: OwnedByTest, port: number): Promise<boolean> {
  own.destroys(await Client.connect({ host: '127.0.0.1', port }));
  try {
    own.destroys(await Client.connect({ host: '127.0.0.1', port }));
    return true;
  } catch (error) {
    expect(error).toMatchObject({ code: 'SERVER_BUSY' });
    return false;
  }
}

describe('serve --config', () => {
  it('takes its options from the file: comments and blank lines skipped, a quoted value kept to its spaces', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(
      dir,
      [
        '# muxftp serve --config serve.conf',
        '',
        'port 0',
        `root   "${dir}/served "   `,
        '   # an indented comment',
        'max-connections\t1',
        'log-format json',
        '',
      ].join('\n'),
    );
    const serve = await startServeChild(['--config', config], own.children, { port: null });
    // The root's name ends in the space the quotes kept.
    expect(statSync(join(dir, 'served ')).isDirectory()).toBe(true);
    expect(await secondConnectionLetIn(own, serve.port)).toBe(false);
    // Every line on stderr a JSON object (the listening event at least).
    const lines = serve.stderr().trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(lines.map((line) => JSON.parse(line).event)).toContain('listening');
    expect(JSON.parse(lines.find((line) => line.includes('"listening"'))!).storage).toBe(
      `disk:${dir}/served `,
    );
  });

  it('a flag alone on its line turns it on; the command line overrides the file', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(dir, 'port 0\nmemory\nmax-connections 1\nlog-format json\n');
    const serve = await startServeChild(
      ['--max-connections', '3', '--config', config, '--log-format', 'text'],
      own.children,
      { port: null, cwd: dir },
    );
    expect(await secondConnectionLetIn(own, serve.port)).toBe(true);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    // In memory: no default root (./data) made in its working directory.
    expect(existsSync(join(dir, 'data'))).toBe(false);
    // Text lines, each behind its timestamp: not the file's json.
    expect(serve.stderr()).toMatch(/^\d{4}-\d\d-\d\dT\S+Z SIGTERM: shutting down/m);
    expect(serve.stderr()).not.toContain('{');
  });

  it('runs the example of README.md (its paths given on the command line instead)', async (test) => {
    if (!opensslAvailable) test.skip();
    const own = ownFor(test);
    const dir = await own.tempDir();
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const example = /```conf\n(# muxftp serve --config [^\n]*\n[^`]*)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const config = await writeConfig(dir, example!);
    const certs = await makeTestCerts();
    own.defer(() => certs.remove());
    const users = join(dir, 'users.json');
    await writeUsersFile(
      users,
      addUser(emptyUsersFile(), {
        name: 'alice',
        passwordHash: await hashPassword('alice-secret'),
        permissions: [...PERMISSIONS],
      }),
    );
    await mkdir(join(dir, 'root'));
    const serve = await startServeChild(
      [
        '--config',
        config,
        '--host',
        '127.0.0.1',
        '--root',
        join(dir, 'root'),
        '--users',
        users,
        '--tls-cert',
        certs.certPath,
        '--tls-key',
        certs.keyPath,
        '--metrics',
        '127.0.0.1:0',
      ],
      own.children,
    );
    // tls-only, from the file: a plain connection is refused.
    await expect(Client.connect({ host: '127.0.0.1', port: serve.port })).rejects.toMatchObject({
      code: 'TLS_REQUIRED',
    });
    expect(serve.stderr()).toMatch(/metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/);
  });

  it('SIGHUP reads the users file again from the path the file gave, and not the config file', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const users = join(dir, 'users.json');
    const user = async (name: string) => ({
      name,
      passwordHash: await hashPassword(`${name}-secret`),
      permissions: [...PERMISSIONS],
    });
    await writeUsersFile(users, addUser(emptyUsersFile(), await user('alice')));
    const config = await writeConfig(dir, `port 0\nmemory\nusers ${users}\n`);
    const serve = await startServeChild(['--config', config], own.children, { port: null });
    await writeUsersFile(users, addUser(addUser(emptyUsersFile(), await user('alice')), await user('bob')));
    // Read again, this would stop the server (a usage error): it is not.
    await writeFile(config, 'port nonsense\n');
    serve.child.kill('SIGHUP');
    await until(() => serve.stderr().includes(`SIGHUP: 2 users from ${users}`), 'the users read again');
    expect(serve.child.exitCode).toBeNull();
    expect(serve.stderr()).not.toContain('serve.conf');
  });

  // Each after a comment, a blank line and a good option: the line counts them all.
  const before = '# serve.conf\n\nport 0\n';
  it.for([
    // Named, and the suggestion given, as the file spells them.
    [
      'an unknown option',
      'max-conections 4',
      "4: max-conections: unknown option 'max-conections'\n(Did you mean max-connections?)",
    ],
    ['a missing value', 'root', "4: root: option '--root <dir>' argument missing"],
    [
      'a bad value',
      'max-connections 0',
      "4: max-connections: option '--max-connections <n>' argument '0' is invalid. expected a positive integer.",
    ],
    [
      'a value not among the choices',
      'fsync sometimes',
      "4: fsync: option '--fsync <mode>' argument 'sometimes' is invalid. Allowed choices are always, never.",
    ],
    ['an option given again', 'port 7421', '4: port: given again (first on line 3): each option once'],
    [
      'a value after a flag',
      'memory yes',
      "4: memory: takes no value: the name alone on its line turns it on (got 'yes')",
    ],
    ['the option of another file', 'config other.conf', '4: config: a config file cannot name another'],
    [
      'a name with its dashes',
      '--memory',
      "4: --memory: write the option's name without its dashes (memory)",
    ],
    [
      'a value after =',
      'max-rate=1MiB',
      "4: max-rate=1MiB: the value follows the option's name after a space (max-rate 1MiB)",
    ],
    [
      'a quote not closed',
      'root "data',
      '4: root: a value that opens with " closes with " at the end of the line',
    ],
    [
      'options that cannot go together',
      'root data\nmemory',
      "5: memory: option '--memory' cannot be used with option '--root <dir>'",
    ],
    ['help, which is no option of the file', 'help', "4: help: unknown option 'help'"],
    // What a shell would read otherwise: not served as a directory of that name.
    [
      'a comment after a value',
      'root data  # the served tree',
      '4: root: a comment goes on a line of its own (a # after a value is part of it: in double quotes if meant)',
    ],
    [
      'a value in single quotes',
      "root 'my data'",
      '4: root: quote a value with double quotes ("…"), not single ones',
    ],
    [
      'a home directory as a shell writes it',
      'root ~/srv',
      '4: root: ~ and $VARIABLE are not expanded here (no shell reads the file): write the path in full (in double quotes if meant as written)',
    ],
  ])('%s: a usage error naming FILE:LINE and the option', async ([, lines, message], test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(dir, `${before}${lines}\n`);
    const { code, stdout, stderr } = await runCli(['serve', '--config', config], dir, {
      children: own.children,
    });
    expect(stderr).toContain(`muxftp: ${config}:${message}`);
    expect(stderr).toContain('(see muxftp serve --help)');
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  });

  // Blanks other than space and tab, and line ends other than LF and CRLF: the name and value
  // were not found, and commander's parse of a bare `--` left the line's option undefined.
  it.for([
    ['a no-break space before the name (pasted from a web page)', `${before}\u00a0port 7421\n`, 4],
    ['a form feed before the name', `${before}\fport 7421\n`, 4],
    ['an ideographic space before the name', `${before}\u3000port 7421\n`, 4],
    ['a CR inside a value', `${before}max-connections 1\r0\n`, 4],
    ['a line separator inside a value', `${before}max-connections 1\u20280\n`, 4],
    ['CR line ends alone (classic Mac)', 'port 0\rmax-connections 0\r', 1],
  ] as const)('%s: a usage error naming FILE:LINE, not an internal error', async ([, text, line], test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(dir, text);
    const { code, stdout, stderr } = await runCli(['serve', '--config', config], dir, {
      children: own.children,
    });
    expect(stderr).not.toContain('internal error');
    expect(stderr).toContain(`muxftp: ${config}:${line}: `);
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  });

  it('--config given twice: a usage error, neither file read', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const first = await writeConfig(dir, 'port 0\n');
    const { code, stdout, stderr } = await runCli(['serve', '--config', first, '--config', first], dir, {
      children: own.children,
    });
    expect(stderr).toContain('given twice: one config file');
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  });

  it('a line that is not UTF-8: a usage error naming it', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = join(dir, 'serve.conf');
    await writeFile(
      config,
      Buffer.concat([Buffer.from('port 0\nroot '), Buffer.from([0xff]), Buffer.from('\n')]),
    );
    const { code, stderr } = await runCli(['serve', '--config', config], dir, { children: own.children });
    expect(stderr).toContain(`muxftp: ${config}:2: not UTF-8`);
    expect(code).toBe(2);
  });

  it("a flag on the command line that cannot go with the file's option is refused, naming the line", async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(dir, 'port 0\nmemory\n');
    const { code, stderr } = await runCli(['serve', '--root', join(dir, 'data'), '--config', config], dir, {
      children: own.children,
    });
    expect(stderr).toContain(
      `muxftp: ${config}:2: memory: option '--memory' cannot be used with option '--root <dir>'`,
    );
    expect(code).toBe(2);
  });

  it("--anonymous on the command line does not leave the file's anonymous-write on: refused, naming the line", async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const users = join(dir, 'users.json');
    await writeFile(users, '{"version": 1, "users": {}}');
    const config = await writeConfig(dir, `port 0\nmemory\nusers ${users}\nanonymous-write\n`);
    const { code, stdout, stderr } = await runCli(['serve', '--config', config, '--anonymous'], dir, {
      children: own.children,
      timeoutMs: 10_000,
    });
    expect(stderr).toContain(
      `muxftp: ${config}:4: anonymous-write: option '--anonymous-write' cannot be used with option '--anonymous'`,
    );
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  });

  it('host "" (an unset variable where the file was generated): refused, naming the line', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(dir, 'port 0\nmemory\nhost ""\n');
    const { code, stdout, stderr } = await runCli(['serve', '--config', config], dir, {
      children: own.children,
      timeoutMs: 10_000,
    });
    expect(stderr).toContain(
      `muxftp: ${config}:3: host: option '--host <host>' argument '' is invalid. empty`,
    );
    expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
  });

  it('a file that cannot be read: an error naming it (exit 1), nothing started', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    for (const [config, reason] of [
      [join(dir, 'missing.conf'), 'no such file or directory'],
      [dir, 'is a directory'],
      // Not read on for ever.
      ['/dev/zero', 'larger than 1 MiB: not a config file'],
    ] as const) {
      const { code, stdout, stderr } = await runCli(
        ['serve', '--config', config, '--root', join(dir, 'data')],
        dir,
        {
          children: own.children,
        },
      );
      expect({ code, stdout, stderr }).toEqual({
        code: 1,
        stdout: '',
        stderr: `muxftp: serve: cannot read --config ${config}: ${reason}\n`,
      });
    }
    expect(() => readFileSync(join(dir, 'data'))).toThrow(/ENOENT/);
  });

  it('an upload-initial-window from the file larger than the stream window is refused, as on the command line', async (test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const config = await writeConfig(dir, 'port 0\nmemory\nupload-initial-window 8MiB\n');
    const { code, stderr } = await runCli(['serve', '--config', config, '--stream-window', '1MiB'], dir, {
      children: own.children,
    });
    expect(stderr).toContain('--upload-initial-window (8.00 MiB) is larger than --stream-window (1.00 MiB)');
    expect(code).toBe(2);
  });
});

describe('serve --config lines (configLines)', () => {
  // As a shell reads `--root # the served tree`: a comment, the value missing; it was served as a
  // directory named "# the served tree" (only a # after a blank inside the value was refused).
  it.for(['root # the served tree', 'root #', 'anonymous-home #public'])(
    '%s: a # opening the value is a comment: refused, as one after a value is',
    (line) => {
      expect(() => configLines(Buffer.from(`${line}\n`))).toThrow(ConfigLineError);
      expect(() => configLines(Buffer.from(`${line}\n`))).toThrow(/a comment goes on a line of its own/);
    },
  );

  // biome-ignore lint/suspicious/noTemplateCurlyInString: a config line, as a shell user would write it
  it.for(['root ~/srv', 'root ~muxftp/srv', 'users $HOME/users.json', 'tls-cert ${CERTS}/cert.pem'])(
    '%s: what a shell would expand is refused, not taken as written',
    (line) => {
      expect(() => configLines(Buffer.from(`${line}\n`))).toThrow(/~ and \$VARIABLE are not expanded here/);
    },
  );

  it('a ~ or $ in double quotes, or inside a name, is kept as written', () => {
    expect(configLines(Buffer.from('root "~/srv"\nusers "$HOME/u.json"\nroot /srv/a~b$\n'))).toEqual([
      { line: 1, key: 'root', value: '~/srv' },
      { line: 2, key: 'users', value: '$HOME/u.json' },
      { line: 3, key: 'root', value: '/srv/a~b$' },
    ]);
  });

  it('a value opening with # in double quotes is kept', () => {
    expect(configLines(Buffer.from('anonymous-home "#public"\n'))).toEqual([
      { line: 1, key: 'anonymous-home', value: '#public' },
    ]);
  });
});
