/**
 * A connection that closes while its uploads wait at the server's --max-rate leaves no timer
 * behind. An upload ended with bytes still owed for its initial window pays them as it goes
 * (takeUnpacedUpload), which put the closing connection back in the limit's line it had just
 * left: a timer for the whole debt stayed, holding the closed connection, and `serve` printed
 * "stopped" and did not exit until the debt was paid (hours at a low rate).
 */
import { afterEach, expect, it, vi } from 'vitest';
import { startServer } from './helpers/testServer.js';

afterEach(() => {
  vi.restoreAllMocks();
});

it('a connection closed while its puts wait at the rate leaves no timer behind', async () => {
  // Timers of a second or more made meanwhile: a debt's (the test ends long before one fires).
  const setting = vi.spyOn(globalThis, 'setTimeout');
  const clearing = vi.spyOn(globalThis, 'clearTimeout');
  const server = await startServer({ maxRateBytesPerSecond: 100 });
  try {
    const client = await server.connect();
    // Each comes whole on its initial window: the first pays for it in its turn (hours at
    // 100 B/s), and the second waits behind it, its bytes owed.
    const puts = [0, 1].map((i) => client.put(`p${i}.bin`, Buffer.alloc(200 * 1024, i)).catch(() => {}));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await client.destroy();
    await Promise.all(puts);
  } finally {
    await server.stop();
  }
  const cleared = new Set(clearing.mock.calls.map(([timer]) => timer));
  const long = setting.mock.calls.flatMap(([, ms], i) =>
    (ms ?? 0) >= 1000 ? [setting.mock.results[i]!.value as NodeJS.Timeout] : [],
  );
  expect(long.length).toBeGreaterThan(0);
  expect(long.filter((timer) => timer.hasRef() && !cleared.has(timer))).toEqual([]);
});
