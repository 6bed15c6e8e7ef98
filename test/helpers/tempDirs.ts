/**
 * The temporary directories a test file makes under the OS temp dir. Its afterEach calls
 * removeAll() where it fits its other cleanup (after servers using them have stopped).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class TempDirs {
  readonly #prefix: string;
  readonly #made: string[] = [];

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  async make(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), this.#prefix));
    this.#made.push(dir);
    return dir;
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.#made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  }
}
