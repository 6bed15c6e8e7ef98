/** Removing a remote path with everything below it: `rm -r`, and what `--delete` finds extraneous. */

import type { Client, WireEntry } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';
import { planningLimit } from './concurrency.js';
import { gravest } from './exitStatus.js';
import { joinRemote } from './remotePath.js';
import { walkRemoteTree } from './remoteTree.js';

/**
 * `rm -r PATH`: a file or a symbolic link as rm does (a link goes as itself, never what it leads
 * to); a directory with everything in it, the files, links and other entries first (several at a
 * time), then the directories, deepest first, never walking into a link. The root never: refused
 * before anything is listed, as the server refuses `rm /`. A directory that cannot be listed whole
 * fails before anything is removed; an entry that cannot be removed fails the command, naming the
 * gravest such (exitStatus.ts: a connection lost over a refusal) and how many there were, and the tree's directories are kept (the rest is removed).
 * An entry below PATH that another remover took meanwhile is gone, as asked: no failure.
 * `rmdir` removes each emptied directory (rm -r's says what keeps one).
 */
export async function removeRecursively(
  client: Client,
  path: string,
  rmdir: (client: Client, path: string) => Promise<void> = (c, p) => c.rmdir(p),
): Promise<void> {
  if (path.split('/').every((segment) => segment === '' || segment === '.')) {
    throw new MuxftpError('INVALID_PATH', 'invalid path: cannot remove the root');
  }
  // The server removes a file or a link as itself, and refuses a directory: only then is it walked.
  try {
    return await client.delete(path);
  } catch (error) {
    if (!(error instanceof MuxftpError) || error.code !== 'IS_A_DIRECTORY') throw error;
  }
  refuseWithoutLinkMarks(client, 'removing');
  const limit = planningLimit(DEFAULTS.parallel, client);
  const tree = await walkRemoteTree(client, path, limit, Number.POSITIVE_INFINITY, undefined, {
    intoLinks: false,
  });
  // What another remover took meanwhile (a second sync's --delete, an rm -r) is gone, as asked.
  const unlisted = tree.problems.find((problem) => problem.listed !== true && !isGone(problem.error));
  if (unlisted !== undefined) throw unlisted.error;
  const isDirectory = (entry: WireEntry): boolean => entry.type === 'dir' && entry.link !== true;
  const removable = tree.entries.filter(({ entry }) => !isDirectory(entry));
  const failures: unknown[] = [];
  await limit.map(removable, ({ relative }) =>
    client.delete(joinRemote(path, relative)).catch((error: unknown) => {
      if (!isGone(error)) failures.push(error);
    }),
  );
  if (failures.length > 0) throw new PartlyRemoved(gravest(failures), failures.length, removable.length);
  // In path order a parent comes before what is in it: backwards, each directory is empty when its turn comes.
  const dirs = tree.entries.filter(({ entry }) => isDirectory(entry));
  for (const { relative } of dirs.reverse())
    await rmdir(client, joinRemote(path, relative)).catch(unlessGone);
  await rmdir(client, path);
}

/** NOT_FOUND: the entry is gone already. */
export function isGone(error: unknown): boolean {
  return error instanceof MuxftpError && error.code === 'NOT_FOUND';
}

function unlessGone(error: unknown): void {
  if (!isGone(error)) throw error;
}

/**
 * `rm -r` removed what it could of a tree but not all: the gravest failure (a path and its reason) is
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

/**
 * A server from before listings marked symbolic links (WELCOME `links`) lists a link to a
 * directory as a directory: walking a tree there to remove or change it could go through one.
 */
export function refuseWithoutLinkMarks(client: Client, doing: string): void {
  if (client.serverInfo.links === true) return;
  throw new MuxftpError(
    'UNSUPPORTED',
    `the server does not mark symbolic links in its listings (a muxftp from before it): ${doing} a tree there could go through one`,
  );
}
