/**
 * Names in the CLI's stderr lines are shown with control characters as '?', as `ls` shows them:
 * a name comes from the server's listing or a script's argument, and a newline in it broke the
 * one line per failure, an escape sequence drove the user's terminal. Real server on 127.0.0.1
 * (disk, with the odd names made behind its back), the real CLI. Needs dist/ (npm run build).
 */

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-printable-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe('control characters in names on stderr', () => {
  it('get -r of names the server lists with a newline and an escape: one line each, shown with ?', async () => {
    server = await startServer({ backend: 'disk' });
    await mkdir(join(server.root!, 'odd'));
    await writeFile(join(server.root!, 'odd', 'nl\nname'), 'x');
    await writeFile(join(server.root!, 'odd', 'esc\u001b[2Jred'), 'y');
    await writeFile(join(server.root!, 'odd', 'fine'), 'z');
    const local = await tempDirs.make();

    const result = await runCli(
      ['--server', `127.0.0.1:${server.port}`, '-q', 'get', '-r', 'odd', '--to', 'out', '-p'],
      local,
    );

    expect(result.code).toBe(1);
    expect(result.stderr).not.toMatch(CONTROL_BUT_NEWLINE);
    // Sorted: the two downloads fail concurrently (-j 8), and each settles its temporary file in
    // the threadpool before its line is printed, so their order is not the server's under load.
    expect(
      result.stderr
        .split('\n')
        .filter((line) => line !== '')
        .sort(),
    ).toEqual([
      'muxftp: get odd/esc?[2Jred: muxftp cannot name it (the name contains a control character; rename it on the server), skipped: odd/esc?[2Jred (INVALID_PATH)',
      'muxftp: get odd/nl?name: muxftp cannot name it (the name contains a control character; rename it on the server), skipped: odd/nl?name (INVALID_PATH)',
    ]);
  });

  it('a local name or a remote argument with control characters fails in one printable line', async () => {
    server = await startServer();
    const local = await tempDirs.make();
    await writeFile(join(local, 'new\nline.txt'), 'x');
    const at = ['--server', `127.0.0.1:${server.port}`];

    const put = await runCli([...at, 'put', 'new\nline.txt'], local);
    const get = await runCli([...at, 'get', 'nope\u001b]0;owned\u0007'], local);

    expect(put.code).toBe(1);
    expect(put.stderr).toBe(
      'muxftp: put new?line.txt: invalid path: contains a control character (INVALID_PATH)\n',
    );
    expect(get.code).toBe(1);
    expect(get.stderr).toBe(
      'muxftp: get nope?]0;owned?: invalid path: contains a control character (INVALID_PATH)\n',
    );
  });
});

describe('names in --json on stdout', () => {
  it('carry C1 controls and bidirectional overrides escaped, never raw (stdout is often the terminal)', async () => {
    server = await startServer({ backend: 'disk' });
    // C1 CSI (U+009B) and OSC (U+009D): one byte each in an 8-bit terminal, and acted on by
    // terminals that take C1 in UTF-8; RLO (U+202E) reorders what the line shows.
    const names = ['csi\u009b2Jx', 'osc\u009d0;owned\u009c', 'rlo\u202etxt.exe', 'ls\u2028sep'];
    for (const name of names) await writeFile(join(server.root!, name), 'x');
    const local = await tempDirs.make();

    const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'ls', '--json'], local);

    expect(result.code).toBe(0);
    expect(result.stdout).not.toMatch(
      /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u061c\u200e\u200f]/,
    );
    // The same JSON: each name read back as it is.
    const listed = (JSON.parse(result.stdout) as Array<{ name: string }>).map((entry) => entry.name);
    expect(listed.sort()).toEqual([...names].sort());
  });
});

describe('usage errors', () => {
  it("say an option, a command or a value with its control characters as ?: `put *` meets a file named '--…'", async () => {
    const local = await tempDirs.make();
    const option = await runCli(['put', '--a\u001b]0;owned\u0007', 'x'], local);
    const command = await runCli(['ge\u001b[2Jt', 'x'], local);
    const value = await runCli(['chmod', '7\u001b[2J', 'x'], local);

    for (const result of [option, command, value]) {
      expect(result.code).toBe(2);
      // Before: the ESC and BEL went to the terminal as they were.
      expect(result.stderr).not.toMatch(CONTROL_BUT_NEWLINE);
    }
    expect(option.stderr).toContain("muxftp: unknown option '--a?]0;owned?'\n");
    expect(command.stderr).toContain("muxftp: unknown command 'ge?[2Jt'\n");
  });
});
