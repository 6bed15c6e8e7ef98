/**
 * Runs the built `muxftp` CLI as a child process, the way a user would, and collects its exit
 * code and stderr. Killed after `timeoutMs` so a hung command fails its test instead of the run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const CLI_BIN = join(import.meta.dirname, '..', '..', 'bin', 'muxftp.js');

/** `word` in single quotes, as sh reads it back to the letter. */
function shellQuoted(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** `muxftp ARGS` (node running bin/muxftp.js) as one line for sh: for script(1) and `sh -c`. */
export function cliShellLine(args: readonly string[] = []): string {
  return [process.execPath, CLI_BIN, ...args].map(shellQuoted).join(' ');
}

/** Where a started child is handed to be stopped later: a Set for stopChildren, or ownFor(test).children. */
export interface ChildOwner {
  add(child: ChildProcess): unknown;
}

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
 * dropped unless given), a Ctrl-C to send (SIGINT, or `interruptSignal`, once `interruptWhen`
 * resolves), and an owner to hand the child to (a test that ends first kills it).
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
    children?: ChildOwner;
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
    options.children?.add(child);
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

/** `muxftp serve` exited before it listened: its exit code and what it wrote to stderr. */
export class ServeExitedError extends Error {
  constructor(
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`serve exited ${code}: ${stderr}`);
  }
}

/** A `muxftp serve` child that listens. */
export interface ServeChild {
  child: ChildProcess;
  port: number;
  /** What it has written to stderr so far. */
  stderr(): string;
  /** Its exit code, once it has exited. */
  exited: Promise<number | null>;
}

/**
 * `muxftp serve --port PORT ARGS` (port 0 unless given; null: no --port, ARGS give it, as a
 * --config file may; MUXFTP_SERVER unset), handed to `children` (for stopChildren, or a test's
 * owner), once it has printed its listening line. Rejects with ServeExitedError when it exits
 * first, and when it does neither in 15 s.
 */
export async function startServeChild(
  args: string[],
  children: ChildOwner,
  options: { port?: number | null; cwd?: string; uid?: number; gid?: number } = {},
): Promise<ServeChild> {
  const { port: askedPort = 0, ...spawnOptions } = options;
  const env = { ...process.env };
  delete env.MUXFTP_SERVER;
  const portFlag = askedPort === null ? [] : ['--port', String(askedPort)];
  const child = spawn(process.execPath, [CLI_BIN, 'serve', ...portFlag, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...spawnOptions,
  });
  children.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(
      () => reject(new Error(`serve neither listened nor exited in 15 s: ${stderr}`)),
      15_000,
    );
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+) /.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    // After 'close', so its stderr is all in.
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new ServeExitedError(code, stderr));
    });
  });
  return { child, port, stderr: () => stderr, exited };
}

/** The name column of `ls -l`'s table lines: what follows the date and time. */
export function lsNameColumn(stdout: string): string[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => line.replace(/^.*\d\d:\d\d:\d\d {2}/, ''));
}
