/**
 * A server handed Unix-domain sockets (MuxServer.accept() from a listener on a path, as the
 * README's library section allows) names their peers in its logs: Node gives such a peer no
 * address, and the label read `undefined:undefined`.
 */
import { execFileSync } from 'node:child_process';
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

it('does not name a TCP peer that reset before its address was read "unix socket"', async () => {
  // Node gives such a socket no remoteAddress either (getpeername: ENOTCONN); it keeps its local one.
  const events: LogEvent[] = [];
  const lines: string[] = [];
  const server = new MuxServer({
    storage: new MemoryStorage(),
    log: (line) => lines.push(line),
    logEvent: (event) => events.push(event),
  });
  cleanup.push(() => server.close(0));
  const accepted: Array<string | undefined> = [];
  const listener: Server = createServer((socket) => {
    accepted.push(socket.remoteAddress);
    server.accept(socket);
  });
  cleanup.push(() => void listener.close());
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as { port: number };
  // A child connects and resets while this loop is blocked: the reset lands before accept().
  execFileSync(
    process.execPath,
    [
      '-e',
      `const c = require('node:net').connect(${port}, '127.0.0.1', () => c.resetAndDestroy()); c.on('error', () => {});`,
    ],
    { timeout: 10_000 },
  );
  await expect.poll(() => events.some((event) => event.event === 'closed')).toBe(true);
  expect(accepted).toEqual([undefined]);
  expect(lines.join('\n')).not.toContain('unix socket');
  expect(lines.join('\n')).toMatch(/conn#\d+ peer gone/);
});
