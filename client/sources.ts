/**
 * Where upload bytes come from: a local file, a buffer in memory, or a readable stream (stdin).
 * Each fills a caller's buffer on demand, so file bytes are read straight into DATA frames.
 */
import {
  type BigIntStats,
  close,
  closeSync,
  constants,
  fstat,
  fstatSync,
  open,
  openSync,
  read,
  readSync,
} from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { isatty, ReadStream as TerminalReadStream } from 'node:tty';
import { promisify } from 'node:util';
import { CallsInFlight } from '../shared/callsInFlight.js';
import { closedFileError, errnoReason } from '../shared/errnoReasons.js';
import { MuxftpError } from '../shared/errors.js';
import { PERMISSION_BITS } from '../shared/fileModes.js';
import { InlineFileCalls } from '../shared/inlineFileCalls.js';

/**
 * This process's reads of local regular files (put's sources): on the loop while they are fast,
 * one disk for all of them (shared/inlineFileCalls.ts). get's writes go through the threadpool:
 * on the loop, the copies into fresh pages slowed the client's loop, get's bottleneck.
 */
export const localFileCalls = new InlineFileCalls();

export interface ByteSource {
  /** Total bytes when known in advance (files and buffers; not pipes). */
  readonly size: number | undefined;
  /** A regular file's modification time when opened, in ms since the epoch (put keeping times). */
  readonly mtimeMs?: number;
  /** A regular file's permission bits (put keeping them). */
  readonly mode?: number;
  /**
   * Fills target[offset, offset+length) in part or whole; resolves to bytes filled, 0 at the end.
   * A sized source reads the range after the previous call's, so calls may overlap (read-ahead).
   */
  readInto(target: Buffer, offset: number, length: number): Promise<number>;
  close(): Promise<void>;
}

/** What `Client.put` accepts: a local file path, bytes, or a readable stream. */
export type PutSource = string | Uint8Array | Readable;

/**
 * `from`: a resumed upload reads a local file from there (the bytes before it are on the server).
 * `regularOnly`: a path is read only if it is a regular file (LocalFile.open).
 * `hashed`: the file as a resumed upload hashed its first blocks, which it must still be.
 */
export async function openSource(
  source: PutSource,
  from = 0,
  regularOnly = false,
  hashed?: BigIntStats,
): Promise<ByteSource> {
  if (typeof source === 'string') return FileSource.open(source, from, regularOnly, hashed);
  if (source instanceof Uint8Array) return new BufferSource(source);
  // A JavaScript caller's null or number failed deep inside, as "Cannot read properties of null".
  const stream = source as Partial<Readable> | null;
  if (typeof stream?.read !== 'function' || typeof stream.on !== 'function')
    throw new TypeError(`put: the source must be a local path, bytes or a Readable, got ${String(source)}`);
  return new ReadableSource(source);
}

/**
 * Listens for 'error' on a caller's stream from the moment put() is called until the call lets
 * go (the function returned; undefined for a source that is no stream). The put opens its source
 * only after an await (XXH3-128's WebAssembly), and a stream destroyed with an error emits it on a
 * later tick, maybe once the call has failed of it (its source finds the stream errored): that
 * 'error' is the call's, and unhandled it would end the process. A stream destroyed by then keeps
 * the listener (it emits nothing else); one still open is the caller's again.
 */
export function holdStreamErrors(source: PutSource): (() => void) | undefined {
  const stream = source as Partial<Readable> | null;
  if (typeof source === 'string' || source instanceof Uint8Array || typeof stream?.on !== 'function')
    return undefined;
  const ignore = (): void => {};
  stream.on('error', ignore);
  return () => {
    if (stream.destroyed !== true) stream.off?.('error', ignore);
  };
}

export function localError(err: unknown, what: string): MuxftpError {
  if (err instanceof MuxftpError) return err;
  // Same order as the server's messages: the reason, then the path.
  return new MuxftpError('LOCAL_IO_ERROR', `${errnoReason(err)}: ${what}`, { cause: err });
}

