/**
 * The server's log names every change a request made (as it names every finished transfer): a
 * directory made or removed, a file deleted, a rename, a time or mode set. An operator can then
 * tell who removed what (the connection's label, and its login above). A request that fails, one
 * that only reads, or a mkdir -p of a directory that is there already adds no such line. Real
 * server on 127.0.0.1 (disk storage).
 */
import { readdir, readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../shared/errors.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { until } from './helpers/waits.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe('changes in the server log', () => {
  it('one line per change, with the connection it came from; none for reads or refusals', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.put('a.txt', Buffer.from('a'));
    const before = server.logs.length;

    await client.mkdir('docs/2026', { parents: true });
    await client.mkdir('docs', { parents: true }); // there already: nothing made, no line
    await client.mkdir('tmp');
    await client.rename('a.txt', 'docs/2026/a.txt');
    await client.setModifiedTime('docs/2026/a.txt', Date.UTC(2026, 0, 2, 3, 4, 5));
    await client.setPermissions('docs/2026/a.txt', 0o640);
    await client.delete('docs/2026/a.txt');
    await client.rmdir('tmp');
    // Reads, and a change refused: no line of a change.
    await client.list('docs');
    await client.stat('docs/2026');
    await expect(client.delete('missing.txt')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.rmdir('docs')).rejects.toMatchObject({ code: 'DIRECTORY_NOT_EMPTY' });

    const label = /^(conn#\d+ 127\.0\.0\.1:\d+) /.exec(
      server.logs.find((l) => l.includes(' received a.txt'))!,
    )![1];
    expect(server.logs.slice(before)).toEqual([
      `${label} made directory docs/2026 (and parents)`,
      `${label} made directory tmp`,
      `${label} renamed a.txt to docs/2026/a.txt`,
      `${label} set the modification time of docs/2026/a.txt to 2026-01-02T03:04:05.000Z`,
      `${label} set the mode of docs/2026/a.txt to 0640`,
      `${label} deleted docs/2026/a.txt`,
      `${label} removed directory tmp`,
    ]);
  });

  it('a time or mode set with ifUnchanged: a line when set (a time with a fraction of a ms too), none when refused', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.put('a.txt', Buffer.from('a'));
    const seen = await client.stat('a.txt');
    const stale = { size: seen.size + 1, mtime: seen.mtime };
    const before = server.logs.length;

    // A local file's time, as put --skip-identical sends it: node gives it a fraction of a ms.
    const time = Date.UTC(2026, 0, 2, 3, 4, 5) + 0.456789;
    await client.setModifiedTime('a.txt', time, { ifUnchanged: stale });
    await client.setModifiedTime('a.txt', time, { ifUnchanged: { size: seen.size, mtime: seen.mtime } });
    const timed = await client.stat('a.txt');
    await client.setPermissions('a.txt', 0o640, { ifUnchanged: stale });
    await client.setPermissions('a.txt', 0o640, { ifUnchanged: { size: timed.size, mtime: timed.mtime } });

    const label = /^(conn#\d+ 127\.0\.0\.1:\d+) /.exec(server.logs.at(-1)!)![1];
    expect(server.logs.slice(before)).toEqual([
      `${label} set the modification time of a.txt to 2026-01-02T03:04:05.000Z`,
      `${label} set the mode of a.txt to 0640`,
    ]);
  });

  /**
   * Commits on `server` wait for release(); `committing` resolves when one starts; `failWith`:
   * the commit then fails with it instead (the temporary file aborted).
   */
  function heldCommits(server: TestServer, failWith?: Error) {
    const storage = server.storage;
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let onCommitting = () => {};
    const committing = new Promise<void>((resolve) => {
      onCommitting = resolve;
    });
    const createUpload = storage.createUpload.bind(storage);
    storage.createUpload = async (path, options) => {
      const handle = await createUpload(path, options);
      return {
        write: (chunks) => handle.write(chunks),
        commit: async (digest, commitOptions) => {
          onCommitting();
          await held;
          if (failWith === undefined) return handle.commit(digest, commitOptions);
          await handle.abort();
          throw failWith;
        },
        abort: (abortOptions) => handle.abort(abortOptions),
      };
    };
    return { committing, release };
  }

  /** Puts a.bin (6000 B) and resets its connection once the commit has started. */
  async function putCutDuringCommit(server: TestServer, committing: Promise<void>): Promise<void> {
    const client = await server.connect();
    client.put('a.bin', Buffer.alloc(6000, 1)).catch(() => {}); // its connection goes before the answer
    await committing;
    // Gone for good (a reset): a FIN alone is a half-close, which the server answers first.
    (client as unknown as { transport: { socket: Socket } }).transport.socket.resetAndDestroy();
    await until(() => server.server.stats().connections === 0, 'the connection to close');
  }

  it('a put whose commit ends after its connection is gone is named received, and counted', async () => {
    server = await startServer({ backend: 'disk' });
    const { committing, release } = heldCommits(server);
    await putCutDuringCommit(server, committing);
    release();
    await until(
      () => server!.logs.some((line) => line.includes(' received a.bin 6000 B')),
      'a received line',
    );
    expect(server.server.stats()).toMatchObject({ filesIn: 1, bytesIn: 6000 });
    expect((await readFile(join(server.root!, 'a.bin'))).length).toBe(6000);
  });

  it("a put whose commit fails after its connection is gone says why, as it would to its client: a disk's failure is the operator's", async () => {
    server = await startServer({ backend: 'disk' });
    const failure = new StorageError('IO_ERROR', 'input/output error: a.bin', 'a.bin');
    const { committing, release } = heldCommits(server, failure);
    await putCutDuringCommit(server, committing);
    release();
    // Before: fail() returned at once on a finished stream, and no line said the disk failed.
    await until(
      () => server!.logs.some((line) => / stream 1: input\/output error: a\.bin \(IO_ERROR\)$/.test(line)),
      'a storage_failed line',
    );
    expect(server.server.counters.errors.get('IO_ERROR')).toBe(1);
    expect(server.server.stats()).toMatchObject({ filesIn: 0, bytesIn: 0 });
    expect(await readdir(server.root!)).toEqual([]);
  });
});
