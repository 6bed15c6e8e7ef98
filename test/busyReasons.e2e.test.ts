/**
 * SERVER_BUSY names the limit that refused (ERROR `details.limit`, docs/PROTOCOL.md "Errors"), and
 * the client pauses its initial upload window (its puts decline it for a while) only after a
 * refusal for the upload backlog, the one a put declining the window is spared. A put refused at
 * the open-file cap keeps the window: declining it would only cost its next puts a round trip.
 * A server from before the field (its ERROR without `details`) gets the behaviour of before: a
 * pause after any refusal. Real server, real sockets, the library client and the real CLI, through
 * a proxy that records the OPENs the client sends (and, as an older server, drops `details`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RemoteError } from '../shared/errors.js';
import { FrameType } from '../shared/protocol/constants.js';
import { MemoryStorage } from '../storage/memory.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy, withJson } from './helpers/frameProxy.js';
import { type HeldUploads, holdUploads } from './helpers/heldUploads.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const KiB = 1024;

let env: TestServer | undefined;
let proxy: FrameProxy | undefined;
let workDir: string | undefined;
let held: HeldUploads | undefined;
afterEach(async () => {
  held?.release();
  held = undefined;
  await env?.stop();
  env = undefined;
  await proxy?.close();
  proxy = undefined;
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  workDir = undefined;
});

/**
 * A proxy to the server that records the client's OPEN payloads; `olderServer` drops `details`
 * from the server's ERROR frames, as a server from before them sent them.
 */
async function recordingProxy(
  serverPort: number,
  olderServer: boolean,
): Promise<{ port: number; opens: object[] }> {
  const opens: object[] = [];
  proxy = await startFrameProxy(serverPort, {
    fromClient: (frame) => {
      if (frame.type === FrameType.OPEN) opens.push(jsonOf(frame));
      return frame;
    },
    fromServer: (frame) => {
      if (frame.type !== FrameType.ERROR || !olderServer) return frame;
      const { details: _dropped, ...before } = jsonOf(frame);
      return withJson(frame, before);
    },
  });
  return { port: proxy.port, opens };
}

/**
 * A server with `maxOpenFiles` slots, every one taken by a blocker's uploads whose writes are held
 * (so each keeps its slot) until `held.release()`; the blockers' puts settle once released.
 */
async function everySlotHeld(maxOpenFiles: number): Promise<{ blocked: Promise<unknown> }> {
  const storage = new MemoryStorage();
  held = holdUploads(storage);
  env = await startServer({ storage, maxOpenFiles });
  const blocker = await env.connect();
  const blocked = Promise.all(
    Array.from({ length: maxOpenFiles }, (_, i) => blocker.put(`blocker${i}`, randomBytes(100 * KiB))),
  );
  blocked.catch(() => {});
  await held.holding;
  for (const started = Date.now(); env.server.counters.openFiles < maxOpenFiles; ) {
    if (Date.now() - started > 10_000) throw new Error('the blocker does not hold every slot');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { blocked };
}

const putOpen = (path: string, size: number, declined = false) =>
  declined ? { op: 'put', path, size, initialWindow: false } : { op: 'put', path, size };

describe('the library client after a put refused SERVER_BUSY at the open-file cap', () => {
  it("keeps the initial window for the connection's next puts: the refusal names openFiles", async () => {
    const { blocked } = await everySlotHeld(1);
    const { port, opens } = await recordingProxy(env!.port, false);
    const client = await env!.connect({ port });
    expect(client.uploadInitialWindow).toBeGreaterThan(0);

    const refused = await client.put('refused', Buffer.alloc(1000, 1)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RemoteError);
    expect(refused).toMatchObject({ code: 'SERVER_BUSY', details: { limit: 'openFiles' } });
    held!.release();
    await blocked;
    await client.put('next', Buffer.alloc(2000, 2));

    expect(opens).toEqual([putOpen('refused', 1000), putOpen('next', 2000)]);
  });

  it('from a server that names no limit (one from before): declines it for a while, as before', async () => {
    const { blocked } = await everySlotHeld(1);
    const { port, opens } = await recordingProxy(env!.port, true);
    const client = await env!.connect({ port });

    const refused = await client.put('refused', Buffer.alloc(1000, 1)).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'SERVER_BUSY', details: undefined });
    held!.release();
    await blocked;
    await client.put('next', Buffer.alloc(2000, 2));

    expect(opens).toEqual([putOpen('refused', 1000), putOpen('next', 2000, true)]);
  });
});

describe('muxftp put refused SERVER_BUSY at the open-file cap', () => {
  async function putTwoWhileOneSlotIsFree(olderServer: boolean): Promise<object[]> {
    // Two slots: the blocker holds one, the CLI's two puts contend for the other.
    const storage = new MemoryStorage();
    held = holdUploads(storage, 0, (path) => path.startsWith('blocker'));
    env = await startServer({ storage, maxOpenFiles: 2 });
    const blocker = await env.connect();
    const blocked = blocker.put('blocker', randomBytes(100 * KiB));
    blocked.catch(() => {});
    await held.holding;
    const { port, opens } = await recordingProxy(env.port, olderServer);
    workDir = await mkdtemp(join(tmpdir(), 'muxftp-busy-reasons-'));
    const files = ['one', 'two'].map((name) => ({ name, content: randomBytes(64 * KiB) }));
    for (const { name, content } of files) await writeFile(join(workDir, name), content);
    // The one that gets the slot is held by a slow disk long enough for the other to be refused.
    const slowSetUp = storage.createUpload.bind(storage);
    storage.createUpload = async (path, options) => {
      if (!path.startsWith('blocker')) await new Promise((resolve) => setTimeout(resolve, 300));
      return slowSetUp(path, options);
    };
    const { code, stderr } = await runCli(
      ['--server', `127.0.0.1:${port}`, 'put', 'one', 'two', '--to', 'd/', '-p', '-j', '2'],
      workDir,
      { timeoutMs: 40_000 },
    );
    held.release();
    await blocked;
    expect(stderr).toMatch(/files are open for transfers; try again later; trying again in/);
    expect(code).toBe(0);
    const reader = await env.connect();
    for (const { name, content } of files)
      expect((await reader.getBuffer(`d/${name}`)).equals(content)).toBe(true);
    return opens.filter((open) => (open as { op: string }).op === 'put');
  }

  it('retries it on the initial window: the refusal was no upload backlog', async () => {
    const puts = await putTwoWhileOneSlotIsFree(false);
    // Three puts: both files, then the refused one again, never declining the window.
    expect(puts).toHaveLength(3);
    expect(puts.filter((open) => 'initialWindow' in open)).toEqual([]);
  });

  it('from a server that names no limit (one from before): retries it declining the window, as before', async () => {
    const puts = await putTwoWhileOneSlotIsFree(true);
    expect(puts).toHaveLength(3);
    expect(puts[2]).toMatchObject({ initialWindow: false });
  });
});
