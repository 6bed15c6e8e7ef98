/** `bench --local`: a throwaway muxftp server in a child process, for the bench engine to run against. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { LocalServer } from '../client/bench/runner.js';

export async function startLocalServer(): Promise<LocalServer> {
  // A sibling module of this one, compiled beside it (as the bench engine's worker.js is).
  const entry = fileURLToPath(new URL('./localServerProcess.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [entry], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = once(child, 'exit');
  const [line] = (await Promise.race([once(child.stdout!, 'data'), exited.then(() => [''])])) as [
    Buffer | string,
  ];
  const port = Number(/:(\d+) /.exec(String(line))?.[1]);
  if (!Number.isInteger(port) || port === 0) {
    child.kill('SIGKILL');
    throw new Error(`could not start a local server: ${String(line).trim() || 'it exited'}`);
  }
  return {
    port,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
