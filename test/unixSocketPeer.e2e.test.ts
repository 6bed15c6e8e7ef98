/**
 * A server handed Unix-domain sockets (MuxServer.accept() from a listener on a path, as the
 * README's library section allows) names their peers in its logs: Node gives such a peer no
 * address, and the label read `undefined:undefined`.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import type { LogEvent } from '../server/logEvents.js';
import { MuxServer } from '../server/server.js';
import { MemoryStorage } from '../storage/memory.js';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

it('names a Unix-domain peer "unix socket" in its log lines, without a remote field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'muxftp-unix-peer-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const events: LogEvent[] = [];
  const server = new MuxServer({
    storage: new MemoryStorage(),
    log: (line) => lines.push(line),
    logEvent: (event) => events.push(event),
  });
  cleanup.push(() => server.close(0));
  const listener: Server = createServer((socket) => server.accept(socket));
  cleanup.push(() => void listener.close());
  listener.listen(join(dir, 'muxftp.sock'));
  await once(listener, 'listening');

  const client = await Client.over(connect(join(dir, 'muxftp.sock')));
  await client.put('a.txt', Buffer.from('hi'));
  const labels = server.connectionFigures().map((figures) => figures.label);
  await client.close();
  await expect.poll(() => events.some((event) => event.event === 'closed')).toBe(true);

  expect(labels).toEqual([expect.stringMatching(/^conn#\d+ unix socket$/)]);
  expect(lines.join('\n')).not.toContain('undefined');
  const received = events.find((event) => event.event === 'received')!;
  expect(received.text).toMatch(/^conn#\d+ unix socket received a\.txt 2 B/);
  for (const event of events) expect(event.fields).not.toHaveProperty('remote');
});
