/** A host filesystem that refuses what a locked directory would: for FsStorage's `fs` in tests. */
import * as fsPromises from 'node:fs/promises';
import path from 'node:path';
import type { FsPromises } from '../../storage/fsApi.js';

/** node's fs/promises, failing with EACCES for any path with a segment named `locked`. */
export function lockedFs(): FsPromises {
  const refuse = (p: string) => {
    if (p.split(path.sep).includes('locked')) {
      throw Object.assign(new Error(`EACCES: permission denied, '${p}'`), { code: 'EACCES' });
    }
  };
  const fs = fsPromises as unknown as FsPromises;
  return {
    ...fs,
    stat: async (p) => {
      refuse(p);
      return fs.stat(p);
    },
    lstat: async (p) => {
      refuse(p);
      return fs.lstat(p);
    },
    open: async (p, flags) => {
      refuse(p);
      return fs.open(p, flags);
    },
    readdir: async (p) => {
      refuse(p);
      return fs.readdir(p);
    },
  };
}
