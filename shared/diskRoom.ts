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

/**
 * What the writes in flight on one filesystem claimed and have not written yet, shared by the
 * DiskRooms that draw on it (one per device: a btrfs pool's subvolumes each have one).
 */
class RoomAccount {
  /** Claimed bytes not yet written. */
  claimedBytes = 0;
  /** The rooms whose samples the writes wear down. */
  readonly rooms = new Set<DiskRoom>();
}

export class DiskRoom {
  readonly #freeBytes: (path: string) => Promise<number | undefined>;
  readonly #refusal: (bytes: number, roomBytes: number, what: string) => MuxftpError;
  readonly #account: RoomAccount;
  #sample: { freeBytes: number; at: number } | undefined;
  /** A statfs in flight, shared by the admissions that wait for it. */
  #sampling: Promise<number | undefined> | undefined;

  /**
   * `freeBytes`: what this process may write now on the filesystem holding `path` (writableBytes),
   * undefined when it cannot tell; `refusal`: the error for `bytes` of `what` that do not fit in
   * `roomBytes`; `account`: where the claims are counted, when other rooms share it.
   */
  constructor(
    freeBytes: (path: string) => Promise<number | undefined>,
    refusal: (bytes: number, roomBytes: number, what: string) => MuxftpError,
    account: RoomAccount = new RoomAccount(),
  ) {
    this.#freeBytes = freeBytes;
    this.#refusal = refusal;
    this.#account = account;
    account.rooms.add(this);
  }

  /** Bytes claimed and not yet written by the writes in flight (in every room of its account). */
  get claimedBytes(): number {
    return this.#account.claimedBytes;
  }

  /** Leaves its account: its sample is no longer worn down by the account's writes. */
  leave(): void {
    this.#account.rooms.delete(this);
  }

