/**
 * Memory storage keeps each memfs directory's count of entries equal to its names, whatever a
 * rename did: memfs's rmdir trusts the count, and one counted too many made an emptied directory
 * impossible to remove (ENOTEMPTY for ever). Every kind of rename, done and refused, within a
 * directory, across two and at the root, and an upload's commit over a file.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../storage/memory.js';

interface MemfsLink {
  children: Map<string, MemfsLink>;
  length: number;
  getNode(): { isDirectory(): boolean };
}

/** The directories whose count is not their names (memfs's root counts its '.' and '..' too). */
function miscounted(storage: MemoryStorage): string[] {
  const wrong: string[] = [];
  const walk = (link: MemfsLink, path: string): void => {
    const names = [...link.children.keys()].filter((name) => name !== '.' && name !== '..');
    const expected = names.length + (path === '/' ? 2 : 0);
    if (link.length !== expected) wrong.push(`${path}: counted ${link.length}, holds ${names.length}`);
    for (const name of names) {
      const child = link.children.get(name)!;
      if (child.getNode().isDirectory()) walk(child, `${path === '/' ? '' : path}/${name}`);
    }
  };
  walk((storage.volume as unknown as { _core: { root: MemfsLink } })._core.root, '/');
  return wrong;
}

const outcome = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'done',
    (error: { code?: string }) => error.code ?? String(error),
  );

/** [what is there (a path ending in / is a directory; 'x -> y' a link), the rename, its outcome] */
const CASES: Array<[string, string[], [string, string], string]> = [
  ['file onto a new name', ['d/', 'd/a'], ['d/a', 'd/b'], 'done'],
  ['file over a file', ['d/', 'd/a', 'd/b'], ['d/a', 'd/b'], 'done'],
  ['file over a file, at the root', ['a', 'b'], ['a', 'b'], 'done'],
  ['file into another directory', ['d/', 'e/', 'd/a'], ['d/a', 'e/b'], 'done'],
  ['file over a file in another directory', ['d/', 'e/', 'd/a', 'e/b'], ['d/a', 'e/b'], 'done'],
  ['file onto itself', ['d/', 'd/a'], ['d/a', 'd/a'], 'done'],
  ['directory onto itself', ['d/', 'd/x/', 'd/x/f'], ['d/x', 'd/x'], 'done'],
  ['directory into another', ['d/', 'e/', 'd/x/', 'd/x/f'], ['d/x', 'e/y'], 'done'],
  ['file over a link', ['d/', 'd/l -> /nowhere', 'd/b'], ['d/b', 'd/l'], 'done'],
  ['directory over a directory: refused', ['d/', 'd/x/', 'd/y/'], ['d/x', 'd/y'], 'ALREADY_EXISTS'],
  ['file over a directory: refused', ['d/', 'd/x/', 'd/a'], ['d/a', 'd/x'], 'ALREADY_EXISTS'],
  ['directory into itself: refused', ['d/', 'd/x/'], ['d', 'd/x/y'], 'INVALID_PATH'],
  ['a missing file: refused', ['d/', 'd/b'], ['d/a', 'd/b'], 'NOT_FOUND'],
];

describe("memory storage: a rename keeps its directories' count of entries", () => {
  it.each(CASES)('%s', async (_name, there, [from, to], expected) => {
    const storage = new MemoryStorage();
    for (const path of there) {
      const [at, target] = path.split(' -> ');
      if (target !== undefined) storage.volume.symlinkSync(target, `/${at}`);
      else if (path.endsWith('/')) storage.volume.mkdirSync(`/${path}`);
      else storage.volume.writeFileSync(`/${path}`, path);
    }
    expect(await outcome(storage.rename(from, to))).toBe(expected);
    expect(miscounted(storage)).toEqual([]);
    await storage.close();
  });

  it('stays right should memfs count a replacement right itself (its bug fixed)', async () => {
    const storage = new MemoryStorage();
    storage.volume.mkdirSync('/d');
    storage.volume.writeFileSync('/d/a', 'a');
    storage.volume.writeFileSync('/d/b', 'b');
    const link = Object.getPrototypeOf(
      (storage.volume as unknown as { _core: { root: MemfsLink } })._core.root,
    );
    const setChild = link.setChild;
    link.setChild = function (this: MemfsLink, name: string, ...rest: unknown[]) {
      const replacing = this.children.has(name);
      const set = setChild.call(this, name, ...rest);
      if (replacing) this.length--;
      return set;
    };
    try {
      expect(await outcome(storage.rename('d/a', 'd/b'))).toBe('done');
    } finally {
      link.setChild = setChild;
    }
    expect(miscounted(storage)).toEqual([]);
    await storage.close();
  });

  it('an upload committing over a file', async () => {
    const storage = new MemoryStorage();
    storage.volume.mkdirSync('/d');
    for (const content of ['first', 'second']) {
      const upload = await storage.createUpload('d/f');
      await upload.write([Buffer.from(content)]);
      await upload.commit();
    }
    expect(miscounted(storage)).toEqual([]);
    await storage.remove('d/f');
    await storage.rmdir('d');
    await storage.close();
  });
});
