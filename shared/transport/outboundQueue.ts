/**
 * A connection's outbound message queue. Nothing is written straight to the socket: frames wait
 * here and are moved on only while the socket accepts writes (write readiness); once the socket
 * asks for 'drain' the queue stops until it comes. Streams that produce file data are pulled
 * round-robin, one frame per turn, so one large file cannot starve a small one.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { allocDataFrame } from '../protocol/encoder.js';
import type { ControlFrameBudget } from './controlFrameBudget.js';
import { DataFramePool } from './dataFramePool.js';
import { DataFrameView, type OutgoingFrame } from './dataFrameView.js';
import type { OutboundBudget } from './outboundBudget.js';

/** A stream that has frames to send (a download on the server, an upload on the client). */
export interface FrameProducer {
  /** The next frame ready to go, or null. Called only while the socket can take more. */
  pull(): OutgoingFrame | null;
  /** Called once room opened up after tryReserve() refused this producer. */
  onRoom(): void;
}

export interface OutboundQueueOptions {
  /** Producers may not reserve more once this many bytes are buffered or reserved. */
  highWaterBytes: number;
  /** Refused producers are called back when the buffered bytes fall below this. */
  lowWaterBytes: number;
  /** Producers' DATA frames up to this payload are pooled (dataFrame()); 0: none. */
  pooledFramePayloadBytes?: number;
  /**
   * The pool those frames go round in, shared with the process's other connections (a server's):
   * then free frames are capped for all of them together, and a connection idle after a download
   * keeps none. Without it, a queue over a socket has a pool of its own (a client's one connection).
   */
  framePool?: DataFramePool | undefined;
  /** What this queue's reservations count against together with other queues' (a server's). */
  budget?: OutboundBudget | undefined;
  /**
   * What this queue's control frames count against together with other queues' (a server's),
   * from send() until the kernel takes them: past it, the owner stops reading (ControlFrameBudget).
   */
  controlBudget?: ControlFrameBudget | undefined;
  /**
   * Frames this queue may hold (queued, or in the socket's buffer until the kernel takes them);
   * one more calls `onTooManyFrames`, once. Default: no limit. A peer that makes us send many
   * small frames and reads none (WINDOW of 1 byte, OPENs answered by ERROR) holds ~4 times their
   * bytes in buffers and write requests, which the byte marks do not see.
   */
  maxHeldFrames?: number | undefined;
  /** Called (in a microtask) once this queue holds more than `maxHeldFrames` frames. */
  onTooManyFrames?: ((heldFrames: number) => void) | undefined;
}

export class OutboundQueue {
  private readonly socket: Duplex;
  private readonly options: OutboundQueueOptions;
  private readonly frames: Buffer[] = [];
  private queuedBytes = 0;
  private reservedBytes = 0;
  private readonly producers: FrameProducer[] = [];
  private cursor = 0;
  private readonly waitingForRoom = new Set<FrameProducer>();
  private pumpScheduled = false;
  private replyWaiters = 0;
  /** Wakes the replies waiting for room: endWhenFlushed() drops them from waitingForRoom. */
  private readonly replyWakes = new Set<() => void>();
  /** Called back once no reply waits for room (the owner stopped reading for them). */
  private readonly repliesSettledWaiters = new Set<() => void>();
  private closed = false;
  private ending = false;
  /** Producers' frames, reused once written (only over a socket, whose kernel copies the bytes). */
  private readonly framePool: DataFramePool | undefined;
  /** Bytes handed to the socket so far. */
  bytesWritten = 0;
  /** Of the budget's bytes, those this queue holds: reserved, or pulled and not yet written. */
  private budgetHeld = 0;
  /** Frames handed to the socket whose write has not completed (the kernel has not taken them). */
  private framesInSocket = 0;
  private taken = 0;
  private tooManyFramesReported = false;
  /**
   * Bytes of control frames held (queued, or in the socket until written) and of room reserved for
   * replies, counted with controlBudget.
   */
  private controlBytes = 0;
  /** Called back once this queue holds no control frames or the control budget has room again. */
  private readonly controlRoomWaiters = new Set<() => void>();

