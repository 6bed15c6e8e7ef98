/**
 * A put that declines the initial upload window (`"initialWindow": false`, docs/PROTOCOL.md "Flow
 * control"): it brings nothing before the server's first WINDOW, so a server whose upload bytes
 * waiting for the disk are past their ceiling admits it to wait for credit instead of refusing it
 * SERVER_BUSY, as it refuses a put sent on the window. Over real sockets: raw peers for the wire
 * rules, the library client, and the CLI against a server held past its ceiling.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FRAME_TYPE_NAMES, FrameType } from '../shared/protocol/constants.js';
import { encodeData, encodeEnd, encodeOpen } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { MemoryStorage } from '../storage/memory.js';
import { runCli } from './helpers/cliProcess.js';
import { type FrameProxy, jsonOf, startFrameProxy, withJson } from './helpers/frameProxy.js';
import { holdSetUp } from './helpers/heldSetUp.js';
import { holdUploads } from './helpers/heldUploads.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { pushPastTheCeiling, stalledPastTheMark } from './helpers/stalledDisk.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay } from './helpers/waits.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const N = DEFAULTS.uploadInitialWindowBytes;
const MARK = 2 * MiB;

let env: TestServer | undefined;
const peers: RawPeer[] = [];
let workDir: string | undefined;
let proxy: FrameProxy | undefined;
afterEach(async () => {
  env = await stopServerAndPeers(env, peers);
  await proxy?.close();
  proxy = undefined;
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  workDir = undefined;
});

const stalled = (options: Parameters<typeof stalledPastTheMark>[2] = {}) =>
  stalledPastTheMark(
    MARK,
    (started) => {
      env = started;
    },
    options,
  );

async function windowPeer(port: number): Promise<RawPeer> {
  const peer = await RawPeer.open(port, ['xxh128'], { uploadInitialWindow: true });
  peers.push(peer);
  return peer;
}

const answerOn = (id: number) => (f: Frame) =>
  (f.type === FrameType.REPLY || f.type === FrameType.ERROR) && f.streamId === id;

const welcomeOf = (peer: RawPeer): Record<string, unknown> =>
  JSON.parse(peer.frames.find((f) => f.type === FrameType.WELCOME)!.payload.toString());

describe('past the ceiling, a client that took the initial window', () => {
  it('has a put declining the window admitted, holding nothing, completed once the disk catches up; one without is refused SERVER_BUSY', async () => {
    const { held, total, filled, big } = await stalled();
    // Connected before the ceiling is passed: announced the window, and that a put may decline it.
    const declining = await windowPeer(env!.port);
    const refused = await windowPeer(env!.port);
    expect(welcomeOf(declining)).toMatchObject({
      limits: { uploadInitialWindow: N },
      uploadInitialWindowOptional: true,
    });
    await pushPastTheCeiling(env!.port, total, MARK, peers);
    const before = total();

    const content = randomBytes(100 * KiB);
    declining.write(
      encodeOpen(1, { op: 'put', path: 'declined', size: content.length, initialWindow: false }),
    );
    refused.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'refused', size: content.length }),
        encodeData(1, content),
        encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)),
      ]),
    );
    const refusal = await refused.waitFor(answerOn(1));
    expect(refusal.type).toBe(FrameType.ERROR);
    // Names the limit, and says: again at once (declining the window, as the next one does).
    expect(parseErrorPayload(refusal)).toMatchObject({
      code: 'SERVER_BUSY',
      details: { limit: 'uploadBacklog', retryAfterMs: 0 },
    });
    // The declined put is admitted (answered by neither ERROR nor anything else yet) and waits.
    await delay(300);
    expect(declining.frames.filter(answerOn(1))).toEqual([]);
    expect(total()).toBeLessThanOrEqual(before);

    held.release();
    expect((await filled).digest).toBe(contentDigest('xxh128', big).toString('hex'));
    // Nothing was counted as granted: its first WINDOW is the whole stream window.
    const window = await declining.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1, 10_000);
    expect(window.payload.readUInt32BE(0)).toBe(DEFAULTS.streamWindowBytes);
    declining.write(encodeData(1, content));
    declining.write(encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)));
    expect((await declining.waitFor(answerOn(1), 10_000)).type).toBe(FrameType.REPLY);
    const reader = await env!.connect();
    expect((await reader.getBuffer('declined')).equals(content)).toBe(true);
    await expect(reader.stat('refused')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 60_000);

  it('has a put sent on the window refused even when it follows an admitted declined put in the same read', async () => {
    const { held, total, filled } = await stalled();
    const peer = await windowPeer(env!.port);
    await pushPastTheCeiling(env!.port, total, MARK, peers);
    const content = randomBytes(KiB);
    // One write, one read: the declined put opens an upload, then a put on the window follows it.
    peer.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'declined', size: content.length, initialWindow: false }),
        encodeOpen(3, { op: 'put', path: 'behind', size: content.length }),
        encodeData(3, content),
        encodeEnd(3, content.length, 'xxh128', contentDigest('xxh128', content)),
      ]),
    );
    expect(parseErrorPayload(await peer.waitFor(answerOn(3))).code).toBe('SERVER_BUSY');
    expect(peer.frames.filter(answerOn(1))).toEqual([]);
    held.release();
    await filled;
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1, 10_000);
    peer.write(encodeData(1, content));
    peer.write(encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)));
    expect((await peer.waitFor(answerOn(1), 10_000)).type).toBe(FrameType.REPLY);
    const reader = await env!.connect();
    expect((await reader.list('')).map((e) => e.name)).not.toContain('behind');
  }, 60_000);

  it("library: a put with initialWindow false is admitted; after a refusal the connection's next puts decline the window by themselves", async () => {
    const { held, total, filled } = await stalled();
    const client = await env!.connect();
    expect(client.uploadInitialWindow).toBe(N);
    await pushPastTheCeiling(env!.port, total, MARK, peers);
    const asked = client.put('asked', Buffer.from('declined on request'), { initialWindow: false });
    // The first put sent on the window is refused; the ones after it decline it and wait.
    await expect(client.put('first', Buffer.from('sent on the window'))).rejects.toMatchObject({
      code: 'SERVER_BUSY',
    });
    const later = client.put('later', Buffer.from('declined after the refusal'));
    const settled = await Promise.race([
      Promise.allSettled([asked, later]),
      delay(300).then(() => 'waiting'),
    ]);
    expect(settled).toBe('waiting');
    held.release();
    await filled;
    expect((await asked).entry.size).toBe(19);
    expect((await later).entry.size).toBe(26);
  }, 60_000);
});

describe('a put that declines the initial window', () => {
  it('sending DATA before any WINDOW is a FLOW_CONTROL_ERROR and stores nothing; the same on the window is not', async () => {
    // A bandwidth limit keeps the window until the set-up, which is held: no WINDOW comes.
    env = await startServer({ maxRateBytesPerSecond: 1024 * MiB });
    const release = holdSetUp(env.storage);
    const onWindow = await windowPeer(env.port);
    onWindow.write(
      Buffer.concat([encodeOpen(1, { op: 'put', path: 'taken' }), encodeData(1, Buffer.alloc(1))]),
    );
    onWindow.write(encodeOpen(3, { op: 'stat', path: 'nothing' }));
    await onWindow.waitFor(answerOn(3));
    expect(onWindow.frames.some((f) => f.type === FrameType.ERROR && f.streamId === 0)).toBe(false);

    const declined = await windowPeer(env.port);
    declined.write(
      Buffer.concat([
        encodeOpen(1, { op: 'put', path: 'declined', initialWindow: false }),
        encodeData(1, Buffer.alloc(1)),
        encodeEnd(1, 1, 'xxh128', contentDigest('xxh128', Buffer.alloc(1))),
      ]),
    );
    expect((await declined.connectionError()).code).toBe('FLOW_CONTROL_ERROR');
    release();
    const reader = await env.connect();
    for (const started = Date.now(); Date.now() - started < 2_000; ) {
      if ((await reader.list('')).length === 0) break;
      await delay(20);
    }
    expect(await reader.list('')).toEqual([]);
  });

  it('is allowed only to clients that took the window: one that did not is not told', async () => {
    env = await startServer();
    const old = await RawPeer.open(env.port);
    peers.push(old);
    expect(welcomeOf(old)).not.toHaveProperty('uploadInitialWindowOptional');
    expect(welcomeOf(await windowPeer(env.port))).toHaveProperty('uploadInitialWindowOptional', true);
  });

  it('whose field is not a boolean is BAD_REQUEST, on that stream only', async () => {
    env = await startServer();
    const peer = await windowPeer(env.port);
    peer.write(encodeOpen(1, { op: 'put', path: 'x', initialWindow: 'no' } as never));
    const error = parseErrorPayload(await peer.waitFor(answerOn(1)));
    expect(error).toMatchObject({ code: 'BAD_REQUEST' });
    expect(error.message).toMatch(/initialWindow/);
  });
});

describe('muxftp put through a connection that took the initial window, past the ceiling', () => {
  it('completes every file (--retries at its default) on that one connection: a refused put is retried declining the window', async () => {
    const storage = new MemoryStorage();
    // The CLI's `-p` mkdir waits until the server is past its ceiling: the CLI connected before,
    // so it took the initial window, and its puts come once no upload of its own is open.
    let mkdirCalled!: () => void;
    const mkdirReached = new Promise<void>((resolve) => {
      mkdirCalled = resolve;
    });
    let openMkdir!: () => void;
    const mkdirGate = new Promise<void>((resolve) => {
      openMkdir = resolve;
    });
    const mkdir = storage.mkdir.bind(storage);
    storage.mkdir = async (path, options) => {
      mkdirCalled();
      await mkdirGate;
      return mkdir(path, options);
    };
    // Which of the CLI's uploads the server set up (admitted), by path.
    const setUp = new Set<string>();
    const createUpload = storage.createUpload.bind(storage);
    storage.createUpload = (path, options) => {
      setUp.add(path);
      return createUpload(path, options);
    };
    const { held, total, filled } = await stalled({ storage });

    workDir = await mkdtemp(join(tmpdir(), 'muxftp-busy-'));
    const files = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, content: randomBytes(64 * KiB) }));
    for (const { name, content } of files) await writeFile(join(workDir, name), content);
    const connectionsBefore = env!.server.counters.connectionsTotal;
    const cli = runCli(
      [
        '--server',
        `127.0.0.1:${env!.port}`,
        'put',
        ...files.map((f) => f.name),
        '--to',
        'd/',
        '-p',
        '-j',
        '3',
      ],
      workDir,
      { timeoutMs: 40_000 },
    );
    let exited = false;
    void cli.finally(() => {
      exited = true;
    });
    await mkdirReached;
    await pushPastTheCeiling(env!.port, total, MARK, peers);
    const pushers = env!.server.counters.connectionsTotal - connectionsBefore - 1;
    openMkdir();
    // Released once one of the CLI's puts is set up (admitted: its connection then stops being
    // read until the disk catches up). A put refused and retried on the window again would never
    // be while the disk is held: refused again and again until the release below.
    const admitted = () => [...setUp].some((path) => path.startsWith('d/'));
    for (const started = Date.now(); Date.now() - started < 10_000 && !exited; ) {
      if (admitted()) break;
      await delay(20);
    }
    const admittedWhileHeld = admitted();

    held.release();
    await filled;
    const { code, stderr } = await cli;
    expect(admittedWhileHeld).toBe(true);
    // The server's hint for this refusal is "again at once" (declining the window).
    expect(stderr).toMatch(
      /server busy: uploads are waiting for the disk; try again later; trying again at once \(for up to 60 s while the server is busy;/,
    );
    expect(code).toBe(0);
    // One connection all along: the refusals did not make the CLI reconnect.
    expect(env!.server.counters.connectionsTotal - connectionsBefore - pushers).toBe(1);
    const reader = await env!.connect();
    for (const { name, content } of files)
      expect((await reader.getBuffer(`d/${name}`)).equals(content)).toBe(true);
  }, 60_000);
});

describe('muxftp put refused SERVER_BUSY at the open-file cap', () => {
  it('retries that file on the same connection: the other transfer in flight on it goes on, not retried', async () => {
    const storage = new MemoryStorage();
    const held = holdUploads(storage); // every upload's writes wait: each holds its file slot
    env = await startServer({ storage, maxOpenFiles: 2 });
    const blocker = await env.connect();
    const blocked = blocker.put('blocker', randomBytes(100 * KiB));
    blocked.catch(() => {});
    await held.holding;
    workDir = await mkdtemp(join(tmpdir(), 'muxftp-busy-'));
    const files = ['one', 'two'].map((name) => ({ name, content: randomBytes(64 * KiB) }));
    for (const { name, content } of files) await writeFile(join(workDir, name), content);
    const connectionsBefore = env.server.counters.connectionsTotal;
    const cli = runCli(
      ['--server', `127.0.0.1:${env.port}`, 'put', 'one', 'two', '--to', 'd/', '-p', '-j', '2'],
      workDir,
      { timeoutMs: 40_000 },
    );
    // One of the two takes the last slot and waits for the disk; the other is refused.
    const refusals = () => env!.server.counters.errors.get('SERVER_BUSY') ?? 0;
    for (const started = Date.now(); refusals() === 0 && Date.now() - started < 10_000; ) await delay(10);
    expect(refusals()).toBe(1);
    await delay(200);
    held.release();
    await blocked;
    const { code, stderr } = await cli;
    expect(code).toBe(0);
    // Replacing the connection would have failed the one in flight too (CONNECTION_LOST): a
    // retry line for each file, and a second connection.
    expect(
      stderr.match(/trying again in 0\.[5-8] s \(for up to 60 s while the server is busy;/g),
    ).toHaveLength(1);
    expect(stderr).not.toMatch(/retry/);
    expect(env.server.counters.connectionsTotal - connectionsBefore).toBe(1);
    const reader = await env.connect();
    for (const { name, content } of files)
      expect((await reader.getBuffer(`d/${name}`)).equals(content)).toBe(true);
  }, 60_000);
});

/**
 * A proxy that makes the server look like one from before a put could decline the initial
 * window: WELCOME loses `uploadInitialWindowOptional`. Records the OPEN payloads and the frame
 * types the client sends.
 */
