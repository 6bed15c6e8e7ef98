/**
 * Reading a file a user named that is meant to be small (a config file, a users file, a PEM
 * certificate or key): at most a given size, so a mistake (`--users /dev/zero`, a disk image)
 * fails saying so instead of taking the process's memory, at start or on a SIGHUP reload.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';

/**
 * The bytes of the file at `path`, at most `maxBytes` (a pipe, /dev/stdin, is read as a file is).
 * Past that, throws `larger than SIZE: not WHAT` (`what` as `a config file`), having read one byte
 * more than the cap; an error opening or reading it is thrown as it is (its errno code kept).
 */
export async function readFileAtMost(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  // `end` is inclusive: a byte past the cap is read, and tells a file of exactly the cap from a larger one.
  for await (const chunk of createReadStream(path, { end: maxBytes })) {
    chunks.push(chunk as Buffer);
    total += (chunk as Buffer).length;
  }
  if (total > maxBytes) throw new Error(`larger than ${sizeInWords(maxBytes)}: not ${what}`);
  return Buffer.concat(chunks);
}

/**
 * readFileAtMost for a reader that cannot wait (commander's option checks, `--exclude-from`): the
 * same cap, the same error, read in 64 KiB pieces.
 */
export function readFileAtMostSync(path: string, maxBytes: number, what: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) throw new Error(`larger than ${sizeInWords(maxBytes)}: not ${what}`);
    }
  } finally {
    closeSync(fd);
  }
  return Buffer.concat(chunks);
}

function sizeInWords(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}
