// The runtime's own limit for moving one file over loopback (issue #11): one TCP connection between
// two Node processes, fs reads of 1 MiB with one read ahead, socket writes with backpressure, fs
// writev of whatever arrived meanwhile on the other side. No framing, no hash, no fsync.
//
// As a child:  node nodePipeline.mjs receive <file>      prints its port, writes what it receives
//              node nodePipeline.mjs send <port> <file>  sends the file, then ends the connection
// As a module: runPipeline(sourceFile, targetFile) → seconds from spawning the sender to the
//              receiver's exit (the file written and closed), like a CLI run.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** @typedef {import('node:net').AddressInfo} AddressInfo */

const READ_BYTES = 1 << 20;
/** The receiver stops reading the socket while this many bytes wait for the disk. */
const WRITE_BACKLOG_BYTES = 8 << 20;

/**
 * @param {number} port
 * @param {string} file
 */
async function send(port, file) {
  const handle = await open(file, 'r');
  const { size } = await handle.stat();
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  /** @param {number} position */
  const read = async (position) => {
    const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, size - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead !== buffer.length) throw new Error(`${file} shrank while being read`);
    return buffer;
  };
  let position = 0;
  let next = size > 0 ? read(0) : null;
  while (next !== null) {
    const buffer = await next;
    position += buffer.length;
    next = position < size ? read(position) : null; // one read ahead while this one is sent
    if (!socket.write(buffer)) await once(socket, 'drain');
  }
  socket.end();
  await once(socket, 'close');
  await handle.close();
}

/** @param {string} file */
async function receive(file) {
  const handle = await open(file, 'w');
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.stdout.write(`${/** @type {AddressInfo} */ (server.address()).port}\n`);
  const [socket] = await once(server, 'connection');
  server.close();
  /** @type {Buffer[]} */
  let pending = [];
  let pendingBytes = 0;
  let position = 0;
  let writing = false;
  let ended = false;
  /** @type {{ resolve: () => void, reject: (error: Error) => void }} */
  const done = { resolve: () => {}, reject: () => {} };
  const finished = /** @type {Promise<void>} */ (
    new Promise((resolve, reject) => {
      done.resolve = resolve;
      done.reject = reject;
    })
  );
  const writeNext = () => {
    if (writing) return;
    if (pending.length === 0) {
      if (ended) done.resolve();
      return;
    }
    const chunks = pending;
    const bytes = pendingBytes;
    pending = [];
    pendingBytes = 0;
    writing = true;
    handle.writev(chunks, position).then(({ bytesWritten }) => {
      if (bytesWritten !== bytes) return done.reject(new Error('short writev'));
      position += bytes;
      writing = false;
      if (socket.isPaused()) socket.resume();
      writeNext();
    }, done.reject);
  };
  socket.on('data', (/** @type {Buffer} */ chunk) => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= WRITE_BACKLOG_BYTES) socket.pause();
    writeNext();
  });
  socket.on('end', () => {
    ended = true;
    writeNext();
  });
  socket.on('error', done.reject);
  await finished;
  await handle.close();
}

/**
 * Moves sourceFile to targetFile through two processes; resolves to the seconds it took.
 * @param {string} sourceFile
 * @param {string} targetFile
 * @param {{ timeoutMs?: number }} [options]
 * @returns {Promise<number>}
 */
export async function runPipeline(sourceFile, targetFile, { timeoutMs = 300_000 } = {}) {
  const self = fileURLToPath(import.meta.url);
  const receiver = spawn(process.execPath, [self, 'receive', targetFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  /** @type {import('node:child_process').ChildProcess[]} */
  const killAll = [receiver];
  const timer = setTimeout(() => {
    for (const child of killAll) child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const [line] = await once(receiver.stdout, 'data');
    const port = Number(String(line).trim());
    const started = performance.now();
    const sender = spawn(process.execPath, [self, 'send', String(port), sourceFile], { stdio: 'inherit' });
    killAll.push(sender);
    const [[receiverCode], [senderCode]] = await Promise.all([once(receiver, 'exit'), once(sender, 'exit')]);
    const seconds = (performance.now() - started) / 1000;
    if (receiverCode !== 0 || senderCode !== 0)
      throw new Error(`pipeline failed (receiver ${receiverCode}, sender ${senderCode})`);
    return seconds;
  } finally {
    clearTimeout(timer);
    for (const child of killAll)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [, , mode, a, b] = process.argv;
  const main =
    mode === 'send' && b !== undefined
      ? send(Number(a), b)
      : mode === 'receive' && a !== undefined
        ? receive(a)
        : undefined;
  if (main === undefined) {
    process.stderr.write('usage: nodePipeline.mjs receive <file> | send <port> <file>\n');
    process.exit(2);
  }
  main.catch((err) => {
    process.stderr.write(`nodePipeline ${mode}: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
