/**
 * A connection that closes while its uploads wait at the server's --max-rate leaves no timer
 * behind. An upload ended with bytes still owed for its initial window pays them as it goes
 * (takeUnpacedUpload), which put the closing connection back in the limit's line it had just
 * left: a timer for the whole debt stayed, holding the closed connection, and `serve` printed
 * "stopped" and did not exit until the debt was paid (hours at a low rate).
 *
 * A connection whose reading waits at the rate for what refused puts sent on their initial
 * window is held by the server, not idle: it was closed IDLE_TIMEOUT under the next put, unread.
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

it('a connection whose reading waits at the rate for a refused put is not closed as idle', async () => {
  // A put refused at its OPEN still sent 200 KiB on its initial window: at 64 KiB/s the limit
  // holds the connection's reading about 3 s, with no stream open. The next put's OPEN waits
  // unread meanwhile; the idle timer (1 s) closed the connection IDLE_TIMEOUT under it.
  const server = await startServer({ maxRateBytesPerSecond: 64 * 1024, idleTimeoutMs: 1000 });
  try {
    const client = await server.connect();
    await client.mkdir('d');
    await expect(client.put('d', Buffer.alloc(200 * 1024, 1))).rejects.toThrow(/is a directory/);
    const started = performance.now();
    await expect(client.put('f', Buffer.from('after the debt'))).resolves.toMatchObject({
      entry: { size: 14 },
    });
    // It did wait for the limit (past the idle timeout), and then was read.
    expect(performance.now() - started).toBeGreaterThan(1000);
    expect(server.logs.join('\n')).not.toMatch(/idle for/);
    // Idle once the debt is paid, it is closed as idle, within two timeouts.
    await vi.waitFor(() => expect(server.logs.join('\n')).toMatch(/idle for 1000 ms, closing/), {
      timeout: 3000,
      interval: 50,
    });
  } finally {
    await server.stop();
  }
});
