/**
 * Instruments the storage views a server with accounts serves each home through (Storage.subtree),
 * for tests that watch what the server does in them.
 */
import type { Storage } from '../../storage/types.js';

/** Calls `instrument` once for every home view the server opens from `storage`. */
export function onEachHomeView(storage: Storage, instrument: (view: Storage) => void): void {
  const subtree = storage.subtree.bind(storage);
  const seen = new WeakSet<Storage>();
  storage.subtree = async (path) => {
    const view = await subtree(path);
    if (!seen.has(view)) {
      seen.add(view);
      instrument(view);
    }
    return view;
  };
}

/**
 * Every upload abort the server starts, through `storage` itself or a home view: settled() waits
 * for them all. A quota's change for what an abort keeps lands in the turn the abort settles,
 * before this sees it.
 */
export function watchAborts(storage: Storage): { settled(): Promise<void> } {
  const aborts: Promise<number>[] = [];
  const watch = (view: Storage): void => {
    const createUpload = view.createUpload.bind(view);
    view.createUpload = async (target, options) => {
      const handle = await createUpload(target, options);
      const abort = handle.abort.bind(handle);
      handle.abort = (abortOptions) => {
        const aborted = abort(abortOptions);
        aborts.push(aborted);
        return aborted;
      };
      return handle;
    };
  };
  watch(storage);
  onEachHomeView(storage, watch);
  return {
    async settled() {
      await Promise.all(aborts);
    },
  };
}
