/**
 * A server whose process runs out of descriptors (EMFILE) in the middle of serving: a request
 * that needs one (a listing's opendir, a get's open) is refused SERVER_BUSY, limit
 * `fileDescriptors`, with a retry hint, as the connection check refuses near the limit; not
 * IO_ERROR, which a client does not retry (huntFull-50: 20 to 70 of 120 clients failed so under
 * `ulimit -n 150`, the reserve overdrawn). Once descriptors free, the same requests succeed.
 * A real server and client in a child process under `prlimit --nofile` (Linux), which fills its
 * own descriptor table with /dev/null after connecting. Needs dist/ (npm run build).
 */

import { spawn, spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-outoffds-');
const havePrlimit = process.platform === 'linux' && spawnSync('prlimit', ['--version']).status === 0;
const DIST = resolve(__dirname, '..', 'dist');

afterEach(async () => {
  await tempDirs.removeAll();
});

const SCRIPT = `
import { openSync, closeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Client } from ${JSON.stringify(join(DIST, 'client', 'index.js'))};
import { DiskStorage, MuxServer } from ${JSON.stringify(join(DIST, 'server', 'index.js'))};
const root = process.argv[2];
const storage = await DiskStorage.open({ root });
const events = [];
const server = new MuxServer({ storage, port: 0, host: '127.0.0.1', logEvent: (event) => events.push(event) });
const { port } = await server.listen();
const client = await Client.connect({ host: '127.0.0.1', port });
const discard = () => new Writable({ write: (chunk, encoding, done) => done() });
const outcome = async (call) => {
  try { await call(); return 'ok'; }
  catch (error) { return { code: error.code ?? String(error), limit: error.details?.limit, retry: error.details?.retryAfterMs }; }
};
// Every descriptor left taken, as a flood of other connections and files would.
const filler = [];
for (let i = 0; i < 100000; i++) {
  try { filler.push(openSync('/dev/null', 'r')); } catch { break; }
}
const starved = {
  list: await outcome(() => client.list('d')),
  get: await outcome(() => client.get('d/f.txt', discard())),
};
for (const fd of filler) closeSync(fd);
const freed = {
  list: await outcome(() => client.list('d')),
  get: await outcome(() => client.get('d/f.txt', discard())),
};
await client.close();
await server.close(1000);
await storage.close();
const logged = events.filter((event) => event.fields?.code === 'SERVER_BUSY').map((event) => event.event);
console.log(JSON.stringify({ filled: filler.length, starved, freed, logged }));
`;

describe.skipIf(!havePrlimit)('a server out of descriptors', () => {
  it('refuses what needs one SERVER_BUSY (fileDescriptors, with a retry hint), then serves once they free', async () => {
    const dir = await tempDirs.make();
    const root = join(dir, 'root');
    await mkdir(join(root, 'd'), { recursive: true });
    await writeFile(join(root, 'd', 'f.txt'), 'hello\n');
    const script = join(dir, 'starve.mjs');
    await writeFile(script, SCRIPT);
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((done, fail) => {
      const child = spawn('prlimit', ['--nofile=256', process.execPath, script, root], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('error', fail);
      child.once('close', (status) => {
        clearTimeout(timer);
        done({ code: status, stdout, stderr });
      });
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    expect(result.filled).toBeGreaterThan(100);
    for (const op of ['list', 'get']) {
      expect(result.starved[op], op).toMatchObject({ code: 'SERVER_BUSY', limit: 'fileDescriptors' });
      expect(result.starved[op].retry, op).toBeGreaterThan(0);
    }
    expect(result.freed).toEqual({ list: 'ok', get: 'ok' });
    // The operator's sign that the limit is too low: as IO_ERROR (EMFILE) was, it is in the log
    // (a refusal, flood-bounded per connection), not only in the client's message.
    expect(result.logged).toContain('refused');
  }, 40_000);
});
