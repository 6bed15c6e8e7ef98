/**
 * untilDrained (cli/reconnect.ts): the wait before a draining server's connection is replaced.
 * It ends with the connection, at DEFAULTS.drainWaitMs when the server keeps it open longer, or
 * at Ctrl-C; it leaves no listener on the command's signal (-j 50 of them wait at once), and a
 * connection already gone or a failure other than SHUTTING_DOWN is not waited for.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { untilDrained } from '../cli/reconnect.js';
import type { Client } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';

const defaults = DEFAULTS as { drainWaitMs: number };
const drainWaitMs = DEFAULTS.drainWaitMs;
afterEach(() => {
  defaults.drainWaitMs = drainWaitMs;
});

const refused = () => new MuxftpError('SHUTTING_DOWN', 'server is shutting down');

/** A connection still up whose end the test decides. */
function draining(isOpen = true) {
  let end!: () => void;
  const closed = new Promise<undefined>((resolve) => {
    end = () => resolve(undefined);
  });
  return { client: { isOpen, closed } as unknown as Client, end };
}

/** Timers alive in this process. */
const timeouts = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

/** How long `wait` took to settle, in ms; fails past `limitMs`. */
async function timed(wait: Promise<void>, limitMs = 5_000): Promise<number> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    wait,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still waiting after ${limitMs} ms`)), limitMs);
    }),
  ]).finally(() => clearTimeout(timer));
  return performance.now() - start;
}

describe('untilDrained', () => {
  it('ends when the server ends the connection, and leaves no listener on the signal', async () => {
    const { client, end } = draining();
    const controller = new AbortController();
    const timers = timeouts();
    const waiting = untilDrained(client, refused(), controller.signal);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    setTimeout(end, 30);
    expect(await timed(waiting)).toBeLessThan(1_000);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // Its drainWaitMs timer is gone too: else it held a finished command up to 15 s.
    expect(timeouts()).toBe(timers);
  });

  it('a server keeping the connection open: given up at drainWaitMs', async () => {
    defaults.drainWaitMs = 100;
    const { client } = draining();
    const controller = new AbortController();
    const ms = await timed(untilDrained(client, refused(), controller.signal));
    expect(ms).toBeGreaterThanOrEqual(90);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('Ctrl-C ends the wait at once', async () => {
    const { client } = draining();
    const controller = new AbortController();
    const waiting = untilDrained(client, refused(), controller.signal);
    setTimeout(() => controller.abort(), 30);
    expect(await timed(waiting)).toBeLessThan(1_000);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('not waited for: a connection already gone, or a failure other than SHUTTING_DOWN', async () => {
    expect(await timed(untilDrained(draining(false).client, refused()), 1_000)).toBeLessThan(100);
    const lost = new MuxftpError('CONNECTION_LOST', 'connection closed');
    expect(await timed(untilDrained(draining().client, lost), 1_000)).toBeLessThan(100);
  });

  it('a SHUTTING_DOWN wrapped as a cause (a CLI error over it) is waited for too', async () => {
    defaults.drainWaitMs = 100;
    const wrapped = new Error('put a: server is shutting down', { cause: refused() });
    expect(await timed(untilDrained(draining().client, wrapped))).toBeGreaterThanOrEqual(90);
  });
});