const openAsync = promisify(open);
const readAsync = promisify(read);
const closeAsync = promisify(close);
const fstatAsync = promisify(fstat);
/** open(2) flags that never wait for a FIFO's writer. */
const READ_WITHOUT_WAITING = constants.O_RDONLY | constants.O_NONBLOCK;

/** What a caller that planned a regular file finds something else at its open (a FIFO swapped in). */
export function notRegularFileError(path: string): MuxftpError {
  return new MuxftpError('LOCAL_IO_ERROR', `not a regular file: ${path}`);
}

/** An open that failed for what the path is, not a regular file: a socket (ENXIO), a device with no driver (ENODEV). */
function cannotOpenKind(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENXIO' || code === 'ENODEV';
}

/** fstat(2), on the loop while file calls are fast. */
function statDescriptor(fd: number): Promise<BigIntStats> {
  return localFileCalls.run(
    () => fstatSync(fd, { bigint: true }),
    () => fstatAsync(fd, { bigint: true }),
  );
}

/** close(2), on the loop while file calls are fast. */
function closeDescriptor(fd: number): Promise<void> {
  return localFileCalls.run(
    () => closeSync(fd),
    () => closeAsync(fd),
  );
}

/**
 * A local file by its descriptor: opened, stat'ed, read and closed on the loop while file calls
 * are fast (localFileCalls). For a small file the threadpool hand-offs of its open, stat and close
 * cost more than the calls: 40–90 µs of CPU per file on our 2-core VMs. Like FileHandle, close()
 * waits for reads still in the threadpool, so the number cannot name another file when they run.
 */
export class LocalFile {
  readonly #fd: number;
  #closed = false;
  readonly #calls = new CallsInFlight();
  /**
   * The fstat the open made to tell a regular file, kept so the caller's first look at the file
   * (size, times) costs no second call; undefined for what was opened again (a device).
   */
  readonly statsAtOpen: BigIntStats | undefined;

  private constructor(fd: number, statsAtOpen?: BigIntStats) {
    this.#fd = fd;
    this.statsAtOpen = statsAtOpen;
  }

  /**
   * The file at `path`, opened without waiting for a writer (O_NONBLOCK): a regular file; a FIFO
   * or a terminal, kept as opened, to be read as a stream (toStream); anything else (a device)
   * opened again, through the threadpool, for reads that wait. With `regularOnly` (a file the caller found
   * regular, as the CLI's put plans its files) anything but a regular file fails `not a regular
   * file`: a FIFO swapped in since, whose waiting open held a threadpool thread that Node's exit
   * joins, so that only SIGKILL ended the process.
   */
  static async open(path: string, { regularOnly = false } = {}): Promise<LocalFile> {
    const file = await LocalFile.#openWithoutWaiting(path);
    const stats = file?.statsAtOpen;
    if (stats?.isFile() === true || (file?.readsAsStream === true && !regularOnly)) return file!;
    await file?.close();
    if (regularOnly) throw notRegularFileError(path);
    return new LocalFile(await openAsync(path, 'r'));
  }

  /**
   * The regular file at `path`, or undefined for anything else (a FIFO, a device, a socket, which
   * cannot be opened at all), whose open never waits (O_NONBLOCK, which reads of a regular file
   * ignore): for a look at what a local file holds (get -c's blocks, --skip-identical), where a
   * FIFO with no writer would wait for ever.
   */
  static async openRegular(path: string): Promise<LocalFile | undefined> {
    const file = await LocalFile.#openWithoutWaiting(path);
    if (file?.statsAtOpen?.isFile() === true) return file;
    await file?.close();
    return undefined;
  }

