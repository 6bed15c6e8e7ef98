/**
 * A library caller's `log` or `logEvent` that throws (a logger writing to something closed): its
 * error is the caller's, thrown on a turn of its own, and the server's work goes on. Before, it was
 * thrown into that work: a put was never answered, a mkdir neither, and close() never settled.
 * Run in a child process: the error is an uncaught exception there, as from any listener.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const dist = (path: string): string => pathToFileURL(resolve(import.meta.dirname, '..', 'dist', path)).href;

const SCRIPT = `
import { MemoryStorage, MuxServer } from ${JSON.stringify(dist('server/index.js'))};
import { Client } from ${JSON.stringify(dist('client/index.js'))};
const thrown = [];
process.on('uncaughtException', (error) => thrown.push(error.message));
const within = (call) =>
  Promise.race([
    call.then(() => 'ok', (error) => error.code),
    new Promise((resolve) => setTimeout(() => resolve('no answer'), 3000)),
  ]);
for (const key of ['log', 'logEvent']) {
  const server = new MuxServer({
    storage: new MemoryStorage(),
    host: '127.0.0.1',
    port: 0,
    [key]: () => {
      throw new Error('logger broke');
    },
  });
  const { port } = await server.listen();
  const client = await Client.connect({ host: '127.0.0.1', port });
  const results = {
    put: await within(client.put('a.bin', Buffer.from('x'))),
    mkdir: await within(client.mkdir('d')),
    missing: await within(client.getBuffer('nope')),
    close: await within(client.close()),
    serverClose: await within(server.close()),
  };
  console.log(JSON.stringify({ key, results, thrown: thrown.length > 0 && thrown.every((m) => m === 'logger broke') }));
  thrown.length = 0;
}
`;

describe('a log function of the caller that throws', () => {
  it("leaves the server's work whole: every call answered, close() settles; the error is thrown on its own", async () => {
    // Killed at the timeout (before: a connection left open kept it alive): what it printed counts.
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', SCRIPT], {
      timeout: 40_000,
    }).catch((error: { stdout: string }) => error);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    const results = { put: 'ok', mkdir: 'ok', missing: 'NOT_FOUND', close: 'ok', serverClose: 'ok' };
    expect(lines).toEqual([
      { key: 'log', results, thrown: true },
      { key: 'logEvent', results, thrown: true },
    ]);
  }, 60_000);
});
