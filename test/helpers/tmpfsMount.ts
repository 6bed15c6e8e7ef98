/**
 * Small real filesystems for tests of a full disk: a tmpfs of a given size. Mounting needs root
 * with CAP_SYS_ADMIN; where it cannot be done (a container, another OS) the tests that need it
 * are skipped, and failing-backend tests cover what they can.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** True when this process can mount a tmpfs (checked once, with a 64 KiB probe). */
export const canMountTmpfs: boolean = (() => {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = mkdtempSync(join(tmpdir(), 'muxftp-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(probe);
  }
})();

/** A fresh directory with a tmpfs of `size` (mount's syntax: `4m`) on it; `remove` unmounts and removes it. */
export function mountTmpfs(size: string, prefix = 'muxftp-tmpfs-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  return {
    dir,
    remove() {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      rmdirSync(dir);
    },
  };
}
