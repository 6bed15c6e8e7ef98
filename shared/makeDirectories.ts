/**
 * `mkdir -p`, one level at a time from the deepest directory that exists. Not Node's
 * `mkdir(..., { recursive: true })`: under /proc, where a new name is ENOENT rather than EACCES,
 * that retries the parent and the child forever and never settles (nodejs/node, Linux procfs).
 * Used by the CLI for local directories and by disk storage for its root.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** Something other than a directory is where one is needed: `path` names it, as given. */
export class NotADirectoryError extends Error {
  readonly code = 'ENOTDIR';
  readonly path: string;

  constructor(where: string) {
    super(`not a directory: ${where}`);
    this.name = 'NotADirectoryError';
    this.path = where;
  }
}

/**
 * Makes `dir` and its missing parents. Throws NotADirectoryError where a file is in the way, else
 * the fs error of the level that failed. Paths are walked as given (relative stays relative).
 */
export async function makeDirectories(
  dir: string,
  /** The bits of the last level, if made here (less the umask, as mkdir(2) takes them). */
  mode?: number,
): Promise<void> {
  const missing: string[] = [];
  for (let level = path.normalize(dir); ; level = path.dirname(level)) {
    const found = await stat(level).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (found?.isDirectory()) break;
    if (found !== undefined) throw new NotADirectoryError(level);
    missing.push(level);
    if (path.dirname(level) === level) break;
  }
  const last = missing[0];
  for (const level of missing.reverse()) {
    // EEXIST: made meanwhile (another download of the same tree), which is fine if a directory
    // (through a link too) is there; not a file made meanwhile, or a link to nothing (missing to
    // stat above, there to mkdir): that was "made", and the first write into it failed ENOENT.
    await mkdir(level, level === last ? mode : undefined).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      const found = await stat(level).catch(() => undefined);
      if (found?.isDirectory() !== true) throw new NotADirectoryError(level);
    });
  }
}
