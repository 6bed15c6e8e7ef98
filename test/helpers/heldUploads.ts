/**
 * Holds uploads mid-way at the storage boundary, so a test can look at the server while an
 * upload is provably unfinished: its writes stop once `passBytes` have reached storage, and go
 * on only after release(). Patches the one storage instance the server was given.
 */
import type { Storage, UploadHandle } from '../../storage/types.js';

export interface HeldUploads {
  /** Resolves once an upload has written `passBytes` and its next write is being held. */
  readonly holding: Promise<void>;
  /** Bytes that reached storage so far, across held uploads. */
  readonly writtenBytes: number;
  /** Lets every held and later write through. */
  release(): void;
}

/** `only`: hold the uploads of these paths alone (as storage is given them); others go through. */
export function holdUploads(storage: Storage, passBytes = 0, only?: (path: string) => boolean): HeldUploads {
  const createUpload = storage.createUpload.bind(storage);
  let written = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let onHolding!: () => void;
  const holding = new Promise<void>((resolve) => {
    onHolding = resolve;
  });
  let isReleased = false;
  void released.then(() => {
    isReleased = true;
  });
  storage.createUpload = async (path, options): Promise<UploadHandle> => {
    const handle = await createUpload(path, options);
    if (only !== undefined && !only(path)) return handle;
    return {
      write: async (chunks) => {
        if (!isReleased && written >= passBytes) {
          onHolding();
          await released;
        }
        await handle.write(chunks);
        for (const chunk of chunks) written += chunk.length;
      },
      commit: (sha256) => handle.commit(sha256),
      abort: () => handle.abort(),
    };
  };
  return {
    holding,
    get writtenBytes() {
      return written;
    },
    release,
  };
}
