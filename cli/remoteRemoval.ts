/** Removing a remote path with everything below it: `rm -r`, and what `--delete` finds extraneous. */

import type { Client } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';
import { planningLimit } from './concurrency.js';
import { joinRemote } from './remotePath.js';
import { walkRemoteTree } from './remoteTree.js';

/**
 * `rm -r PATH`: a file as rm does; a directory with everything in it, the files first (several
 * at a time), then the directories, deepest first. The root never: refused before anything is
 * listed, as the server refuses `rm /`. A directory that cannot be listed whole fails before
 * anything is removed; a file that cannot be removed fails the command, naming the first such
 * and how many there were, and the tree's directories are kept (the other files are removed).
 */
export async function removeRecursively(client: Client, path: string): Promise<void> {
  if (path.split('/').every((segment) => segment === '' || segment === '.')) {
    throw new MuxftpError('INVALID_PATH', 'invalid path: cannot remove the root');
  }
  const entry = await client.stat(path);
  if (entry.type !== 'dir') return client.delete(path);
  const limit = planningLimit(DEFAULTS.parallel, client);
  const tree = await walkRemoteTree(client, path, limit);
  if (tree.problems.length > 0) throw tree.problems[0]!.error;
  const failures: unknown[] = [];
  await Promise.all(
    tree.files.map((file) =>
      limit.run(() => client.delete(file.remote).catch((error: unknown) => failures.push(error))),
    ),
  );
  if (failures.length > 0) throw new PartlyRemoved(failures[0], failures.length, tree.files.length);
  // Sorted, a parent comes before what is in it: backwards, each directory is empty when its turn comes.
  for (const dir of [...tree.dirs].reverse()) await client.rmdir(joinRemote(path, dir));
  await client.rmdir(path);
}

/**
 * `rm -r` removed what it could of a tree but not all: the first failure (a path and its reason) is
 * what the command reports and --json carries; the counts say what state the tree was left in.
 */
export class PartlyRemoved extends Error {
  constructor(
    readonly first: unknown,
    readonly failed: number,
    readonly files: number,
  ) {
    super('rm -r: some files could not be removed', { cause: first });
  }

  get hint(): string {
    const removed = this.files - this.failed;
    const files = `${this.failed} of ${this.files} file${this.files === 1 ? '' : 's'}`;
    return `${files} could not be removed (${removed} ${removed === 1 ? 'was' : 'were'}), so its directories are kept`;
  }
}
