/**
 * A `get`: the server reads the file and sends it as DATA frames, then END with size and the
 * content digest under the connection's algorithm (from storage's digest cache when it has one,
 * else hashed as the chunks are sent: the client verifies every byte either way). One that stops
 * short of the end leaves the digests of the whole blocks it hashed with storage, for a resume.
 * It is a FrameProducer on the connection's outbound queue, and reads the next chunks from disk
 * (up to readAheadChunks at once, so the disk is read while the socket is written) only when it has
 * credit from the client and the queue has room (reserveChunk): however slowly the client reads, the
 * server holds at most the queue's high-water mark plus one chunk for it, and past the server's
 * outbound budget one small chunk (OutboundBudget).
 */
import { DEFAULTS } from '../shared/defaults.js';
import { StorageError } from '../shared/errors.js';
import { DIGEST_BYTES, INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { ContentDigester, type FileDigest } from '../shared/integrity/contentDigest.js';
import { printableName } from '../shared/printable.js';
import { blockDigestsFitting, HEADER_BYTES } from '../shared/protocol/constants.js';
import { encodeEnd, encodeReply } from '../shared/protocol/encoder.js';
import { DataFrameView, type OutgoingFrame } from '../shared/transport/dataFrameView.js';
import { OutboundCredit } from '../shared/transport/flow.js';
import type { FrameProducer } from '../shared/transport/outboundQueue.js';
import { FrameReadAhead } from '../shared/transport/readAhead.js';
import { StreamPhase } from '../shared/transport/streamPhase.js';
import { hashReadBuffers } from '../storage/hashReadBuffers.js';
import type { ReadHandle } from '../storage/types.js';
import { checkDirectoryPaths } from './directoryPaths.js';
import {
  type RequestName,
  rejectingCall,
  ServerStream,
  SMALL_REPLY_BYTES,
  type StreamHost,
} from './stream.js';

export class DownloadStream extends ServerStream implements FrameProducer {
  readonly op = 'get';
  private readonly path: string;
  /** get -c: where the client would like to continue from (a whole block); the server decides. */
  private readonly requestedOffset: number | undefined;
  /** Where the DATA began: 0, or a resumed download's offset. */
  private sentFrom = 0;
  private handle: ReadHandle | undefined;
  /** From start(): settles once the file is open, or was refused, or was closed again for a stream over. */
  private opening: Promise<unknown> | undefined;
  /** Hashes the file as it is sent, unless storage already knows its digest. */
  private digester: ContentDigester | undefined;
  private known: FileDigest | undefined;
  private readonly credit: OutboundCredit;
  /** Bytes of the file whose read has been started. */
  private readPosition = 0;
  /** Bytes handed to the queue (and hashed) so far. */
  private position = 0;
  private size = 0;
  /** finish() ran: END is on its way (after the look at the file, when the digest was computed). */
  private ending = false;
  private readonly reads: FrameReadAhead<OutgoingFrame>;
  /**
   * Chunks lent by storage (views of its buffers) that the socket has not released yet: they
   * keep the file's memory alive, removed or not, so the file stays open, and counted against
   * the open-file cap, until they are released (else a client reading nothing could keep any
   * number of removed files alive, one chunk each).
   */
  private lentViews = 0;
  /** Once the stream is over with views still lent: closes the file when the last is released. */
  private closeWhenReleased: (() => void) | undefined;
  /**
   * Aborted when the stream is over: a resumed download's wait for a read buffer ends. Made only
   * for one that reads a prefix, as an upload's (a controller and its abort cost every small get).
   */
  private over: AbortController | undefined;
  /** Its prefix waits for one of the server's read buffers others hold (hashReadBuffers). */
  private waitingForReadBuffer = false;
  /** A resumed download's REPLY (its blocks' digests) waits for room in the connection's output. */
  private waitingForReplyRoom = false;

  constructor(host: StreamHost, id: number, request: { path: string; offset?: number }) {
    super(host, id);
    this.path = request.path;
    this.requestedOffset = request.offset;
    this.credit = new OutboundCredit(id);
    this.reads = new FrameReadAhead(DEFAULTS.readAheadChunks);
  }

  protected describe(): RequestName {
    return { text: `get ${printableName(this.path)}`, fields: { op: 'get', path: this.path } };
  }

  /** Bytes handed to the connection's queue, not all read by the client; no size before the file is open. */
  protected override transferProgress() {
    const total = this.handle === undefined ? undefined : this.size;
    return { kind: 'download' as const, path: this.path, done: this.position, total };
  }

  start(): void {
    // A path ending in '/' names a directory, which no get reads (directoryPaths.ts).
    const checking = checkDirectoryPaths(this.host.storage, { op: 'get', path: this.path });
    const opening =
      checking === undefined
        ? rejectingCall(() => this.host.storage.openRead(this.path))
        : checking.then(() => this.host.storage.openRead(this.path));
    this.opening = opening.then(
      (handle) => {
        // Over while it opened (cancelled): its slot is held until the file is closed again.
        if (this.isFinished) return rejectingCall(() => handle.close()).catch(() => {});
        this.handle = handle;
        this.advance(StreamPhase.Open);
        this.size = handle.size;
        this.known = handle.knownDigest(this.host.integrity);
        if (this.requestedOffset === undefined) {
          if (this.starvedByPeerEnd()) return;
          if (this.known === undefined) this.digester = new ContentDigester(this.host.integrity);
          this.host.send(
            encodeReply(this.id, { size: handle.size, mtime: Math.round(handle.mtimeMs), mode: handle.mode }),
          );
          this.host.queue.addProducer(this);
          this.readAhead();
          return;
        }
        this.startResumed(handle, this.requestedOffset).catch((err: unknown) => this.fail(err));
      },
      (err: unknown) => {
        // Settled: nothing of storage's left for the stream (fileWorkLeft).
        this.opening = undefined;
        this.fail(err);
      },
    );
  }

  /** Its file still opening: the open's descriptor is the stream's until it is closed (above). */
  override fileWorkLeft(): Promise<unknown> | undefined {
    return this.handle === undefined ? this.opening : undefined;
  }

  /**
   * get -c: the offset is the requested one, at most the file's whole blocks and
   * DEFAULTS.maxResumeBlocks, and no more blocks than the REPLY can list to this client in one
   * frame (blockDigestsFitting); the rest is sent again. REPLY carries the
   * digests of the blocks before it, for the client to check its partial file against; END's D
   * still covers the whole file, so the client's check at the end covers its prefix too.
   */
  private async startResumed(handle: ReadHandle, requested: number): Promise<void> {
    const blocks = Math.min(
      requested / INTEGRITY_BLOCK_BYTES,
      Math.floor(this.size / INTEGRITY_BLOCK_BYTES),
      blockDigestsFitting(
        this.host.peerMaxFramePayload,
        DIGEST_BYTES[this.host.integrity],
        DEFAULTS.maxResumeBlocks,
      ),
    );
    const offset = blocks * INTEGRITY_BLOCK_BYTES;
    // The DATA starts there, set before the prefix is hashed: a WINDOW that comes meanwhile starts
    // reads (readAhead) from here, sent once the REPLY is out (from 0 they went out as the bytes at
    // the offset, under an END whose D vouched for them), and a client that half-closes meanwhile
    // needs credit for the rest from here on, not for the whole file (starvedByPeerEnd).
    this.readPosition = offset;
    let prefix: readonly Buffer[];
    if (this.known !== undefined) {
      prefix = this.known.blockDigests.slice(0, blocks);
    } else {
      // END's D is over the whole file, so the prefix the client already has is hashed too: from
      // the block digests storage remembers of this version, as far as they go, then by reading.
      const leading = handle.knownLeadingBlocks(this.host.integrity).slice(0, blocks);
      const digester = ContentDigester.continuing(this.host.integrity, leading);
      this.digester = digester;
      this.position = leading.length * INTEGRITY_BLOCK_BYTES;
      // Through the server's few shared buffers, as a digest's reads: a MiB of its own each let
      // many resumed gets hold a GiB outside every budget (up to the open-file cap).
      let lease: { buffer: Buffer; release: () => void } | undefined;
      if (this.position < offset) {
        // Over already (cleanup aborted no controller then): no buffer to wait for.
        if (this.isFinished) return;
        this.over = new AbortController();
        lease = await hashReadBuffers.borrow(offset - this.position, {
          signal: this.over.signal,
          owner: this.host,
          onWaiting: (waiting) => {
            this.waitingForReadBuffer = waiting;
            if (!waiting) this.progressed(); // however long it waited, its stall check starts now
          },
        });
      }
      try {
        while (this.position < offset) {
          const buffer = lease!.buffer;
          const length = Math.min(buffer.length, offset - this.position);
          const bytesRead = await handle.read(buffer, 0, length, this.position);
          if (this.isFinished) return; // cleanup() remembers the blocks hashed so far
          if (bytesRead !== length) {
            throw new StorageError('IO_ERROR', `file changed while being read: ${this.path}`, this.path);
          }
          this.progressed(); // reading for the stream: a long prefix is not a stalled stream
          digester.update(buffer.subarray(0, length));
          this.position += length;
        }
      } finally {
        lease?.release();
      }
      prefix = digester.blockDigests.slice(0, blocks);
      // Before the REPLY: a client that hangs up once it has it must not make the next ask read it all again.
      if (blocks > leading.length) handle.rememberLeadingBlocks(this.host.integrity, prefix);
    }
    this.position = offset;
    if (this.starvedByPeerEnd()) return;
    const reply = encodeReply(this.id, {
      size: this.size,
      mtime: Math.round(handle.mtimeMs),
      mode: handle.mode,
      offset,
      blocks: prefix.map((digest) => digest.toString('hex')),
    });
    // Up to ~137 KB (2048 sha256 digests): it waits for room as a request's answer does. Sent at
    // once, 4 clients asking 256 resumed gets of a file of 8 GiB or more and reading none held
    // 72 MB of them (xxh128; twice that with sha256), past the server's control budget.
    this.waitingForReplyRoom = true;
    const reserved = await this.host.queue
      .reserveForReply(reply.length, Math.min(reply.length, SMALL_REPLY_BYTES))
      .finally(() => {
        this.waitingForReplyRoom = false;
      });
    if (reserved > 0) this.host.queue.releaseReply(reserved);
    if (reserved === 0 || this.isFinished || this.starvedByPeerEnd()) return;
    this.sentFrom = offset;
    this.progressed();
    this.host.send(reply);
    this.host.queue.addProducer(this);
    this.readAhead();
  }

  override onPeerEnded(): void {
    this.starvedByPeerEnd();
  }

  /**
   * After the client's half-close no WINDOW comes: a download whose credit does not carry the rest
   * of the file could never finish, and ends now (as if the connection were gone), not at its
   * stall timeout. Decided once the file is open (its size known).
   */
  private starvedByPeerEnd(): boolean {
    if (!this.host.peerHasEnded || this.handle === undefined) return false;
    if (this.size - this.readPosition <= this.credit.available) return false;
    this.endForPeerEnd();
    return true;
  }

  override onWindow(increment: number): void {
    this.credit.add(increment);
    this.readAhead();
  }

  /**
   * A resumed download's REPLY waiting for room, chunks read and waiting for the socket, or credit
   * to read more (then it waits for room).
   */
  override get waitsForOutput(): boolean {
    return (
      this.waitingForReplyRoom ||
      (this.handle !== undefined && (!this.reads.isEmpty || this.credit.available > 0))
    );
  }

  override get heldByServer(): boolean {
    return this.waitingForReadBuffer || this.host.downloadThrottle?.holds(this.onThrottleTurn) === true;
  }

  pull(): OutgoingFrame | null {
    if (this.isFinished) return null;
    const next = this.reads.next();
    if (next === undefined) return null;
    const { frame, bytesRead } = next;
    if (bytesRead !== frame.length - HEADER_BYTES) {
      this.host.queue.release(frame.length);
      this.fail(new StorageError('IO_ERROR', `file changed while being read: ${this.path}`, this.path));
      return null;
    }
    this.progressed();
    // Hashed here, in file order, whatever order the reads completed in.
    this.digester?.update(frame instanceof DataFrameView ? frame.payload : frame.subarray(HEADER_BYTES));
    this.position += frame.length - HEADER_BYTES;
    if (this.position === this.size) this.finish();
    else this.readAhead();
    return frame;
  }

  onRoom(): void {
    this.readAhead();
  }

  /** Starts reads of the next chunks while there is credit, room in the queue and in the read-ahead. */
  private readAhead(): void {
    const handle = this.handle;
    if (handle === undefined || this.isFinished) return;
    if (this.position === this.size) {
      // Nothing to send: an empty file, or a resumed download that already has every byte.
      this.finish();
      return;
    }
    const throttle = this.host.downloadThrottle;
    while (!this.reads.full) {
      let length = Math.min(
        this.credit.available,
        this.size - this.readPosition,
        this.host.options.chunkBytes,
        this.host.peerMaxFramePayload,
        throttle?.maxChunkBytes ?? Number.POSITIVE_INFINITY,
      );
      if (length <= 0) return;
      if (throttle !== undefined && !throttle.mayGo(this.onThrottleTurn)) return;
      // Only a stream with nothing reserved waits in line for room (see tryReserve). Past the
      // server's budget the room may be a small chunk: the frame is read to its size.
      const waiter = this.reads.isEmpty ? this : undefined;
      const reserved = this.host.queue.reserveChunk(HEADER_BYTES + length, waiter, HEADER_BYTES + 1);
      if (reserved === 0) return;
      length = reserved - HEADER_BYTES;
      throttle?.take(length);
      this.credit.take(length);
      const position = this.readPosition;
      this.readPosition += length;
      // Storage holding the file in memory lends its bytes; else they are read into a frame.
      const view = handle.view?.(position, length);
      if (view !== undefined) this.lentViews++;
      const frame =
        view === undefined
          ? this.host.queue.dataFrame(this.id, length)
          : new DataFrameView(this.id, view, this.viewOnReleased);
      const read =
        frame instanceof DataFrameView
          ? Promise.resolve(length)
          : rejectingCall(() => handle.read(frame, HEADER_BYTES, length, position));
      this.reads.add(frame, read, (err) => {
        if (err !== undefined) this.fail(err);
        else this.host.queue.wake();
      });
    }
  }

  private readonly viewOnReleased = (): void => {
    if (--this.lentViews === 0) this.closeWhenReleased?.();
  };

  private readonly onThrottleTurn = (): void => {
    this.readAhead();
  };

  /**
   * All bytes are sent: END goes out right behind the last DATA frame, once a look at the file
   * shows that no other program wrote it meanwhile; else the stream fails IO_ERROR. A digest
   * computed from the bytes as they were read would vouch for a mix; a cached one is the version
   * opened, which the bytes sent may no longer be: the client would see INTEGRITY_ERROR, a
   * failed transfer, where the cause is the file changing (IO_ERROR, as without the cache).
   */
  private finish(): void {
    if (this.ending) return;
    this.ending = true;
    const handle = this.handle!;
    const digest = this.known ?? this.digester!.result();
    rejectingCall(() => handle.changedSinceOpen()).then(
      (changed) => {
        if (this.isFinished) return;
        if (changed) {
          this.fail(new StorageError('IO_ERROR', `file changed while being read: ${this.path}`, this.path));
          return;
        }
        if (this.known === undefined) handle.rememberDigest(digest);
        this.sendEnd(digest);
      },
      (err: unknown) => this.fail(err),
    );
  }

  private sendEnd(digest: FileDigest): void {
    this.host.send(encodeEnd(this.id, this.size, digest.algorithm, digest.digest));
    this.recordTransfer('sent', this.path, this.size - this.sentFrom, this.sentFrom);
    this.close(false);
  }

  protected cleanup(): void {
    this.over?.abort();
    this.host.downloadThrottle?.cancel(this.onThrottleTurn);
    // Stopped short of the end: the whole blocks hashed so far spare a resumed get reading them again.
    if (this.digester !== undefined && this.position < this.size) {
      this.handle?.rememberLeadingBlocks(this.host.integrity, this.digester.blockDigests);
    }
    this.digester?.release();
    this.host.queue.removeProducer(this);
    for (const frame of this.reads.clear()) {
      this.host.queue.release(frame.length);
      if (frame instanceof DataFrameView) frame.released();
    }
    const handle = this.handle;
    if (handle === undefined) return;
    if (this.lentViews === 0) {
      void rejectingCall(() => handle.close()).catch(() => {});
      return;
    }
    const releaseSlot = this.host.holdOpenFile();
    this.closeWhenReleased = () => {
      releaseSlot();
      void rejectingCall(() => handle.close()).catch(() => {});
    };
  }
}
