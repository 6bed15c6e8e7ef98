/**
 * Room on a filesystem for writes of a known size. A write is admitted only if it fits in the
 * free space (statfs) less what the writes in flight claimed and have not written yet; one that
 * does not is refused before a byte moves. Without it, three 8 MB uploads at once into 20 MB free
 * each got two thirds in and all three failed ENOSPC; now two fit and the third is refused at
 * once. The server admits uploads of declared size (storage/fsStorage.ts), `get` its downloads
 * (cli/localRoom.ts). Writes of unknown size, other processes' writes and a filesystem's own
 * overhead still meet ENOSPC as before: this is admission, not a guarantee.
 */

import { DEFAULTS } from './defaults.js';
import type { MuxftpError } from './errors.js';

/** An admitted write's share of the room: shrinks as it writes, gone when it ends. */
export interface RoomClaim {
  wrote(bytes: number): void;
  release(): void;
}

export class DiskRoom {
  readonly #freeBytes: (path: string) => Promise<number | undefined>;
  readonly #refusal: (bytes: number, roomBytes: number, what: string) => MuxftpError;
  /** Claimed bytes of the writes in flight that they have not written yet. */
  #claimed = 0;
  #sample: { freeBytes: number; at: number } | undefined;
  /** A statfs in flight, shared by the admissions that wait for it. */
  #sampling: Promise<number | undefined> | undefined;

  /**
   * `freeBytes`: what this process may write now on the filesystem holding `path` (writableBytes),
   * undefined when it cannot tell; `refusal`: the error for `bytes` of `what` that do not fit in
   * `roomBytes`.
   */
  constructor(
    freeBytes: (path: string) => Promise<number | undefined>,
    refusal: (bytes: number, roomBytes: number, what: string) => MuxftpError,
  ) {
    this.#freeBytes = freeBytes;
    this.#refusal = refusal;
  }

  /** Bytes claimed and not yet written by the writes in flight. */
  get claimedBytes(): number {
    return this.#claimed;
  }

