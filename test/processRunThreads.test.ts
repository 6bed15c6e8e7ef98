import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { inProgressPath, removeLeftBehind } from '../client/downloadsLeftBehind.js';
import { updateUsersFile } from '../server/auth/usersFile.js';
import { hostTag } from '../shared/hostTag.js';
import { downloadPartialName } from '../shared/temporaryNames.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/**
 * Runs `body` (an async function of `lib`, the built `module`, and `dir`) in a
 * worker thread of this process: its modules are its own, as another copy of muxftp's are.
 */
async function inWorker(
  body: string,
  dir: string,
  module = 'client/downloadsLeftBehind.js',
): Promise<string> {
  const lib = pathToFileURL(join(import.meta.dirname, '../dist', module)).href;
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.lib).then((lib) => (${body})(lib, workerData.dir)).then(
       (out) => parentPort.postMessage(out),
       (err) => parentPort.postMessage('error: ' + err));`,
    { eval: true, workerData: { lib, dir } },
  );
  try {
    return await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      setTimeout(() => reject(new Error('worker timed out')), 10_000).unref();
    });
  } finally {
    await worker.terminate();
  }
}

// The run is the process's only where its start time can be read (/proc); elsewhere a random
// tag per module, as before.
const ON_LINUX = process.platform === 'linux';

describe('a download in progress in another thread of this process', () => {
  it.skipIf(!ON_LINUX)(
    'is running, not left by a gone run of this pid: a get of the target in this thread leaves it',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'muxftp-runthreads-'));
      dirs.push(dir);
      const target = join(dir, 'file.bin');
      // A worker thread's download of the target, in progress (its sink's file, as FileSink names it).
      const theirs = await inWorker(
        `async (lib, dir) => { const p = lib.inProgressPath(require('node:path').join(dir, 'file.bin'));
         await require('node:fs/promises').writeFile(p, 'partial'); return p; }`,
        dir,
      );
      expect(theirs.startsWith('error')).toBe(false);
      // This thread's own download of the same target, at once: never the same name as the worker's.
      const ours = inProgressPath(target);
      expect(ours).not.toBe(theirs);
      await writeFile(ours, 'x');
      // Our get succeeds: what gone writers left for the target goes, the worker's (alive) stays.
      await removeLeftBehind(join(dir, downloadPartialName('file.bin')));
      expect((await readdir(dir)).sort()).toEqual(
        [ours.slice(dir.length + 1), theirs.slice(dir.length + 1)].sort(),
      );
    },
  );
});

describe("a users file's write in progress in another thread of this process", () => {
  it.skipIf(!ON_LINUX)(
    'is left by an edit in this thread; what an earlier run of this pid left goes',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'muxftp-runthreads-'));
      dirs.push(dir);
      const file = join(dir, 'users.json');
      // The name a writeUsersFile in a worker thread (its own modules) writes through, in progress.
      const run = await inWorker('async (lib) => lib.processRunTag()', dir, 'shared/hostTag.js');
      expect(run).toMatch(/^[0-9a-f]{8}$/);
      const theirs = `.0123abcd.${hostTag()}-${process.pid}-${run}.users.tmp`;
      const earlier = `.0123abcd.${hostTag()}-${process.pid}-${run === '00000000' ? '11111111' : '00000000'}.users.tmp`;
      for (const name of [theirs, earlier]) await writeFile(join(dir, name), '{}\n', { mode: 0o600 });
      await updateUsersFile(file, (users) => users, { missingIsEmpty: true });
      expect((await readdir(dir)).sort()).toEqual([theirs, 'users.json'].sort());
    },
  );
});
