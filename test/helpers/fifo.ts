/** FIFOs for tests of what opens and reads them. */
import { spawnSync } from 'node:child_process';

/** Makes a FIFO (named pipe) at `path` with mkfifo(1); returns `path`. */
export function makeFifo(path: string): string {
  const made = spawnSync('mkfifo', [path]);
  if (made.status !== 0) throw new Error(`mkfifo ${path}: ${made.stderr?.toString() ?? made.error?.message}`);
  return path;
}
