/**
 * Preloaded into a CLI child process (`node --import`): counts the stat and lstat calls, of every
 * node:fs flavour (sync, callback, promises), made on paths under $MUXFTP_TEST_STATS_UNDER, and
 * writes them as JSON `{ "<absolute path>": count }` to $MUXFTP_TEST_STATS_OUT when the process
 * exits. The CLI's code is not touched: the fs functions are wrapped and the ES modules' bindings
 * updated (syncBuiltinESMExports), so `import { statSync } from 'node:fs'` sees the wrappers.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { resolve, sep } from 'node:path';

const under = process.env.MUXFTP_TEST_STATS_UNDER;
const out = process.env.MUXFTP_TEST_STATS_OUT;
if (under === undefined || out === undefined)
  throw new Error('countPathStats: set MUXFTP_TEST_STATS_UNDER and _OUT');

/** @type {Record<string, number>} */
const counts = {};

/** @param {unknown} path */
function count(path) {
  if (typeof path !== 'string') return;
  const absolute = resolve(path);
  if (absolute.startsWith(under + sep)) counts[absolute] = (counts[absolute] ?? 0) + 1;
}

/**
 * @param {Record<string, unknown>} target
 * @param {string} name
 */
function wrap(target, name) {
  const original = /** @type {(...args: unknown[]) => unknown} */ (target[name]);
  target[name] = function counted(/** @type {unknown[]} */ ...args) {
    count(args[0]);
    return original.apply(this, args);
  };
}

const api = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (fs));
const promises = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (fs.promises));
for (const name of ['stat', 'statSync', 'lstat', 'lstatSync']) wrap(api, name);
for (const name of ['stat', 'lstat']) wrap(promises, name);
syncBuiltinESMExports();

process.on('exit', () => {
  fs.writeFileSync(out, JSON.stringify(counts));
});
