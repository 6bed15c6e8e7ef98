/**
 * TCP reads into one buffer shared by every socket of the process, instead of a fresh 64 KiB
 * buffer per read: the classic event-loop server's single read buffer (nginx, pyftpdlib's recv
 * into a preallocated buffer). One read is delivered and decoded before the loop performs the
 * next, so one buffer serves all sockets; what a reader keeps it copies (ReceivedBytes).
 *
 * Node offers this as the `onread` option (public for sockets it connects: net.connect). A
 * server's accepted sockets and TLS sockets have no such option, so `adopt` sets the same fields
 * the net.Socket constructor sets for `onread`, found by their names, and tells the handle to read
 * into the buffer (a TLS socket's handle then decrypts each record into it). Where this Node has none of them, `adopt` returns undefined and the socket goes on
 * reading into buffers of its own ('data' events), as every other stream does. Measured in
 * bench/README.md: a receiving server ran one major GC per ~20 MiB before.
 */
import type { Socket } from 'node:net';

/**
 * Size of the shared buffer: at most this much is taken off a socket per read. A server's sockets
 * (adopt) read this much; the bounds on what one read may hold (the stream cap, README.md) say it.
 */
const SHARED_READ_BUFFER_BYTES = 256 * 1024;

/** The process's shared buffers, one per size asked for (the server's, a client's). */
const sharedBuffers = new Map<number, Buffer>();

function sharedBuffer(bytes: number): Buffer {
  let shared = sharedBuffers.get(bytes);
  if (shared === undefined) {
    shared = Buffer.allocUnsafeSlow(bytes);
    sharedBuffers.set(bytes, shared);
  }
  return shared;
}

/** Called with each read: a view of the shared buffer, valid until the callback returns. */
export type SharedReadCallback = (chunk: Buffer) => void;

/** The reads of one socket; `deliverTo` says who gets them (the FramedSocket, once it exists). */
export class SharedBufferReads {
  #deliver: SharedReadCallback | undefined;
  /** Reads that came before anyone took delivery (copied: the buffer is reused). */
  #early: Buffer[] = [];
  readonly #bufferBytes: number;

  /**
   * `bufferBytes`: the most taken off the socket per read, the size of the shared buffer it reads
   * into (one per size in the process; sockets reading into the same size share it).
   */
  constructor(bufferBytes = SHARED_READ_BUFFER_BYTES) {
    this.#bufferBytes = bufferBytes;
  }

  /** For net.connect({ onread }): Node's public form of the same thing. */
  get onread(): { buffer: Buffer; callback: (bytes: number, buffer: Buffer) => boolean } {
    return { buffer: sharedBuffer(this.#bufferBytes), callback: this.#onRead };
  }

  /**
   * Makes an accepted socket read into the shared buffer; undefined when this Node does not let
   * us (then the socket reads as before). Call before its first read: bytes Node already holds
   * still come as 'data' events.
   */
  static adopt(socket: Socket): SharedBufferReads | undefined {
    const fields = onreadFields(socket);
    const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buffer: Buffer) => void } })._handle;
    if (fields === undefined || typeof handle?.useUserBuffer !== 'function') return undefined;
    const reads = new SharedBufferReads();
    const { buffer, callback } = reads.onread;
    const target = socket as unknown as Record<symbol, unknown>;
    target[fields.buffer] = buffer;
    target[fields.callback] = callback;
    handle.useUserBuffer(buffer);
    return reads;
  }

  deliverTo(callback: SharedReadCallback): void {
    this.#deliver = callback;
    const early = this.#early;
    this.#early = [];
    for (const chunk of early) callback(chunk);
  }

  readonly #onRead = (bytes: number, buffer: Buffer): boolean => {
    const chunk = buffer.subarray(0, bytes);
    if (this.#deliver === undefined) this.#early.push(Buffer.from(chunk));
    else this.#deliver(chunk);
    // Reading continues unless the receiver paused the socket (Socket.pause stops the handle).
    return true;
  };
}

let fieldsOnThisNode: { buffer: symbol; callback: symbol } | null | undefined;

/** The symbols net.Socket keeps `onread`'s buffer and callback under, if this Node has them. */
function onreadFields(socket: Socket): { buffer: symbol; callback: symbol } | undefined {
  if (fieldsOnThisNode === undefined) {
    const symbols = Object.getOwnPropertySymbols(socket);
    const buffer = symbols.find((s) => s.description === 'kBuffer');
    const callback = symbols.find((s) => s.description === 'kBufferCb');
    const generator = symbols.find((s) => s.description === 'kBufferGen');
    // All three, as net.Socket's constructor creates them, or we do not touch the socket.
    fieldsOnThisNode = buffer && callback && generator ? { buffer, callback } : null;
  }
  return fieldsOnThisNode ?? undefined;
}
