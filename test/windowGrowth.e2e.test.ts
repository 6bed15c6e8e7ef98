/**
 * Receive windows grow to a long path (shared/transport/roundTrips.ts): through a proxy that
 * delays every byte 20 ms each way, a stream whose window fills every round trip gets a larger
 * one, upload (the server's window) and download (the client's). Before, a window granted back
 * half at a time never saw its peer run out of credit, and stayed at its first size: a put with
 * `serve --stream-window 64KiB` moved 64 KiB per round trip. (A download's window did grow
 * before, on its sender running out of credit: its case here passes on the old code too, and
 * keeps it so.) What is asserted is the credit granted (the WINDOW frames the proxy sees), not a
 * time. Real server and client on 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../client/client.js';
import { FrameType } from '../shared/protocol/constants.js';
import { FrameDecoder, wholeFrames } from '../shared/protocol/decoder.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DELAY_MS = 20;

/** The largest WINDOW increment seen in each direction. */
interface Grants {
  fromServer: number;
  fromClient: number;
}

/** A TCP proxy on 127.0.0.1 that holds each chunk `delayMs` before passing it on, in order. */
async function delayingProxy(
  targetPort: number,
  delayMs: number,
): Promise<{ port: number; grants: Grants; close(): Promise<void> }> {
  const grants: Grants = { fromServer: 0, fromClient: 0 };
  const sockets = new Set<Socket>();
  const watch = (side: keyof Grants) => {
    const decoder = new FrameDecoder(
      { maxFramePayloadBytes: 64 * MiB, maxControlPayloadBytes: 64 * MiB },
      wholeFrames((frame) => {
        if (frame.type === FrameType.WINDOW && frame.streamId !== 0)
          grants[side] = Math.max(grants[side], frame.payload.readUInt32BE(0));
      }),
    );
    return (chunk: Buffer) => decoder.push(chunk);
  };
  const pipeDelayed = (from: Socket, to: Socket, seen: (chunk: Buffer) => void) => {
    from.on('data', (chunk: Buffer) => {
      seen(chunk);
      setTimeout(() => to.destroyed || to.write(chunk), delayMs);
    });
    from.on('end', () => setTimeout(() => to.end(), delayMs));
  };
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    pipeDelayed(client, upstream, watch('fromClient'));
    pipeDelayed(upstream, client, watch('fromServer'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    grants,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let server: TestServer | undefined;
let proxy: Awaited<ReturnType<typeof delayingProxy>> | undefined;
let client: Client | undefined;
afterEach(async () => {
  await client?.destroy();
  await proxy?.close();
  await server?.stop();
  client = server = proxy = undefined;
});

describe('a window on a path longer than it', () => {
  it("an upload's window (the server's) grows past its first size, and the file arrives whole", async () => {
    server = await startServer({ streamWindowBytes: 64 * KiB });
    proxy = await delayingProxy(server.port, DELAY_MS);
    client = await server.connect({ port: proxy.port });
    const bytes = randomBytes(8 * MiB);
    await client.put('big.bin', bytes);
    expect(proxy.grants.fromServer).toBeGreaterThan(64 * KiB);
    expect((await client.getBuffer('big.bin')).equals(bytes)).toBe(true);
  }, 60_000);

  it("a download's window (the client's) grows past its first size, and the file arrives whole", async () => {
    server = await startServer({});
    const bytes = randomBytes(8 * MiB);
    const direct = await server.connect();
    await direct.put('big.bin', bytes);
    await direct.close();
    proxy = await delayingProxy(server.port, DELAY_MS);
    client = await server.connect({ port: proxy.port, streamWindowBytes: 64 * KiB });
    expect((await client.getBuffer('big.bin')).equals(bytes)).toBe(true);
    expect(proxy.grants.fromClient).toBeGreaterThan(64 * KiB);
  }, 60_000);
});
