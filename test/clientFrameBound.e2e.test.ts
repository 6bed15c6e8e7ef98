/**
 * The client's bound on frames held for its server (FRAME_FLOOD, 5803b5f) is for a server that
 * floods it; a client's own calls, as many at once as its server allows, are not a flood.
 */
import { afterEach, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/testServer.js';

let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

it('10,500 stat calls at once, on a server that allows as many streams: all answered, none cut FRAME_FLOOD', async () => {
  // No file held (no descriptor limit in play), one OPEN a call: the 10,500 OPENs are queued in
  // one turn, before a byte goes out. Failed FRAME_FLOOD, every call, since 5803b5f.
  const calls = 10_500;
  env = await startServer({ maxStreamsPerConnection: calls });
  const client = await env.connect();
  await client.put('small.txt', Buffer.from('hello'));
  const results = await Promise.allSettled(Array.from({ length: calls }, () => client.stat('small.txt')));
  const codes = results.flatMap((r) =>
    r.status === 'rejected' ? [(r.reason as { code?: string }).code] : [],
  );
  expect({ failed: codes.length, codes: [...new Set(codes)] }).toEqual({ failed: 0, codes: [] });
}, 60_000);
