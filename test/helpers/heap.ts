/**
 * Memory as a test can measure it: a real garbage collection first, so that what is left is what
 * is still referenced. `--expose-gc` is set at run time and gc() taken from a fresh context.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes held by Buffers and ArrayBuffers after a full collection. */
export function retainedBufferBytes(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

export const MiB = 1024 * 1024;