  constructor(socket: Duplex, options: OutboundQueueOptions) {
    if (!(options.lowWaterBytes > 0 && options.lowWaterBytes <= options.highWaterBytes)) {
      throw new RangeError('outbound queue: need 0 < lowWaterBytes <= highWaterBytes');
    }
    this.socket = socket;
    this.options = options;
    const pooled = options.pooledFramePayloadBytes ?? 0;
    // An in-memory duplex may hand the very buffer to its reader: no reuse there.
    this.framePool =
      pooled > 0 && socket instanceof Socket
        ? (options.framePool ?? new DataFramePool(pooled, options.highWaterBytes))
        : undefined;
    socket.on('drain', this.socketOnDrain);
  }

  /**
   * A DATA frame for a producer to read file bytes into (header written): from the pool when
   * there is one, taken back once the socket has written it.
   */
  dataFrame(streamId: number, payloadLength: number): Buffer {
    return this.framePool?.frame(streamId, payloadLength) ?? allocDataFrame(streamId, payloadLength);
  }

  /**
   * Bytes this connection holds for the peer: queued frames, the socket's own buffer, and
   * file chunks reserved by producers (being read or ready to send).
   */
  get bufferedAmount(): number {
    return this.readyBytes + this.reservedBytes;
  }

  /**
   * Bytes ready for the peer to take: queued frames and the socket's own buffer, not the room
   * reserved for what is still being read or made (a reply, a file chunk), which the peer cannot
   * take yet however well it reads.
   */
  get readyBytes(): number {
    return this.queuedBytes + this.socket.writableLength;
  }

  /** The most frames this queue may hold (`maxHeldFrames`), or undefined for no limit. */
  get maxHeldFrames(): number | undefined {
    return this.options.maxHeldFrames;
  }

  /** Frames held for the peer: queued, or in the socket's buffer until the kernel takes them. */
  get heldFrames(): number {
    return this.frames.length + this.framesInSocket;
  }

  /** Frames the kernel has taken so far: whether the peer reads anything of what it is sent. */
  get framesTaken(): number {
    return this.taken;
  }

  /**
   * Queues a control frame. Never refused: a peer that makes us queue too many gets its reading
   * paused instead (FramedSocket), or past `maxHeldFrames` its connection closed.
   */
  send(frame: Buffer): void {
    if (this.closed || this.ending) return;
    this.frames.push(frame);
    this.queuedBytes += frame.length;
    this.takeControl(frame.length);
    this.checkHeldFrames();
    this.schedulePump();
  }

  /** Bytes of control frames held for the peer, and reserved for replies (counted only with a control budget). */
  get heldControlBytes(): number {
    return this.controlBytes;
  }

  /** The server's control frames are past their budget and this queue holds some of them. */
  get holdsControlPastBudget(): boolean {
    return this.controlBytes > 0 && this.options.controlBudget?.exceeded === true;
  }

  /** Calls `wake` once this queue holds no control frames, or the control budget has room again. */
  waitForControlRoom(wake: () => void): void {
    if (this.closed) return;
    if (!this.holdsControlPastBudget) {
      wake();
      return;
    }
    this.controlRoomWaiters.add(wake);
    this.options.controlBudget?.waitForRoom(this.controlBudgetOnRoom);
  }

  private readonly controlBudgetOnRoom = (): void => {
    const waiting = [...this.controlRoomWaiters];
    this.controlRoomWaiters.clear();
    for (const wake of waiting) wake();
  };

  private takeControl(bytes: number): void {
    if (this.options.controlBudget === undefined) return;
    this.controlBytes += bytes;
    this.options.controlBudget.take(bytes);
  }

