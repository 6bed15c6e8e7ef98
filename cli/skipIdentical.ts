/**
 * --skip-identical: is the copy already at the destination the same bytes as the source? Sizes are
 * compared first (a stat each side, nothing read); only when they match are the content digests,
 * the server's (from its digest cache, or computed there) and the local file's, computed at once
 * and compared. Times are never trusted: a copy with the same size and time but other bytes is sent.
 */
import { stat } from 'node:fs/promises';
import type { Client } from '../client/client.js';
import { localFileDigest } from '../client/localDigests.js';
import { keptPartialPath, removeStaleKeptPartial } from '../client/sinks.js';
import type { TransferDone, TransferJob } from './transferRunner.js';

/** put: the remote file `job.remote` holds the bytes of the local `job.local`. */
export async function remoteCopyIsIdentical(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
): Promise<TransferDone | undefined> {
  const remote = await client.stat(job.remote);
  if (remote.type !== 'file' || remote.size !== job.size) return undefined;
  return sameDigests(job, client, signal);
}

/**
 * get: the local file `job.local` holds the bytes of the remote `job.remote`. Then what a failed
 * get kept of it for get -c is stale, and removed, as a download that succeeds removes it.
 */
export async function localCopyIsIdentical(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
): Promise<TransferDone | undefined> {
  const local = await stat(job.local);
  if (!local.isFile() || local.size !== job.size) return undefined;
  const same = await sameDigests(job, client, signal);
  if (same !== undefined) await removeStaleKeptPartial(keptPartialPath(job.local));
  return same;
}

/**
 * Both digests, compared. Ctrl-C cancels both at once (the server stops hashing its copy, the
 * local file is not read to its end); the transfer then fails as cancelled.
 */
async function sameDigests(
  job: TransferJob,
  client: Client,
  signal: AbortSignal,
): Promise<TransferDone | undefined> {
  // A refused digest (no read permission, say) also stops the local hashing: it would be in vain.
  const refused = new AbortController();
  const [theirs, mine] = await Promise.all([
    client.digest(job.remote, client.integrity, { signal }).catch((error: unknown) => {
      refused.abort();
      throw error;
    }),
    localFileDigest(job.local, client.integrity, AbortSignal.any([signal, refused.signal])),
  ]);
  if (mine === undefined || mine.size !== theirs.entry.size) return undefined;
  const digest = mine.digest.digest.toString('hex');
  if (theirs.algorithm !== mine.digest.algorithm || theirs.digest !== digest) return undefined;
  return { bytes: mine.size, algorithm: theirs.algorithm, digest };
}
