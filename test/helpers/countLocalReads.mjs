/**
 * Preloaded into a CLI child process (`node --import`): counts the bytes read from files opened
 * read-only (fs.promises.open with flags 'r', or a descriptor from fs.open/openSync read with
 * fs.read/readSync, as the client opens a local file to hash it) under
 * $MUXFTP_TEST_READS_UNDER, and the bytes of the files copied from there (fs.promises.copyFile,
 * as get -c copies a partial file), and writes the counts as JSON `{ "bytes": n, "copied": n }`
 * to $MUXFTP_TEST_READS_OUT when the process exits. As countPathStats.mjs, the CLI's code is not touched: the ES modules'
 * bindings are updated (syncBuiltinESMExports).
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { resolve, sep } from 'node:path';
import { promisify } from 'node:util';

const under = process.env.MUXFTP_TEST_READS_UNDER;
const out = process.env.MUXFTP_TEST_READS_OUT;
if (under === undefined || out === undefined)
  throw new Error('countLocalReads: set MUXFTP_TEST_READS_UNDER and _OUT');

let bytes = 0;
let copied = 0;
const promises = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (fs.promises));
const open = /** @type {(...args: unknown[]) => Promise<import('node:fs/promises').FileHandle>} */ (
  promises.open
);
promises.open = async function counted(/** @type {unknown[]} */ ...args) {
  const handle = await open.apply(this, args);
  const [path, flags] = args;
  if (
    typeof path === 'string' &&
    (flags === 'r' || flags === undefined) &&
    resolve(path).startsWith(under + sep)
  ) {
    const read = handle.read.bind(handle);
    /** @type {any} */ (handle).read = async (/** @type {any[]} */ ...readArgs) => {
      const result = await read(...readArgs);
      bytes += result.bytesRead;
      return result;
    };
  }
  return handle;
};
// And by descriptor (client/sources.ts's LocalFile: open, read and close on the loop while file
// calls are fast, else through the threadpool): the descriptors of such files opened read-only.
/** @type {Set<number>} */
const counted = new Set();
/** @param {unknown} path @param {unknown} flags */
const isCounted = (path, flags) =>
  typeof path === 'string' &&
  (flags === 'r' ||
    flags === undefined ||
    (typeof flags === 'number' && (flags & 3) === fs.constants.O_RDONLY)) &&
  resolve(path).startsWith(under + sep);
const syncFs = /** @type {Record<string, any>} */ (/** @type {unknown} */ (fs));
const {
  openSync,
  readSync,
  closeSync,
  open: openCallback,
  read: readCallback,
  close: closeCallback,
} = syncFs;
syncFs.openSync = (/** @type {any[]} */ ...args) => {
  const fd = openSync(...args);
  if (isCounted(args[0], args[1])) counted.add(fd);
  return fd;
};
syncFs.readSync = (/** @type {any[]} */ ...args) => {
  const read = readSync(...args);
  if (counted.has(args[0])) bytes += read;
  return read;
};
syncFs.closeSync = (/** @type {any[]} */ ...args) => {
  counted.delete(args[0]);
  return closeSync(...args);
};
syncFs.open = (/** @type {any[]} */ ...args) => {
  const callback = args.pop();
  openCallback(...args, (/** @type {unknown} */ error, /** @type {number} */ fd) => {
    if (error === null && isCounted(args[0], typeof args[1] === 'function' ? undefined : args[1]))
      counted.add(fd);
    callback(error, fd);
  });
};
syncFs.read = (/** @type {any[]} */ ...args) => {
  const callback = args.pop();
  readCallback(
    ...args,
    (/** @type {unknown} */ error, /** @type {number} */ read, /** @type {unknown} */ buffer) => {
      if (error === null && counted.has(args[0])) bytes += read;
      callback(error, read, buffer);
    },
  );
};
// As fs.read's own: promisify() of it gives { bytesRead, buffer }.
syncFs.read[promisify.custom] = (/** @type {any[]} */ ...args) =>
  new Promise((resolvePromise, reject) =>
    syncFs.read(
      ...args,
      (/** @type {unknown} */ error, /** @type {number} */ bytesRead, /** @type {unknown} */ buffer) =>
        error === null ? resolvePromise({ bytesRead, buffer }) : reject(error),
    ),
  );
syncFs.close = (/** @type {any[]} */ ...args) => {
  counted.delete(args[0]);
  return closeCallback(...args);
};
const copyFile = /** @type {(...args: unknown[]) => Promise<void>} */ (promises.copyFile);
promises.copyFile = async function counted(/** @type {unknown[]} */ ...args) {
  await copyFile.apply(this, args);
  const [source] = args;
  if (typeof source === 'string' && resolve(source).startsWith(under + sep))
    copied += fs.statSync(source).size;
};
syncBuiltinESMExports();

process.on('exit', () => {
  fs.writeFileSync(out, JSON.stringify({ bytes, copied }));
});