  /** A control frame left (the kernel took it), or room reserved for a reply was given back. */
  private giveControl(bytes: number): void {
    const budget = this.options.controlBudget;
    if (budget === undefined || this.closed) return; // close() gave back all this queue held
    this.controlBytes -= bytes;
    budget.give(bytes);
    if (this.controlBytes === 0 && this.controlRoomWaiters.size > 0) {
      budget.cancelWait(this.controlBudgetOnRoom);
      this.controlBudgetOnRoom();
    }
  }

  private checkHeldFrames(): void {
    const max = this.options.maxHeldFrames;
    if (max === undefined || this.tooManyFramesReported || this.heldFrames <= max) return;
    this.tooManyFramesReported = true;
    const held = this.heldFrames;
    // Not from inside send() or the pump: the owner closes the connection in its own turn.
    queueMicrotask(() => this.options.onTooManyFrames?.(held));
  }

  addProducer(producer: FrameProducer): void {
    this.producers.push(producer);
    this.schedulePump();
  }

  removeProducer(producer: FrameProducer): void {
    const index = this.producers.indexOf(producer);
    if (index >= 0) {
      this.producers.splice(index, 1);
      if (this.cursor > index) this.cursor--;
    }
    this.waitingForRoom.delete(producer);
  }

  /**
   * A producer asks for room for `bytes` before reading a chunk. Refused when the connection
   * already holds its high-water mark; the producer is then called back via onRoom(). A producer
   * asking for room to read further ahead, while it already has a chunk reserved, passes no
   * producer: it is not called back (it asks again once that chunk is pulled), so it cannot get
   * in line ahead of producers waiting with nothing reserved.
   */
  tryReserve(bytes: number, producer: FrameProducer | undefined): boolean {
    return this.reserveChunk(bytes, producer, bytes) === bytes;
  }

  /**
   * As tryReserve(), for a producer that can make do with a smaller chunk (of at least
   * `minBytes`): resolves to the bytes reserved, `bytes` or fewer, or 0 when refused. Past the
   * server's budget a connection holding nothing gets at most the budget's trickle, not `bytes`.
   */
  reserveChunk(bytes: number, producer: FrameProducer | undefined, minBytes = bytes): number {
    if (this.closed) return 0;
    const held = this.bufferedAmount;
    // Always admit a chunk into an empty connection, or a frame larger than the mark would stall.
    if (held > 0 && held + bytes > this.options.highWaterBytes) {
      if (producer !== undefined) this.waitingForRoom.add(producer);
      return 0;
    }
    const budget = this.options.budget;
    if (budget !== undefined) {
      if (!budget.hasRoomFor(bytes)) {
        // The same rule server-wide, except that a queue holding nothing may take a small chunk,
        // so that none stalls while the total stays bounded (OutboundBudget).
        const trickle = Math.min(bytes, budget.trickleBytes);
        if (held > 0 || trickle < minBytes) {
          if (producer !== undefined) {
            this.waitingForRoom.add(producer);
            budget.waitForRoom(this.budgetOnRoom);
          }
          return 0;
        }
        bytes = trickle;
      }
      budget.take(bytes);
      this.budgetHeld += bytes;
    }
    this.reservedBytes += bytes;
    return bytes;
  }

  private readonly budgetOnRoom = (): void => {
    this.wakeWaitingIfRoom();
  };

  /** Gives `bytes` of this queue's share back to the budget (a reservation ended, a frame left). */
  private giveToBudget(bytes: number): void {
    const budget = this.options.budget;
    if (budget === undefined || this.closed) return;
    this.budgetHeld -= bytes;
    budget.give(bytes);
  }

