/**
 * A `get`: the server reads the file and sends it as DATA frames, then END with size and SHA-256
 * (from storage's digest cache when it has one: the client verifies every byte either way).
 * It is a FrameProducer on the connection's outbound queue, and reads its next chunk from disk only
 * when it has credit from the client and the queue has room (tryReserve): however slowly the client
 * reads, the server holds at most the queue's high-water mark plus one chunk for it.
 */
import { createHash, type Hash } from 'node:crypto';
import { StorageError } from '../shared/errors.js';
import { HEADER_BYTES } from '../shared/protocol/constants.js';
import { allocDataFrame, encodeEnd, encodeReply } from '../shared/protocol/encoder.js';
import { OutboundCredit } from '../shared/transport/flow.js';
import type { FrameProducer } from '../shared/transport/outboundQueue.js';
import { StreamPhase } from '../shared/transport/streamPhase.js';
import type { ReadHandle } from '../storage/types.js';
import { ServerStream, type StreamHost } from './stream.js';

export class DownloadStream extends ServerStream implements FrameProducer {
  readonly op = 'get';
  private readonly path: string;
  private handle: ReadHandle | undefined;
  /** Hashes the file as it is read, unless storage already knows its digest. */
  private hash: Hash | undefined;
  private readonly credit: OutboundCredit;
  /** Bytes read from the file (and hashed) so far. */
  private position = 0;
  private size = 0;
  private reading = false;
  private readyFrame: Buffer | null = null;
  /** Set while a bandwidth limit makes the next read wait. */
  private rateTimer: NodeJS.Timeout | undefined;

  constructor(host: StreamHost, id: number, path: string) {
    super(host, id);
    this.path = path;
    this.credit = new OutboundCredit(id);
  }

  start(): void {
    this.host.storage.openRead(this.path).then(
      (handle) => {
        if (this.isFinished) {
          void handle.close();
          return;
        }
        this.handle = handle;
        this.advance(StreamPhase.Open);
        this.size = handle.size;
        if (handle.sha256 === undefined) this.hash = createHash('sha256');
        this.host.send(encodeReply(this.id, { size: handle.size, mtime: Math.round(handle.mtimeMs) }));
        this.host.queue.addProducer(this);
        this.readAhead();
      },
      (err: unknown) => this.fail(err),
    );
  }

  override onWindow(increment: number): void {
    this.credit.add(increment);
    this.readAhead();
  }

  pull(): Buffer | null {
    const frame = this.readyFrame;
    if (frame === null) return null;
    this.readyFrame = null;
    if (this.position === this.size) this.finish();
    else this.readAhead();
    return frame;
  }

  onRoom(): void {
    this.readAhead();
  }

  /** Starts reading the next chunk if there is credit, room, and nothing read or ready already. */
  private readAhead(): void {
    const handle = this.handle;
    if (handle === undefined || this.isFinished || this.reading || this.readyFrame !== null) return;
    if (this.size === 0) {
      this.finish();
      return;
    }
    const throttle = this.host.downloadThrottle;
    const length = Math.min(
      this.credit.available,
      this.size - this.position,
      this.host.options.chunkBytes,
      this.host.peerMaxFramePayload,
      throttle?.maxChunkBytes ?? Number.POSITIVE_INFINITY,
    );
    if (length <= 0 || this.rateTimer !== undefined) return;
    if (throttle !== undefined) {
      const waitMs = throttle.delayMs();
      if (waitMs > 0) {
        this.rateTimer = setTimeout(this.rateTimerOnFire, waitMs);
        return;
      }
    }
    if (!this.host.queue.tryReserve(HEADER_BYTES + length, this)) return;
    throttle?.take(length);
    this.reading = true;
    this.credit.take(length);
    const frame = allocDataFrame(this.id, length);
    handle.read(frame, HEADER_BYTES, length, this.position).then(
      (bytesRead) => {
        this.reading = false;
        if (this.isFinished) {
          this.host.queue.release(frame.length);
          return;
        }
        if (bytesRead !== length) {
          this.host.queue.release(frame.length);
          this.fail(new StorageError('IO_ERROR', `file changed while being read: ${this.path}`, this.path));
          return;
        }
        this.hash?.update(frame.subarray(HEADER_BYTES));
        this.position += length;
        this.readyFrame = frame;
        this.host.queue.wake();
      },
      (err: unknown) => {
        this.reading = false;
        this.host.queue.release(frame.length);
        this.fail(err);
      },
    );
  }

  private readonly rateTimerOnFire = (): void => {
    this.rateTimer = undefined;
    this.readAhead();
  };

  /** All bytes are read: END goes out right behind the last DATA frame. */
  private finish(): void {
    const handle = this.handle!;
    let sha256 = handle.sha256;
    if (sha256 === undefined) {
      sha256 = this.hash!.digest();
      handle.rememberSha256(sha256);
    }
    this.host.send(encodeEnd(this.id, this.size, sha256));
    this.recordTransfer('sent', this.path, this.size);
    this.close(false);
  }

  protected cleanup(): void {
    clearTimeout(this.rateTimer);
    this.host.queue.removeProducer(this);
    if (this.readyFrame !== null) {
      this.host.queue.release(this.readyFrame.length);
      this.readyFrame = null;
    }
    void this.handle?.close().catch(() => {});
  }
}
