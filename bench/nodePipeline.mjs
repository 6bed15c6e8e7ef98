// The runtime's own limit for moving files over loopback (issue #11): TCP connections between two
// Node processes, fs reads of 1 MiB into three reused buffers with one read ahead, at most those
// buffers queued on the socket (since the forty-second pass; before, a fresh buffer per read and a
// wait for 'drain' after each write), fs writev of whatever arrived meanwhile on the other side. No hash, no fsync, and for many files no more
// framing than a name and a size before each file.
//
// As a child:  node nodePipeline.mjs receive <file>      prints its port, writes what it receives
//              node nodePipeline.mjs send <port> <file>  sends the file, then ends the connection
//              node nodePipeline.mjs receive-many <dir> <count>
//              node nodePipeline.mjs send-many <port> <connections> <file>...
// As a module: runPipeline(sourceFile, targetFile) → seconds from spawning the sender to the
//              receiver's exit (the file written and closed), like a CLI run; runPipelineMany(
//              sourceFiles, targetDir, connections): the same for many files, `connections` at
//              once, each connection moving one file after another (as FTP clients do).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** @typedef {import('node:net').AddressInfo} AddressInfo */
/** @typedef {{ buffer: Buffer, written: Promise<void> }} SendSlot */

const READ_BYTES = 1 << 20;
/** The receiver stops reading the socket while this many bytes wait for the disk. */
const WRITE_BACKLOG_BYTES = 8 << 20;

/** Buffers a sender reads into, reused: a fresh 1 MiB per read costs page faults, not the runtime. */
const SEND_BUFFERS = 3;

/**
 * The sender's read buffers, each with the write that last used it (a buffer is read into again
 * only once the socket has taken its bytes).
 * @returns {SendSlot[]}
 */
function sendRing() {
  return Array.from({ length: SEND_BUFFERS }, () => ({
    buffer: Buffer.allocUnsafeSlow(READ_BYTES),
    written: Promise.resolve(),
  }));
}

/**
 * Sends one file's bytes on `socket`: 1 MiB reads into the ring's buffers, one read ahead while
 * the socket takes the others (at most the ring's bytes queued on it).
 * @param {import('node:net').Socket} socket
 * @param {string} file
 * @param {SendSlot[]} ring
 * @param {(size: number) => Buffer | undefined} [header] written before the bytes
 */
async function sendFile(socket, file, ring, header) {
  const handle = await open(file, 'r');
  const { size } = await handle.stat();
  const head = header?.(size);
  if (head !== undefined) socket.write(head);
  /**
   * @param {number} position
   * @param {SendSlot} slot
   */
  const read = async (position, slot) => {
    await slot.written;
    const length = Math.min(READ_BYTES, size - position);
    const { bytesRead } = await handle.read(slot.buffer, 0, length, position);
    if (bytesRead !== length) throw new Error(`${file} shrank while being read`);
    return slot.buffer.subarray(0, length);
  };
  let position = 0;
  let index = 0;
  let next = size > 0 ? read(0, /** @type {SendSlot} */ (ring[0])) : null;
  while (next !== null) {
    const slot = /** @type {SendSlot} */ (ring[index]);
    const chunk = await next;
    position += chunk.length;
    index = (index + 1) % ring.length;
    // one read ahead while this one is sent
    next = position < size ? read(position, /** @type {SendSlot} */ (ring[index])) : null;
    slot.written = new Promise((resolve, reject) =>
      socket.write(chunk, (error) => (error ? reject(error) : resolve())),
    );
    slot.written.catch(() => {}); // a failed write also emits 'error', which ends the sender (exit 1)
  }
  await handle.close();
}

/**
 * @param {number} port
 * @param {string} file
 */
async function send(port, file) {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  await sendFile(socket, file, sendRing());
  socket.end();
  await once(socket, 'close');
}

/** Before each file of send-many: the name's length (u16), the name, the size (u64). */
function fileHeader(/** @type {string} */ name, /** @type {number} */ size) {
  const nameBytes = Buffer.from(name);
  const head = Buffer.alloc(2 + nameBytes.length + 8);
  head.writeUInt16BE(nameBytes.length, 0);
  nameBytes.copy(head, 2);
  head.writeBigUInt64BE(BigInt(size), 2 + nameBytes.length);
  return head;
}

/**
 * @param {number} port
 * @param {number} connections
 * @param {string[]} files
 */
async function sendMany(port, connections, files) {
  const queue = [...files];
  const lane = async () => {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    const ring = sendRing();
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const name = basename(file);
      await sendFile(socket, file, ring, (size) => fileHeader(name, size));
    }
    socket.end();
    await once(socket, 'close');
  };
  await Promise.all(Array.from({ length: Math.min(connections, files.length) }, lane));
}

/**
 * Writes what it is given to `handle` from `position` on, one writev of whatever arrived while the
 * previous one ran; asks the socket to pause while WRITE_BACKLOG_BYTES wait.
 * @param {import('node:fs/promises').FileHandle} handle
 * @param {import('node:net').Socket} socket
 */
