#!/usr/bin/env node
// The muxftp command. It runs the compiled CLI in dist/ (npm run build), with no TypeScript loader.
// '#dist/' is package.json's private "imports" map onto dist/: tsc checks it against the sources.
import { fileURLToPath } from 'node:url';

let cli;
try {
  cli = await import('#dist/cli/main.js');
} catch (caught) {
  const error = /** @type {NodeJS.ErrnoException} */ (caught);
  // Node loads the CLI's modules many at once: under a very low `ulimit -n` (about 50) even
  // --version ran out of descriptors, with a stack trace.
  if (error?.code === 'EMFILE') {
    process.stderr.write(
      'muxftp: too many open files while starting (the open-file limit, ulimit -n, is too low): raise it\n',
    );
    process.exit(1);
  }
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  // Either a file of dist/ is missing (not built) or a package the CLI needs is (not installed).
  // Node gives a missing file's url; the message names the importer too (a missing commander is
  // "imported from …/dist/cli/main.js", which was read as "not built").
  // Older Node 20s give no url (it came with nodejs/node#49038, 2023): the message names the file.
  const dist = new URL('../dist/', import.meta.url);
  const url = /** @type {{ url?: unknown }} */ (error).url;
  const notBuilt =
    typeof url === 'string'
      ? url.startsWith(dist.href)
      : String(error.message).startsWith(`Cannot find module '${fileURLToPath(dist)}`);
  const fix = notBuilt
    ? 'the CLI is not built; run npm run build'
    : 'a dependency is missing; run npm ci in a checkout, or install muxftp again';
  process.stderr.write(`muxftp: ${fix} (${error.message})\n`);
  process.exit(1);
}
process.exitCode = await cli.main(process.argv);
