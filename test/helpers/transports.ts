/**
 * One server, reached over TCP on 127.0.0.1 or over an in-memory duplex pair with no port at
 * all, so connection tests can run over both (as yamux's session tests run over a pipe and TCP).
 */
import { Duplex } from 'node:stream';
import { Client, type ClientOptions } from '../../client/client.js';
import type { ServerOptions } from '../../server/options.js';
import { MuxServer } from '../../server/server.js';
import { MemoryStorage } from '../../storage/memory.js';
import { RawPeer } from './rawPeer.js';
import { startServer } from './testServer.js';

export type Transport = 'pipe' | 'tcp';
export const TRANSPORTS: readonly Transport[] = ['pipe', 'tcp'];

/**
 * Two connected in-memory byte streams, behaving like the two ends of a TCP connection: what
 * one writes the other reads, in order; a writer waits (its write callback is held) while the
 * reader's buffer is full; end() is seen as 'end' by the other side (which then ends too, as a
 * socket without allowHalfOpen does); destroy() is seen by the
 * other side as its connection closing, like a reset. (node:stream's duplexPair does not pass
 * on destroy, and Node 20.17 is the first 20.x to have it.)
 */
export function duplexPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  const ends: Array<{ stream: Duplex; heldWrite: (() => void) | undefined }> = [];
  const makeEnd = (index: number) => {
    const other = () => ends[1 - index]!;
    const end: { stream: Duplex; heldWrite: (() => void) | undefined } = {
      heldWrite: undefined,
      stream: new Duplex({
        highWaterMark,
        // As net sockets: once the other side has ended, this side ends too.
        allowHalfOpen: false,
        read() {
          // This side wants more: let the other side's held write complete.
          const resume = end.heldWrite;
          end.heldWrite = undefined;
          resume?.();
        },
        write(chunk: Buffer, _encoding, callback) {
          const peer = other();
          if (peer.stream.destroyed || peer.stream.readableEnded) {
            callback(Object.assign(new Error('write to a closed pair'), { code: 'EPIPE' }));
          } else if (peer.stream.push(chunk)) {
            callback();
          } else {
            peer.heldWrite = () => callback();
          }
        },
        final(callback) {
          const peer = other();
          if (!peer.stream.destroyed) peer.stream.push(null);
          callback();
        },
        destroy(error, callback) {
          const peer = other();
          if (!peer.stream.destroyed) peer.stream.destroy();
          callback(error);
        },
      }),
    };
    return end;
  };
  ends.push(makeEnd(0), makeEnd(1));
  return [ends[0]!.stream, ends[1]!.stream];
}

export interface ServerOver {
  transport: Transport;
  server: MuxServer;
  storage: MemoryStorage;
  logs: string[];
  /** A client that has completed the handshake. */
  connect(options?: ClientOptions): Promise<Client>;
  /** A raw connection that has sent nothing yet. */
  rawConnect(): Promise<RawPeer>;
  /** A raw connection that has completed the handshake. */
  rawOpen(): Promise<RawPeer>;
  stop(): Promise<void>;
}

/** A server on memory storage, reached over `transport`. */
export async function serveOver(
  transport: Transport,
  options: Partial<Omit<ServerOptions, 'storage'>> = {},
): Promise<ServerOver> {
  const storage = new MemoryStorage();
  if (transport === 'tcp') {
    const env = await startServer({ ...options, storage });
    return {
      transport,
      server: env.server,
      storage,
      logs: env.logs,
      connect: (clientOptions) => env.connect(clientOptions),
      rawConnect: () => RawPeer.connect(env.port),
      rawOpen: () => RawPeer.open(env.port),
      stop: () => env.stop(),
    };
  }
  const logs: string[] = [];
  const server = new MuxServer({ storage, log: (line) => logs.push(line), ...options });
  const clients: Client[] = [];
  const peers: RawPeer[] = [];
  /** The client's end; the server is given the other. */
  const connectPair = (): Duplex => {
    const [serverEnd, clientEnd] = duplexPair();
    server.accept(serverEnd);
    return clientEnd;
  };
  return {
    transport,
    server,
    storage,
    logs,
    async connect(clientOptions = {}) {
      const client = await Client.over(connectPair(), clientOptions);
      clients.push(client);
      return client;
    },
    async rawConnect() {
      const peer = RawPeer.over(connectPair());
      peers.push(peer);
      return peer;
    },
    async rawOpen() {
      const peer = await RawPeer.open(connectPair());
      peers.push(peer);
      return peer;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.destroy()));
      for (const peer of peers) peer.destroy();
      await server.close(0);
      await storage.close();
    },
  };
}
