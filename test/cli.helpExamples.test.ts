/**
 * The examples `muxftp put --help` and `muxftp get --help` print work as written: each line is run
 * by a shell (globs, pipes and ~ included, with `muxftp` the built CLI) in a fresh directory
 * against a fresh server, the put examples first, as a new user would try them, and exits 0 with
 * nothing on stderr. Real server on 127.0.0.1 port 0, temp dirs. Needs dist/ (npm run build).
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliShellLine, runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-examples-');
let server: TestServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/**
 * The command part of each line under `Examples:` (the description follows two or more spaces,
 * or the next lines, indented further).
 */
function examplesOf(help: string): string[] {
  const section = help.slice(help.indexOf('\nExamples:\n') + '\nExamples:\n'.length);
  return section
    .split('\n')
    .filter((line) => /^ {2}\S/.test(line))
    .map((line) => line.trim().split(/ {2,}/)[0]!);
}

/** Runs `line` with sh in `cwd`, `muxftp` being the CLI, HOME the same directory. */
function runShell(line: string, cwd: string, port: number): Promise<{ code: number | null; stderr: string }> {
  const script = `muxftp() { ${cliShellLine()} "$@"; }\n${line}`;
  const env = { ...process.env, HOME: cwd, MUXFTP_SERVER: `127.0.0.1:${port}` };
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('the examples in put and get --help', () => {
  it('run as written on a fresh server', async () => {
    server = await startServer({ backend: 'disk' });
    const root = server.root!;
    const home = await tempDirs.make();
    await writeFile(join(home, 'report.pdf'), 'pdf');
    await writeFile(join(home, 'a.log'), 'a');
    await writeFile(join(home, 'b.log'), 'b');
    await mkdir(join(home, 'photos', 'sub'), { recursive: true });
    await writeFile(join(home, 'photos', '1.jpg'), '1');
    await writeFile(join(home, 'photos', 'sub', '2.jpg'), '2');
    // The logs get's example downloads.
    await writeFile(join(root, 'a.log'), 'remote a');
    await writeFile(join(root, 'b.log'), 'remote b');

    const examples: string[] = [];
    for (const command of ['put', 'get']) {
      const help = await runCli([command, '--help'], home);
      expect(help.code).toBe(0);
      examples.push(...examplesOf(help.stdout));
    }
    expect(examples.length).toBeGreaterThanOrEqual(12);
    for (const line of examples) {
      const result = await runShell(line, home, server.port);
      expect({ line, ...result }).toEqual({ line, code: 0, stderr: '' });
    }

    // What they say they do.
    expect((await readdir(join(root, 'logs'))).sort()).toEqual(['a.log', 'b.log']);
    expect(await readFile(join(home, 'logs', 'b.log'), 'utf8')).toBe('remote b');
    expect((await readdir(join(home, 'saved'))).sort()).toEqual(['a.log', 'b.log']);
    expect(await readFile(join(root, 'backup', 'photos', 'sub', '2.jpg'), 'utf8')).toBe('2');
    expect(await readFile(join(root, 'backup', 'sub', '2.jpg'), 'utf8')).toBe('2'); // photos/.
    expect(await readFile(join(root, 'site', 'report.pdf'), 'utf8')).toBe('pdf');
    expect(await readFile(join(home, 'r.pdf'), 'utf8')).toBe('pdf');
    expect(await readFile(join(home, 'all', 'docs', '2025.pdf'), 'utf8')).toBe('pdf');
  });
});
