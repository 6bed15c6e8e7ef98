/** Files in memory, gone when the process exits: FsStorage over a fresh memfs volume. */

import { constants as bufferConstants } from 'node:buffer';
import { Volume } from 'memfs';
import type { FsFileHandle } from './fsApi.js';
import { FsStorage } from './fsStorage.js';

/** An empty in-memory tree (memfs), lost when the process exits: for tests and throwaway servers. */
export class MemoryStorage extends FsStorage {
  /** The volume holding the files, for tests that set up what clients cannot (symlinks, say). */
  readonly volume: Volume;

  constructor() {
    const volume = new Volume();
    super({
      fs: volume.promises,
      root: '/',
      durable: false,
      description: 'memory',
      preallocate: (handle, bytes) => reserveCapacity(volume, handle, bytes),
    });
    this.volume = volume;
  }
}

/** The parts of memfs's internals reserveCapacity touches. */
interface MemfsFileNode {
  buf: Buffer;
  capacity: number;
  size: number;
}

/**
 * Gives a new, empty memfs file a buffer of `bytes` before its first write, without filling it.
 * memfs keeps a file in one buffer and grows it by doubling, copying everything each time, and
 * its truncate() zero-fills: either way a large upload stalls the server's one thread for a
 * second or more inside one synchronous copy into fresh pages. An unfilled buffer is touched a
 * chunk at a time as the writes arrive instead. memfs has no API for this, so it reaches the
 * file's node; should memfs change shape, it does nothing and memfs grows the file as before.
 * Bytes past `size` are never readable, so the unfilled buffer exposes nothing.
 */
function reserveCapacity(volume: Volume, handle: FsFileHandle, bytes: number): boolean {
  if (bytes > bufferConstants.MAX_LENGTH) return false;
  const fd = (handle as { fd?: unknown }).fd;
  const core = (volume as unknown as { _core?: { fds?: Record<number, { node?: unknown }> } })._core;
  const node = typeof fd === 'number' ? (core?.fds?.[fd]?.node as MemfsFileNode | undefined) : undefined;
  if (node === undefined || typeof node.capacity !== 'number' || node.size !== 0) return false;
  node.buf = Buffer.allocUnsafe(bytes); // throws when there is no memory: the caller goes on without
  node.capacity = bytes;
  return true;
}
