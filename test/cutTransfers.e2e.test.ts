/**
 * A transfer cut before its end (the connection lost mid-way, or the client cancelling it) gets a
 * log line naming the file and how far it got: the connection's close line says neither, so "did
 * bob's upload of X finish?" could not be answered from the log. Real server on 127.0.0.1, a raw
 * peer that drops its socket or cancels its streams.
 */

import { once } from 'node:events';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonLine, type LogEvent, textLine } from '../server/logEvents.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import {
  encodeCancel,
  encodeData,
  encodeEnd,
  encodeError,
  encodeOpen,
  encodeWindow,
} from '../shared/protocol/encoder.js';
import { holdUploads } from './helpers/heldUploads.js';
import { RawPeer } from './helpers/rawPeer.js';
import { makeTestCerts, opensslAvailable, type TestCerts } from './helpers/testCerts.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const KiB = 1024;

/** A disk-backed TLS server whose uploads hold reading once 64 KiB wait for the disk. */
function startHeldTlsServer(certs: TestCerts): Promise<TestServer> {
  return startServer({
    backend: 'disk',
    uploadBacklogHighWaterBytes: 64 * KiB,
    tls: { cert: certs.cert, key: certs.key },
  });
}

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function logLine(s: TestServer, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 250; i++) {
    const line = s.logs.find((l) => pattern.test(l));
    if (line !== undefined) return line;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no log line like ${pattern}; the log:\n${s.logs.join('\n')}`);
}

/** A raw peer that opened a 1 MiB put of `path` as stream 1 and sent 100 KiB of it, given time to arrive. */
async function uploadUnderWay(port: number, path: string): Promise<RawPeer> {
  const peer = await RawPeer.open(port);
  peer.write(encodeOpen(1, { op: 'put', path, size: 1024 * KiB }));
  await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
  peer.write(encodeData(1, Buffer.alloc(100 * KiB, 2)));
  await new Promise((resolve) => setTimeout(resolve, 200));
  return peer;
}

describe('cut transfers in the server log', () => {
  it('names an upload and a download cut by a lost connection, and how far each got', async () => {
    server = await startServer({ backend: 'disk' });
    const client = await server.connect();
    await client.put('whole.bin', Buffer.alloc(1024 * KiB, 1));

    const uploader = await uploadUnderWay(server.port, 'cut.bin');
    uploader.destroy();
    const label = /^conn#\d+ 127\.0\.0\.1:\d+/;
    expect(await logLine(server, / upload of cut\.bin /)).toMatch(
      new RegExp(
        `${label.source} upload of cut\\.bin cut after ${100 * KiB} of ${1024 * KiB} B \\(CONNECTION_LOST\\)$`,
      ),
    );

    const downloader = await RawPeer.open(server.port);
    downloader.write(encodeOpen(1, { op: 'get', path: 'whole.bin' }));
    downloader.write(encodeWindow(1, 64 * KiB));
    const received = () =>
      downloader.frames
        .filter((f) => f.type === FrameType.DATA && f.streamId === 1)
        .reduce((n, f) => n + f.payload.length, 0);
    await downloader.waitFor(() => received() === 64 * KiB);
    downloader.destroy();
    expect(await logLine(server, / download of whole\.bin /)).toMatch(
      new RegExp(
        `${label.source} download of whole\\.bin cut after ${64 * KiB} of ${1024 * KiB} B \\(CONNECTION_LOST\\)$`,
      ),
    );
    // A transfer that finished, and a request, are never said to be cut.
    await client.getBuffer('whole.bin');
    await client.list('');
    await client.close();
    await logLine(server, /closed after .* 3 streams/);
    expect(server.logs.filter((l) => l.includes(' cut '))).toHaveLength(2);
  });

  it('names an upload and a download the client cancelled the same way, with the code CANCELLED', async () => {
    const events: LogEvent[] = [];
    server = await startServer({ backend: 'disk', logEvent: (event) => events.push(event) });
    const client = await server.connect();
    await client.put('whole.bin', Buffer.alloc(1024 * KiB, 1));

    const peer = await uploadUnderWay(server.port, 'cancelled.bin');
    peer.write(encodeCancel(1));
    const label = /^conn#\d+ 127\.0\.0\.1:\d+/;
    expect(await logLine(server, / upload of cancelled\.bin /)).toMatch(
      new RegExp(
        `${label.source} upload of cancelled\\.bin cut after ${100 * KiB} of ${1024 * KiB} B \\(CANCELLED\\)$`,
      ),
    );

    peer.write(encodeOpen(3, { op: 'get', path: 'whole.bin' }));
    peer.write(encodeWindow(3, 64 * KiB));
    const received = () =>
      peer.frames
        .filter((f) => f.type === FrameType.DATA && f.streamId === 3)
        .reduce((n, f) => n + f.payload.length, 0);
    await peer.waitFor(() => received() === 64 * KiB);
    // A client that fails the stream (its disk full, say) abandons it with ERROR: cut, with its code.
    peer.write(encodeError(3, { status: 402, code: 'LOCAL_IO_ERROR', message: 'disk full' }));
    expect(await logLine(server, / download of whole\.bin /)).toMatch(
      new RegExp(
        `${label.source} download of whole\\.bin cut after ${64 * KiB} of ${1024 * KiB} B \\(LOCAL_IO_ERROR\\)$`,
      ),
    );
    peer.destroy();
    await logLine(server, /closed after /);

    const cut = events.filter((event) => event.event === 'cut');
    expect(cut).toEqual([
      expect.objectContaining({
        level: 'warn',
        fields: expect.objectContaining({
          stream: 1,
          op: 'put',
          path: 'cancelled.bin',
          bytes: 100 * KiB,
          size: 1024 * KiB,
          code: 'CANCELLED',
        }),
      }),
      expect.objectContaining({
        level: 'warn',
        fields: expect.objectContaining({
          stream: 3,
          op: 'get',
          path: 'whole.bin',
          bytes: 64 * KiB,
          size: 1024 * KiB,
          code: 'LOCAL_IO_ERROR',
        }),
      }),
    ]);
    expect(JSON.parse(jsonLine(cut[0]!, new Date()))).toMatchObject({
      event: 'cut',
      level: 'warn',
      code: 'CANCELLED',
    });
    expect(server.logs.filter((l) => l.includes(' cut '))).toEqual(cut.map(textLine));
  });

  it('names an upload whose connection went after its END, before the commit had it: it was dropped', async () => {
    server = await startServer({ backend: 'disk' });
    // Its one write waits: END has come, and the upload is not verified nor committed yet.
    const held = holdUploads(server.storage, 0);
    const peer = await RawPeer.open(server.port);
    // Small, and sent with its END in one write: the server reads both at once, so its END has
    // come when the write is held. 100 KiB came in two reads, and the reset could land between
    // them: the upload, not ended, was then cut only once its held write returned (after the wait).
    const content = Buffer.alloc(16 * KiB, 3);
    peer.write(encodeOpen(1, { op: 'put', path: 'ended.bin', size: content.length }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(
      Buffer.concat([
        encodeData(1, content),
        encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)),
      ]),
    );
    await held.holding;
    // Gone for good (a reset): a FIN alone is a half-close, which the server answers first.
    (peer.socket as Socket).resetAndDestroy();
    const label = /^conn#\d+ 127\.0\.0\.1:\d+/;
    expect(await logLine(server, / upload of ended\.bin /)).toMatch(
      new RegExp(
        `${label.source} upload of ended\\.bin cut after ${16 * KiB} of ${16 * KiB} B \\(CONNECTION_LOST\\)$`,
      ),
    );
    held.release();
    await logLine(server, /closed after /);
    expect(await readdir(server.root!)).toEqual([]);
  });

  it('names an upload cut by a reset while its reading was held for a stalled disk, as the reset comes', async () => {
    // Its connection's reading held back past a small mark while the write waits: a socket not
    // read never saw the reset, and the cut and closed lines came only once the disk answered.
    server = await startServer({ backend: 'disk', uploadBacklogHighWaterBytes: 64 * KiB });
    const held = holdUploads(server.storage, 0);
    // A client that asked for no keepalive PINGs (whose writes would see the reset).
    const peer = await RawPeer.open(server.port);
    peer.write(encodeOpen(1, { op: 'put', path: 'stalled.bin', size: 1024 * KiB }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    for (let i = 0; i < 4; i++) peer.write(encodeData(1, Buffer.alloc(64 * KiB, 4)));
    await held.holding;
    // Held: the server stopped reading, the rest waits in the kernel's buffers.
    await new Promise((resolve) => setTimeout(resolve, 300));
    (peer.socket as Socket).resetAndDestroy();
    const label = /^conn#\d+ 127\.0\.0\.1:\d+/;
    expect(await logLine(server, / upload of stalled\.bin /)).toMatch(
      new RegExp(
        `${label.source} upload of stalled\\.bin cut after \\d+ of ${1024 * KiB} B \\(CONNECTION_LOST\\)$`,
      ),
    );
    expect(await logLine(server, /closed after /)).toMatch(/\(CONNECTION_LOST: /);
    // The disk answers later: the storage side settles, and nothing is said twice.
    held.release();
    for (let i = 0; i < 100 && (await readdir(server.root!)).length > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await readdir(server.root!)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.logs).toHaveLength(2);
  });

  it.skipIf(!opensslAvailable)(
    'names an upload over TLS cut by a reset while its reading was held, as the reset comes',
    async () => {
      // Node's TLS layer drops an empty write's error: the probe above saw nothing over TLS, and
      // the cut and closed lines came only once the disk answered (for ever on a hung mount).
      const certs = await makeTestCerts();
      try {
        server = await startHeldTlsServer(certs);
        const held = holdUploads(server.storage, 0);
        const tcp = connect({ host: '127.0.0.1', port: server.port });
        tcp.on('error', () => {});
        await once(tcp, 'connect');
        const secure = connectTls({ socket: tcp, ca: certs.ca, servername: 'localhost' });
        secure.on('error', () => {});
        await once(secure, 'secureConnect');
        const peer = await RawPeer.open(secure);
        peer.write(encodeOpen(1, { op: 'put', path: 'stalled.bin', size: 1024 * KiB }));
        await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
        // More than the TLS socket's own buffer takes while paused: the rest waits in the kernel.
        for (let i = 0; i < 12; i++) peer.write(encodeData(1, Buffer.alloc(64 * KiB, 4)));
        await held.holding;
        await new Promise((resolve) => setTimeout(resolve, 300));
        tcp.resetAndDestroy();
        expect(await logLine(server, / upload of stalled\.bin /)).toMatch(
          / cut after \d+ of \d+ B \(CONNECTION_LOST\)$/,
        );
        expect(await logLine(server, /closed after /)).toMatch(/\(CONNECTION_LOST: /);
        held.release();
      } finally {
        await certs.remove();
      }
    },
  );

  it.skipIf(!opensslAvailable)(
    "leaves a TLS connection's records whole when its reading is held while its output waits for the client",
    async () => {
      // The probe's empty write went to the TCP socket below TLS even while TLS's own write waited
      // there for room: queued behind it, its completion was taken by Node's TLS layer for that of
      // its own write, which then dropped encrypted bytes not yet sent and sent others (the client
      // failed "bad record mac"), and the probe's callback never came (no probe after it wrote).
      const certs = await makeTestCerts();
      try {
        server = await startHeldTlsServer(certs);
        const size = 24 * 1024 * KiB;
        await writeFile(join(server.root!, 'big.bin'), Buffer.alloc(size, 6));
        const held = holdUploads(server.storage, 0);
        const secure = connectTls({
          host: '127.0.0.1',
          port: server.port,
          ca: certs.ca,
          servername: 'localhost',
        });
        secure.on('error', () => {});
        await once(secure, 'secureConnect');
        const peer = await RawPeer.open(secure);
        peer.write(encodeOpen(1, { op: 'put', path: 'stalled.bin', size: 1024 * KiB }));
        await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
        // A download the client leaves unread: more than the kernel's buffers take, so the
        // server's TLS writes wait for room.
        secure.pause();
        peer.write(encodeOpen(3, { op: 'get', path: 'big.bin' }));
        peer.write(encodeWindow(3, size));
        await new Promise((resolve) => setTimeout(resolve, 300));
        // Its upload then holds its reading for the disk: probed each second meanwhile.
        for (let i = 0; i < 4; i++) peer.write(encodeData(1, Buffer.alloc(64 * KiB, 4)));
        await held.holding;
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        secure.resume();
        held.release();
        const received = () =>
          peer.frames
            .filter((f) => f.type === FrameType.DATA && f.streamId === 3)
            .reduce((n, f) => n + f.payload.length, 0);
        await peer.waitFor(() => received() === size);
        peer.destroy();
      } finally {
        await certs.remove();
      }
    },
    20_000,
  );

  it("names an upload whose every byte came but its commit could not store, with the commit's code", async () => {
    // A directory made at its name while it was sent: the commit's IS_A_DIRECTORY is neither the
    // operator's failure nor a logged refusal, and no line named the file it dropped.
    server = await startServer({ backend: 'disk' });
    const peer = await RawPeer.open(server.port);
    const content = Buffer.alloc(4 * KiB, 5);
    peer.write(encodeOpen(1, { op: 'put', path: 'taken.bin', size: content.length }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, content));
    await mkdir(join(server.root!, 'taken.bin'));
    peer.write(encodeEnd(1, content.length, 'xxh128', contentDigest('xxh128', content)));
    const failed = await peer.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 1);
    expect(failed.payload.toString()).toContain('IS_A_DIRECTORY');
    const label = /^conn#\d+ 127\.0\.0\.1:\d+/;
    expect(await logLine(server, / upload of taken\.bin /)).toMatch(
      new RegExp(
        `${label.source} upload of taken\\.bin cut after ${4 * KiB} of ${4 * KiB} B \\(IS_A_DIRECTORY\\)$`,
      ),
    );
    peer.destroy();
    await logLine(server, /closed after /);
    expect(server.logs.filter((l) => l.includes('taken.bin'))).toHaveLength(1);
  });
});
