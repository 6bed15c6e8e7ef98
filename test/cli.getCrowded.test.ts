/**
 * `get` of many files named in one remote directory learns what they are from one listing of it,
 * not a stat each (cli/crowdedDirectories.ts), through the real CLI against a real server on
 * disk, a proxy noting what the client asks. What the listing cannot tell (a name not there) is
 * asked with stat, so the errors stay the server's own.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-getcrowded-');
let server: TestServer | undefined;
let proxy: FrameProxy | undefined;

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

interface Outcome {
  remote: string;
  ok: boolean;
  bytes: number;
  error?: { code: string };
}

/** A server on disk whose `dir/` holds `count` files `f<i>` (and `others` empty files), behind a proxy noting stats and lists. */
async function crowdedServer(count: number, others = 0) {
  server = await startServer({ backend: 'disk' });
  const dir = join(server.root!, 'dir');
  await mkdir(join(dir, 'sub'), { recursive: true });
  const contents = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const content = randomBytes(100 + i);
    contents.set(`f${i}`, content);
    await writeFile(join(dir, `f${i}`), content);
  }
  for (let i = 0; i < others; i++) await writeFile(join(dir, `other${i}`), '');
  const asked: string[] = [];
  const listings = new Set<number>();
  let cancelled = 0;
  let listed = 0;
  proxy = await startFrameProxy(server.port, {
    fromClient: (frame) => {
      if (frame.type === FrameType.OPEN) {
        const { op, path } = jsonOf(frame) as { op: string; path: string };
        if (op === 'list') listings.add(frame.streamId);
        if (op === 'stat' || op === 'list') asked.push(`${op} ${path}`);
      }
      if (frame.type === FrameType.CANCEL && listings.has(frame.streamId)) cancelled++;
      return frame;
    },
    fromServer: (frame) => {
      if (frame.type === FrameType.REPLY && listings.has(frame.streamId)) listed++;
      return frame;
    },
  });
  return {
    contents,
    asked,
    cancelledListings: () => cancelled,
    listingReplies: () => listed,
    port: proxy.port,
  };
}

async function get(port: number, remotes: string[], to: string) {
  const run = await runCli(
    ['get', ...remotes, '--to', to, '-j', '8', '--json', '--server', `127.0.0.1:${port}`],
    to,
    { timeoutMs: 30_000 },
  );
  return { code: run.code, stderr: run.stderr, outcomes: JSON.parse(run.stdout) as Outcome[] };
}

/** `get` of every file crowdedServer made, into a fresh local directory: all must arrive. */
async function getAll(port: number, contents: Map<string, Buffer>) {
  const local = await tempDirs.make();
  const names = [...contents.keys()];
  const run = await get(
    port,
    names.map((name) => `dir/${name}`),
    local,
  );
  expect(run.code).toBe(0);
  expect(run.outcomes.filter((o) => o.ok)).toHaveLength(names.length);
  for (const [name, content] of contents)
    expect((await readFile(join(local, name))).equals(content)).toBe(true);
  return names;
}

describe('get of many files in one directory', () => {
  it('asks one listing instead of a stat each, and gets every file right', async () => {
    const { contents, asked, port } = await crowdedServer(20);
    await getAll(port, contents);
    // Before: twenty stats, one per file.
    expect(asked).toEqual(['list dir']);
  }, 60_000);

  it("a name the listing lacks is asked with stat, and fails with the server's NOT_FOUND; a directory named without -r is refused as before", async () => {
    const { contents, asked, port } = await crowdedServer(10);
    const local = await tempDirs.make();
    const remotes = [...[...contents.keys()].map((name) => `dir/${name}`), 'dir/missing', 'dir/sub'];
    const run = await get(port, remotes, local);
    expect(run.code).not.toBe(0);
    const byRemote = new Map(run.outcomes.map((o) => [o.remote, o]));
    expect(byRemote.get('dir/missing')).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(byRemote.get('dir/sub')).toMatchObject({ ok: false, error: { code: 'IS_A_DIRECTORY' } });
    expect(run.stderr).toMatch(/add -r/);
    for (const name of contents.keys()) expect(byRemote.get(`dir/${name}`)).toMatchObject({ ok: true });
    expect(asked.sort()).toEqual(['list dir', 'stat dir/missing']);
  }, 60_000);

  it('a directory far larger than the files named is not listed: the server refuses the listing at once, and each file is stat-ed', async () => {
    // 8 files · 16 entries each may be listed: 2,000 others are far more.
    const { contents, asked, cancelledListings, listingReplies, port } = await crowdedServer(8, 2000);
    const names = await getAll(port, contents);
    // Before: the server sorted all 2,008 names and sent entries until the client cancelled.
    expect(listingReplies()).toBe(0);
    expect(cancelledListings()).toBe(0);
    expect(asked.sort()).toEqual(['list dir', ...names.map((name) => `stat dir/${name}`)].sort());
  }, 60_000);

  it('a few files are stat-ed, not listed', async () => {
    const { contents, asked, port } = await crowdedServer(3);
    const names = await getAll(port, contents);
    expect(asked.sort()).toEqual(names.map((name) => `stat dir/${name}`).sort());
  }, 60_000);
});
