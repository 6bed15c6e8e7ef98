/**
 * `muxftp get FILE TARGET` where TARGET already exists and is no regular file: a FIFO, a device
 * (`/dev/null`, `/dev/stdout`) or a link to one. It is written in place, as `cp` and `curl -o`
 * write into it, never replaced by a regular file (as root, `get f /dev/null` used to rename a
 * downloaded file onto /dev/null) nor refused for the directory it sits in (`/dev`, not writable
 * for a user). Real server on 127.0.0.1, the real CLI. Needs dist/ (npm run build).
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_BIN, runCli } from './helpers/cliProcess.js';
import { makeFifo, waitsInFifoOpen } from './helpers/fifo.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-special-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/** A FIFO at `path`, and a reader (`cat`) that collects what is written into it, bounded in time. */
function fifoWithReader(path: string): Promise<Buffer> {
  makeFifo(path);
  return new Promise((resolve, reject) => {
    const reader = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    reader.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const timer = setTimeout(() => reader.kill('SIGKILL'), 15_000);
    reader.once('error', reject);
    reader.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** The CLI with its stdout on the regular file `outPath` (emptied), as the shell's `>` does. */
async function cliWithStdoutOn(
  outPath: string,
  cwd: string,
  args: string[],
): Promise<{ code: number | null; stderr: string }> {
  const out = await open(outPath, 'w');
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI_BIN, '--server', `127.0.0.1:${server!.port}`, ...args], {
        cwd,
        stdio: ['ignore', out.fd, 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
  } finally {
    await out.close();
  }
}

/** A server holding data.bin (300 kB), and a FIFO in a temp dir with a reader collecting it. */
async function servedFileAndFifo(): Promise<{
  content: Buffer;
  dir: string;
  fifo: string;
  received: Promise<Buffer>;
}> {
  server = await startServer();
  const content = randomBytes(300_000);
  const uploader = await server.connect();
  await uploader.put('data.bin', content);
  const dir = await tempDirs.make();
  const fifo = join(dir, 'pipe');
  return { content, dir, fifo, received: fifoWithReader(fifo) };
}

describe('get into an existing FIFO or device', () => {
  it('writes the file into a FIFO, which stays a FIFO, with nothing left beside it', async () => {
    const { content, dir, fifo, received } = await servedFileAndFifo();

    const result = await runCli(['--server', `127.0.0.1:${server!.port}`, 'get', 'data.bin', fifo], dir);

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await received).equals(content)).toBe(true);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(dir)).toEqual(['pipe']);
  });

  it('get -c into a FIFO writes the whole file into it (nothing to continue from): the FIFO is not read', async () => {
    const { content, dir, fifo, received } = await servedFileAndFifo();

    // Before, -c opened the FIFO to read it (its blocks to continue from): that waits for a
    // writer, and there was none, so the command hung until killed.
    const result = await runCli(
      ['--server', `127.0.0.1:${server!.port}`, 'get', '-c', 'data.bin', fifo],
      dir,
      { timeoutMs: 10_000 },
    );

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await received).equals(content)).toBe(true);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
  });

  it('writes through a symbolic link to a FIFO (as /dev/stdout is one), keeping the link', async () => {
    server = await startServer();
    const uploader = await server.connect();
    await uploader.put('note.txt', Buffer.from('through the link\n'));
    const dir = await tempDirs.make();
    const fifo = join(dir, 'pipe');
    const received = fifoWithReader(fifo);
    await symlink('pipe', join(dir, 'out'));

    const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'get', 'note.txt', 'out'], dir);

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await received).toString()).toBe('through the link\n');
    expect((await lstat(join(dir, 'out'))).isSymbolicLink()).toBe(true);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(['out', 'pipe']);
  });

  it('writes through a link to its own stdout redirected to a file (/dev/stdout > out), keeping the link', async () => {
    server = await startServer();
    const uploader = await server.connect();
    await uploader.put('note.txt', Buffer.from('into the redirected stdout\n'));
    const dir = await tempDirs.make();
    // As /dev/stdout is, without touching the real one: a link to this process's descriptor 1.
    await symlink('/proc/self/fd/1', join(dir, 'stdout'));
    const run = await cliWithStdoutOn(join(dir, 'out.txt'), dir, ['get', 'note.txt', 'stdout']);

    // Before, the link was replaced by a downloaded file (as root, `get f /dev/stdout > out`
    // replaced /dev/stdout) and out.txt stayed empty.
    expect(run).toEqual({ code: 0, stderr: '' });
    expect((await lstat(join(dir, 'stdout'))).isSymbolicLink()).toBe(true);
    expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('into the redirected stdout\n');
    expect((await readdir(dir)).sort()).toEqual(['out.txt', 'stdout']);

    // Named itself, not through a link, stdout's file is replaced as any target: --json's line goes
    // to the file the shell opened, not over the downloaded bytes.
    const again = await cliWithStdoutOn(join(dir, 'out.txt'), dir, ['get', '--json', 'note.txt', 'out.txt']);
    expect(again).toEqual({ code: 0, stderr: '' });
    expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('into the redirected stdout\n');
  });

  it('Ctrl-C while it waits for a reader of the FIFO exits 130 at once, leaving the FIFO', async () => {
    server = await startServer();
    const uploader = await server.connect();
    await uploader.put('data.bin', randomBytes(1000));
    const dir = await tempDirs.make();
    const fifo = join(dir, 'pipe');
    makeFifo(fifo);
    // No reader ever comes: the CLI's open of the FIFO waits until Ctrl-C. Sent once that open
    // waits (a thread of the CLI in the kernel's FIFO open): a fixed 1.5 s from the spawn could
    // pass before a loaded machine had the CLI running, and 300 ms after its stat before it had
    // planned the transfer (then it is the "interrupted" of a command, not the get's "cancelled").
    let cli: ChildProcess | undefined;
    const interrupt = until(
      () => cli?.pid !== undefined && waitsInFifoOpen(cli.pid),
      "the CLI's open of the FIFO waiting for a reader",
      { timeoutMs: 8_000 },
    );

    const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'get', 'data.bin', fifo], dir, {
      interruptWhen: interrupt,
      timeoutMs: 10_000,
      children: { add: (child) => (cli = child) },
    });

    expect(result.signal).toBeNull(); // not killed by the test's timeout
    expect(result.code).toBe(130);
    expect(result.stderr).toBe('muxftp: get data.bin: cancelled (CANCELLED)\n');
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(dir)).toEqual(['pipe']);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'writes into a character device (a null device made here) and leaves it one',
    async () => {
      server = await startServer();
      const uploader = await server.connect();
      await uploader.put('data.bin', randomBytes(100_000));
      const dir = await tempDirs.make();
      const device = join(dir, 'null');
      // The same device as /dev/null (1, 3), in a temporary directory: the real one is never at risk.
      const made = spawnSync('mknod', [device, 'c', '1', '3']);
      expect(made.status, made.stderr.toString()).toBe(0);

      const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'get', 'data.bin', device], dir);

      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect((await lstat(device)).isCharacterDevice()).toBe(true);
      expect(await readdir(dir)).toEqual(['null']);
    },
  );

  it('still replaces a regular file atomically (the hidden temporary file and rename)', async () => {
    server = await startServer();
    const uploader = await server.connect();
    await uploader.put('note.txt', Buffer.from('new'));
    const dir = await tempDirs.make();
    await writeFile(join(dir, 'note.txt'), 'old content');

    const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'get', 'note.txt'], dir);

    expect(result.code).toBe(0);
    expect(await readFile(join(dir, 'note.txt'), 'utf8')).toBe('new');
  });
});

