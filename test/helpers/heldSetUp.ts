/** Holds uploads before they are set up, so a test can send on a stream the server has not set up yet. */
import { StorageError } from '../../shared/errors.js';
import type { Storage } from '../../storage/types.js';

/** Holds every createUpload until the returned function is called; `fail` makes them fail then. */
export function holdSetUp(storage: Storage, fail = false): () => void {
  const createUpload = storage.createUpload.bind(storage);
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  storage.createUpload = async (path, options) => {
    await released;
    if (fail) throw new StorageError('IO_ERROR', `set-up failed on purpose: ${path}`, path);
    return createUpload(path, options);
  };
  return release;
}
