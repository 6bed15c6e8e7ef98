/**
 * The users file's take-over mark (FILE.lock.takeover) a killed take-over left, removed by one edit
 * while others run (several `user add` at once): node:fs/promises mocked for this file so that the
 * moment between the edit's check of the mark and its removal can be filled as another process
 * fills it.
 */
import { spawnSync } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { updateUsersFile } from '../server/auth/usersFile.js';
import { hostTag } from '../shared/hostTag.js';

const faults = vi.hoisted(() => ({ swap: undefined as undefined | { path: string; text: string } }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const hook = (p: unknown) => {
    if (faults.swap !== undefined && String(p) === faults.swap.path) {
      // Between B's check and its removal: A removed the dead mark, C took the take-over.
      unlinkSync(faults.swap.path);
      writeFileSync(faults.swap.path, faults.swap.text);
      faults.swap = undefined;
    }
  };
  const rmH = (async (...args: Parameters<typeof real.rm>) => {
    hook(args[0]);
    return real.rm(...args);
  }) as typeof real.rm;
  const renameH = (async (...args: Parameters<typeof real.rename>) => {
    hook(args[0]);
    return real.rename(...args);
  }) as typeof real.rename;
  return { ...real, default: { ...real, rm: rmH, rename: renameH }, rm: rmH, rename: renameH };
});
let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});
it('leaves the live mark another edit made once a third had removed the dead one it checked', async () => {
  dir = await mkdtemp(join(tmpdir(), 'reviewR-takeover-'));
  const file = join(dir, 'users.json');
  const { pid } = spawnSync(process.execPath, ['-e', '']);
  const dead = `${pid} ${hostname()} ${hostTag()}\n`;
  const live = `${process.pid} ${hostname()} ${hostTag()}\n`;
  await writeFile(`${file}.lock`, dead);
  await writeFile(`${file}.lock.takeover`, dead);
  faults.swap = { path: `${file}.lock.takeover`, text: live };
  await expect(updateUsersFile(file, (u) => u, { missingIsEmpty: true, lockWaitMs: 200 })).rejects.toThrow(
    'locked by another edit',
  );
  // Before, the live mark went: this edit then took over too, beside its holder.
  expect(await readFile(`${file}.lock.takeover`, 'utf8')).toBe(live);
  expect((await readdir(dir)).sort()).toEqual(['users.json.lock', 'users.json.lock.takeover']);
});
