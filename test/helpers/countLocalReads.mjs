/**
 * Preloaded into a CLI child process (`node --import`): counts the bytes read from files opened
 * read-only (fs.promises.open with flags 'r', as the client opens a local file to hash it) under
 * $MUXFTP_TEST_READS_UNDER, and the bytes of the files copied from there (fs.promises.copyFile,
 * as get -c copies a partial file), and writes the counts as JSON `{ "bytes": n, "copied": n }`
 * to $MUXFTP_TEST_READS_OUT when the process exits. As countPathStats.mjs, the CLI's code is not touched: the ES modules'
 * bindings are updated (syncBuiltinESMExports).
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { resolve, sep } from 'node:path';

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
