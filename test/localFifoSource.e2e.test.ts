/**
 * A library put from a FIFO's path: the FIFO is opened once, without waiting for its writer, and
 * read as a stream. Opened once to look and again to read, a writer already waiting on it was let
 * in by the first open and then lost its reader: its writes failed EPIPE, and the second open
 * waited for a writer that had gone. A terminal's path likewise, read as a stream on the loop:
 * through the threadpool, a read no one typed into held a thread that a cancel could not free.
 * Real server, real FIFOs and a real pseudo-terminal, writers in child processes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFifo, waitsInFifoOpen } from './helpers/fifo.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-fifo-source-');
const fifos: string[] = [];
const writers = new Set<ChildProcess>();

afterEach(async () => {
  for (const writer of writers) writer.kill('SIGKILL');
  writers.clear();
  // A read-open still waiting for a writer (in this process's threadpool) is let go: else the
  // worker could not exit.
  for (const fifo of fifos.splice(0)) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader waiting (ENXIO), or gone with its directory.
    }
  }
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

function mkfifo(path: string): string {
  fifos.push(makeFifo(path));
  return path;
}

/**
 * A shell writing `chunk` `times` times into `fifo`, once it is waiting in the open of it for a
 * reader; `exited` gives its exit code. printf is the shell's own: it writes the moment the open
 * returns, where a command (cat) would be started first.
 */
async function writerWaitingOn(
  fifo: string,
  chunk: string,
  times: number,
): Promise<{ exited: Promise<number | null> }> {
  const script = 'i=0; while [ $i -lt "$1" ]; do printf %s "$0" || exit 1; i=$((i + 1)); done > "$2"';
  const writer = spawn('sh', ['-c', script, chunk, String(times), fifo], { stdio: 'ignore' });
  writers.add(writer);
  const exited = new Promise<number | null>((resolve) => writer.once('exit', (code) => resolve(code)));
  const deadline = performance.now() + 5_000;
  for (;;) {
    const wchan = (() => {
      try {
        return readFileSync(`/proc/${writer.pid}/wchan`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (waitsInFifoOpen(writer.pid!)) return { exited };
    if (performance.now() > deadline) throw new Error(`the writer never waited in its open (${wchan})`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** `call`, or a failure once it has not settled within `ms`. */
function within<T>(call: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  return Promise.race([call, late]).finally(() => clearTimeout(timer));
}

describe('put from a FIFO path', () => {
  it('takes all a writer already waiting on it writes, the writer never cut off', async () => {
    env = await startServer();
    const client = await env.connect();
    const dir = await tempDirs.make();
    // Past a pipe's 64 KiB buffer: a writer cut off meets EPIPE before its end.
    const chunk = randomBytes(32 * 1024).toString('hex');
    const content = Buffer.from(chunk.repeat(16));
    // Several: the lost writes came from a race between the two opens and the writer.
    for (let i = 0; i < 5; i++) {
      const fifo = mkfifo(join(dir, `pipe${i}`));
      const writer = await writerWaitingOn(fifo, chunk, 16);
      const result = await within(client.put(`f${i}`, fifo), 5_000);
      expect(result.entry.size).toBe(content.length);
      expect(await within(writer.exited, 5_000)).toBe(0);
      expect((await client.getBuffer(`f${i}`)).equals(content)).toBe(true);
    }
  });

  it('with no writer yet, waits for one without holding a thread, and a cancel ends it at once', async () => {
    env = await startServer();
    const client = await env.connect();
    const dir = await tempDirs.make();
    const fifo = mkfifo(join(dir, 'pipe'));
    const controller = new AbortController();
    const put = client.put('f', fifo, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Its open did not wait in a threadpool thread (an fs request pending would show here).
    expect(process.getActiveResourcesInfo()).not.toContain('FSReqCallback');
    controller.abort();
    await expect(within(put, 2_000)).rejects.toMatchObject({ code: 'CANCELLED' });
    // Let go: no reader holds it open any more (a writer's open without waiting finds none).
    expect(() => openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)).toThrow(/ENXIO/);
    await expect(client.stat('f')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('a terminal (a pty) likewise: read as a stream to its end of file, and a cancel with no one typing ends it at once', async () => {
    env = await startServer();
    const client = await env.connect();
    // A pseudo-terminal held open by python: its slave's path is printed; 'type' makes it type a
    // line and end of file (Ctrl-D) into it.
    const script = [
      'import os, pty, sys',
      'master, slave = pty.openpty()',
      'print(os.ttyname(slave), flush=True)',
      'for line in sys.stdin:',
      '    os.write(master, b"hello terminal\\n\\x04")',
    ].join('\n');
    const python = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'ignore'] });
    writers.add(python);
    const path = await within(
      new Promise<string>((resolve, reject) => {
        python.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
        python.once('exit', (code) => reject(new Error(`python3 exited ${code}`)));
      }),
      5_000,
    );
    const controller = new AbortController();
    const idle = client.put('idle', path, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Its read waits on the loop, not in a threadpool thread that a cancel could not free.
    expect(process.getActiveResourcesInfo()).not.toContain('FSReqCallback');
    controller.abort();
    await expect(within(idle, 2_000)).rejects.toMatchObject({ code: 'CANCELLED' });
    const typed = client.put('typed', path);
    python.stdin.write('type\n');
    const result = await within(typed, 5_000);
    expect((await client.getBuffer('typed')).toString()).toBe('hello terminal\n');
    expect(result.entry.size).toBe(15);
  });
});
