/**
 * Permission bits carried by a transfer: put and get give a new file its source's read, write and
 * execute bits, less what the receiving side's umask takes away, as scp and rsync do (a script
 * stays executable, a private file private). Never the setuid, setgid or sticky bits.
 */

import { readFileSync } from 'node:fs';

/** The bits a transfer carries: read, write and execute for owner, group and others. */
export const PERMISSION_BITS = 0o777;

/**
 * What a server keeps for itself of what it serves, whatever a client asks: reading and writing
 * a file (to serve it, and continue an upload of it), and everything on a directory (to list it,
 * and create and remove in it).
 */
export const SERVER_OWN_FILE_BITS = 0o600;
export const SERVER_OWN_DIRECTORY_BITS = 0o700;

/** What open(2) is asked to give a new file (node's default), less the umask: `--no-perms`'s bits. */
export const NEW_FILE_BITS = 0o666;

/**
 * The bits a transfer's hidden file is created with, a download's beside its target and an
 * upload's on the server (and what a failed one keeps for `get -c`, `put -c`), as the transfer
 * carries its source's bits (`bitsCarried`: keepModes, OPEN's `mode`) or not.
 *
 * Carried: its owner's alone (as rsync's temporary files) until it gets its bits once verified
 * (keepPermissionBits): it holds a private file's bytes for the whole transfer, and a failed one's
 * whole blocks after it (a server's for a day, --partial-retention). Created with NEW_FILE_BITS
 * (0644 under umask 022), any local user could open it, and read on through that descriptor after
 * the final chmod. Where the kernel does not show the umask (processUmask), a file created with
 * NEW_FILE_BITS is what shows it: created so.
 *
 * Not carried (`--no-perms`): NEW_FILE_BITS, and never chmod'ed: its final bits are what the
 * kernel gives a new file, the umask or the directory's default ACL (`setfacl -d -m g::-,o::-`
 * gives 0600), which a chmod to the umask's bits would undo. They are no more private than that, so
 * there is nothing to hide while it is written.
 */
export function transferFileBits(bitsCarried: boolean): number {
  return bitsCarried && processUmask() !== undefined ? HIDDEN_FILE_BITS : NEW_FILE_BITS;
}

/** transferFileBits() of a transfer carrying bits, where the kernel shows the umask. */
const HIDDEN_FILE_BITS = 0o600;

/**
 * The bits to give a hidden file made before (`mode`: a kept partial taken over, made by a
 * version that created them as any new file, or by a transfer that carried no bits) so that what
 * comes next is its owner's alone, as transferFileBits(); undefined when it is so already, when
 * the transfer carries no bits (what it gets then is the kernel's: left as it is), or where the
 * kernel does not show the umask. What others opened meanwhile reads on: only new opens are refused.
 */
export function hiddenBitsFor(mode: number | bigint, bitsCarried: boolean): number | undefined {
  return transferFileBits(bitsCarried) === HIDDEN_FILE_BITS &&
    (Number(mode) & PERMISSION_BITS & ~HIDDEN_FILE_BITS) !== 0
    ? HIDDEN_FILE_BITS
    : undefined;
}

/** What a field of permission bits must be, as an error message says it. */
export const PERMISSION_BITS_WANTED = 'permission bits, an integer from 0 to 511 (0o777)';

export const isPermissionBits = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= PERMISSION_BITS;

/**
 * The umask that gave a file opened with node's default mode (0o666) the mode `created`. Its
 * execute bits are taken to follow its read bits, as in every common one (022, 027, 077, 002).
 */
export function umaskShownBy(created: number): number {
  const readWrite = created & 0o666;
  return ~(readWrite | ((readWrite & 0o444) >> 2)) & PERMISSION_BITS;
}

let umaskRead: { umask: number | undefined } | undefined;

/**
 * This process's umask, where the kernel shows it without it being set (Linux 4.7 and later:
 * /proc/self/status), read once; else undefined. Not process.umask(): asked without an argument it
 * sets the mask twice, and a file another thread creates in between escapes it.
 */
export function processUmask(): number | undefined {
  if (umaskRead === undefined) {
    let umask: number | undefined;
    try {
      const line = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
      if (line !== null) umask = Number.parseInt(line[1]!, 8) & PERMISSION_BITS;
    } catch {
      // No /proc (macOS, Windows): the file's own mode tells.
    }
    umaskRead = { umask };
  }
  return umaskRead.umask;
}

/** The bits of a umask the kernel is given: the group's and others'. */
const GROUP_AND_OTHER_BITS = 0o077;

/**
 * Sets this process's umask (`serve --umask`), at its start: processUmask() says it, and the
 * kernel applies its group and other bits to every file made from then on. Not the owner's: the
 * server keeps its own (SERVER_OWN_*), and under 700 a disk's new directories were 077, ones it
 * could not enter (memory storage kept them).
 */
export function setProcessUmask(mask: number): void {
  process.umask(mask & GROUP_AND_OTHER_BITS);
  umaskRead = { umask: mask & PERMISSION_BITS };
}

/**
 * `bits` (0 to 0o777) less a umask: by default this process's, or none where the kernel does not
 * show it (memory storage, which applies none of its own; disk's kernel masks them again anyway).
 */
export function lessUmask(bits: number, umask = processUmask() ?? 0): number {
  return bits & ~umask & PERMISSION_BITS;
}

/** An open file: storage's handles, FileHandle, SinkFile. */
export interface ModableFile {
  stat(): Promise<{ mode: number | bigint }>;
  chmod(mode: number): Promise<void>;
}

/**
 * Gives a transfer's file `source`'s bits less the umask, and at least `floor` (the server keeps
 * reading and writing what it serves); nothing is called when it has them. Where the kernel does
 * not show the umask, the mode of a file this process just created with node's default mode shows
 * it; a file created earlier (a partial transfer continued) may have been made under another, so
 * it gets no group or other write either way. Without `source`, a file created for a transfer
 * that carries bits (`bitsCarried`, transferFileBits) gets a new file's; one created for a
 * transfer that carries none is left as the kernel made it (its umask or default ACL): nothing is
 * called. One made before and carrying none (kept data taken over by --no-perms) keeps its bits
 * less the umask: made under a looser one (serve --umask tightened since, a shell's 002), it got
 * group or other bits a new file would not get now; and it gets none back (a default ACL's 0600,
 * or a transfer's that carried bits, stays 0600).
 */
export async function keepPermissionBits(
  file: ModableFile,
  source: number | undefined,
  options: { floor?: number; createdHere: boolean; bitsCarried: boolean },
): Promise<void> {
  const kernels = source === undefined && !options.bitsCarried;
  if (kernels && options.createdHere) return;
  const current = Number((await file.stat()).mode) & PERMISSION_BITS;
  const umask =
    processUmask() ?? (options.createdHere ? umaskShownBy(current) : umaskShownBy(current) | 0o022);
  const wanted = lessUmask(kernels ? current : (source ?? NEW_FILE_BITS), umask) | (options.floor ?? 0);
  if (wanted !== current) await file.chmod(wanted);
}
