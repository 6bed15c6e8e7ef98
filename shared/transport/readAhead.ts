/**
 * The chunks a sending stream (server download, client upload) is reading into DATA frames: up to
 * `depth` reads in flight at once, so the next chunk is already being read while one is being sent
 * (node's fs.ReadStream and the minimal pipeline of bench/nodePipeline.mjs do the same with one read
 * ahead). Reads may complete in any order; frames come out in the order they were started.
 */

interface Slot<F> {
  readonly frame: F;
  /** Bytes the read filled, once it has completed. */
  bytesRead: number | undefined;
}

export class FrameReadAhead<F extends { readonly length: number } = Buffer> {
  readonly depth: number;
  readonly #slots: Slot<F>[] = [];

  constructor(depth: number) {
    if (!Number.isInteger(depth) || depth < 1)
      throw new RangeError(`read-ahead depth must be ≥ 1, got ${depth}`);
    this.depth = depth;
  }

  /** Frames being read or ready. */
  get count(): number {
    return this.#slots.length;
  }

  /** No room for another read. */
  get full(): boolean {
    return this.#slots.length >= this.depth;
  }

  /** Nothing being read and nothing ready. */
  get isEmpty(): boolean {
    return this.#slots.length === 0;
  }

  /**
   * Tracks a read into `frame`. `onSettled` runs when it completes while still tracked (not after
   * clear()): with the error if it failed, else with nothing — then call next() for frames in order.
   */
  add(frame: F, read: Promise<number>, onSettled: (error?: unknown) => void): void {
    const slot: Slot<F> = { frame, bytesRead: undefined };
    this.#slots.push(slot);
    read.then(
      (bytesRead) => {
        if (!this.#slots.includes(slot)) return;
        slot.bytesRead = bytesRead;
        onSettled();
      },
      (error: unknown) => {
        if (this.#slots.includes(slot)) onSettled(error ?? new Error('read failed'));
      },
    );
  }

  /** The oldest frame if its read has completed, with the bytes it holds; else undefined. */
  next(): { frame: F; bytesRead: number } | undefined {
    const head = this.#slots[0];
    if (head === undefined || head.bytesRead === undefined) return undefined;
    this.#slots.shift();
    return { frame: head.frame, bytesRead: head.bytesRead };
  }

  /** Forgets every frame (being read or ready) and returns them, so their reservations can be released. */
  clear(): F[] {
    return this.#slots.splice(0).map((slot) => slot.frame);
  }
}
