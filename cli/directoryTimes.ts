/**
 * A tree's directories keep their source's modification times too (put -r and get -r, unless
 * --no-times), as rsync -t and lftp mirror keep them. Set once the run's files are in, since
 * every file created in a directory moves its time. Best effort, as for files: a directory whose
 * time cannot be set keeps the time it got, and the transfers' results stand.
 */
import { utimes } from 'node:fs/promises';
import type { Client } from '../client/client.js';
import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { fileTime } from '../shared/fileTimes.js';
import { isUnknownOperation } from '../shared/protocol/operations.js';
import { statLocal } from './localFiles.js';

/** put -r: each remote directory gets its local one's time (a server without `utime` is left be). */
export async function keepRemoteDirectoryTimes(
  client: Client,
  dirs: ReadonlyArray<{ local: string; remote: string }>,
  limit: ConcurrencyLimit,
): Promise<void> {
  let unsupported = false;
  // In line as at most `limit` calls (ConcurrencyLimit.map), not one held per directory: ~1 KiB
  // each, 100 MB for a tree of 100,000 directories.
  await limit.map(dirs, async (dir) => {
    if (unsupported) return;
    try {
      await client.setModifiedTime(dir.remote, (await statLocal(dir.local)).mtimeMs);
    } catch (error) {
      // A server from before `utime`; one directory refused (a symbolic link there) is not.
      if (isUnknownOperation(error)) unsupported = true;
    }
  });
}

/** get -r: each local directory gets its remote one's time (ms since the epoch, as listed). */
export async function keepLocalDirectoryTimes(
  dirs: ReadonlyArray<{ local: string; mtime: number }>,
): Promise<void> {
  const now = new Date();
  // As many at once as the walk's stats, not all: a call held per directory until its turn.
  await new ConcurrencyLimit(DEFAULTS.localCallsAtOnce).map(dirs, (dir) =>
    utimes(dir.local, now, fileTime(dir.mtime)).catch(() => {}),
  );
}
