/**
 * A mount that never answers, as a hung NFS server or FUSE daemon leaves one: a FUSE filesystem
 * mounted through /dev/fuse by a python3 process that reads no request, so every call under it
 * waits (in a threadpool thread: never call it on the loop). Needs root, /dev/fuse and python3;
 * where any is missing, the tests that need it are skipped. `remove` ends the process (the calls
 * waiting fail ENOTCONN), then unmounts.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';

const MOUNT = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open('/dev/fuse', os.O_RDWR)
opts = f'fd={fd},rootmode=40000,user_id=0,group_id=0'.encode()
if libc.mount(b'muxftp-hung', sys.argv[1].encode(), b'fuse', 0, opts) != 0:
    sys.exit('mount: ' + os.strerror(ctypes.get_errno()))
print('mounted', flush=True)
sys.stdin.read()
`;

/** True where a hung mount can be made (root, /dev/fuse, python3). */
export const canMountHung: boolean =
  process.platform === 'linux' &&
  process.getuid?.() === 0 &&
  existsSync('/dev/fuse') &&
  spawnSync('python3', ['-c', 'import ctypes'], { stdio: 'ignore' }).status === 0;

/** Mounts a hung filesystem on the directory `dir` (which must exist). */
export async function mountHung(dir: string): Promise<{ remove(): Promise<void> }> {
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
  if (!said.includes('mounted')) {
    child.kill('SIGKILL');
    throw new Error(`no hung mount on ${dir}: ${said}`);
  }
  return {
    async remove() {
      if (child.exitCode === null) {
        child.stdin!.end();
        await once(child, 'exit');
      }
      spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
    },
  };
}
