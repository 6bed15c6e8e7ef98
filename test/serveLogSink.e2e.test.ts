/**
 * `muxftp serve` whose stderr cannot be written (the log's disk full, `2>>/var/log/muxftp.log` as
 * README suggests; the log's reader gone) goes on serving: its log lines are lost, not its clients.
 * The real CLI, real sockets.
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { ownFor } from './helpers/ownedByTest.js';

describe('serve with a log it cannot write', () => {
  for (const sink of ['/dev/full', 'a pipe nobody reads'] as const) {
    it.skipIf(sink === '/dev/full' && process.platform !== 'linux')(
      `stderr to ${sink}: still serves after its first log line, and stops 0 on SIGTERM`,
      async (test) => {
        const own = ownFor(test);
        const root = await own.tempDir();
        const stderr = sink === '/dev/full' ? openSync('/dev/full', 'w') : 'pipe';
        const child = own.kills(
          spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0', '--root', root], {
            stdio: ['ignore', 'pipe', stderr],
          }),
        );
        // Its reader gone: each write to the pipe fails EPIPE.
        child.stderr?.destroy();
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        const port = await new Promise<number>((resolve, reject) => {
          let stdout = '';
          child.stdout!.on('data', (chunk: Buffer) => {
            stdout += chunk.toString();
            const match = /listening on 127\.0\.0\.1:(\d+) /.exec(stdout);
            if (match) resolve(Number(match[1]));
          });
          child.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
        });
        const server = ['--server', `127.0.0.1:${port}`];
        // Each one logs a line as its connection closes.
        for (let i = 0; i < 2; i++) {
          const ls = await runCli([...server, 'ls', '/'], root, { children: own.children });
          expect(ls.code, ls.stderr).toBe(0);
        }
        expect(child.exitCode).toBe(null);
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
      },
      30_000,
    );
  }

  for (const sink of ['/dev/full', 'a pipe nobody reads'] as const) {
    it.skipIf(sink === '/dev/full' && process.platform !== 'linux')(
      `stdout to ${sink}: says so in the log and serves on, stopping 0 on SIGTERM`,
      async (test) => {
        const own = ownFor(test);
        const root = await own.tempDir();
        const stdout = sink === '/dev/full' ? openSync('/dev/full', 'w') : 'pipe';
        // The port from the JSON log's `listening` event: stdout is what cannot be written.
        const child = own.kills(
          spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0', '--root', root, '--log-format', 'json'], {
            stdio: ['ignore', stdout, 'pipe'],
          }),
        );
        // Its reader gone before the listening line: the write fails EPIPE.
        child.stdout?.destroy();
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        let stderr = '';
        const port = await new Promise<number>((resolve, reject) => {
          child.stderr!.on('data', (chunk: Buffer) => {
            stderr += chunk.toString();
            const match = /"event":"listening".*"address":"127\.0\.0\.1:(\d+)"/.exec(stderr);
            if (match) resolve(Number(match[1]));
          });
          child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
        });
        const ls = await runCli(['--server', `127.0.0.1:${port}`, 'ls', '/'], root, {
          children: own.children,
        });
        expect(ls.code, ls.stderr).toBe(0);
        expect(child.exitCode).toBe(null);
        expect(stderr).toMatch(/"event":"warning".*cannot write the listening line to stdout/);
        child.kill('SIGTERM');
        expect(await exited, stderr).toBe(0);
      },
      30_000,
    );
  }
});