function writeBehind(handle, socket) {
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
  return {
    finished,
    fail: done.reject,
    /** @param {Buffer} chunk */
    write(chunk) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BACKLOG_BYTES) socket.pause();
      writeNext();
    },
    end() {
      ended = true;
      writeNext();
    },
  };
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
  const writer = writeBehind(handle, socket);
  socket.on('data', writer.write);
  socket.on('end', writer.end);
  socket.on('error', writer.fail);
  await writer.finished;
  await handle.close();
}

/**
 * Receives `count` files in all, on any number of connections, each file under its name in `dir`.
 * @param {string} dir
 * @param {number} count
 */
async function receiveMany(dir, count) {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.stdout.write(`${/** @type {AddressInfo} */ (server.address()).port}\n`);
  let received = 0;
  /** @type {{ resolve: () => void, reject: (error: Error) => void }} */
  const all = { resolve: () => {}, reject: () => {} };
  const allDone = /** @type {Promise<void>} */ (
    new Promise((resolve, reject) => {
      all.resolve = resolve;
      all.reject = reject;
    })
  );
  server.on('connection', (/** @type {import('node:net').Socket} */ socket) => {
    socket.on('error', all.reject);
    /** @type {Buffer} */
    let head = Buffer.alloc(0);
    /** The file being received: its writer and the bytes still to come. */
    /** @type {{ writer: ReturnType<typeof writeBehind>, left: number } | undefined} */
    let current;
    let opening = false;
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      while (chunk.length > 0) {
        if (current !== undefined) {
          const take = Math.min(current.left, chunk.length);
          current.writer.write(chunk.subarray(0, take));
          current.left -= take;
          chunk = chunk.subarray(take);
          if (current.left === 0) finishFile();
          continue;
        }
        if (opening) {
          head = Buffer.concat([head, chunk]); // the rest waits for the file's open
          return;
        }
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        chunk = Buffer.alloc(0);
        if (head.length < 2) return;
        const nameLength = head.readUInt16BE(0);
        if (head.length < 2 + nameLength + 8) return;
        const name = head.subarray(2, 2 + nameLength).toString();
        const size = Number(head.readBigUInt64BE(2 + nameLength));
        const rest = head.subarray(2 + nameLength + 8);
        head = Buffer.alloc(0);
        opening = true;
        socket.pause();
        open(join(dir, basename(name)), 'w').then((handle) => {
          opening = false;
          const writer = writeBehind(handle, socket);
          current = { writer, left: size };
          /** @type {Promise<void>} */ (writer.finished)
            .then(() => handle.close())
            .then(() => {
              if (++received === count) all.resolve();
            }, all.reject);
          const waiting = Buffer.concat([rest, head]);
          head = Buffer.alloc(0);
          socket.resume();
          if (size === 0) finishFile();
          if (waiting.length > 0) onData(waiting);
        }, all.reject);
        return;
      }
    };
    const finishFile = () => {
      current?.writer.end();
      current = undefined;
    };
    socket.on('data', onData);
  });
  await allDone;
  server.close();
}

/**
 * Moves sourceFile to targetFile through two processes; resolves to the seconds it took.
 * @param {string} sourceFile
 * @param {string} targetFile
 * @param {{ timeoutMs?: number }} [options]
 * @returns {Promise<number>}
 */
export function runPipeline(sourceFile, targetFile, options = {}) {
  return runChildren(['receive', targetFile], (port) => ['send', String(port), sourceFile], options);
}

/**
 * Moves sourceFiles into targetDir (same names) through two processes, `connections` at once;
 * resolves to the seconds it took.
 * @param {string[]} sourceFiles
 * @param {string} targetDir
 * @param {number} connections
 * @param {{ timeoutMs?: number }} [options]
 * @returns {Promise<number>}
 */
export function runPipelineMany(sourceFiles, targetDir, connections, options = {}) {
  return runChildren(
    ['receive-many', targetDir, String(sourceFiles.length)],
    (port) => ['send-many', String(port), String(connections), ...sourceFiles],
    options,
  );
}

/**
 * Starts the receiver, then the sender with the port it printed; seconds from spawning the sender
 * to both having exited.
 * @param {string[]} receiverArgs
 * @param {(port: number) => string[]} senderArgs
 * @param {{ timeoutMs?: number }} options
 * @returns {Promise<number>}
 */
async function runChildren(receiverArgs, senderArgs, { timeoutMs = 300_000 }) {
  const self = fileURLToPath(import.meta.url);
  const receiver = spawn(process.execPath, [self, ...receiverArgs], {
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
    const sender = spawn(process.execPath, [self, ...senderArgs(port)], { stdio: 'inherit' });
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
  const [, , mode, a, b, ...rest] = process.argv;
  const main =
    mode === 'send' && b !== undefined
      ? send(Number(a), b)
      : mode === 'receive' && a !== undefined
        ? receive(a)
        : mode === 'send-many' && b !== undefined && rest.length > 0
          ? sendMany(Number(a), Number(b), rest)
          : mode === 'receive-many' && a !== undefined && b !== undefined
            ? receiveMany(a, Number(b))
            : undefined;
  if (main === undefined) {
    process.stderr.write(
      'usage: nodePipeline.mjs receive <file> | send <port> <file> | receive-many <dir> <count> | send-many <port> <connections> <file>...\n',
    );
    process.exit(2);
  }
  main.catch((err) => {
    process.stderr.write(`nodePipeline ${mode}: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
