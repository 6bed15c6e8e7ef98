/**
 * The one scheme for temporary files, on both sides: the server's uploads in progress are
 * `.muxftp-<random hex>.part` beside their target, renamed into place only once verified. What is
 * kept of an interrupted transfer for a resume has a name of its own under the same prefix:
 * `.muxftp-partial-<hash>.part` on the server (put -c), `.muxftp-get-<hash>.part` on the client
 * (get -c). The client's downloads into a file are in progress under that kept name with their
 * host and process added (`.muxftp-get-<hash>.<host>-<pid>-<run>-<n>.part`), whether or not they
 * keep anything should they fail: what a process killed outright left is told by its writer being
 * gone. An older client's downloads that kept nothing were `.muxftp-dl-<random hex>.part`.
 */
import { createHash, randomUUID } from 'node:crypto';

/** Names starting with this (in any letter case) belong to transfers in progress. */
export const TEMP_PREFIX = '.muxftp-';

const TEMP_SUFFIX = '.part';

/** The lock a `muxftp serve` keeps in its root (storage/servedRootLock.ts): reserved, never swept. */
export const SERVED_ROOT_LOCK_NAME = `${TEMP_PREFIX}serve.lock`;

/**
 * True for names reserved for temporary files. Case-insensitive so that a client cannot reach
 * one through a case-insensitive filesystem by changing the case.
 */
export function isTemporaryName(name: string): boolean {
  return name.slice(0, TEMP_PREFIX.length).toLowerCase() === TEMP_PREFIX;
}

/**
 * A fresh temporary name, e.g. `.muxftp-3f9c…e1.part`: a version 4 UUID's 32 hex digits (122
 * random bits: no two collide). randomUUID draws on entropy node fetches in batches, where
 * randomBytes(16) made a call into OpenSSL per upload (3.5 us against 0.6 here).
 */
export function newTemporaryName(): string {
  return `${TEMP_PREFIX}${randomUUID().replaceAll('-', '')}${TEMP_SUFFIX}`;
}

/**
 * A name the server's uploads write under while in progress: a fresh temporary name, or the
 * kept data of an interrupted upload (one an upload continues, when it is there at all).
 */
export function isUploadTemporaryName(name: string): boolean {
  return /^\.muxftp-(?:partial-)?[0-9a-f]{32}\.part$/i.test(name);
}

/** Kept partial uploads (issue #8): reserved like every temporary name, but kept for a while. */
const PARTIAL_PREFIX = `${TEMP_PREFIX}partial-`;

/**
 * The name of the data kept beside `targetName` under `key`: a hash of the target's name, then one
 * of the key (one name per key), so that everything kept for one target shares a prefix
 * (partialNamesPrefix) and goes once that file is committed or removed.
 */
export function partialName(
  targetName: string,
  key: { size: number; algorithm: string; digest?: string; source?: string },
): string {
  const identity = key.digest !== undefined ? key.digest.toLowerCase() : `source:${key.source ?? ''}`;
  const id = createHash('sha256')
    .update(`${targetName}\0${key.size}\0${key.algorithm}\0${identity}`)
    .digest('hex')
    .slice(0, 16);
  return `${partialNamesPrefix(targetName)}${id}${TEMP_SUFFIX}`;
}

/** What the names of all data kept for `targetName` start with, whatever their keys. */
export function partialNamesPrefix(targetName: string): string {
  return `${PARTIAL_PREFIX}${createHash('sha256').update(targetName).digest('hex').slice(0, 16)}`;
}

/** What an interrupted upload kept (partialName): exactly that shape, not any name under its prefix. */
export function isPartialName(name: string): boolean {
  return /^\.muxftp-partial-[0-9a-f]{32}\.part$/i.test(name);
}

/** Downloads a `get` kept when it failed, for `get -c` (the client's side; never a server's partial). */
const DOWNLOAD_PARTIAL_PREFIX = `${TEMP_PREFIX}get-`;

/**
 * The name of what a failed download into `targetName` kept, beside it: one name per target, so
 * `get -c` finds it; fixed length (a hash), so a 255-byte target name still has one.
 */
export function downloadPartialName(targetName: string): string {
  const id = createHash('sha256').update(targetName).digest('hex').slice(0, 32);
  return `${DOWNLOAD_PARTIAL_PREFIX}${id}${TEMP_SUFFIX}`;
}

/** What a failed download kept (downloadPartialName), not one in progress (downloadInProgressName). */
export function isDownloadPartialName(name: string): boolean {
  return /^\.muxftp-get-[0-9a-f]{32}\.part$/i.test(name);
}

/**
 * Who is writing a download in progress: the host tag of the process's machine and pid namespace
 * (shared/hostTag.ts: 16 hex digits; 8, a hash of the hostname alone, in names an older muxftp
 * wrote), the process, a random tag of that process's run (a later process given the same id is
 * another run), a count in it.
 */
export interface DownloadOwner {
  host: string;
  pid: number;
  run: string;
  seq: number;
}

/**
 * The temporary name of a download into `targetName` (one that keeps its whole blocks should it
 * fail, and one that keeps nothing): its kept name with the host and process writing it. A process
 * killed outright (SIGKILL, the OOM killer, a power cut) leaves it behind, and `get -c` tells it
 * from one still being written by the process being gone (parseDownloadInProgress), and continues
 * it; a get of the target that succeeds removes it. Not an upload's shape: a server whose root
 * holds it (a get into a served directory) never takes it for its own crash's leftover.
 */
export function downloadInProgressName(targetName: string, owner: DownloadOwner): string {
  const kept = downloadPartialName(targetName);
  const { host, pid, run, seq } = owner;
  return `${kept.slice(0, -TEMP_SUFFIX.length)}.${host}-${pid}-${run}-${seq}${TEMP_SUFFIX}`;
}

const IN_PROGRESS =
  /^(\.muxftp-get-[0-9a-f]{32})\.([0-9a-f]{16}|[0-9a-f]{8})-(\d{1,10})-([0-9a-f]{8})-(\d{1,15})\.part$/;

/**
 * Who wrote `name` (downloadInProgressName), and the kept name of its target; undefined for
 * any other name.
 */
export function parseDownloadInProgress(name: string): (DownloadOwner & { keptName: string }) | undefined {
  const match = IN_PROGRESS.exec(name);
  if (match === null) return undefined;
  return {
    keptName: `${match[1]!}${TEMP_SUFFIX}`,
    host: match[2]!,
    pid: Number(match[3]),
    run: match[4]!,
    seq: Number(match[5]),
  };
}
