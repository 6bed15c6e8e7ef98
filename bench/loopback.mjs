// Raw loopback TCP yardstick: one plain connection between two processes moving bytes in 1 MiB
// writes, no framing, no hashing. Run as a child: `node loopback.mjs send <port> <bytes>`.
import { fork } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** @typedef {import('node:net').AddressInfo} AddressInfo */

const WRITE_BYTES = 1 << 20;

if (process.argv[2] === 'send') {
  const [, , , port, total] = process.argv;
  const socket = connect({ host: '127.0.0.1', port: Number(port) }, () => {
    const chunk = Buffer.alloc(WRITE_BYTES, 0x5a);
    let sent = 0;
    const pump = () => {
      while (sent < Number(total)) {
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
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
