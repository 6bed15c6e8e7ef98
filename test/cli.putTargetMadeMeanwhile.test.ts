/**
 * `put -r TREE --to DIR` makes DIR when it is missing. Two such runs at once both find it
 * missing, and the second one's mkdir then finds it made: that run must go on into it, as mkdir -p
 * does, not fail ALREADY_EXISTS having sent nothing ("several runs against one server at once are
 * fine"). Real CLI, real server on disk.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-put-target-meanwhile-');
let server: TestServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

/**
 * `put -r tree --to up` from a local tree holding a.txt, where `meanwhile` (another run, on a
 * connection of its own) acts between this run's look at `up` (missing) and its mkdir of it.
 */
async function putWhile(meanwhile: (other: Client) => Promise<unknown>) {
  server = await startServer({ backend: 'disk' });
  const other = await server.connect();
  const local = await tempDirs.make();
  await mkdir(join(local, 'tree'));
  await writeFile(join(local, 'tree', 'a.txt'), 'a');
  const makeDirectory = server.storage.mkdir.bind(server.storage);
  let raced = false;
  server.storage.mkdir = async (path, options) => {
    if (path === 'up' && !raced) {
      raced = true;
      await meanwhile(other);
    }
    return makeDirectory(path, options);
  };
  const run = await runCli(
    ['--server', `127.0.0.1:${server.port}`, 'put', '-q', '-r', 'tree', '--to', 'up'],
    local,
  );
  return { run, raced };
}

describe('put into a directory another run makes meanwhile', () => {
  it('goes on into it once it is a directory', async () => {
    const { run, raced } = await putWhile((other) => other.mkdir('up'));
    expect(raced).toBe(true);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await readFile(join(server!.root!, 'up', 'tree', 'a.txt'), 'utf8')).toBe('a');
  });

  it('still fails when what was made meanwhile is a file', async () => {
    const { run, raced } = await putWhile((other) => other.put('up', Buffer.from('a file')));
    expect(raced).toBe(true);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('(ALREADY_EXISTS)');
    expect(await readFile(join(server!.root!, 'up'), 'utf8')).toBe('a file');
  });
});
