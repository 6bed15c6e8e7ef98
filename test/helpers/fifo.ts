/** FIFOs for tests of what opens and reads them. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Makes a FIFO (named pipe) at `path` with mkfifo(1); returns `path`. */
export function makeFifo(path: string): string {
  const made = spawnSync('mkfifo', [path]);
  if (made.status !== 0) throw new Error(`mkfifo ${path}: ${made.stderr?.toString() ?? made.error?.message}`);
  return path;
}

/**
 * Whether a thread of process `pid` waits in the open of a FIFO for its other end (Linux /proc):
 * its wait channel names the kernel's FIFO open (wait_for_partner, or fifo_open where that is
 * inlined), or, on a kernel that hides wait channels (`0`), it sleeps in an openat(2) (x86-64's
 * 257, arm64's 56). Node opens in a threadpool thread, so every thread is looked at.
 */
export function waitsInFifoOpen(pid: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return threads.some((tid) => {
    try {
      const task = `/proc/${pid}/task/${tid}`;
      const wchan = readFileSync(`${task}/wchan`, 'utf8');
      if (wchan === 'wait_for_partner' || wchan === 'fifo_open') return true;
      if (wchan !== '0') return false;
      const sleeping = /^State:\s+S/m.test(readFileSync(`${task}/status`, 'utf8'));
      const syscall = readFileSync(`${task}/syscall`, 'utf8').split(' ')[0];
      return sleeping && syscall === (process.arch === 'arm64' ? '56' : '257');
    } catch {
      return false;
    }
  });
}