  /**
   * Claims `bytes` for a write of `what` into `path` (on this filesystem: where it is asked when
   * a sample is due), or throws the refusal when they do not fit. A recent sample with room to
   * spare (twice what is asked) is trusted; a close call asks again.
   */
  async admit(bytes: number, what: string, path: string): Promise<RoomClaim> {
    const sample = this.#sample;
    const fresh = sample !== undefined && performance.now() - sample.at < DEFAULTS.diskRoomSampleMs;
    if (!fresh || 2 * (this.#account.claimedBytes + bytes) > sample.freeBytes) {
      const freeBytes = await this.#sampleNow(path);
      // A filesystem that cannot say (statfs refused, no block counts): the writes will tell.
      if (freeBytes === undefined) return this.#claim(bytes);
      const room = Math.max(0, freeBytes - this.#account.claimedBytes);
      if (bytes > room) throw this.#refusal(bytes, room, what);
    }
    return this.#claim(bytes);
  }

  #claim(bytes: number): RoomClaim {
    const account = this.#account;
    account.claimedBytes += bytes;
    let left = bytes;
    return {
      wrote: (written) => {
        const done = Math.min(left, written);
        left -= done;
        account.claimedBytes -= done;
        // Written: off the cached samples too, or the next admissions within their second count
        // those bytes as free again (three 8 MB puts in turn into 20 MB were all admitted).
        for (const room of account.rooms) if (room.#sample !== undefined) room.#sample.freeBytes -= done;
      },
      release: () => {
        account.claimedBytes -= left;
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

/** Filesystems that write an overwrite to new blocks (copy on write): btrfs, bcachefs, ZFS. */
const COPY_ON_WRITE_TYPES: ReadonlySet<number> = new Set([...POOLED_FILESYSTEM_TYPES, 0x2fc12fc1]);

/**
 * The account a filesystem's writes share: its device's, or on a pooled filesystem its pool's,
 * told by type, block size and block count (node's statfs has no f_fsid). Two pools of the same
 * size share one account (each keeps its own free-space sample): admission more careful than it
 * need be, never less.
 */
function roomKey(device: number | bigint, stats: RoomStats | undefined): string {
  if (stats?.type !== undefined && POOLED_FILESYSTEM_TYPES.has(Number(stats.type))) {
    return `pool:${Number(stats.type)}:${Number(stats.bsize)}:${Number(stats.blocks)}`;
  }
  return `dev:${Number(device)}`;
}

/**
 * A DiskRoom per filesystem, told apart by device number: writes into directories on one
 * filesystem share its room, and one on another (a disk mounted below the served root, a
 * download into another mount) is held to that one's. The subvolumes of one pool (roomKey) each
 * sample their own free space and count their claims in one account.
 */
export class DiskRooms {
  /** Each device's room, with its account's key as last read. */
  readonly #rooms = new Map<number, { room: DiskRoom; key: string; at: number; copyOnWrite: boolean }>();
  readonly #accounts = new Map<string, RoomAccount>();
  /** A device's key being read, shared by the admissions that wait for it. */
  readonly #reading = new Map<number, Promise<{ key: string; told: boolean; copyOnWrite: boolean }>>();
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

  /**
   * DiskRoom.admit on the filesystem `device` (stat's dev of `path` or of a file in it).
   * `overwriting`: how many of the first bytes written land on blocks the file already has (a
   * kept upload written again from its start); they need no room, but on a copy-on-write
   * filesystem, where an overwrite takes new blocks.
   */
  async admit(
    device: number | bigint,
    bytes: number,
    what: string,
    path: string,
    overwriting = 0,
  ): Promise<RoomClaim> {
    const room = await this.#roomOf(Number(device), path);
    const credit = this.#rooms.get(Number(device))?.copyOnWrite === false ? Math.min(overwriting, bytes) : 0;
    const claim = await room.admit(bytes - credit, what, path);
    return credit > 0 ? afterOverwrite(claim, credit) : claim;
  }

  /** Bytes claimed and not yet written on the filesystem `device`, whose statfs says `stats`. */
  claimedBytes(device: number | bigint, stats: RoomStats): number {
    return this.#accounts.get(roomKey(device, stats))?.claimedBytes ?? 0;
  }

  /**
   * The device's room. Its key is read again once it is as old as a sample: a device number
   * freed (a mount gone) is given to the next one made, and a pool grown has other blocks.
   */
  async #roomOf(device: number, path: string): Promise<DiskRoom> {
    const known = this.#rooms.get(device);
    if (known !== undefined && performance.now() - known.at < DEFAULTS.diskRoomSampleMs) return known.room;
    let reading = this.#reading.get(device);
    if (reading === undefined) {
      reading = this.#statfs(path).then(
        (stats) => ({
          key: roomKey(device, stats),
          told: true,
          copyOnWrite: stats.type !== undefined && COPY_ON_WRITE_TYPES.has(Number(stats.type)),
        }),
        // Cannot tell: its device's own, read again at the next admission.
        () => ({ key: roomKey(device, undefined), told: false, copyOnWrite: true }),
      );
      this.#reading.set(device, reading);
      const done = (): void => {
        this.#reading.delete(device);
      };
      reading.then(done, done);
    }
    const { key, told, copyOnWrite } = await reading;
    const at = told ? performance.now() : Number.NEGATIVE_INFINITY;
    const now = this.#rooms.get(device);
    if (now !== undefined && now.key === key) {
      now.at = at;
      now.copyOnWrite = copyOnWrite;
      return now.room;
    }
    // A new device, its number given to a new filesystem, or its pool resized (other blocks):
    // an account of the new key's. The old room's writes in flight still count in the old
    // account until they end (a pool resized under writes may admit past them meanwhile;
    // merging accounts instead could not tell a grown pool from another one, and would join
    // them for good).
    now?.room.leave();
    let account = this.#accounts.get(key);
    if (account === undefined) {
      account = new RoomAccount();
      this.#accounts.set(key, account);
    }
    const room = new DiskRoom(this.#freeBytes, this.#refusal, account);
    this.#rooms.set(device, { room, key, at, copyOnWrite });
    return room;
  }
}

/**
 * `claim` for a write whose first `overwriteBytes` go over blocks the file has: those wear
 * nothing off it, the bytes after them do (else the claim was spent on the overwrite, and the
 * new tail written after it was counted by nobody).
 */
function afterOverwrite(claim: RoomClaim, overwriteBytes: number): RoomClaim {
  let overwriting = overwriteBytes;
  return {
    wrote(bytes) {
      const over = Math.min(overwriting, bytes);
      overwriting -= over;
      if (bytes > over) claim.wrote(bytes - over);
    },
    release: () => claim.release(),
  };
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
