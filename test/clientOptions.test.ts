/** Client options are checked when connect() is called: it rejects with a TypeError naming the option. */
import { describe, expect, it } from 'vitest';
import { Client, type ClientOptions } from '../client/client.js';
import { MuxServer } from '../server/server.js';
import { MemoryStorage } from '../storage/memory.js';

describe('Client.connect options', () => {
  it.each<[string, ClientOptions, RegExp]>([
    [
      'a port that is a string',
      { port: '7421' as unknown as number },
      /^client: port must be a number, got the string "7421"$/,
    ],
    ['port 0', { port: 0 }, /client: port must be an integer from 1 to 65535, got 0/],
    ['a port over 65535', { port: 70_000 }, /client: port must be an integer from 1 to 65535/],
    ['an empty host', { host: '' }, /client: host must be a non-empty string/],
    ['an empty user', { user: '' }, /client: user must be a non-empty string/],
    ['no integrity algorithm', { integrity: [] }, /client: integrity must list/],
    // Above the protocol's credit bound every get failed with a RangeError, its temporary file left.
    [
      'a stream window over 2^31 - 1',
      { streamWindowBytes: 2 ** 31 },
      /client: streamWindowBytes must be at most 2147483647 \(2\^31 - 1\), got 2147483648/,
    ],
  ])('refuses %s before connecting, as a rejection (never a throw)', async (_what, options, message) => {
    const connecting = Client.connect(options);
    await expect(connecting).rejects.toThrow(TypeError);
    await expect(connecting).rejects.toThrow(message);
  });
});

describe('Client.connect timeouts', () => {
  it('takes a connect timeout past what a timer holds (2^31 - 1 ms) as that long, never as 1 ms', async () => {
    const server = new MuxServer({ storage: new MemoryStorage(), host: '127.0.0.1', port: 0, log: () => {} });
    const { port } = await server.listen();
    try {
      // Before: node set the timer to 1 ms, and the connect failed "no answer within 2147483.648 s".
      // The second: no response timeout, so the WELCOME's wait is the connect's too.
      for (const timeouts of [
        { connectTimeoutMs: 2 ** 31 },
        { connectTimeoutMs: Number.MAX_SAFE_INTEGER, responseTimeoutMs: 0 },
      ]) {
        const client = await Client.connect({ host: '127.0.0.1', port, ...timeouts });
        expect(client.isOpen).toBe(true);
        await client.close();
      }
    } finally {
      await server.close();
    }
  });
});
