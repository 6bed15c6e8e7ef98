/**
 * Reading a file a user named that is meant to be small (a config file, a users file, a PEM
 * certificate or key, a credentials file): at most a given size, so a mistake (`--users
 * /dev/zero`, a disk image) fails saying so instead of taking the process's memory, at start or on
 * a SIGHUP reload.
 */
import {
  close,
  closeSync,
  constants,
  createReadStream,
  fstat,
  open as openFd,
  openSync,
  readSync,
  type Stats,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { Socket } from 'node:net';
import { promisify } from 'node:util';

/** How readFileAtMost reads. */
export interface ReadAtMostOptions {
  /**
   * Only a regular file: what is not (a FIFO, a device, a socket) is refused, without waiting in
   * its open or its read. For a file read again while the process serves (a SIGHUP's reload): a
   * FIFO with no writer held the open for ever in a thread-pool thread, the reloads after it, the
   * server's stop behind them, and even an exit (which waits for that thread).
   */
  regularOnly?: boolean;
}

/**
 * The bytes of the file at `path`, at most `maxBytes` (a pipe, /dev/stdin, is read too, in the
 * event loop, but with `options.regularOnly`).
 * Past that, throws `larger than SIZE: not WHAT` (`what` as `a config file`), having read one byte
 * more than the cap; an error opening or reading it is thrown as it is (its errno code kept).
 */
export async function readFileAtMost(
  path: string,
  maxBytes: number,
  what: string,
  options: ReadAtMostOptions = {},
): Promise<Buffer> {
  if (options.regularOnly === true) return readRegularFileAtMost(path, maxBytes, what);
  // A FIFO (`--ca <(…)`, `--credentials /dev/stdin` from a pipe) is opened without waiting for a
  // writer and read in the event loop: opened and read as a file, in a thread-pool thread, one
  // nobody writes held the process for ever, Ctrl-C's exit too (it waits for that thread).
  const fd = await promisify(openFd)(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  let info: Stats;
  try {
    info = await promisify(fstat)(fd);
  } catch (error) {
    close(fd, () => {});
    throw error;
  }
  if (info.isFIFO()) return readPipeAtMost(fd, maxBytes, what);
  // A file, a directory (its read fails EISDIR) or a device: read as it was, by its path.
  await promisify(close)(fd);
  const chunks: Buffer[] = [];
  let total = 0;
  // `end` is inclusive: a byte past the cap is read, and tells a file of exactly the cap from a larger one.
  for await (const chunk of createReadStream(path, { end: maxBytes })) {
    chunks.push(chunk as Buffer);
    total += (chunk as Buffer).length;
  }
  if (total > maxBytes) throw new Error(`larger than ${sizeInWords(maxBytes)}: not ${what}`);
  return Buffer.concat(chunks);
}

/**
 * The bytes of the pipe open (non-blocking) as `fd`, at most `maxBytes`, through a socket of the
 * event loop: the wait for a writer (the kernel reports a FIFO's end only once one has come and
 * gone) is one that a signal's exit does not wait for. The socket owns `fd` and closes it.
 */
function readPipeAtMost(fd: number, maxBytes: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pipe = new Socket({ fd, readable: true, writable: false });
    const chunks: Buffer[] = [];
    let total = 0;
    pipe.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total > maxBytes) {
        pipe.destroy();
        reject(new Error(`larger than ${sizeInWords(maxBytes)}: not ${what}`));
      }
    });
    pipe.on('end', () => {
      pipe.destroy();
      resolve(Buffer.concat(chunks));
    });
    pipe.on('error', reject);
  });
}

/**
 * readFileAtMost of a regular file only. Opened without waiting (O_NONBLOCK: a FIFO's open returns
 * at once; O_NOCTTY: a terminal does not become the process's), then looked at; a regular file's
 * reads ignore O_NONBLOCK.
 */
async function readRegularFileAtMost(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const info = await handle.stat();
    // A directory's read fails EISDIR, as it did.
    if (!info.isFile() && !info.isDirectory()) throw new Error(`not a regular file (${kindOf(info)})`);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw new Error(`larger than ${sizeInWords(maxBytes)}: not ${what}`);
    }
    return Buffer.concat(chunks);
  } finally {
    await handle.close();
  }
}

/** What a file that is not a regular one is, in words. */
function kindOf(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  return 'a device';
}

/**
 * readFileAtMost for a reader that cannot wait (commander's option checks, `--exclude-from`): the
 * same cap, the same error, read in 64 KiB pieces.
 */
export function readFileAtMostSync(path: string, maxBytes: number, what: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) throw new Error(`larger than ${sizeInWords(maxBytes)}: not ${what}`);
    }
  } finally {
    closeSync(fd);
  }
  return Buffer.concat(chunks);
}

function sizeInWords(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / 1024 / 1024} MiB`;
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`;
}
