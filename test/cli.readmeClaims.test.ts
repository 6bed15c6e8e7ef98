/**
 * What the README says of the CLI, run as a new user reads it: each claim checked here was found
 * untrue of the built CLI once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-readme-');

afterEach(() => tempDirs.removeAll());

describe('serve and the client options', () => {
  // README: "a client command's the global ones above too (`serve` and `user` take none of them)".
  // Commander takes the program's options after `serve` as well: `serve --tls` served plain text,
  // `serve --server 0.0.0.0:7421` listened on loopback alone, both without a word.
  it.each([
    [['--tls'], '--tls-cert'],
    [['--server', '0.0.0.0:7421'], '--host'],
    [['--json'], '--log-format json'],
    [['--user', 'alice'], '--users'],
    [['--timeout', '5'], '--idle-timeout'],
  ])('refuses %j as a usage error, saying what serve takes instead', async (flag, instead) => {
    const dir = await tempDirs.make();
    const root = join(dir, 'root');
    const run = await runCli(['serve', '--port', '0', '--root', root, ...flag], dir, { timeoutMs: 10_000 });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`serve: ${flag[0]} is a client option`);
    expect(run.stderr).toContain(instead);
    expect(existsSync(root)).toBe(false);
  });
});

describe('user add and del --json', () => {
  // README: "With `--json`, `add` and `del` print {"ok": true, "added"|"updated"|"removed": NAME}";
  // their help did not list --json (taken as the client's global option, which user's help hides).
  it.each(['add', 'del'])('user %s --help lists --json', async (command) => {
    const dir = await tempDirs.make();
    const help = await runCli(['user', command, '--help'], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}--json +print the result as JSON/m);
  });
});
