/**
 * Memory storage's rename refuses as rename(2) does when a directory appeared at the target
 * after storage looked at it: a file never replaces a directory, nor a directory a non-empty
 * one. memfs replaced either silently, so a `mv` or an upload committing onto a name that a
 * concurrent `mkdir` (and uploads into it) had just taken dropped that whole directory. Every
 * interleaving of the mkdir with the rename is tried, a microtask step at a time.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../storage/memory.js';

/** The most microtask steps a rename takes here; the interleavings tried run past it. */
const MAX_STEPS = 400;

async function settle(promise: Promise<unknown>): Promise<'done' | string> {
  try {
    await promise;
    return 'done';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/**
 * For each step count: starts `change` (which moves something onto `/x`), lets it run that many
 * microtask steps, then makes the directory `/x` with a file in it. Whatever the timing, the
 * directory made must survive with its file, or the change must have come first (the mkdir then
 * fails). Returns the outcomes seen, for the caller to check that both orders happened.
 */
async function everyInterleaving(
  prepare: (storage: MemoryStorage) => Promise<() => Promise<unknown>>,
): Promise<Set<string>> {
  const outcomes = new Set<string>();
  for (let steps = 0; steps <= MAX_STEPS; steps++) {
    const storage = new MemoryStorage();
    const change = await prepare(storage);
    const settled = settle(change());
    for (let i = 0; i < steps; i++) await Promise.resolve();
    let madeDirectory = false;
    try {
      storage.volume.mkdirSync('/x');
      storage.volume.writeFileSync('/x/inner', 'keep me');
      madeDirectory = true;
    } catch {
      // The change came first: /x is its file now.
    }
    const result = await settled;
    if (madeDirectory) {
      expect({ steps, result, inner: storage.volume.existsSync('/x/inner') }).toEqual({
        steps,
        result,
        inner: true,
      });
    }
    outcomes.add(madeDirectory ? `directory kept, change ${result}` : `change first, ${result}`);
    await storage.close();
  }
  return outcomes;
}

describe('memory storage: a rename racing a mkdir of its target', () => {
  it('mv of a file never drops a directory made at the target meanwhile', async () => {
    const outcomes = await everyInterleaving(async (storage) => {
      storage.volume.writeFileSync('/f', 'file');
      return () => storage.rename('f', 'x');
    });
    // Every order was tried: the directory before storage looked (refused by its own check),
    // between its look and the rename (refused by the rename: the race), after the move.
    expect(outcomes).toEqual(
      new Set([
        'directory kept, change ALREADY_EXISTS',
        'directory kept, change IS_A_DIRECTORY',
        'change first, done',
      ]),
    );
  });

  it('an upload committing never drops a directory made at its target meanwhile', async () => {
    const outcomes = await everyInterleaving(async (storage) => {
      const upload = await storage.createUpload('x');
      await upload.write([Buffer.from('data')]);
      return () => upload.commit();
    });
    expect(outcomes).toEqual(new Set(['directory kept, change IS_A_DIRECTORY', 'change first, done']));
  });

  it('mv of a directory never drops a non-empty directory made at the target meanwhile', async () => {
    const outcomes = await everyInterleaving(async (storage) => {
      storage.volume.mkdirSync('/d');
      storage.volume.writeFileSync('/d/mine', 'mine');
      return () => storage.rename('d', 'x');
    });
    expect(outcomes).toEqual(
      new Set([
        'directory kept, change ALREADY_EXISTS',
        'directory kept, change DIRECTORY_NOT_EMPTY',
        'change first, done',
      ]),
    );
  });
});
