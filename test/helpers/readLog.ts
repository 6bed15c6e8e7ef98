/**
 * A storage whose file reads are recorded (path, position, length), to see what the server read.
 * Bytes lent instead of read (memory storage's views: ReadHandle.view) count as read.
 */
import { StorageError } from '../../shared/errors.js';
import type { ReadHandle, Storage } from '../../storage/types.js';

interface Read {
  path: string;
  position: number;
  length: number;
}

export class ReadLog {
  readonly storage: Storage;
  readonly #reads: Read[] = [];
  /** A read reaching this position fails once (IO_ERROR), as a failing disk's would. */
  #failAt: number | undefined;

  constructor(storage: Storage) {
    this.storage = new Proxy(storage, {
      get: (target, property) => {
        if (property === 'openRead') {
          return async (path: string) => this.#recorded(path, await target.openRead(path));
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  /** Bytes read from `path` before `end` (as storage sees the path, with its leading slash). */
  bytesBelow(path: string, end: number): number {
    return this.#of(path).reduce(
      (sum, r) => sum + Math.max(0, Math.min(r.position + r.length, end) - r.position),
      0,
    );
  }

  /** Bytes read from `path` at `start` or after. */
  bytesFrom(path: string, start: number): number {
    return this.#of(path).reduce(
      (sum, r) => sum + Math.max(0, r.position + r.length - Math.max(r.position, start)),
      0,
    );
  }

  /** The next read of any file that reaches `position` fails (once). */
  failNextReadReaching(position: number): void {
    this.#failAt = position;
  }

  clear(): void {
    this.#reads.length = 0;
  }

  #of(path: string): Read[] {
    const name = path.replace(/^\//, '');
    return this.#reads.filter((r) => r.path === name);
  }

  #recorded(path: string, handle: ReadHandle): ReadHandle {
    const reads = this.#reads;
    const log = this;
    return new Proxy(handle, {
      get(target, property) {
        if (property === 'view' && typeof target.view === 'function') {
          return (position: number, length: number) => {
            const view = target.view!(position, length);
            if (view !== undefined) reads.push({ path, position, length: view.length });
            return view;
          };
        }
        if (property === 'read') {
          return async (buffer: Buffer, offset: number, length: number, position: number) => {
            if (log.#failAt !== undefined && position + length > log.#failAt) {
              log.#failAt = undefined;
              throw new StorageError('IO_ERROR', `read failed (test): ${path}`, path);
            }
            const bytesRead = await target.read(buffer, offset, length, position);
            reads.push({ path, position, length: bytesRead });
            return bytesRead;
          };
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}
