/**
 * What Client.connect rejects with when a server's WELCOME is not one it can take: CONNECT_FAILED
 * whose cause says why. A WELCOME well formed but on terms the client cannot take (another block
 * size, a maxFramePayload under 16 KiB, an algorithm it did not offer) is VERSION_MISMATCH: a
 * muxftp server, its terms refused. One not well formed is a PROTOCOL_ERROR, not a mismatch of
 * versions (9c37304 made every failed check of a WELCOME one, a payload that is not JSON too).
 * A scripted server on 127.0.0.1 answers the HELLO with the WELCOME given, as bytes.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { MuxftpError, ProtocolError } from '../shared/errors.js';
import { FrameType } from '../shared/protocol/constants.js';

let server: Server | undefined;

afterEach(async () => {
  const closing = server;
  server = undefined;
  if (closing !== undefined) await new Promise((resolve) => closing.close(resolve));
});

const limits = { maxFramePayload: 1 << 20, maxStreams: 16, maxPathBytes: 4096, streamWindow: 1 << 20 };
const welcome = { version: 2, limits, integrity: { algorithm: 'xxh128', blockBytes: 4 * 1024 * 1024 } };

/** The code of the cause of what connecting to a server answering `payload` rejects with. */
async function causeOfFailedConnect(payload: Buffer, integrity?: ['sha256']): Promise<string> {
  const header = Buffer.alloc(12);
  header.writeUInt8(FrameType.WELCOME, 0);
  header.writeUInt32BE(payload.length, 8);
  server = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end(Buffer.concat([header, payload])));
    socket.resume();
  });
  const port = await new Promise<number>((resolve) =>
    server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)),
  );
  const error = await Client.connect({
    host: '127.0.0.1',
    port,
    connectTimeoutMs: 5_000,
    ...(integrity === undefined ? {} : { integrity }),
  }).then(
    async (client) => {
      await client.destroy();
      throw new Error('connected');
    },
    (rejected: unknown) => rejected,
  );
  expect(error).toBeInstanceOf(MuxftpError);
  expect((error as MuxftpError).code).toBe('CONNECT_FAILED');
  const cause = (error as Error).cause;
  expect(cause).toBeInstanceOf(ProtocolError);
  return (cause as ProtocolError).code;
}

const json = (value: object): Buffer => Buffer.from(JSON.stringify(value));

it.each([
  ['another block size', json({ ...welcome, integrity: { algorithm: 'xxh128', blockBytes: 1 << 20 } })],
  ['a maxFramePayload under 16 KiB', json({ ...welcome, limits: { ...limits, maxFramePayload: 8192 } })],
  ['a version not offered', json({ ...welcome, version: 3 })],
])('a WELCOME with %s: CONNECT_FAILED, its cause VERSION_MISMATCH', async (_name, payload) => {
  expect(await causeOfFailedConnect(payload)).toBe('VERSION_MISMATCH');
});

it('a WELCOME choosing an algorithm the client did not offer: VERSION_MISMATCH', async () => {
  expect(await causeOfFailedConnect(json(welcome), ['sha256'])).toBe('VERSION_MISMATCH');
});

it.each([
  ['a payload that is not JSON', Buffer.from('not json')],
  ['no limits', json({ version: 2, integrity: welcome.integrity })],
  ['a limit that is not a count', json({ ...welcome, limits: { ...limits, maxStreams: 'many' } })],
])('a WELCOME with %s: CONNECT_FAILED, its cause PROTOCOL_ERROR', async (_name, payload) => {
  expect(await causeOfFailedConnect(payload)).toBe('PROTOCOL_ERROR');
});

it('a peer that is no muxftp server and keeps the connection open: CONNECT_FAILED at once', async () => {
  // An HTTP server answers the HELLO with a 400 and does not close its side: the client's ERROR
  // and FIN go unanswered, and the connect waited for the socket's 2 s close-wait to end.
  const held: Socket[] = [];
  server = createServer({ allowHalfOpen: true }, (socket) => {
    held.push(socket);
    socket.on('error', () => {});
    socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'));
  });
  try {
    const port = await new Promise<number>((resolve) =>
      server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)),
    );
    const startedAt = performance.now();
    const error = await Client.connect({ host: '127.0.0.1', port, connectTimeoutMs: 5_000 }).then(
      async (client) => {
        await client.destroy();
        throw new Error('connected');
      },
      (rejected: unknown) => rejected as MuxftpError,
    );
    expect(performance.now() - startedAt).toBeLessThan(1_000);
    expect(error.code).toBe('CONNECT_FAILED');
    expect(error.cause).toBeInstanceOf(ProtocolError);
    expect((error.cause as ProtocolError).code).toBe('UNKNOWN_FRAME_TYPE');
  } finally {
    for (const socket of held) socket.destroy();
  }
});
