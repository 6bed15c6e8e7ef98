/**
 * Who "this host" is, for the files that name the process writing them (a get's download in
 * progress, the users file's lock) so that one left by a process that is gone is taken over: a
 * pid says which process it is only within one pid namespace of one running kernel. The hostname
 * alone did not say that: two containers of one hostname (`docker run --hostname`, two pods of a
 * StatefulSet on one volume, `unshare --pid`) or two machines of one name sharing a directory
 * each took the other's live writer, whose pid was not running here, for gone, and removed or
 * took over its file while it was being written.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/** The pid namespace every Linux system starts in (PROC_PID_INIT_INO): it outlives no boot either. */
const INITIAL_PID_NAMESPACE = 'pid:[4026531836]';

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** systemd's machine id (machine-id(5)), where there is one: 32 hex digits, not 'uninitialized'. */
function machineId(): string | undefined {
  for (const path of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    const id = readTrimmed(path);
    if (id !== undefined && /^[0-9a-f]{32}$/i.test(id)) return id.toLowerCase();
  }
  return undefined;
}

function pidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/**
 * What a pid is relative to here, as text: the machine (its machine id, else its kernel's boot
 * id), the pid namespace (Linux), and the hostname. A namespace other than the first lives no
 * longer than the boot, so the boot id is added for it (two containers on two hosts may have one
 * namespace number, or an image's machine id); the first one's keeps the machine id alone, so
 * what a power cut left is still this host's after the restart. Where none of it can be read
 * (no /proc: macOS, the BSDs), the hostname alone, as before.
 */
export function pidScope(): string {
  const namespace = pidNamespace();
  const machine = machineId();
  const boot = readTrimmed('/proc/sys/kernel/random/boot_id');
  const withBoot = machine === undefined || (namespace !== undefined && namespace !== INITIAL_PID_NAMESPACE);
  return [
    `machine=${machine ?? ''}`,
    `boot=${withBoot ? (boot ?? '') : ''}`,
    `pidns=${namespace ?? ''}`,
    `host=${hostname()}`,
  ].join('\n');
}

let tag: string | undefined;

/**
 * This process's host tag, 16 hex digits: a hash of pidScope(). Two processes with one tag probe
 * each other's pids with `kill(pid, 0)` truly; a file tagged otherwise is another's (another
 * container, namespace or machine), whose writer cannot be checked from here: left alone.
 */
export function hostTag(): string {
  // Read once: a process's namespace, machine and boot do not change while it runs.
  tag ??= createHash('sha256').update(`muxftp host tag 2\n${pidScope()}`).digest('hex').slice(0, 16);
  return tag;
}

/**
 * The tag muxftp wrote before hostTag (8 hex digits, a hash of the hostname alone): a file with
 * it was written by an older muxftp, in any container or machine of this name; whether its writer
 * is gone cannot be told from here.
 */
export function legacyHostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

/**
 * This machine as muxftp names it in files others may read (the served root's lock): 32 hex
 * digits, the same across reboots and another on another machine (unless cloned with its machine
 * id); undefined where there is no machine id. An HMAC keyed by the machine id, never the id
 * itself, which machine-id(5) asks to keep confidential.
 */
export function machineTag(): string | undefined {
  if (machine === null) {
    const id = machineId();
    machine =
      id === undefined
        ? undefined
        : createHmac('sha256', id).update('muxftp machine tag').digest('hex').slice(0, 32);
  }
  return machine;
}

/** machineTag's answer, read once; null until asked. */
let machine: string | undefined | null = null;

/**
 * The start time of this process (Linux: /proc/self/stat's 22nd field, clock ticks since boot)
 * with the kernel's boot id: one process's in every thread of it, another for a later process
 * given the same pid. Undefined where it cannot be read (no /proc: macOS, the BSDs).
 */
function processStart(): string | undefined {
  const stat = readTrimmed('/proc/self/stat');
  const boot = readTrimmed('/proc/sys/kernel/random/boot_id');
  if (stat === undefined || boot === undefined) return undefined;
  // The command name (2nd field) may hold spaces and parentheses: count from after its last ')'.
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  return start !== undefined && /^\d+$/.test(start) ? `${boot}\n${start}` : undefined;
}

let run: string | undefined;

/**
 * This run of this process, 8 hex digits, for the files that name their writer (host tag, pid,
 * run): a later process given the same pid has another, so what an earlier one left under this
 * pid is told gone. On Linux a hash of the process's start time and boot, the same in every
 * worker thread and in every copy of muxftp loaded in the process (each has its own modules): a
 * random tag per module there took another thread's live download or users-file write for a gone
 * run of this pid, and removed it. Elsewhere a random tag per module instance, as before.
 */
export function processRunTag(): string {
  run ??= (() => {
    const start = processStart();
    return start === undefined
      ? randomBytes(4).toString('hex')
      : createHash('sha256').update(`muxftp run\n${start}`).digest('hex').slice(0, 8);
  })();
  return run;
}

/**
 * Whether the process `pid` of this host tag runs: this one's id only for this `run` (another run
 * of this pid is an earlier process's, gone); another id while signal 0 finds it (EPERM: it runs,
 * as another user). Only meaningful for a pid of this host tag's (its pid namespace).
 */
export function processRuns(pid: number, run?: string): boolean {
  if (pid === process.pid) return run === processRunTag();
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
