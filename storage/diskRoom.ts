/**
 * Room on the served filesystem for uploads that declared their size. An upload is admitted only
 * if what it declared fits in the free space (statfs) less what the uploads in flight declared and
 * have not written yet; one that does not is refused NO_SPACE before a byte moves. Without it,
 * three 8 MB uploads at once into 20 MB free each got two thirds in and all three failed ENOSPC;
 * now two fit and the third is refused at once. Uploads of unknown size, other processes' writes
 * and a filesystem's own overhead still meet ENOSPC as before: this is admission, not a guarantee.
 */

import { DEFAULTS } from '../shared/defaults.js';
import { StorageError } from '../shared/errors.js';
import { formatBytes } from '../shared/humanUnits.js';

/** An admitted upload's share of the room: shrinks as it writes, gone when it ends. */
export interface RoomClaim {
  wrote(bytes: number): void;
  release(): void;
}

export class DiskRoom {
  readonly #freeBytes: () => Promise<number>;
  /** Declared bytes of the uploads in flight that they have not written yet. */
  #claimed = 0;
  #sample: { freeBytes: number; at: number } | undefined;
  /** A statfs in flight, shared by the uploads that wait for it. */
  #sampling: Promise<number | undefined> | undefined;

  /** `freeBytes`: the filesystem's free space for unprivileged writes now (statfs's bavail). */
  constructor(freeBytes: () => Promise<number>) {
    this.#freeBytes = freeBytes;
  }

  /** Bytes declared and not yet written by the uploads in flight. */
  get claimedBytes(): number {
    return this.#claimed;
  }

  /**
   * Claims `bytes` for an upload of `clientPath`, or throws NO_SPACE when they do not fit. A
   * recent sample with room to spare (twice what is asked) is trusted; a close call asks again.
   */
  async admit(bytes: number, clientPath: string): Promise<RoomClaim> {
    const sample = this.#sample;
    const fresh = sample !== undefined && performance.now() - sample.at < DEFAULTS.diskRoomSampleMs;
    if (!fresh || 2 * (this.#claimed + bytes) > sample.freeBytes) {
      const freeBytes = await this.#sampleNow();
      // A filesystem that cannot say (statfs refused): the writes will tell.
      if (freeBytes === undefined) return this.#claim(bytes);
      const room = Math.max(0, freeBytes - this.#claimed);
      if (bytes > room) {
        throw new StorageError(
          'NO_SPACE',
          `not enough room on the server's disk for ${clientPath}: ${formatBytes(bytes)} declared, ${formatBytes(room)} free for it`,
          clientPath,
        );
      }
    }
    return this.#claim(bytes);
  }

  #claim(bytes: number): RoomClaim {
    this.#claimed += bytes;
    let left = bytes;
    return {
      wrote: (written) => {
        const done = Math.min(left, written);
        left -= done;
        this.#claimed -= done;
      },
      release: () => {
        this.#claimed -= left;
        left = 0;
      },
    };
  }

  #sampleNow(): Promise<number | undefined> {
    if (this.#sampling === undefined) {
      const sampling = this.#freeBytes().then(
        (freeBytes) => {
          this.#sample = { freeBytes, at: performance.now() };
          return freeBytes;
        },
        () => undefined,
      );
      this.#sampling = sampling;
      const done = (): void => {
        if (this.#sampling === sampling) this.#sampling = undefined;
      };
      sampling.then(done, done);
    }
    return this.#sampling;
  }
}
