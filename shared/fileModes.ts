/**
 * Permission bits carried by a transfer: put and get give a new file its source's read, write and
 * execute bits, less what the receiving side's umask takes away, as scp and rsync do (a script
 * stays executable, a private file private). Never the setuid, setgid or sticky bits.
 */

/** The bits a transfer carries: read, write and execute for owner, group and others. */
export const PERMISSION_BITS = 0o777;

/**
 * What a server keeps for itself of what it serves, whatever a client asks: reading and writing
 * a file (to serve it, and continue an upload of it), and everything on a directory (to list it,
 * and create and remove in it).
 */
export const SERVER_OWN_FILE_BITS = 0o600;
export const SERVER_OWN_DIRECTORY_BITS = 0o700;

export const isPermissionBits = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= PERMISSION_BITS;

/**
 * `source`'s bits as a file created with them would have them, under the umask that gave a file
 * opened with node's default mode (0o666) the mode `created`. The umask is read off that file
 * rather than asked: process.umask() with no argument sets it twice, and a file another thread
 * creates meanwhile escapes it. A umask's execute bits are taken to follow its read bits, as in
 * every common one (022, 027, 077, 002).
 */
export function underCreationMask(source: number, created: number): number {
  const readWrite = created & 0o666;
  return source & PERMISSION_BITS & (readWrite | ((readWrite & 0o444) >> 2));
}

/** An open file, new, created with node's default mode: storage's handles, FileHandle, SinkFile. */
export interface ModableFile {
  stat(): Promise<{ mode: number | bigint }>;
  chmod(mode: number): Promise<void>;
}

/**
 * Gives a file just created the `source` bits as its umask allows them, and at least `floor`
 * (the server keeps reading and writing what it serves). Nothing is called when it has them.
 */
export async function keepPermissionBits(file: ModableFile, source: number, floor = 0): Promise<void> {
  const created = Number((await file.stat()).mode) & PERMISSION_BITS;
  const wanted = underCreationMask(source, created) | floor;
  if (wanted !== created) await file.chmod(wanted);
}
