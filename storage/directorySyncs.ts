/**
 * Flushes of a directory after renames into it, shared by the uploads that need one at the same
 * time (group commit, as databases do with their log). An upload needs a flush that *starts after*
 * its rename; while one is running, every upload that renamed meanwhile waits for it and then
 * shares the next one. Fifty uploads committing into one directory at once then cost a few
 * directory flushes instead of fifty.
 */
import type { FsPromises } from './fsApi.js';

interface DirectoryState {
  /** The flush under way. */
  running: Promise<void>;
  /** The flush that starts when the running one ends, shared by everyone who asked meanwhile. */
  queued: Promise<void> | undefined;
}

export class DirectorySyncs {
  readonly #fs: FsPromises;
  readonly #byDirectory = new Map<string, DirectoryState>();

  constructor(fs: FsPromises) {
    this.#fs = fs;
  }

  /** Resolves once a flush of `dir` that started after this call has finished. Never rejects. */
  sync(dir: string): Promise<void> {
    const state = this.#byDirectory.get(dir);
    if (state === undefined) {
      const fresh: DirectoryState = { running: Promise.resolve(), queued: undefined };
      fresh.running = this.#flush(dir, fresh);
      this.#byDirectory.set(dir, fresh);
      return fresh.running;
    }
    // The running flush may have started before our rename: wait for it, then share the next.
    state.queued ??= state.running.then(() => {
      state.queued = undefined;
      state.running = this.#flush(dir, state);
      return state.running;
    });
    return state.queued;
  }

  #flush(dir: string, state: DirectoryState): Promise<void> {
    const flushing = syncDirectory(this.#fs, dir).then(() => {
      // Nobody waiting for another: forget the directory.
      if (state.queued === undefined && this.#byDirectory.get(dir) === state) this.#byDirectory.delete(dir);
    });
    return flushing;
  }
}

/**
 * Makes a rename in `dir` durable. Best effort: some platforms (Windows) cannot open a
 * directory, and the data itself is already on disk by then.
 */
async function syncDirectory(fs: FsPromises, dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, 'r');
    await handle.datasync().finally(() => handle.close());
  } catch {
    // Nothing to undo: the upload is committed either way.
  }
}
