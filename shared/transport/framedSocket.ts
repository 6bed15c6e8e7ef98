/**
 * The transport half of a connection, shared by server and client (Twisted's transport): it
 * reads the socket when it is readable and when the owner has not paused reading, feeds the
 * frame decoder, and writes through the connection's OutboundQueue. What the frames mean is the
 * owner's business (onFrame). Fatal errors are final: one ERROR frame on stream 0, then the end.
 * The socket is a TCP socket in use, or any duplex byte stream (tests run over an in-memory pair).
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConnectionLostError, MuxftpError, ProtocolError } from '../errors.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { encodeError } from '../protocol/encoder.js';
import type { Frame } from '../protocol/frame.js';
import { errorPayload } from '../protocol/messages.js';
import type { ControlFrameBudget } from './controlFrameBudget.js';
import type { DataFramePool } from './dataFramePool.js';
import type { OutboundBudget } from './outboundBudget.js';
import { OutboundQueue } from './outboundQueue.js';
import type { SharedBufferReads } from './sharedReadBuffer.js';

export interface FramedSocketOptions {
  maxFramePayloadBytes: number;
  maxControlPayloadBytes: number;
  outboundHighWaterBytes: number;
  outboundLowWaterBytes: number;
  /** The payload of the DATA frames this side sends, which are then reused (OutboundQueue). */
  dataFramePayloadBytes: number;
  /** Shared with the process's other connections (a server's): OutboundQueueOptions.budget. */
  outboundBudget?: OutboundBudget | undefined;
  /** Shared the same way: OutboundQueueOptions.framePool. */
  framePool?: DataFramePool | undefined;
  /**
   * Shared the same way (OutboundQueueOptions.controlBudget): past it, reading stops while this
   * connection holds any control frames.
   */
  controlBudget?: ControlFrameBudget | undefined;
  /**
   * Frames the connection may hold for the peer (OutboundQueueOptions.maxHeldFrames); past it the
   * connection fails with FRAME_FLOOD. Default: no limit.
   */
  maxHeldFrames?: number | undefined;
  /**
   * Under a TLS socket, the TCP socket it runs over: probe() writes to it (see probes). Default:
   * none, and a TLS socket is not probed.
   */
  probeThrough?: Socket | undefined;
}

export interface FramedSocketHandlers {
  onFrame(frame: Frame): void;
  /**
   * The peer ended its side (TCP half-close) between frames: nothing more will come. True when
   * the owner still has answers to send and will call end() once they are out; false (or absent):
   * the socket ends now, as for a full close. Only for a TCP socket that can stay half-open.
   */
  onPeerEnded?(): boolean;
  /**
   * The connection began to end (end(), or a fatal error sent to the peer): `error` is what
   * onClose will be given. Once at most, before onClose, which may come up to LINGER_MS later (a
   * peer that does not close its side). Not called for destroy() or the peer's own end.
   */
  onEnding?(error: MuxftpError | undefined): void;
  /** Called exactly once, when the socket is gone; `error` says why when it was not a clean end. */
  onClose(error: MuxftpError | undefined): void;
}

/** Give the peer this long to read our final ERROR frame before the socket is destroyed. */
const LINGER_MS = 2_000;
/** What probe() writes. */
const EMPTY_WRITE = Buffer.alloc(0);
/**
 * Whether writes wait in a TCP socket's libuv queue (`write_queue_size`, internal
 * `_handle.writeQueueSize`, as outputProgress.ts reads it); true when it cannot be read, so a
 * probe below TLS is then left out rather than risked.
 */
function tcpWritesWait(socket: Socket): boolean {
  const size = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle
    ?.writeQueueSize;
  return typeof size !== 'number' || size > 0;
}

/**
 * Bytes decoded between yields to the loop, so one connection with a deep socket buffer (hashing
 * as it decodes) cannot hold the loop while others wait, and the WINDOW grants and writes it
 * produced go out between slices. (Measured: no change to single-stream speed.)
 */
