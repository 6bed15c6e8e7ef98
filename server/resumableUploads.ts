/**
 * Resumable uploads under way, server-wide, by the data they keep (home, path, key). A client
 * whose connection stalled (not reset: its packets go nowhere) reconnects under `--retries` and
 * asks what is kept of its file while the stalled connection's upload still holds that data: it
 * would be offered nothing and send the whole file again. So an upload or a `partial` query of
 * the same key fails a holder that has moved no data for a while (its whole blocks are kept, as
 * for any failure) and goes on once they are: the retry continues them. A retry right after a
 * cut (reset) connection waits the same way for the cut upload's blocks, still being kept.
 */
import { posix } from 'node:path';
import { DEFAULTS } from '../shared/defaults.js';
import { timerDelay } from '../shared/timerDelay.js';
import { normalizeClientPath } from '../storage/paths.js';
import type { PartialKey } from '../storage/types.js';

/** An upload writing kept data, as the registry sees it (UploadStream). */
export interface ResumableHolder {
  /**
   * It has moved no data for `ms` and nothing of the server's holds it (a commit, a rate limit),
   * or it is over and what it wrote is still being kept.
   */
  isStalledFor(ms: number): boolean;
  /** Fails it (unless over), for a newer upload of the same data; resolves once what it wrote is kept. */
  giveWay(): Promise<void>;
}

export class ResumableUploads {
  readonly #holders = new Map<string, Set<ResumableHolder>>();
  /** Holders giving way, by key, until what they wrote is kept: a second taker waits for them too. */
  readonly #givingWay = new Map<string, Promise<void>>();
  readonly #waitMs: number;

  /** `waitMs`: how long a taker waits for a holder to give way (its abort stuck on a hung disk). */
  constructor(waitMs: number = DEFAULTS.stalledUploadGiveWayWaitMs) {
    this.#waitMs = waitMs;
  }

  /** `holder` writes the data kept for `path` (in `home`) under `key`; returns what ends that. */
  hold(home: string, path: string, key: PartialKey, holder: ResumableHolder): () => void {
    const id = keyOf(home, path, key);
    const holders = this.#holders.get(id) ?? new Set<ResumableHolder>();
    this.#holders.set(id, holders);
    holders.add(holder);
    return () => {
      holders.delete(holder);
      if (holders.size === 0 && this.#holders.get(id) === holders) this.#holders.delete(id);
    };
  }

  /**
   * Fails the holders of that data that have moved none for `stalledMs`; resolves once what they
   * wrote is kept, and what holders failed before for it (at once when there are none), or after
   * the wait's bound: the caller then goes on with what is kept by then.
   */
  async takeOverStalled(home: string, path: string, key: PartialKey, stalledMs: number): Promise<void> {
    const id = keyOf(home, path, key);
    const stalled = [...(this.#holders.get(id) ?? [])].filter((holder) => holder.isStalledFor(stalledMs));
    const before = this.#givingWay.get(id);
    if (stalled.length === 0 && before === undefined) return;
    const all = Promise.all([before, ...stalled.map((holder) => holder.giveWay())]).then(() => {});
    if (stalled.length > 0) {
      this.#givingWay.set(id, all);
      void all.finally(() => {
        if (this.#givingWay.get(id) === all) this.#givingWay.delete(id);
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      // Not the process's to wait for: a server shutting down answers the taker SHUTTING_DOWN.
      timer = setTimeout(resolve, timerDelay(this.#waitMs)).unref();
    });
    await Promise.race([all, bound]).finally(() => clearTimeout(timer));
  }
}

function keyOf(home: string, path: string, key: PartialKey): string {
  const file = posix.join(home, normalizeClientPath(path));
  return [file, key.size, key.algorithm, key.digest ?? '', key.source ?? ''].join('\0');
}
