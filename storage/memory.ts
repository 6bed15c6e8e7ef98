/** Files in memory, gone when the process exits: FsStorage over a fresh memfs volume. */

import { Volume } from 'memfs';
import { FsStorage } from './fsStorage.js';

export class MemoryStorage extends FsStorage {
  /** The volume holding the files, for tests that set up what clients cannot (symlinks, say). */
  readonly volume: Volume;

  constructor() {
    const volume = new Volume();
    super({ fs: volume.promises, root: '/', durable: false, description: 'memory', preallocate: true });
    this.volume = volume;
  }
}
