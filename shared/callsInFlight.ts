/**
 * The calls on one file descriptor that have not settled yet (those in libuv's threadpool; a call
 * run on the loop settles at once). A file's close() waits for them first, as FileHandle does:
 * closed under them, the number could name another file by the time they run.
 */
export class CallsInFlight {
  readonly #running = new Set<Promise<unknown>>();

  /** Counts `call` until it settles; returns it as it is. */
  track<T>(call: Promise<T>): Promise<T> {
    this.#running.add(call);
    const settled = (): void => {
      this.#running.delete(call);
    };
    call.then(settled, settled);
    return call;
  }

  /** Resolves once no tracked call is running, those tracked meanwhile included; never rejects. */
  async allSettled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
