/**
 * One change at a time per host path: what storage looks at just before a change (the file a
 * rename or commit replaces, the file a delete removes) is then what the change acts on, as long
 * as every change muxftp makes to that path goes through here. A quota's exact byte deltas
 * depend on it: two uploads committing onto one name at once would otherwise both report
 * replacing the same old file.
 */
export class PathLocks {
  /** The last task queued on each path; removed when it is done and nothing queued after it. */
  readonly #tails = new Map<string, Promise<void>>();

  /**
   * Runs `task` once every earlier task on any of `paths` has finished. All paths are queued in
   * the same turn, so two tasks never wait for each other in a cycle.
   */
  async run<T>(paths: readonly string[], task: () => Promise<T>): Promise<T> {
    const keys = [...new Set(paths)];
    let done!: () => void;
    const held = new Promise<void>((resolve) => {
      done = resolve;
    });
    const earlier = keys.map((key) => this.#tails.get(key));
    for (const key of keys) this.#tails.set(key, held);
    try {
      await Promise.all(earlier);
      return await task();
    } finally {
      done();
      for (const key of keys) if (this.#tails.get(key) === held) this.#tails.delete(key);
    }
  }
}
