/**
 * How a library caller learns that its connection ended: `client.closed` settles (never rejects)
 * with undefined after the caller's own close() or destroy(), else with why (the server's
 * SHUTTING_DOWN or IDLE_TIMEOUT, CONNECTION_LOST for a reset), and every call the end cut off
 * rejects with an error whose `fatal` is true, whatever its code. Before, there was no `closed`,
 * and SHUTTING_DOWN, CONNECTION_LOST and a call cut off by close()'s grace were not `fatal`.
 * Real server on 127.0.0.1; the reset goes through a TCP proxy in front of it.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { ConnectionLostError, MuxftpError, RemoteError } from '../shared/errors.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
let proxy: Proxy | undefined;
const sources: Readable[] = [];
afterEach(async () => {
  for (const source of sources.splice(0)) source.destroy();
  await proxy?.close();
  proxy = undefined;
  await server?.stop();
  server = undefined;
});

interface Proxy {
  port: number;
  /** Resets the client's side (TCP RST) and drops the server's. */
  reset(): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 in front of `port`, whose connections the test can reset. */
async function startProxy(port: number): Promise<Proxy> {
  const sockets: Socket[] = [];
  const listener: Server = createServer((down) => {
    const up = netConnect({ host: '127.0.0.1', port });
    for (const socket of [down, up]) {
      socket.on('error', () => {});
      sockets.push(socket);
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const address = listener.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    reset() {
      for (const socket of sockets) {
        if (socket.remotePort === port) socket.destroy();
        else socket.resetAndDestroy();
      }
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => listener.close(() => resolve()));
    },
  };
}

/** An upload that stays in flight: its source sends a little and never ends. */
function putInFlight(client: Client): Promise<unknown> {
  const source = new Readable({ read() {} });
  sources.push(source);
  source.push(Buffer.alloc(1000));
  return client.put('in-flight.bin', source).then(
    () => 'resolved',
    (error: unknown) => error,
  );
}

/** Waits until the server has the upload's stream open. */
async function untilStreamOpen(): Promise<void> {
  while (!server!.server.connectionFigures().some((c) => c.openStreams > 0))
    await new Promise((resolve) => setTimeout(resolve, 5));
}

const pending = Symbol('pending');
const settledYet = (promise: Promise<unknown>) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(pending), 50))]);

