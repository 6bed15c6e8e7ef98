/**
 * The memory this process may use: its cgroup's limit (a container, systemd's MemoryMax=) when
 * one is set below the machine's, else the machine's. The server's buffer marks and the memory
 * storage's room scale by it, as its open-file cap scales by `ulimit -n`: with defaults sized for
 * a large machine, a server in a 200 MB cgroup was killed by the OOM killer, every connection
 * and every file of a `--memory` server with it (a helper's pass).
 */
import { totalmem } from 'node:os';
import { DEFAULTS } from './defaults.js';

const MiB = 1024 * 1024;

export function processMemoryLimit(): number {
  const machine = totalmem();
  // libuv's reading of the cgroup (v1 and v2); 0 or a huge number where there is none.
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < machine ? constrained : machine;
}

/**
 * What the two server-wide marks (serverOutboundHighWaterBytes, serverUploadBacklogHighWaterBytes)
 * hold together by default: both defaults, but no more than DEFAULTS.bufferedShareOfMemory of the
 * memory the process may use (`serve --max-buffered`'s default too). An even number of MiB.
 */
export function defaultBufferedBytes(memoryLimit = processMemoryLimit()): number {
  const both = DEFAULTS.serverOutboundHighWaterBytes + DEFAULTS.serverUploadBacklogHighWaterBytes;
  const share = Math.floor((memoryLimit * DEFAULTS.bufferedShareOfMemory) / (2 * MiB)) * 2 * MiB;
  return Math.max(2 * MiB, Math.min(both, share));
}
