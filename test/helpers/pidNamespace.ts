/**
 * A second pid namespace on this machine, under the same hostname, as another container of it
 * has: `unshare --pid` (util-linux), which needs root (CI runs the tests as root).
 */
import { spawnSync } from 'node:child_process';

let refused: string | undefined | null = null;

/** Why no pid namespace can be made here (no unshare, not root), or undefined when one can. */
export function unshareRefused(): string | undefined {
  if (refused === null) {
    const probe = spawnSync('unshare', [...IN_NEW_PID_NAMESPACE, 'true'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
      timeout: 10_000,
    });
    // unshare's own words (not root, no CAP_SYS_ADMIN in a container, an unshare without
    // --kill-child): "it needs root" alone misled where the cause was another.
    const said = probe.stderr?.trim().split('\n')[0];
    refused =
      probe.status === 0
        ? undefined
        : `unshare --pid refused (${probe.error?.message ?? `exit ${probe.status}${said ? `: ${said}` : ''}`}; it needs root)`;
  }
  return refused;
}

/**
 * unshare's arguments before the command to run in a pid namespace of its own (with its own
 * /proc, so its pids are that namespace's); the command dies with unshare.
 */
export const IN_NEW_PID_NAMESPACE: readonly string[] = ['--pid', '--kill-child', '--mount-proc'];