  /** What is at `path`, opened with O_NONBLOCK and stat'ed; undefined for what cannot be opened for what it is. */
  static async #openWithoutWaiting(path: string): Promise<LocalFile | undefined> {
    let fd: number;
    try {
      fd = await localFileCalls.run(
        () => openSync(path, READ_WITHOUT_WAITING),
        () => openAsync(path, READ_WITHOUT_WAITING),
      );
    } catch (error) {
      if (cannotOpenKind(error)) return undefined;
      throw error;
    }
    let stats: BigIntStats;
    try {
      stats = await statDescriptor(fd);
    } catch (error) {
      // The fstat's failure is the one to tell.
      await closeDescriptor(fd).catch(() => {});
      throw error;
    }
    return new LocalFile(fd, stats);
  }

  stat(): Promise<BigIntStats> {
    const fd = this.#fd;
    return this.#track(() => statDescriptor(fd));
  }

  /** Reads at `position`, on the loop while reads are fast. */
  readAt(target: Buffer, offset: number, length: number, position: number): Promise<number> {
    const fd = this.#fd;
    return this.#track(() =>
      localFileCalls.run(
        () => readSync(fd, target, offset, length, position),
        async () => (await readAsync(fd, target, offset, length, position)).bytesRead,
      ),
    );
  }

  /** Reads at `position` through the threadpool, never on the loop: a read that may block (a pseudo-file). */
  async readAtInPool(target: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.#track(() => readAsync(this.#fd, target, offset, length, position))).bytesRead;
  }

  /**
   * Reads what comes next (a device, a pseudo-file), through the threadpool: it may wait. A device
   * whose read waits for ever holds that thread, which Node's exit joins; FIFOs and terminals, whose
   * reads wait for someone, never come here (toStream).
   */
  async readNext(target: Buffer, offset: number, length: number): Promise<number> {
    return (await this.#track(() => readAsync(this.#fd, target, offset, length, null))).bytesRead;
  }

  /** A FIFO or a terminal: what toStream() reads, waiting on the loop for whoever writes. */
  get readsAsStream(): boolean {
    const stats = this.statsAtOpen;
    return stats?.isFIFO() === true || (stats?.isCharacterDevice() === true && isatty(this.#fd));
  }

  /**
   * A FIFO opened without waiting, or a terminal, as a stream: its descriptor goes to a pipe
   * socket (a tty stream) that the loop polls, so the read waits for the writer (someone typing)
   * there, never in a threadpool thread (which Node's exit joins, and a cancel cannot free), and
   * the FIFO is opened once: an open to look and another to read let a writer waiting on it in, to
   * a reader that then went (its writes failing EPIPE). The stream owns the descriptor from then
   * on: destroying it closes it.
   */
  toStream(): Readable {
    if (this.#closed) throw closedFileError();
    const stream =
      this.statsAtOpen?.isFIFO() === true
        ? new Socket({ fd: this.#fd, readable: true, writable: false })
        : new TerminalReadStream(this.#fd);
    this.#closed = true;
    return stream;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#calls.allSettled();
    await closeDescriptor(this.#fd);
  }

  /**
   * Starts `start`'s call unless the file is closed: started first and refused after, a call ran
   * on a descriptor closed (or given to another file since) and its failure went unhandled, which
   * killed a `put` whose upload a server refused at its open-file cap as its last read ended.
   */
  #track<T>(start: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedFileError());
    return this.#calls.track(start());
  }
}

class FileSource implements ByteSource {
  /** Undefined for a device, or a file of size 0 that reads content: read to its end, in order, like a stream (a FIFO, `put <(cmd)`, is a ReadableSource). */
  readonly size: number | undefined;
  readonly mtimeMs: number | undefined;
  readonly mode: number | undefined;
  private readonly path: string;
  private readonly file: LocalFile;
  /** The regular file's size, modification and change times when opened (size in bytes, times in ns). */
  private readonly sizeAtOpen: bigint;
  private readonly mtimeNs: bigint;
  private readonly ctimeNs: bigint;
  private position = 0;

  private constructor(path: string, file: LocalFile, info: BigIntStats, from: number, unsized: boolean) {
    this.path = path;
    this.file = file;
    this.size = info.isFile() && !unsized ? Number(info.size) : undefined;
    this.sizeAtOpen = info.size;
    this.mtimeNs = info.mtimeNs;
    this.ctimeNs = info.ctimeNs;
    this.mtimeMs = info.isFile() ? Number(info.mtimeNs) / 1e6 : undefined;
    this.mode = info.isFile() ? Number(info.mode) & PERMISSION_BITS : undefined;
    this.position = from;
  }

  /**
   * A FIFO or a terminal is read as a stream (LocalFile.toStream), from where its writer is.
   * `hashed`: the file when a resumed upload hashed the blocks before `from`; one written since
   * fails as one written while it is read does: the server's blocks are that version's, and END's
   * D, computed from their digests, would vouch for them with another version's rest.
   */
  static async open(path: string, from = 0, regularOnly = false, hashed?: BigIntStats): Promise<ByteSource> {
    let file: LocalFile | undefined;
    try {
      file = await LocalFile.open(path, { regularOnly });
      const info = file.statsAtOpen ?? (await file.stat());
      if (file.readsAsStream) {
        // A resumed put's plan found a regular file there: a FIFO swapped in since has no offset.
        if (from > 0) throw notRegularFileError(path);
        return new ReadableSource(file.toStream(), { name: path, owned: true });
      }
      if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      // A regular file that says it is empty may not be: /proc's have a size of 0 and content made
      // as they are read (stored as 0 bytes, they were lost). One read tells; content is read to
      // its end, as a pipe's is.
      const unsized =
        info.isFile() && info.size === 0n && (await file.readAtInPool(Buffer.alloc(1), 0, 1, 0)) > 0;
      // A resumed put's plan found a regular file of its size there: what has no size (a device
      // swapped in since) has no offset either.
      if (from > 0 && !info.isFile()) throw notRegularFileError(path);
      if (from > 0 && (unsized || (hashed !== undefined && !sameVersion(info, hashed))))
        throw new MuxftpError('LOCAL_IO_ERROR', `file changed while being uploaded: ${path}`);
      return new FileSource(path, file, info, from, unsized);
    } catch (err) {
      await file?.close().catch(() => {});
      throw localError(err, path);
    }
  }

  /**
   * A regular file: reads at the position after the previous call's range, so two reads may be in
   * flight at once, on the loop while reads are fast. A device, or a file whose size said 0: the
   * next bytes, through the threadpool (a device's read may wait), one read at a time.
   */
  async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    if (this.size === undefined) {
      const bytesRead = await this.file.readNext(target, offset, length);
      // A regular file read as a stream (its size said 0): one written meanwhile is no version of it.
      if (bytesRead === 0 && this.mtimeMs !== undefined) await this.checkUnchanged();
      return bytesRead;
    }
    const position = this.position;
    this.position += length;
    const bytesRead = await this.file.readAt(target, offset, length, position);
    // Ended before its size (truncated meanwhile): said as any other change, naming the file.
    if (bytesRead < Math.min(length, this.size - position))
      throw new MuxftpError('LOCAL_IO_ERROR', `file changed while being uploaded: ${this.path}`);
    if (position + length >= this.size) await this.checkUnchanged();
    return bytesRead;
  }

  /**
   * After the last read: a file written meanwhile (rewritten in part, or grown, as a log is) was
   * read as no version of it, so the upload fails rather than store that, as tar's "file changed
   * as we read it". Its size, modification time and change time are compared with those at open:
   * the change time as tar does, for an edit that puts the modification time back (`touch -r`),
   * which no one can set (a chmod or a rename of the file meanwhile fails it too).
   */
  private async checkUnchanged(): Promise<void> {
    let info: BigIntStats;
    try {
      info = await this.file.stat();
    } catch (err) {
      throw localError(err, this.path);
    }
    if (info.size !== this.sizeAtOpen || info.mtimeNs !== this.mtimeNs || info.ctimeNs !== this.ctimeNs)
      throw new MuxftpError('LOCAL_IO_ERROR', `file changed while being uploaded: ${this.path}`);
  }

  close(): Promise<void> {
    return this.file.close().catch(() => {});
  }
}

/** The same file, not written since: what FileSource.checkUnchanged compares, and its device and inode. */
function sameVersion(a: BigIntStats, b: BigIntStats): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

class BufferSource implements ByteSource {
  readonly size: number;
  private readonly bytes: Uint8Array;
  private position = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.size = bytes.length;
  }

  async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    const n = Math.min(length, this.bytes.length - this.position);
    target.set(this.bytes.subarray(this.position, this.position + n), offset);
    this.position += n;
    return n;
  }

  async close(): Promise<void> {}
}

/**
 * A chunk of a stream as bytes. An object-mode stream gives what it was given: Uint8Arrays from a
 * web stream (`Readable.from(response.body)`), which have no Buffer methods, or anything at all.
 */
function chunkBytes(chunk: unknown, name: string): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new MuxftpError(
    'LOCAL_IO_ERROR',
    `${name} gave ${chunk === undefined ? 'undefined' : chunk === null ? 'null' : typeof chunk === 'object' ? 'an object' : `a ${typeof chunk}`}, not bytes`,
  );
}

/** A stream in paused mode: read() only what a frame can carry, so backpressure reaches the pipe. */
class ReadableSource implements ByteSource {
  readonly size = undefined;
  private readonly stream: Readable;
  private leftover: Buffer | null = null;
  private ended = false;
  private closed = false;
  private failure: Error | undefined;
  /** Wakes a readInto() waiting for the stream. */
  private wake: (() => void) | undefined;

  /** What failures name (a FIFO's path); a stream it `owned` (opened here) it destroys on close. */
  private readonly name: string;
  private readonly owned: boolean;

  constructor(stream: Readable, { name = 'input stream', owned = false } = {}) {
    this.stream = stream;
    this.name = name;
    this.owned = owned;
    stream.on('readable', this.streamOnEvent);
    stream.on('end', this.streamOnEnd);
    stream.on('error', this.streamOnError);
    // Destroyed without an 'error' or 'end': the read waiting wakes and finds it so.
    stream.on('close', this.streamOnEvent);
  }

  async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    for (;;) {
      if (this.failure) throw localError(this.failure, this.name);
      if (this.closed) return 0;
      // Destroyed (before it was given, or with no 'error'): its end will never come.
      if (this.stream.destroyed && !this.stream.readableEnded && this.leftover === null) {
        throw this.stream.errored
          ? localError(this.stream.errored, this.name)
          : new MuxftpError('LOCAL_IO_ERROR', `${this.name} closed before its end`);
      }
      const chunk: unknown = this.leftover ?? this.stream.read();
      this.leftover = null;
      if (chunk !== null) {
        const bytes = chunkBytes(chunk, this.name);
        // An object-mode stream passes on an empty chunk; 0 read would be taken for the end.
        if (bytes.length === 0) continue;
        const n = Math.min(length, bytes.length);
        bytes.copy(target, offset, 0, n);
        if (n < bytes.length) this.leftover = bytes.subarray(n);
        return n;
      }
      if (this.ended || this.stream.readableEnded) return 0;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** Detaches from the stream and lets a pending readInto() return; the stream itself stays open, unless owned. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.owned) this.stream.destroy();
    this.stream.off('readable', this.streamOnEvent);
    this.stream.off('end', this.streamOnEnd);
    this.stream.off('error', this.streamOnError);
    this.stream.off('close', this.streamOnEvent);
    this.streamOnEvent();
  }

  private readonly streamOnEvent = (): void => {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  };

  private readonly streamOnEnd = (): void => {
    this.ended = true;
    this.streamOnEvent();
  };

  private readonly streamOnError = (err: Error): void => {
    this.failure = err;
    this.streamOnEvent();
  };
}
