/**
 * A disk file's close() asks fstat whether its last name is gone before it closes (storage/diskFs.ts).
 * fstat can fail on an open file — ESTALE on NFS once another client removed it, EIO or ENOTCONN on
 * a FUSE mount whose daemon went — and the descriptor must be closed all the same: else every such
 * download or upload kept one open for the life of the server. Real files; Linux (/proc/self/fd).
 */
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskStorage } from '../storage/disk.js';
import { hasProcSelfFd } from './helpers/openDescriptors.js';

// node:fs as CommonJS sees it: what a test changes there reaches storage's ESM import once synced.
const cjsFs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Descriptors of this process open on `file`. */
function openOn(file: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;
}

/** `file`'s descriptors fail fstat with `code`, sync and async (the loop or the threadpool), while `run` runs. */
async function failingFstat(file: string, code: string, run: () => Promise<unknown>): Promise<void> {
  const { fstatSync, fstat } = cjsFs;
  const isFileOpen = (fd: unknown): boolean => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  };
  const failure = () => Object.assign(new Error(`${code}: fstat`), { code });
  cjsFs.fstatSync = ((...args: Parameters<typeof fstatSync>) => {
    if (isFileOpen(args[0])) throw failure();
    return fstatSync(...args);
  }) as typeof fstatSync;
  cjsFs.fstat = ((fd: number, ...rest: unknown[]) => {
    const callback = rest.at(-1) as (error: Error | null) => void;
    if (isFileOpen(fd)) process.nextTick(() => callback(failure()));
    else (fstat as (...a: unknown[]) => void)(fd, ...rest);
  }) as typeof fstat;
  syncBuiltinESMExports();
  try {
    await run();
  } finally {
    cjsFs.fstatSync = fstatSync;
    cjsFs.fstat = fstat;
    syncBuiltinESMExports();
  }
}

async function openedFile(): Promise<{ storage: DiskStorage; file: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muxftp-close-'));
  dirs.push(dir);
  const root = path.join(dir, 'root');
  const storage = await DiskStorage.open({ root, durable: false });
  const file = path.join(root, 'f');
  await writeFile(file, 'on a share');
  return { storage, file };
}

describe.skipIf(!hasProcSelfFd)('a disk file whose fstat fails when it is closed', () => {
  it('is closed all the same (ESTALE: an NFS file removed by another client)', async () => {
    const { storage, file } = await openedFile();
    const handle = await storage.openRead('f');
    expect(openOn(file)).toBe(1);
    await failingFstat(file, 'ESTALE', () => handle.close().catch(() => {}));
    expect(openOn(file)).toBe(0);
    await storage.close();
  });

  it('is not closed again when fstat says EBADF: its number may be another file by now', async () => {
    const { storage, file } = await openedFile();
    const handle = await storage.openRead('f');
    const fd = readdirSync('/proc/self/fd').find((n) => {
      try {
        return readlinkSync(`/proc/self/fd/${n}`) === file;
      } catch {
        return false;
      }
    });
    await failingFstat(file, 'EBADF', () => handle.close().catch(() => {}));
    // Still open: the close left that number alone (here, in truth, still this file's).
    expect(openOn(file)).toBe(1);
    closeSync(Number(fd));
    await storage.close();
  });
});