const READ_BYTES_PER_TURN = 1024 * 1024;

export class FramedSocket {
  readonly socket: Duplex;
  readonly queue: OutboundQueue;
  private readonly decoder: FrameDecoder;
  private readonly handlers: FramedSocketHandlers;
  private readPaused = false;
  /** Reading stops while this many bytes are held for the peer: twice what file data may hold. */
  private readonly outboundPauseBytes: number;
  private readonly outboundRoomWaiter = { pull: () => null, onRoom: () => this.scheduleRead() };
  private readScheduled = false;
  /** Bytes decoded since the loop last turned (see READ_BYTES_PER_TURN). */
  private turnBytes = 0;
  private closing = false;
  private closed = false;
  /** The peer half-closed and the owner is finishing its answers (onPeerEnded). */
  private peerEnded = false;
  private closeError: MuxftpError | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** What probe() writes to: the socket itself over plain TCP, the TCP one below TLS if given. */
  private readonly probed: Socket | undefined;
  bytesRead = 0;

  /**
   * @param sharedReads when the socket reads into the process's shared buffer (SharedBufferReads),
   *   its reads: they come here instead of as 'data' events, borrowed (see FrameDecoder.push).
   */
  constructor(
    socket: Duplex,
    options: FramedSocketOptions,
    handlers: FramedSocketHandlers,
    sharedReads?: SharedBufferReads,
  ) {
    this.socket = socket;
    this.handlers = handlers;
    this.decoder = new FrameDecoder(
      {
        maxFramePayloadBytes: options.maxFramePayloadBytes,
        maxControlPayloadBytes: options.maxControlPayloadBytes,
      },
      handlers.onFrame,
    );
    this.outboundPauseBytes = 2 * options.outboundHighWaterBytes;
    this.queue = new OutboundQueue(socket, {
      highWaterBytes: options.outboundHighWaterBytes,
      lowWaterBytes: options.outboundLowWaterBytes,
      pooledFramePayloadBytes: options.dataFramePayloadBytes,
      budget: options.outboundBudget,
      framePool: options.framePool,
      controlBudget: options.controlBudget,
      maxHeldFrames: options.maxHeldFrames,
      onTooManyFrames: this.queueOnTooManyFrames,
    });
    if (socket instanceof Socket) socket.setNoDelay(true);
    this.probed = socket instanceof Socket && !('encrypted' in socket) ? socket : options.probeThrough;
    // Answers may still go out after the peer's FIN (onPeerEnded): a plain TCP socket is kept
    // writable then. TLS is not: its end is its own close_notify, not a half-close.
    if (handlers.onPeerEnded !== undefined && socket instanceof Socket && !('encrypted' in socket)) {
      socket.allowHalfOpen = true;
    }
    // Bytes read before the shared buffer was in use still come as 'data' (they are our own).
    socket.on('data', this.socketOnData);
    sharedReads?.deliverTo(this.socketOnSharedRead);
    socket.on('end', this.socketOnEnd);
    socket.on('error', this.socketOnError);
    socket.on('close', this.socketOnClose);
    // Closed before it came here (a tunnel that went first): its 'close' is past, so say it now.
    if (socket.closed) process.nextTick(this.socketOnClose);
    // A socket paused before we arrived (the server's TLS sniffing does) must flow again.
    socket.resume();
  }
  /** The largest JSON payload the decoder accepts from the next frame on (FrameDecoder). */
  setMaxControlPayloadBytes(bytes: number): void {
    this.decoder.setMaxControlPayloadBytes(bytes);
  }

  /**
   * The peer makes us produce frames far faster than it reads them (x/net/http2 closes such a
   * connection past 10,000 queued control frames, CVE-2019-9512/9515): reading less would not
   * undo what one read already produced, so the connection goes.
   */
  private readonly queueOnTooManyFrames = (heldFrames: number): void => {
    this.fail(
      new ProtocolError(
        'FRAME_FLOOD',
        `${heldFrames} frames held for a peer that does not read them (limit ${this.queue.maxHeldFrames})`,
      ),
    );
  };

