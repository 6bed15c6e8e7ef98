/**
 * A stand-in server for client tests: it completes the handshake (WELCOME with small limits and
 * xxh128), then hands every later frame to the test's script, which may answer anything — valid
 * or not — so the client's own checks can be exercised.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { INTEGRITY_BLOCK_BYTES } from '../../shared/integrity/algorithms.js';
import { FrameType, PROTOCOL_VERSION } from '../../shared/protocol/constants.js';
import { FrameDecoder, wholeFrames } from '../../shared/protocol/decoder.js';
import { encodeWelcome } from '../../shared/protocol/encoder.js';
import type { Frame } from '../../shared/protocol/frame.js';

export type Script = (socket: Socket, frame: Frame) => void;

/** Listens on 127.0.0.1, port 0; the caller closes `server`. */
export async function startScriptedServer(script: Script): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    const decoder = new FrameDecoder(
      { maxFramePayloadBytes: 1 << 20, maxControlPayloadBytes: 1 << 16 },
      wholeFrames((frame) => {
        if (frame.type !== FrameType.HELLO) return script(socket, frame);
        socket.write(
          encodeWelcome({
            version: PROTOCOL_VERSION,
            limits: { maxFramePayload: 1 << 20, maxStreams: 16, maxPathBytes: 4096, streamWindow: 1 << 20 },
            integrity: { algorithm: 'xxh128', blockBytes: INTEGRITY_BLOCK_BYTES },
          }),
        );
      }),
    );
    socket.on('data', (chunk) => decoder.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port };
}