describe('get -r into a tree that holds a FIFO or a link to one where the server has a file', () => {
  it('replaces them with the file, as rsync does, writing nothing into them and waiting for no reader', async () => {
    server = await startServer();
    const uploader = await server.connect();
    await uploader.mkdir('site');
    await uploader.put('site/pipe.txt', Buffer.from('was a FIFO\n'));
    await uploader.put('site/linked.txt', Buffer.from('was a link to a FIFO outside\n'));
    await uploader.put('site/plain.txt', Buffer.from('plain\n'));
    const dir = await tempDirs.make();
    await mkdir(join(dir, 'site'));
    // No reader for either: before, the walk's files were written in place as a named target is,
    // so the run waited for ever on the first FIFO's open, and the link led the bytes outside.
    makeFifo(join(dir, 'site', 'pipe.txt'));
    makeFifo(join(dir, 'outside'));
    await symlink(join('..', 'outside'), join(dir, 'site', 'linked.txt'));

    const result = await runCli(['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'site', '-q'], dir, {
      timeoutMs: 10_000,
    });

    expect(result.signal).toBeNull();
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await readFile(join(dir, 'site', 'pipe.txt'), 'utf8')).toBe('was a FIFO\n');
    expect(await readFile(join(dir, 'site', 'linked.txt'), 'utf8')).toBe('was a link to a FIFO outside\n');
    expect((await lstat(join(dir, 'site', 'linked.txt'))).isFile()).toBe(true);
    expect((await lstat(join(dir, 'outside'))).isFIFO()).toBe(true);
    expect((await readdir(join(dir, 'site'))).sort()).toEqual(['linked.txt', 'pipe.txt', 'plain.txt']);
  });

  it('get -r -c and --skip-identical do not open the FIFO to read it either, nor fail on a socket: they replace them', async () => {
    server = await startServer();
    const uploader = await server.connect();
    await uploader.mkdir('site');
    await uploader.put('site/pipe.txt', Buffer.from('was a FIFO\n'));
    await uploader.put('site/socket.txt', Buffer.from('was a socket\n'));
    for (const option of ['-c', '--skip-identical']) {
      const dir = await tempDirs.make();
      await mkdir(join(dir, 'site'));
      makeFifo(join(dir, 'site', 'pipe.txt'));
      // A socket's open fails (ENXIO): -c took that for a local file it could not read, and failed.
      // (python binds one and leaves it; node removes its own when it closes)
      const bound = spawnSync('python3', [
        '-c',
        'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
        join(dir, 'site', 'socket.txt'),
      ]);
      expect(bound.status).toBe(0);

      // -c looked for blocks to continue from in it, and that open waited for a writer (SIGTERM
      // could not end it either: the open held a thread, and the process, for ever).
      const result = await runCli(
        ['--server', `127.0.0.1:${server.port}`, 'get', '-r', 'site', '-q', option],
        dir,
        { timeoutMs: 10_000 },
      );

      expect({ option, signal: result.signal, code: result.code, stderr: result.stderr }).toEqual({
        option,
        signal: null,
        code: 0,
        stderr: '',
      });
      expect(await readFile(join(dir, 'site', 'pipe.txt'), 'utf8')).toBe('was a FIFO\n');
      expect(await readFile(join(dir, 'site', 'socket.txt'), 'utf8')).toBe('was a socket\n');
    }
  });
});
