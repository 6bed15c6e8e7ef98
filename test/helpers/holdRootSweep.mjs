/**
 * Preloaded into a `muxftp serve` child process (`node --import`): its first fs.promises.readdir
 * of $MUXFTP_TEST_HOLD_READDIR (by any path to it) (the served root: the start-up sweep's first read, once the root's
 * lock is taken) writes $MUXFTP_TEST_HOLD_READDIR/../held and never settles, so a signal lands
 * while serve starts, whatever the machine's speed. The ES modules' bindings are updated
 * (syncBuiltinESMExports), as in countPathStats.mjs.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const held = process.env.MUXFTP_TEST_HOLD_READDIR;
if (held === undefined) throw new Error('holdRootSweep: set MUXFTP_TEST_HOLD_READDIR');

const promises = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (fs.promises));
const readdir = /** @type {(...args: unknown[]) => Promise<unknown>} */ (promises.readdir);
let holding = false;
/** Through links: serve reads a directory through a pinned descriptor's /proc/self/fd path. */
const realPath = (/** @type {string} */ path) => {
  try {
    return fs.realpathSync(path);
  } catch {
    return resolve(path);
  }
};
promises.readdir = function heldReaddir(/** @type {unknown[]} */ ...args) {
  if (!holding && typeof args[0] === 'string' && realPath(args[0]) === realPath(held)) {
    holding = true;
    fs.writeFileSync(join(dirname(resolve(held)), 'held'), '');
    // Kept alive by a timer of its own: a promise alone would let the process run out of work.
    return new Promise(() => setInterval(() => {}, 60_000));
  }
  return readdir.apply(this, args);
};
syncBuiltinESMExports();
