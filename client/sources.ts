/**
 * Where upload bytes come from: a local file, a buffer in memory, or a readable stream (stdin).
 * Each fills a caller's buffer on demand, so file bytes are read straight into DATA frames.
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { MuxftpError } from '../shared/errors.js';

export interface ByteSource {
  /** Total bytes when known in advance (files and buffers; not pipes). */
  readonly size: number | undefined;
  /** Fills target[offset, offset+length) in part or whole; resolves to bytes filled, 0 at the end. */
  readInto(target: Buffer, offset: number, length: number): Promise<number>;
  close(): Promise<void>;
}

/** What `Client.put` accepts: a local file path, bytes, or a readable stream. */
export type PutSource = string | Uint8Array | Readable;

export async function openSource(source: PutSource): Promise<ByteSource> {
  if (typeof source === 'string') return FileSource.open(source);
  if (source instanceof Uint8Array) return new BufferSource(source);
  return new ReadableSource(source);
}

export function localError(err: unknown, what: string): MuxftpError {
  if (err instanceof MuxftpError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const reason =
    code === 'ENOENT'
      ? 'no such file or directory'
      : code === 'EISDIR'
        ? 'is a directory'
        : String((err as Error)?.message ?? err);
  return new MuxftpError('LOCAL_IO_ERROR', `${what}: ${reason}`, { cause: err });
}

class FileSource implements ByteSource {
  readonly size: number;
  private readonly handle: FileHandle;
  private position = 0;

  private constructor(handle: FileHandle, size: number) {
    this.handle = handle;
    this.size = size;
  }

  static async open(path: string): Promise<FileSource> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, 'r');
      const info = await handle.stat();
      if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      return new FileSource(handle, info.size);
    } catch (err) {
      await handle?.close().catch(() => {});
      throw localError(err, path);
    }
  }

  async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    const { bytesRead } = await this.handle.read(target, offset, length, this.position);
    this.position += bytesRead;
    return bytesRead;
  }

  close(): Promise<void> {
    return this.handle.close().catch(() => {});
  }
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

/** A stream in paused mode: read() only what a frame can carry, so backpressure reaches the pipe. */
class ReadableSource implements ByteSource {
  readonly size = undefined;
  private readonly stream: Readable;
  private leftover: Buffer | null = null;
  private ended = false;
  private failure: Error | undefined;

  constructor(stream: Readable) {
    this.stream = stream;
    stream.on('end', () => {
      this.ended = true;
    });
    stream.on('error', (err) => {
      this.failure = err;
    });
  }

  async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    for (;;) {
      if (this.failure) throw localError(this.failure, 'input stream');
      const chunk: Buffer | null = this.leftover ?? (this.stream.read() as Buffer | null);
      this.leftover = null;
      if (chunk !== null) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        const n = Math.min(length, bytes.length);
        bytes.copy(target, offset, 0, n);
        if (n < bytes.length) this.leftover = bytes.subarray(n);
        return n;
      }
      if (this.ended || this.stream.readableEnded) return 0;
      await new Promise<void>((resolve) => {
        const done = () => {
          this.stream.off('readable', done);
          this.stream.off('end', done);
          this.stream.off('error', done);
          resolve();
        };
        this.stream.on('readable', done);
        this.stream.on('end', done);
        this.stream.on('error', done);
      });
    }
  }

  async close(): Promise<void> {}
}
