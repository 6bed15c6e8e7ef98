/** The tree under a remote directory, for `get -r`: walked with `list`, a few listings at a time. */

import type { Client } from '../client/client.js';
import type { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { MuxftpError } from '../shared/errors.js';
import { isPlainName, joinRemote } from './remotePath.js';

export interface RemoteTree {
  /** Subdirectories relative to the root, '/'-separated, each after its parent. */
  dirs: string[];
  files: Array<{ relative: string; remote: string; size: number }>;
  /**
   * Directories that could not be listed and entries that were skipped; `relative` as for files
   * ('' for the root itself), undefined for a name that has no safe local path.
   */
  problems: Array<{ remote: string; relative?: string; error: MuxftpError }>;
}

export async function walkRemoteTree(
  client: Client,
  root: string,
  limit: ConcurrencyLimit,
): Promise<RemoteTree> {
  const tree: RemoteTree = { dirs: [], files: [], problems: [] };
  const walk = async (remoteDir: string, relativeDir: string): Promise<void> => {
    let entries: Awaited<ReturnType<Client['list']>>;
    try {
      entries = await limit.run(() => client.list(remoteDir));
    } catch (error) {
      tree.problems.push({ remote: remoteDir, relative: relativeDir, error: asMuxftpError(error) });
      return;
    }
    const subdirs: Array<Promise<void>> = [];
    for (const entry of entries) {
      const remote = joinRemote(remoteDir, String(entry.name));
      if (!isPlainName(entry.name)) {
        const error = new MuxftpError('INVALID_PATH', `server listed an unsafe name, skipped: ${remote}`);
        tree.problems.push({ remote, error });
        continue;
      }
      const relative = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      if (entry.type === 'dir') {
        tree.dirs.push(relative);
        subdirs.push(walk(remote, relative));
      } else if (entry.type === 'file') {
        tree.files.push({ relative, remote, size: entry.size });
      } else {
        tree.problems.push({
          remote,
          relative,
          error: new MuxftpError('UNSUPPORTED', `not a regular file, skipped: ${remote}`),
        });
      }
    }
    await Promise.all(subdirs);
  };
  await walk(root, '');
  // Listings finish in any order; sorted, every path still follows its parent (a prefix sorts first).
  tree.dirs.sort();
  tree.files.sort((a, b) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
  return tree;
}

function asMuxftpError(error: unknown): MuxftpError {
  return error instanceof MuxftpError
    ? error
    : new MuxftpError('INTERNAL_ERROR', error instanceof Error ? error.message : String(error));
}