  /**
   * Reserves room for a reply of up to `bytes` (or, past the server's budget, as little as
   * `minBytes`), as reserveChunk() does for file data, waiting until it fits: replies are counted
   * against the connection's budget like file data, so a client that never reads its answers
   * cannot make them pile up (issue #7), nor, past the server's control budget, while this
   * connection holds control frames. Resolves to the bytes reserved, or 0 only if the queue
   * ends or closes first. Give the room back with releaseReply() once the reply is sent.
   */
  async reserveForReply(bytes: number, minBytes = bytes): Promise<number> {
    for (;;) {
      // Ending, nothing more is sent: a reply waiting on would wait for good (endWhenFlushed).
      if (this.closed || this.ending) return 0;
      let wake: () => void = () => {};
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      let reserved = 0;
      // Past the server's control budget, answers wait here while this connection holds any.
      if (this.holdsControlPastBudget) this.waitForControlRoom(wake);
      else reserved = this.reserveChunk(bytes, { pull: () => null, onRoom: wake }, minBytes);
      if (reserved > 0) {
        // Counted as control bytes from now: answers reserved in one turn cannot all pass the budget.
        this.takeControl(reserved);
        if (this.replyWaiters === 0) this.wakeRepliesSettledWaiters();
        return reserved;
      }
      this.replyWaiters++;
      this.replyWakes.add(wake);
      try {
        await woken;
      } finally {
        this.replyWaiters--;
        this.replyWakes.delete(wake);
      }
    }
  }

  /** DATA frame buffers waiting to be used again. */
  get pooledFrames(): number {
    return this.framePool?.freeCount ?? 0;
  }

  /** Replies waiting for room: while there are any, the connection stops reading new requests. */
  get waitingReplies(): number {
    return this.replyWaiters;
  }

  /**
   * A reply that waits for something else before it asks for room (a listing's turn) counts as
   * waiting as well: more requests would only wait behind it. Returns what ends that (once).
   */
  waitAsReply(): () => void {
    this.replyWaiters++;
    let over = false;
    return () => {
      if (over) return;
      over = true;
      this.replyWaiters--;
      if (this.replyWaiters === 0) this.wakeRepliesSettledWaiters();
    };
  }

  /**
   * Calls `wake` once no reply waits for room. (Not waitForRoom(): below the low-water mark, it
   * woke its caller at once, and a reader paused for a reply that waits on the server's budget
   * was woken every turn, a busy loop.)
   */
  waitForRepliesSettled(wake: () => void): void {
    if (this.replyWaiters === 0 || this.closed) wake();
    else this.repliesSettledWaiters.add(wake);
  }

  private wakeRepliesSettledWaiters(): void {
    if (this.repliesSettledWaiters.size === 0) return;
    const waiting = [...this.repliesSettledWaiters];
    this.repliesSettledWaiters.clear();
    for (const wake of waiting) wake();
  }

  /** Calls `producer.onRoom()` once the buffered bytes fall below the low-water mark. */
  waitForRoom(producer: FrameProducer): void {
    if (!this.closed) this.waitingForRoom.add(producer);
    this.wakeWaitingIfRoom();
  }

  /** Gives back room reserved with reserveForReply() (the reply is being sent, or will not be). */
  releaseReply(bytes: number): void {
    this.giveControl(bytes);
    this.release(bytes);
  }

  /** Gives back a reservation that will not become a frame (read failed, stream cancelled). */
  release(bytes: number): void {
    this.reservedBytes -= bytes;
    this.giveToBudget(bytes);
    this.wakeWaitingIfRoom();
    this.schedulePump();
  }

  /** A producer has a frame ready, or something else changed that may let the queue move. */
  wake(): void {
    this.schedulePump();
  }

  /**
   * No more producers: send the frames already queued (a final ERROR, say), then end the socket.
   */
  endWhenFlushed(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    this.producers.length = 0;
    this.waitingForRoom.clear();
    // Replies waiting for room give up now: left waiting, a listing held its share of storage's
    // listing budget for good, once for every connection ended so.
    for (const wake of [...this.replyWakes]) wake();
    this.schedulePump();
  }

