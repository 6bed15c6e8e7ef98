/**
 * Local filesystem calls on paths a user named (a command's arguments, the directories of a tree
 * walked, a destination's), made through the threadpool so that one that never returns (a hung
 * NFS or FUSE mount) holds a threadpool thread and not the loop: Ctrl-C is still heard. While
 * such a call has not returned, an interrupted command names it as it ends without it
 * (interrupt.ts).
 */

const waiting = new Map<number, { what: string; since: number }>();
let nextId = 0;

/** `call`, named `what` (e.g. `stat /mnt/x`) until it settles. */
export function waitedOn<T>(what: string, call: Promise<T>): Promise<T> {
  const id = nextId++;
  waiting.set(id, { what, since: performance.now() });
  return call.finally(() => waiting.delete(id));
}

/** The calls made through waitedOn that have not settled in `ms`, oldest first. */
export function localCallsWaitingPast(ms: number): string[] {
  const before = performance.now() - ms;
  return [...waiting.values()].filter((call) => call.since <= before).map((call) => call.what);
}