describe('client.closed and fatal', () => {
  it('an idle client whose server shuts down: closed gives SHUTTING_DOWN, later calls reject with it, fatal', async () => {
    server = await startServer();
    const client = await server.connect();
    // A call's own failure is not the connection's: closed stays pending, the error is not fatal.
    const notFound = await client.stat('nope').catch((error: unknown) => error);
    expect(notFound).toMatchObject({ code: 'NOT_FOUND', fatal: false });
    expect(await settledYet(client.closed)).toBe(pending);

    await server.server.close();
    const reason = await client.closed;
    expect(reason).toBeInstanceOf(RemoteError);
    expect(reason).toMatchObject({ code: 'SHUTTING_DOWN', fatal: true });
    expect(client.isOpen).toBe(false);
    const after = await client.stat('x').catch((error: unknown) => error);
    expect(after).toBe(reason);
  });

  it('a call in flight when the server cuts it at shutdown rejects SHUTTING_DOWN, fatal', async () => {
    server = await startServer();
    const client = await server.connect();
    const put = putInFlight(client);
    await untilStreamOpen();
    await server.server.close(100);
    const error = await put;
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({ code: 'SHUTTING_DOWN', fatal: true });
    expect(await client.closed).toBe(error);
  });

  it('a server draining refuses a new call with SHUTTING_DOWN, not fatal; closed settles once the call in flight is done', async () => {
    server = await startServer();
    const client = await server.connect();
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(1000));
    const put = client.put('drained.bin', source);
    await untilStreamOpen();
    const closing = server.server.close(10_000);
    const refused = await client.stat('x').catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'SHUTTING_DOWN', fatal: false });
    expect(client.isOpen).toBe(true);
    expect(await settledYet(client.closed)).toBe(pending);
    source.push(null);
    expect(await put).toMatchObject({ entry: { size: 1000 } });
    expect(await client.closed).toMatchObject({ code: 'SHUTTING_DOWN', fatal: true });
    await closing;
  });

  it('an idle client whose server times it out: closed gives IDLE_TIMEOUT, fatal', async () => {
    server = await startServer({ idleTimeoutMs: 200 });
    const client = await server.connect();
    const reason = await client.closed;
    expect(reason).toBeInstanceOf(RemoteError);
    expect(reason).toMatchObject({ code: 'IDLE_TIMEOUT', fatal: true });
    expect(client.isOpen).toBe(false);
    expect(await client.list().catch((error: unknown) => error)).toBe(reason);
  });

  it('idle and handshake timeouts past what a timer holds (2^31 - 1 ms) are that long, never 1 ms', async () => {
    // serve --idle-timeout 3000000 (35 days): node set such timers to 1 ms, and every connection
    // was closed IDLE_TIMEOUT the moment it went idle, or before its HELLO came.
    server = await startServer({ idleTimeoutMs: 2 ** 31, handshakeTimeoutMs: 2 ** 31 });
    // A connection that says nothing for a while, then its HELLO.
    const socket = netConnect({ host: '127.0.0.1', port: server.port });
    await new Promise((resolve) => socket.once('connect', resolve));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const client = await Client.over(socket);
    await client.put('a.bin', Buffer.alloc(10));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(client.isOpen).toBe(true);
    expect((await client.stat('a.bin')).size).toBe(10);
    await client.close();
  });

  it('a reset connection: closed and the call in flight give CONNECTION_LOST, fatal', async () => {
    server = await startServer();
    proxy = await startProxy(server.port);
    const client = await Client.connect({ host: '127.0.0.1', port: proxy.port });
    try {
      const put = putInFlight(client);
      await untilStreamOpen();
      proxy.reset();
      const error = await put;
      expect(error).toBeInstanceOf(ConnectionLostError);
      expect(error).toMatchObject({ code: 'CONNECTION_LOST', fatal: true });
      const reason = await client.closed;
      expect(reason).toBe(error);
      expect(client.isOpen).toBe(false);
    } finally {
      await client.destroy();
    }
  });

  it("after the caller's own close(): closed gives undefined, a later call CONNECTION_LOST, fatal", async () => {
    server = await startServer();
    const client = await server.connect();
    await client.close();
    expect(await client.closed).toBeUndefined();
    const after = await client.stat('x').catch((error: unknown) => error);
    expect(after).toBeInstanceOf(ConnectionLostError);
    expect(after).toMatchObject({ code: 'CONNECTION_LOST', fatal: true });
  });

  it("a call cut off by close()'s grace rejects CANCELLED, fatal; closed gives undefined", async () => {
    server = await startServer();
    const client = await server.connect();
    const put = putInFlight(client);
    await untilStreamOpen();
    await client.close(50);
    const error = await put;
    expect(error).toMatchObject({ code: 'CANCELLED', fatal: true });
    expect(await client.closed).toBeUndefined();
  });

  it('destroy(): the call in flight rejects CONNECTION_LOST, fatal; closed gives undefined', async () => {
    server = await startServer();
    const client = await server.connect();
    const put = putInFlight(client);
    await untilStreamOpen();
    await client.destroy();
    const error = await put;
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', fatal: true });
    expect(await client.closed).toBeUndefined();
  });

  it('CONNECTION_LOST and CONNECT_FAILED are fatal whatever made them', async () => {
    expect(new ConnectionLostError().fatal).toBe(true);
    expect(new MuxftpError('CONNECT_FAILED', 'x').fatal).toBe(true);
    expect(new MuxftpError('SHUTTING_DOWN', 'x').fatal).toBe(false);
    const refused = await startServer();
    const port = refused.port;
    await refused.stop();
    const error = await Client.connect({ host: '127.0.0.1', port }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONNECT_FAILED', fatal: true });
  });
});
