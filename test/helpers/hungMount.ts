/**
 * A mount that never answers, as a hung NFS server or FUSE daemon leaves one: a FUSE filesystem
 * mounted through /dev/fuse by a python3 process that reads no request, so every call under it
 * waits (in a threadpool thread: never call it on the loop). Needs root, /dev/fuse, python3 and
 * the right to mount (a container without CAP_SYS_ADMIN has none): where any is missing, the tests
 * that need it are skipped. The process unmounts it (lazily) itself as it goes, whatever ends it
 * but SIGKILL: its stdin closed (`remove`, or this process gone however it died: a failed or timed
 * out test's worker killed) or SIGTERM/SIGHUP/SIGINT; the calls waiting then fail ENOTCONN.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';

const LIBC = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
def mount(path):
    fd = os.open('/dev/fuse', os.O_RDWR)
    opts = f'fd={fd},rootmode=40000,user_id=0,group_id=0'.encode()
    if libc.mount(b'muxftp-hung', path.encode(), b'fuse', 0, opts) != 0:
        sys.exit('mount: ' + os.strerror(ctypes.get_errno()))
`;

const MOUNT = `${LIBC}
path = sys.argv[1]
mount(path)
def leave(*_):
    libc.umount2(path.encode(), MNT_DETACH)
    os._exit(0)
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, leave)
print('mounted', flush=True)
sys.stdin.read()
leave()
`;

/** Mounts and unmounts once on a directory of its own: whether mount(2) of FUSE is allowed here. */
const PROBE = `${LIBC}
import tempfile
d = tempfile.mkdtemp(prefix='muxftp-fuse-probe-')
try:
    mount(d)
    libc.umount2(d.encode(), MNT_DETACH)
finally:
    os.rmdir(d)
`;

/** True where a hung mount can be made (root, /dev/fuse, python3, mount(2) allowed). */
export const canMountHung: boolean =
  process.platform === 'linux' &&
  process.getuid?.() === 0 &&
  existsSync('/dev/fuse') &&
  spawnSync('python3', ['-c', PROBE], { stdio: 'ignore', timeout: 10_000 }).status === 0;

/** Whether something is mounted on `dir` (its line in /proc/self/mounts). */
export function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}

/**
 * Mounts a hung filesystem on the directory `dir` (which must exist). `leave` closes the
 * process's stdin, as this process's death would, and waits for it to go (it unmounts as it goes);
 * `remove` does that, then unmounts in case it could not.
 */
export async function mountHung(dir: string): Promise<{ leave(): Promise<void>; remove(): Promise<void> }> {
  const child: ChildProcess = spawn('python3', ['-c', MOUNT, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let said = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  for (let i = 0; i < 100 && !said.includes('mounted') && child.exitCode === null; i++)
    await new Promise((resolve) => setTimeout(resolve, 50));
  const leave = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.stdin!.end();
      await exited;
    }
  };
  const remove = async (): Promise<void> => {
    await leave();
    spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
  };
  if (!said.includes('mounted')) {
    // Mounted, perhaps, but slow to say so: it unmounts as it goes.
    await remove();
    throw new Error(`no hung mount on ${dir}: ${said}`);
  }
  return { leave, remove };
}
