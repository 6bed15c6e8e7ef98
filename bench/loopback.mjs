// Raw loopback yardsticks: connections between two processes moving bytes in 1 MiB writes, no
// framing, no hashing — plain TCP, and (measureNodeSockets) node's own TLS socket beside it. Run as
// a child: `node loopback.mjs send <port> <bytes>` or `node loopback.mjs send-many <port>
// <connections> <bytesEach> [<ca.pem>]`.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';

/** @typedef {import('node:net').AddressInfo} AddressInfo */

const WRITE_BYTES = 1 << 20;

/**
 * Writes `total` bytes to `socket` in 1 MiB writes, waiting for 'drain' when it asks, then ends it.
 * @param {import('node:net').Socket} socket
 * @param {number} total
 */
function sendAll(socket, total) {
  const chunk = Buffer.alloc(WRITE_BYTES, 0x5a);
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!socket.write(chunk)) return void socket.once('drain', pump);
    }
    socket.end();
  };
  pump();
}

if (process.argv[2] === 'send') {
  const [, , , port, total] = process.argv;
  const socket = connect({ host: '127.0.0.1', port: Number(port) }, () => sendAll(socket, Number(total)));
}

if (process.argv[2] === 'send-many') {
  const [, , , port, connections, bytesEach, caPath] = process.argv;
  for (let i = 0; i < Number(connections); i++) {
    const options = { host: '127.0.0.1', port: Number(port) };
    const socket =
      caPath === undefined ? connect(options) : tlsConnect({ ...options, ca: readFileSync(caPath) });
    socket.once(caPath === undefined ? 'connect' : 'secureConnect', () => sendAll(socket, Number(bytesEach)));
  }
}

/**
 * Bytes per second of `connections` streams at once from one sending process to this one, each
 * moving `bytesEach` through node's own sockets: plain TCP, or TLS (`tls`: the throwaway
 * certificate's paths and PEM) with node's defaults, as `muxftp serve --tls-cert` uses them. The
 * clock runs from the first connection to the last byte, handshakes included, as in a bench run.
 * Fails after `timeoutMs` (the sender killed), so that a hung run cannot hang the bench.
 * @param {{ connections: number, bytesEach: number, tls?: { certPath: string, keyPath: string }, timeoutMs?: number }} options
 * @returns {Promise<number>}
 */
export function measureNodeSockets({ connections, bytesEach, tls, timeoutMs = 120_000 }) {
  /** @type {import('node:child_process').ChildProcess | undefined} */
  let child;
  /** @type {import('node:net').Server | undefined} */
  let listening;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const measured = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`node sockets: no result within ${timeoutMs} ms`)), timeoutMs);
    let started = 0n;
    let received = 0;
    let ended = 0;
    /** @param {import('node:net').Socket} socket */
    const onSocket = (socket) => {
      if (started === 0n) started = process.hrtime.bigint();
      socket.on('data', (chunk) => {
        received += chunk.length;
      });
      socket.on('error', reject);
      socket.on('end', () => {
        if (++ended < connections) return;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        server.close();
        resolve(received / seconds);
      });
    };
    const server =
      tls === undefined
        ? createServer(onSocket)
        : createTlsServer({ cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) }, onSocket);
    listening = server;
    server.on('connection', () => {
      if (started === 0n) started = process.hrtime.bigint();
    });
    server.listen(0, '127.0.0.1', () => {
      const port = /** @type {AddressInfo} */ (server.address()).port;
      const args = ['send-many', String(port), String(connections), String(bytesEach)];
      child = fork(fileURLToPath(import.meta.url), tls === undefined ? args : [...args, tls.certPath]);
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code !== 0) reject(new Error(`loopback sender exited ${code}`));
      });
    });
  });
  return measured.finally(() => {
    clearTimeout(timer);
    if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    listening?.close();
  });
}

/**
 * Aggregate bytes per second of `count` raw TCP streams at once (one sender process each).
 * @param {number} count
 * @param {number} bytesEach
 * @returns {Promise<number>}
 */
export async function measureLoopbackParallel(count, bytesEach) {
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: count }, () => measureLoopback(bytesEach)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return (count * bytesEach) / seconds;
}

/**
 * Bytes per second of one raw TCP stream between two processes.
 * @param {number} totalBytes
 * @returns {Promise<number>}
 */
export function measureLoopback(totalBytes) {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => {
      let received = 0;
      const started = process.hrtime.bigint();
      socket.on('data', (chunk) => {
        received += chunk.length;
      });
      socket.on('end', () => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        server.close();
        resolve(received / seconds);
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const child = fork(fileURLToPath(import.meta.url), [
        'send',
        String(/** @type {AddressInfo} */ (server.address()).port),
        String(totalBytes),
      ]);
      child.on('error', reject);
    });
  });
}