async function serverThatDoesNotTellProxy(
  serverPort: number,
): Promise<{ port: number; opens: object[]; sent: string[] }> {
  const opens: object[] = [];
  const sent: string[] = [];
  proxy = await startFrameProxy(serverPort, {
    fromClient: (frame) => {
      sent.push(`${FRAME_TYPE_NAMES[frame.type]} ${frame.streamId}`);
      if (frame.type === FrameType.OPEN) opens.push(jsonOf(frame));
      return frame;
    },
    fromServer: (frame) => {
      if (frame.type !== FrameType.WELCOME) return frame;
      const { uploadInitialWindowOptional: _dropped, ...before } = jsonOf(frame);
      return withJson(frame, before);
    },
  });
  return { port: proxy.port, opens, sent };
}

describe('a server that does not say a put may decline the initial window (one from before)', () => {
  it('is never sent the field: a put asked to decline it goes on the window, and is stored', async () => {
    env = await startServer();
    const { port, opens, sent } = await serverThatDoesNotTellProxy(env.port);
    const client = await env.connect({ port });
    expect(client.serverInfo.uploadInitialWindowOptional).toBeUndefined();
    const bytes = Buffer.alloc(64 * KiB, 4);
    const result = await client.put('old.bin', bytes, { initialWindow: false });
    expect(result.digest).toBe(contentDigest('xxh128', bytes).toString('hex'));
    expect(opens).toEqual([{ op: 'put', path: 'old.bin', size: bytes.length }]);
    // Sent on the window, right behind its OPEN (the server counts it as granted).
    expect(sent.filter((f) => !f.endsWith(' 0')).slice(0, 3)).toEqual(['OPEN 1', 'DATA 1', 'END 1']);
  });
});
