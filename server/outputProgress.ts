/**
 * Whether the kernel takes what a connection writes to its client, judged between two looks
 * (the idle timer's checks): the server closes a client that reads nothing, never one that
 * reads slowly. The kernel takes bytes in steps (Linux wakes a writer once a third of the send
 * buffer is free: ~1.5 MB on loopback's autotuned buffers, far less over a slow link), so the
 * slowest reader kept is one such step per idle timeout.
 */
import type { Duplex } from 'node:stream';
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';

/** What one look saw. */
export interface OutputMovement {
  /** The kernel took bytes of the connection's output since the last look. */
  took: boolean;
  /**
   * It took them while a write was already waiting for room at the last look, so the room came
   * from the client reading, not from kernel buffers that were still empty.
   */
  clientRead: boolean;
}

interface Sample {
  /** Bytes whose writes completed: handed to the socket, no longer in its buffer. */
  completed: number;
  /** Bytes of the write in progress the kernel has not taken yet; undefined when unknown. */
  unwritten: number | undefined;
  /** A write was waiting for room in the kernel. */
  waiting: boolean;
}

/** The innards of a net.Socket this reads; none of it is public API. */
interface StreamHandle {
  writeQueueSize?: unknown;
  /** A TLS socket's handle (TLSWrap) writes through the TCP handle below it. */
  _parent?: StreamHandle | null;
}

/**
 * libuv's `write_queue_size` of the socket's stream: the bytes of the write in progress it could
 * not hand to the kernel yet, lowered after each partial write. Node's writableLength keeps a
 * whole corked writev batch (up to the outbound high-water mark, 4 MiB) until the last byte of it
 * is in the kernel, so it alone moves once per batch: a client reading less than a batch per idle
 * timeout looked as if it read nothing. Node exposes the libuv figure only as the internal
 * `_handle.writeQueueSize` (its own socket timeout, `_onTimeout` in lib/net.js, reads it the same
 * way); undefined where it is missing (an in-memory duplex, a handle of another shape), and then
 * only whole batches count, as before.
 */
function unwrittenBytes(socket: Duplex): number | undefined {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  const stream = handle?._parent ?? handle;
  const size = stream?.writeQueueSize;
  return typeof size === 'number' ? size : undefined;
}

export class OutputProgress {
  private readonly socket: Duplex;
  private readonly queue: OutboundQueue;
  private last: Sample;

  constructor(socket: Duplex, queue: OutboundQueue) {
    this.socket = socket;
    this.queue = queue;
    this.last = this.sample();
  }

  /** The next look compares with now. */
  mark(): void {
    this.last = this.sample();
  }

  /** What moved since the last look (or mark); this look is the next one's baseline. */
  look(): OutputMovement {
    const now = this.sample();
    const last = this.last;
    this.last = now;
    // A change of either figure is the kernel taking bytes: completed only grows, and while it
    // stands still the same write is in progress, its unwritten part only shrinking.
    const took = now.completed !== last.completed || now.unwritten !== last.unwritten;
    return { took, clientRead: took && last.waiting };
  }

  private sample(): Sample {
    const inSocket = this.socket.writableLength;
    const unwritten = unwrittenBytes(this.socket);
    return {
      completed: this.queue.bytesWritten - inSocket,
      unwritten,
      waiting: unwritten !== undefined ? unwritten > 0 : inSocket > 0,
    };
  }
}
