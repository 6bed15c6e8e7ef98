/**
 * Room on the local disks for `get`'s downloads (shared/diskRoom.ts), one account per filesystem:
 * a download starts only if its listed size fits beside what the downloads in flight still have
 * to write, so many at once into too little room store those that fit, and the rest fail at once
 * instead of each failing part-way (a full disk keeps nothing for get -c).
 */

import { lstat, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { leftBehindBytes } from '../client/downloadsLeftBehind.js';
import { keptPartialPath } from '../client/sinks.js';
import { DiskRooms, type RoomClaim } from '../shared/diskRoom.js';
import { MuxftpError } from '../shared/errors.js';
import { formatBytesApart } from '../shared/humanUnits.js';
import { waitedOn } from './localCallsWaiting.js';

/** A download refused for want of local room; `leftBytes`: what an earlier download of it left there. */
export class LocalRoomRefusedError extends MuxftpError {
  leftBytes = 0;
}

export class LocalRooms {
  readonly #rooms = new DiskRooms(
    (dir) => waitedOn(`statfs ${dir}`, statfs(dir)),
    (needed, free, what) => {
      const [neededText, freeText] = formatBytesApart(needed, free);
      return new LocalRoomRefusedError(
        'LOCAL_IO_ERROR',
        `not enough room on the local disk for ${what}: ${neededText} needed, ${freeText} free for it`,
      );
    },
  );
  /** Each target directory's device, looked up once it can be (undefined: it cannot be looked at). */
  readonly #devices = new Map<string, Promise<number | undefined>>();

  /**
   * Claims `bytes` for a download into `local`, or throws LOCAL_IO_ERROR when they do not fit;
   * undefined when its directory cannot be looked at (the download then says what is wrong).
   */
  async admit(local: string, bytes: number): Promise<RoomClaim | undefined> {
    const dir = path.dirname(local);
    let device = this.#devices.get(dir);
    if (device === undefined) {
      // Not kept when it fails: the directory may be made later in the run (-p).
      device = stat(dir).then(
        (stats) => stats.dev,
        () => {
          this.#devices.delete(dir);
          return undefined;
        },
      );
      this.#devices.set(dir, device);
    }
    const dev = await device;
    if (dev === undefined) return undefined;
    return this.#rooms.admit(dev, bytes, local, dir).catch(async (error: unknown) => {
      // A plain get keeps what an earlier one of it left until it is whole itself; get -c uses it.
      if (error instanceof LocalRoomRefusedError) error.leftBytes = await leftFor(local);
      throw error;
    });
  }
}

/** Bytes an earlier download into `local` left beside it (kept on failure, or by a killed process). */
async function leftFor(local: string): Promise<number> {
  const kept = keptPartialPath(local);
  const keptBytes = await lstat(kept).then(
    (info) => (info.isFile() ? info.size : 0),
    () => 0,
  );
  return Math.max(keptBytes, await leftBehindBytes(kept));
}
