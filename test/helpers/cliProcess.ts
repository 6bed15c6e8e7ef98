/**
 * Runs the built `muxftp` CLI as a child process, the way a user would, and collects its exit
 * code and stderr. Killed after `timeoutMs` so a hung command fails its test instead of the run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const CLI_BIN = join(import.meta.dirname, '..', '..', 'bin', 'muxftp.js');

export function runCliQuietly(
  args: string[],
  cwd: string,
  timeoutMs = 20_000,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/**
 * Like runCliQuietly, with stdout too, stdin to give, the environment to add (MUXFTP_SERVER is
 * dropped unless given), and a Ctrl-C to send (SIGINT, or `interruptSignal`, once `interruptWhen`
 * resolves).
 */
export function runCli(
  args: string[],
  cwd: string,
  options: {
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    stdin?: string;
    interruptWhen?: Promise<void>;
    /** What `interruptWhen` sends (default SIGINT, Ctrl-C). */
    interruptSignal?: NodeJS.Signals;
  } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const env = { ...process.env, ...options.env };
  if (options.env?.MUXFTP_SERVER === undefined) delete env.MUXFTP_SERVER;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      cwd,
      env,
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    child.stdin?.end(options.stdin);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    options.interruptWhen?.then(
      () => child.kill(options.interruptSignal ?? 'SIGINT'),
      () => child.kill('SIGKILL'),
    );
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Stops (SIGTERM) each of `children` still running, waits for each to exit, and forgets them. */
export async function stopChildren(children: Set<ChildProcess>): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    }),
  );
  children.clear();
}

/**
 * `muxftp serve --port 0 ARGS` (MUXFTP_SERVER unset), added to `children` for stopChildren, once
 * it has printed its listening line: its port, and what it has written to stderr so far.
 */
export async function startServeChild(
  args: string[],
  children: Set<ChildProcess>,
  options: { cwd?: string; uid?: number; gid?: number } = {},
): Promise<{ port: number; stderr: () => string }> {
  const env = { ...process.env };
  delete env.MUXFTP_SERVER;
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 10_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+) /.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${stderr}`));
    });
  });
  return { port, stderr: () => stderr };
}

/** The name column of `ls -l`'s table lines: what follows the date and time. */
export function lsNameColumn(stdout: string): string[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => line.replace(/^.*\d\d:\d\d:\d\d {2}/, ''));
}
