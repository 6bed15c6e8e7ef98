/**
 * A TCP proxy in front of a server on 127.0.0.1 that hands every whole frame, in each direction
 * it is given a rewriter for, to that rewriter: what it returns is sent on (the same frame, or
 * another in its place), undefined drops the frame. A direction without a rewriter passes its
 * bytes through as they come. Tests use it to record what a client sends, or to make the server
 * look like one from before a field.
 *
 *   proxy = await startFrameProxy(env.port, { fromServer: (f) => (f.type === FrameType.WINDOW ? undefined : f) });
 *   const client = await env.connect({ port: proxy.port });
 *   ...
 *   afterEach: await proxy?.close();
 */
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { DEFAULTS } from '../../shared/defaults.js';
import { FrameType } from '../../shared/protocol/constants.js';
import { FrameDecoder, wholeFrames } from '../../shared/protocol/decoder.js';
import { encodeFrame } from '../../shared/protocol/encoder.js';
import type { Frame } from '../../shared/protocol/frame.js';
import { ANY_FRAME_PAYLOAD_BYTES } from './rawPeer.js';

/**
 * One whole frame in (DATA reassembled), the frame to send on in its place out, or undefined to
 * drop it. `connection`: which of the proxy's connections it came on, 0 for the first accepted.
 */
export type FrameRewriter = (frame: Frame, connection: number) => Frame | undefined;

export interface FrameRewriters {
  fromClient?: FrameRewriter;
  fromServer?: FrameRewriter;
}

export interface FrameProxy {
  port: number;
  /** Ends every connection through the proxy and stops listening; safe twice. */
  close(): Promise<void>;
}

/** A JSON frame's payload, parsed: for rewriters that change a field. */
export const jsonOf = (frame: Frame): Record<string, unknown> => JSON.parse(frame.payload.toString());

/** `frame` with `value` as its JSON payload. */
export const withJson = (frame: Frame, value: object): Frame => ({
  type: frame.type,
  flags: frame.flags,
  streamId: frame.streamId,
  payload: Buffer.from(JSON.stringify(value)),
});

// The largest frames either side may send: the proxy must pass on whatever they agreed.
const LIMITS = {
  maxFramePayloadBytes: ANY_FRAME_PAYLOAD_BYTES,
  maxControlPayloadBytes: DEFAULTS.maxControlPayloadBytes,
};

/** What `from` sends goes to `to`, through `rewrite` if there is one. */
function relay(from: Socket, to: Socket, rewrite: FrameRewriter | undefined, connection: number): void {
  if (rewrite === undefined) {
    from.on('data', (chunk: Buffer) => to.write(chunk));
    return;
  }
  const decoder = new FrameDecoder(
    LIMITS,
    wholeFrames((frame) => {
      const out = rewrite(frame, connection);
      if (out !== undefined) to.write(encodeFrame(out.type, out.flags, out.streamId, out.payload));
    }),
  );
  from.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch {
      // Bytes that are no frame (or a rewriter that threw): the test sees the connection drop.
      from.destroy();
      to.destroy();
    }
  });
}

export async function startFrameProxy(serverPort: number, rewriters: FrameRewriters): Promise<FrameProxy> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // either side going away ends the other (below)
  };
  let connections = 0;
  const server = createServer((client: Socket) => {
    const connection = connections++;
    const upstream = tcpConnect({ host: '127.0.0.1', port: serverPort });
    track(client);
    track(upstream);
    relay(client, upstream, rewriters.fromClient, connection);
    relay(upstream, client, rewriters.fromServer, connection);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  let closed: Promise<void> | undefined;
  return {
    port: address.port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}

/** A proxy to `serverPort` whose first connection drops when the client asks its first `op`. */
export function proxyDroppingFirst(serverPort: number, op: string): Promise<FrameProxy> {
  let dropped = false;
  return startFrameProxy(serverPort, {
    fromClient: (frame) => {
      if (!dropped && frame.type === FrameType.OPEN && jsonOf(frame).op === op) {
        dropped = true;
        throw new Error('dropped');
      }
      return frame;
    },
  });
}
