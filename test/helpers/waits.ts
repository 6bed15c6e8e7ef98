/**
 * Waits a test makes in real time: a pause, and polling until something holds. The timer is the
 * one this module found when it loaded, before any test faked timers, so a test that fakes
 * setTimeout (vi.useFakeTimers) still waits for the server it watches.
 */

const realSetTimeout = globalThis.setTimeout;
const realNow = performance.now.bind(performance);

/** Resolves after `ms` of real time. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => realSetTimeout(resolve, ms));
}

export interface UntilOptions {
  /** Gives up after this long, in all (ms). Default: 10 s. */
  timeoutMs?: number;
  /** Between looks (ms). Default: 20 ms. */
  everyMs?: number;
}

/**
 * Polls `check` until it holds, for at most `timeoutMs` of real time (each look waits `everyMs`
 * after the last, so the looks are bounded too). Fails `timed out after N ms waiting for WHAT`,
 * so a failure names what never came.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  { timeoutMs = 10_000, everyMs = 20 }: UntilOptions = {},
): Promise<void> {
  await valueWhen(async () => ((await check()) ? true : undefined), what, { timeoutMs, everyMs });
}

/** As until(), for a value: polls `get` until it gives one that is not undefined, and returns it. */
export async function valueWhen<T>(
  get: () => T | undefined | Promise<T | undefined>,
  what: string,
  { timeoutMs = 10_000, everyMs = 20 }: UntilOptions = {},
): Promise<T> {
  const deadline = realNow() + timeoutMs;
  for (;;) {
    const value = await get();
    if (value !== undefined) return value;
    if (realNow() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}