  get isClosed(): boolean {
    return this.closing || this.closed;
  }

  send(frame: Buffer): void {
    if (!this.isClosed) this.queue.send(frame);
  }

  /**
   * probe() sees a reset here: a plain TCP socket, or a TLS one given the TCP socket below it
   * (probeThrough). Node's TLS layer passes an empty write on to that socket but drops its
   * error, so the write goes to the TCP socket itself: no bytes, so none come between the TLS
   * records.
   */
  get probes(): boolean {
    return this.probed !== undefined;
  }

  /**
   * Writes no bytes (probes): a reset the peer sent, unseen while the socket is not read, fails
   * this write, and the socket closes as if a read had seen it. Nothing goes on the wire, so it
   * may come between any two frames.
   */
  probe(): void {
    if (this.isClosed || this.probed === undefined || this.probed.destroyed) return;
    // Below TLS only while no write of TLS's own waits there: queued behind one, the probe's
    // completion goes to Node's TLS layer (it listens on that socket's writes), which takes it for
    // its own write's, drops encrypted bytes not yet sent and stalls or garbles the connection;
    // the probe's callback never comes. Unqueued, a write of no bytes completes at once, and a
    // write that waits sees a reset itself.
    if (this.probed !== this.socket && tcpWritesWait(this.probed)) return;
    this.probed.write(EMPTY_WRITE, this.probeOnWritten);
  }

  /** Under TLS the failed write closes the TCP socket, and so the TLS one, with no error of its own: said here. */
  private readonly probeOnWritten = (err?: Error | null): void => {
    if (err) this.socketOnError(err);
  };

  /** Stop taking bytes off the socket; TCP then pushes back on the peer. */
  pauseReading(): void {
    this.readPaused = true;
    this.socket.pause();
  }

  /** Reading is paused by pauseReading(): the owner holds it back (not for a peer that reads too little). */
  get heldByOwner(): boolean {
    return this.readPaused;
  }

  /**
   * Reading is paused: by pauseReading(), for a peer that leaves too much of ours unread, or for
   * a moment between slices of a busy socket's reads.
   */
  get readingPaused(): boolean {
    return this.readPaused || this.socket.isPaused();
  }

  resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    this.scheduleRead();
  }

  private scheduleRead(): void {
    if (this.readScheduled) return;
    this.readScheduled = true;
    setImmediate(this.socketOnScheduledRead);
  }

  private readonly socketOnScheduledRead = (): void => {
    this.readScheduled = false;
    this.turnBytes = 0;
    if (this.readPaused || this.closing) return;
    if (this.holdingTooMuchForPeer()) this.waitForPeerToCatchUp();
    else this.socket.resume();
  };

  /**
   * Reading is paused for what the peer leaves unread: read again once it has taken enough. Each
   * reason has its own waiter: the byte marks' wakes at once below the low-water mark, so waiting
   * on it for anything else made a busy loop.
   */
  private waitForPeerToCatchUp(): void {
    if (this.queue.holdsControlPastBudget) this.queue.waitForControlRoom(this.readOnWake);
    else if (this.queue.bufferedAmount > this.outboundPauseBytes)
      this.queue.waitForRoom(this.outboundRoomWaiter);
    else this.queue.waitForRepliesSettled(this.readOnWake);
  }

  private readonly readOnWake = (): void => {
    this.scheduleRead();
  };

  /**
   * The peer sends requests faster than it reads the answers: stop reading until it catches up,
   * so what we hold for it stays bounded (file data alone never gets here). Replies waiting for
   * room mean the same: more requests would only wait too (issue #7). So does holding any control
   * frames while the server's are past their budget (ControlFrameBudget).
   */
  private holdingTooMuchForPeer(): boolean {
    return (
      this.queue.bufferedAmount > this.outboundPauseBytes ||
      this.queue.waitingReplies > 0 ||
      this.queue.holdsControlPastBudget
    );
  }

  /**
   * Fatal error: send it to the peer on stream 0 (when it is a wire error), then close.
   * Internal errors go to the peer as INTERNAL_ERROR without their details.
   */
  fail(error: unknown): void {
    if (this.isClosed) return;
    const wire =
      error instanceof MuxftpError && error.status < 400
        ? error
        : new MuxftpError('INTERNAL_ERROR', 'internal server error', { cause: error });
    this.queue.send(encodeError(0, errorPayload(wire)));
    this.end(error instanceof MuxftpError ? error : wire);
  }

  /** Lets queued frames go out, then ends the socket; gives up after LINGER_MS. */
  end(error?: MuxftpError): void {
    if (this.isClosed) return;
    this.closing = true;
    this.closeError = error;
    this.decoder.destroy();
    // Keep reading (and discarding) so the peer's FIN is seen and the socket can close.
    this.socket.resume();
    this.queue.endWhenFlushed();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.lingerTimer.unref();
    this.handlers.onEnding?.(error);
  }

  /** Aborts at once: nothing more is sent. Idempotent. */
  destroy(error?: MuxftpError): void {
    if (this.closed) return;
    if (!this.closing) this.closeError = error;
    this.closing = true;
    this.decoder.destroy();
    this.socket.destroy();
  }

  /**
   * Read readiness: the socket hands over each chunk it read, as read (flowing mode, so chunks
   * are never concatenated into one buffer; the decoder slices them). Reading pauses when the
   * owner asks, when the peer makes us hold too much for it, and after each turn's budget.
   */
  private readonly socketOnData = (chunk: Buffer): void => {
    this.onRead(chunk, false);
  };

  private readonly socketOnSharedRead = (chunk: Buffer): void => {
    this.onRead(chunk, true);
  };

  private onRead(chunk: Buffer, borrowed: boolean): void {
    // Closing: discard what still arrives, so the peer's FIN is seen and the socket can close.
    if (this.closing) return;
    this.bytesRead += chunk.length;
    this.turnBytes += chunk.length;
    try {
      this.decoder.push(chunk, borrowed);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.closing) return;
    if (this.holdingTooMuchForPeer()) {
      this.socket.pause();
      this.waitForPeerToCatchUp();
    } else if (this.turnBytes >= READ_BYTES_PER_TURN) {
      // Yield to the loop: window grants, writes and other connections run between slices.
      this.socket.pause();
      this.scheduleRead();
    }
  }

  /** The peer half-closed and this side is still sending its last answers. */
  get peerHasEnded(): boolean {
    return this.peerEnded;
  }

  private readonly socketOnEnd = (): void => {
    if (this.peerEnded) return;
    // The peer finished sending between frames: answers still owed may go out first (a client
    // that shuts down its side after its last request, as `nc -N` does, still reads them).
    if (!this.closing && !this.decoder.midFrame && (this.socket as Socket).allowHalfOpen === true) {
      // Set first: the streams the owner asks (onPeerEnded) see that nothing more will come.
      this.peerEnded = true;
      if (this.handlers.onPeerEnded?.() === true) {
        this.decoder.destroy();
        return;
      }
      this.peerEnded = false;
    }
    // Whatever it left half-framed is lost; we are done too. A peer that dies (a server killed
    // mid-download) ends inside a frame: a lost connection, which --retries reconnect from.
    if (!this.closing) {
      const partial = this.decoder.midFrame;
      this.closeError = partial ? new ConnectionLostError('connection ended inside a frame') : undefined;
      this.closing = true;
    }
    this.socket.end();
  };

  private readonly socketOnError = (err: Error): void => {
    if (!this.closing)
      this.closeError = new ConnectionLostError(`connection error: ${err.message}`, { cause: err });
    this.closing = true;
  };

  private readonly socketOnClose = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    clearTimeout(this.lingerTimer);
    this.queue.close();
    this.decoder.destroy();
    this.handlers.onClose(this.closeError);
  };
}
