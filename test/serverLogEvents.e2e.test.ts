/**
 * The library's structured log: MuxServer's `logEvent` gets each event with its fields, and `log`
 * still gets the text lines, the same events rendered (server/logEvents.ts). Real server on
 * 127.0.0.1 port 0.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { jsonLine, type LogEvent, textLine } from '../server/logEvents.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.stop();
  server = undefined;
});

async function eventOf(events: LogEvent[], name: string): Promise<LogEvent> {
  for (let i = 0; i < 250; i++) {
    const found = events.find((event) => event.event === name);
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no ${name} event in ${JSON.stringify(events)}`);
}

describe('MuxServer logEvent', () => {
  it('gets each event with its fields, while log gets the same events as its text lines', async () => {
    const events: LogEvent[] = [];
    server = await startServer({ logEvent: (event) => events.push(event) });
    const client = await server.connect();
    await client.put('a b.txt', Buffer.alloc(100, 1));
    await client.mkdir('d', { parents: true });
    await client.rename('a b.txt', 'd/c.txt');
    await client.close();
    await eventOf(events, 'closed');
    expect(await eventOf(events, 'received')).toMatchObject({
      text: expect.stringMatching(/^conn#\d+ 127\.0\.0\.1:\d+ received "a b\.txt" 100 B in /),
      fields: {
        conn: expect.any(Number),
        remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        stream: 1,
        path: 'a b.txt',
        bytes: 100,
        ms: expect.any(Number),
      },
    });
    expect(await eventOf(events, 'made_directory')).toMatchObject({ fields: { path: 'd', parents: true } });
    expect(await eventOf(events, 'renamed')).toMatchObject({ fields: { path: 'a b.txt', to: 'd/c.txt' } });
    // Open access: no login, no user.
    expect(events.every((event) => event.fields?.user === undefined)).toBe(true);
    expect(server.logs).toEqual(events.map(textLine));
  });

  it("the resolved options' log still takes a line of text, as it did before events", async () => {
    const events: LogEvent[] = [];
    server = await startServer({ logEvent: (event) => events.push(event) });
    // Before: that log took events, and a line given to it was logged as "undefined".
    server.server.options.log('hello from the embedding program');
    expect(server.logs).toContain('hello from the embedding program');
    expect(events).toContainEqual({ event: 'message', text: 'hello from the embedding program' });
  });

  it('given alone, leaves stderr alone', async () => {
    const write = vi.spyOn(process.stderr, 'write');
    const events: LogEvent[] = [];
    server = await startServer({ log: undefined, logEvent: (event) => events.push(event) });
    const client = await server.connect();
    await client.put('x', Buffer.from('x'));
    await client.close();
    await eventOf(events, 'closed');
    expect(write).not.toHaveBeenCalled();
  });
});

describe('jsonLine', () => {
  it('keeps names raw in fields, escapes what printable() hides, and puts the text line in msg', () => {
    const name = 'a\u0085b\u202ec\nd';
    const line = jsonLine(
      { event: 'deleted', text: `conn#1 deleted ${name}`, fields: { conn: 1, path: name } },
      new Date('2026-12-06T10:00:00.000Z'),
    );
    expect(line).toBe(
      '{"time":"2026-12-06T10:00:00.000Z","level":"info","event":"deleted","msg":"conn#1 deleted a?b?c?d","conn":1,"path":"a\\u0085b\\u202ec\\nd"}',
    );
    expect(JSON.parse(line).path).toBe(name);
  });
});