  /**
   * Claims `bytes` for a write of `what` into `path` (on this filesystem: where it is asked when
   * a sample is due), or throws the refusal when they do not fit. A recent sample with room to
   * spare (twice what is asked) is trusted; a close call asks again.
   */
  async admit(bytes: number, what: string, path: string): Promise<RoomClaim> {
    const sample = this.#sample;
    const fresh = sample !== undefined && performance.now() - sample.at < DEFAULTS.diskRoomSampleMs;
    if (!fresh || 2 * (this.#claimed + bytes) > sample.freeBytes) {
      const freeBytes = await this.#sampleNow(path);
      // A filesystem that cannot say (statfs refused, no block counts): the writes will tell.
      if (freeBytes === undefined) return this.#claim(bytes);
      const room = Math.max(0, freeBytes - this.#claimed);
      if (bytes > room) throw this.#refusal(bytes, room, what);
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
        // Written: off the cached sample too, or the next admissions within its second count
        // those bytes as free again (three 8 MB puts in turn into 20 MB were all admitted).
        if (this.#sample !== undefined) this.#sample.freeBytes -= done;
      },
      release: () => {
        this.#claimed -= left;
        left = 0;
      },
    };
  }

  #sampleNow(path: string): Promise<number | undefined> {
    if (this.#sampling === undefined) {
      const sampling = this.#freeBytes(path).then(
        (freeBytes) => {
          if (freeBytes !== undefined) this.#sample = { freeBytes, at: performance.now() };
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

/** What DiskRooms reads of statfs(2). */
export interface RoomStats {
  type?: number | bigint;
  bsize: number | bigint;
  blocks: number | bigint;
  bavail: number | bigint;
  bfree?: number | bigint;
}

/**
 * Filesystems whose subvolumes each have a device number of their own while drawing on one
 * pool of blocks, and whose statfs reports that pool's blocks from any of them (btrfs,
 * bcachefs). ZFS is not here: its datasets report blocks of their own.
 */
const POOLED_FILESYSTEM_TYPES: ReadonlySet<number> = new Set([0x9123683e, 0xca451a4e]);

/**
 * The room a filesystem's writes share: its device's, or on a pooled filesystem its pool's,
 * told by type, block size and block count (node's statfs has no f_fsid). Two pools of the same
 * size would share one room: admission more careful than it need be, never less.
 */
export function roomKey(device: number | bigint, stats: RoomStats | undefined): string {
  if (stats?.type !== undefined && POOLED_FILESYSTEM_TYPES.has(Number(stats.type))) {
    return `pool:${Number(stats.type)}:${Number(stats.bsize)}:${Number(stats.blocks)}`;
  }
  return `dev:${Number(device)}`;
}

/**
 * A DiskRoom per filesystem, told apart by device number (roomKey): writes into directories on
 * one filesystem share its room, and one on another (a disk mounted below the served root, a
 * download into another mount) is held to that one's.
 */
export class DiskRooms {
  readonly #rooms = new Map<string, DiskRoom>();
  /** Each device's room key, once its statfs has been read. */
  readonly #keys = new Map<number, Promise<string>>();
  readonly #statfs: (path: string) => Promise<RoomStats>;
  readonly #freeBytes: (path: string) => Promise<number | undefined>;
  readonly #refusal: (bytes: number, roomBytes: number, what: string) => MuxftpError;

  /** `statfs` of a path on the filesystem; `refusal` as DiskRoom's. */
  constructor(
    statfs: (path: string) => Promise<RoomStats>,
    refusal: (bytes: number, roomBytes: number, what: string) => MuxftpError,
  ) {
    this.#statfs = statfs;
    this.#freeBytes = async (path) => writableBytes(await statfs(path));
    this.#refusal = refusal;
  }

  /** DiskRoom.admit on the filesystem `device` (stat's dev of `path` or of a file in it). */
  async admit(device: number | bigint, bytes: number, what: string, path: string): Promise<RoomClaim> {
    const key = await this.#keyOf(Number(device), path);
    let room = this.#rooms.get(key);
    if (room === undefined) {
      room = new DiskRoom(this.#freeBytes, this.#refusal);
      this.#rooms.set(key, room);
    }
    return room.admit(bytes, what, path);
  }

  /** Bytes claimed and not yet written on the filesystem `device`, whose statfs says `stats`. */
  claimedBytes(device: number | bigint, stats: RoomStats): number {
    return this.#rooms.get(roomKey(device, stats))?.claimedBytes ?? 0;
  }

  #keyOf(device: number, path: string): Promise<string> {
    let key = this.#keys.get(device);
    if (key === undefined) {
      key = this.#statfs(path).then(
        (stats) => roomKey(device, stats),
        () => {
          // Not kept: asked again at the next admission.
          this.#keys.delete(device);
          return roomKey(device, undefined);
        },
      );
      this.#keys.set(device, key);
    }
    return key;
  }
}

/**
 * What statfs(2) says this process may still write: root may use the blocks kept for it (bfree),
 * others only bavail. On a pooled filesystem bfree is raw space data cannot all have (btrfs keeps
 * metadata copies): bavail for root too (two 143 MiB puts as root into a btrfs with 229 MB
 * available and 308 MB free were both admitted, and both failed). Undefined for a filesystem
 * that keeps no block counts (sysfs, procfs, many FUSE ones report 0 blocks): its room is
 * unknown, not nil.
 */
export function writableBytes(stats: RoomStats): number | undefined {
  if (Number(stats.blocks) === 0) return undefined;
  const mayUseReserve =
    process.geteuid?.() === 0 &&
    !(stats.type !== undefined && POOLED_FILESYSTEM_TYPES.has(Number(stats.type)));
  const free = mayUseReserve && stats.bfree !== undefined ? stats.bfree : stats.bavail;
  return Number(stats.bsize) * Number(free);
}