  /** Drops everything; the socket is going away. */
  close(): void {
    this.closed = true;
    this.frames.length = 0;
    this.queuedBytes = 0;
    this.producers.length = 0;
    // Whatever is still reserved or in the socket's buffer is this connection's to drop.
    if (this.options.budget !== undefined) {
      this.options.budget.cancelWait(this.budgetOnRoom);
      this.options.budget.give(this.budgetHeld);
      this.budgetHeld = 0;
    }
    if (this.options.controlBudget !== undefined) {
      this.options.controlBudget.cancelWait(this.controlBudgetOnRoom);
      this.options.controlBudget.give(this.controlBytes);
      this.controlBytes = 0;
    }
    // Wake whoever waits, so waiting replies see the queue closed and give up.
    const waiting = [...this.waitingForRoom];
    this.waitingForRoom.clear();
    for (const producer of waiting) producer.onRoom();
    this.controlBudgetOnRoom();
    this.wakeRepliesSettledWaiters();
    this.socket.off('drain', this.socketOnDrain);
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    // Frames queued while handling one socket read leave together, in one writev.
    queueMicrotask(this.pump);
  }

  private readonly socketOnDrain = (): void => {
    this.pump();
  };

  private readonly pump = (): void => {
    this.pumpScheduled = false;
    const socket = this.socket;
    if (this.closed) return;
    if (socket.destroyed || !socket.writable) {
      this.close();
      return;
    }
    socket.cork();
    try {
      while (!socket.writableNeedDrain) {
        let frame: OutgoingFrame | undefined = this.frames.shift();
        let fileData = false;
        if (frame !== undefined) {
          this.queuedBytes -= frame.length;
        } else {
          frame = this.pullFromProducers() ?? undefined;
          if (frame === undefined) break;
          this.reservedBytes -= frame.length;
          fileData = true;
        }
        this.bytesWritten += frame.length;
        this.framesInSocket++;
        // The callback tells us when bytes left the socket's buffer, which frees room even
        // when the buffer never got full enough for 'drain' (and the frame's memory is free).
        const pool = this.framePool;
        if (fileData && (pool !== undefined || this.options.budget !== undefined)) {
          const written = frame;
          writeFrame(socket, written, () => {
            if (!(written instanceof DataFrameView)) pool?.recycle(written);
            this.giveToBudget(written.length);
            this.socketOnWritten();
          });
        } else if (!fileData && this.options.controlBudget !== undefined) {
          const length = frame.length;
          socket.write(frame, () => {
            this.giveControl(length);
            this.socketOnWritten();
          });
        } else {
          writeFrame(socket, frame, this.socketOnWritten);
        }
      }
    } finally {
      socket.uncork();
    }
    this.checkHeldFrames();
    if (this.ending && this.frames.length === 0) {
      this.close();
      socket.end();
      return;
    }
    this.wakeWaitingIfRoom();
  };

  private readonly socketOnWritten = (): void => {
    this.framesInSocket--;
    this.taken++;
    this.wakeWaitingIfRoom();
  };

  private wakeWaitingIfRoom(): void {
    if (this.waitingForRoom.size === 0 || this.closed || this.bufferedAmount >= this.options.lowWaterBytes)
      return;
    const waiting = [...this.waitingForRoom];
    this.waitingForRoom.clear();
    for (const producer of waiting) producer.onRoom();
  }

  /** One frame from the next producer in turn that has one ready. */
  private pullFromProducers(): OutgoingFrame | null {
    const count = this.producers.length;
    for (let tried = 0; tried < count; tried++) {
      if (this.cursor >= this.producers.length) this.cursor = 0;
      const producer = this.producers[this.cursor++]!;
      const frame = producer.pull();
      if (frame !== null) return frame;
    }
    return null;
  }
}

/**
 * A view's header and payload go out back to back (the socket is corked: one writev). Its write
 * callback runs once the kernel took it, or when the socket is destroyed with it unwritten: then
 * the view is released.
 */
function writeFrame(socket: Duplex, frame: OutgoingFrame, onWritten: () => void): void {
  if (frame instanceof DataFrameView) {
    socket.write(frame.header);
    socket.write(frame.payload, () => {
      frame.released();
      onWritten();
    });
  } else {
    socket.write(frame, onWritten);
  }
}
