/**
 * The client's side of each stream kind. A stream settles its promise exactly once: on its final
 * frame, on an ERROR from the server, on cancel, or when the connection is lost.
 */

import { DEFAULTS } from '../shared/defaults.js';
import { type ErrorDetails, MuxftpError, ProtocolError, RemoteError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES, type IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import { HEADER_BYTES } from '../shared/protocol/constants.js';
import { encodeEnd, encodeWindow } from '../shared/protocol/encoder.js';
import type { EndPayload, WireEntry } from '../shared/protocol/messages.js';
import { OPERATIONS, type OperationOf, type ReplyOf } from '../shared/protocol/operations.js';
import { InboundWindow, OutboundCredit, type WindowBudget } from '../shared/transport/flow.js';
import type { FrameProducer, OutboundQueue } from '../shared/transport/outboundQueue.js';
import type { Throttle } from '../shared/transport/rateLimiter.js';
import { FrameReadAhead } from '../shared/transport/readAhead.js';
import { ReceivedBytes, receivedBlocks } from '../shared/transport/receivedBytes.js';
import type { RoundTripSampler } from '../shared/transport/roundTrips.js';
import { acceptsCancel, laterPhase, StreamPhase } from '../shared/transport/streamPhase.js';
import type { ByteSink, ContinueSink, KeptAttributes, KeptPartial } from './sinks.js';
import type { ByteSource } from './sources.js';

/** The connection, as its streams see it. */
export interface ClientHost {
  readonly queue: OutboundQueue;
  /** Largest DATA payload the server accepts. */
  readonly serverMaxFramePayload: number;
  readonly chunkBytes: number;
  readonly streamWindowBytes: number;
  /** Credit a new upload starts with, as the server's WELCOME announced it (0: none). */
  readonly uploadInitialWindow: number;
  /** The integrity algorithm the server chose for this connection. */
  readonly integrity: IntegrityAlgorithm;
  readonly streamWindowMaxBytes: number;
  readonly windowBudget: WindowBudget;
  /** The connection's round-trip sampler (a server that answers PING), for download windows' growth. */
  readonly roundTrips: RoundTripSampler | undefined;
  /** The connection's bandwidth limits (ClientOptions.maxRate), when it has one. */
  readonly uploadThrottle: Throttle | undefined;
  readonly downloadThrottle: Throttle | undefined;
  send(frame: Buffer): void;
  /** Tells the server (or drops the stream from the wait line, if it was never opened). */
  cancelStream(stream: ClientStream): void;
  streamDone(stream: ClientStream): void;
}

/** Progress of one transfer: bytes moved so far, and the total when it is known. */
export type ProgressCallback = (bytesDone: number, bytesTotal: number | undefined) => void;

/**
 * Runs `call`, which calls back into the caller's code (`name`: TransferOptions.onProgress,
 * onRestart, …, ClientOptions.busyRetries). What that throws is the caller's bug: it fails the one
 * call it belongs to, as LOCAL_IO_ERROR with the thrown value as cause. Thrown inside frame
 * handling it failed the whole connection (as an INTERNAL_ERROR), and from the outbound queue's
 * pump it took the process down.
 */
export function callCaller<R>(name: string, call: () => R): R {
  try {
    return call();
  } catch (thrown) {
    throw callerThrew(name, thrown);
  }
}

/** What a caller's callback `name` threw, as the LOCAL_IO_ERROR its call fails with. */
function callerThrew(name: string, thrown: unknown): MuxftpError {
  const reason = thrown instanceof Error ? thrown.message : String(thrown);
  return new MuxftpError('LOCAL_IO_ERROR', `${name} threw: ${reason}`, { cause: thrown });
}

export abstract class ClientStream {
  readonly id: number;
  protected readonly host: ClientHost;
  #phase: StreamPhase = StreamPhase.Open;
  private readonly settledCallbacks: Array<() => void> = [];

  constructor(host: ClientHost, id: number) {
    this.host = host;
    this.id = id;
  }

  get phase(): StreamPhase {
    return this.#phase;
  }

  get isSettled(): boolean {
    return this.#phase === StreamPhase.Closed;
  }

  /** END has passed (received for a get, sent for a put). Closed only through settle(). */
  protected markEnded(): void {
    if (!this.isSettled) this.#phase = laterPhase(this.#phase, StreamPhase.Ended);
  }

  /** Its OPEN (and the frames sent with it) went out: the server knows the stream from here. */
  opened(): void {}

  // A frame a stream does not expect breaks the protocol: the ProtocolError thrown here fails the
  // whole connection (FramedSocket.onRead), not this stream alone.
  onReply(_result: Record<string, unknown>, _more: boolean): void {
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected REPLY on stream ${this.id}`);
  }

  /**
   * `credit`: the flow-control credit this piece takes (creditTaken(): a whole frame's, or 0).
   * `borrowed`: the payload is valid only during this call (Frame.borrowed).
   */
  onData(_payload: Buffer, _credit: number, _borrowed: boolean): void {
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected DATA on stream ${this.id}`);
  }

  onEnd(_end: EndPayload): void {
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected END on stream ${this.id}`);
  }

  onWindow(_increment: number): void {
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected WINDOW on stream ${this.id}`);
  }

  /** The server failed this stream. */
  onError(code: MuxftpError['code'], message: string, details?: ErrorDetails): void {
    this.settle(new RemoteError(code, message, details));
  }

  /** The caller gives up: stop here, tell the server, and fail with CANCELLED (or `reason`) — unless END has passed. */
  cancel(reason: string | MuxftpError = 'cancelled'): void {
    if (!acceptsCancel(this.#phase)) return;
    this.abandon(typeof reason === 'string' ? new MuxftpError('CANCELLED', reason) : reason);
  }

  /** A local failure (reading the source, writing the sink) ends the stream, whatever its state. */
  protected abandon(error: MuxftpError): void {
    if (this.isSettled) return;
    this.host.cancelStream(this);
    this.settle(error);
  }

  /** Runs a caller's callback (callCaller): a throw abandons this stream alone. False when it threw. */
  protected callCaller(name: string, call: () => void): boolean {
    try {
      call();
      return true;
    } catch (thrown) {
      this.abandon(callerThrew(name, thrown));
      return false;
    }
  }

  /**
   * Tells the caller's onProgress, if given, as callCaller does; called per chunk, so without a
   * closure for each. False when it threw (the stream is abandoned).
   */
  protected toldProgress(onProgress: ProgressCallback | undefined, done: number, total?: number): boolean {
    if (onProgress === undefined) return true;
    try {
      onProgress(done, total);
      return true;
    } catch (thrown) {
      this.abandon(callerThrew('onProgress', thrown));
      return false;
    }
  }

  /** The connection is gone. */
  connectionLost(error: MuxftpError): void {
    this.settle(error);
  }

  /** Runs `callback` once the stream has settled. */
  onSettled(callback: () => void): void {
    if (this.isSettled) callback();
    else this.settledCallbacks.push(callback);
  }

  /** Settles once: `error` rejects, otherwise the subclass has resolved. */
  protected settle(error?: MuxftpError): void {
    if (this.isSettled) return;
    this.#phase = StreamPhase.Closed;
    this.release(error);
    this.host.streamDone(this);
    for (const callback of this.settledCallbacks.splice(0)) callback();
  }

  /** Resolve or reject the caller, free resources. */
  protected abstract release(error: MuxftpError | undefined): void;
}

type Deferred<T> = { resolve(value: T): void; reject(error: Error): void };

/** A REPLY flagged MORE to anything but a listing: the server's PROTOCOL_ERROR (PROTOCOL.md). */
const onlyListingsSpanReplies = (op: string) =>
  new ProtocolError('PROTOCOL_ERROR', `REPLY to ${op}: only a listing spans several REPLY frames`);

/**
 * One request, one reply, checked by the op's REPLY validator (a listing may span several REPLY
 * frames flagged MORE: their entries are joined).
 */
export class RequestCall extends ClientStream {
  private readonly op: OperationOf<'request'>;
  private readonly deferred: Deferred<unknown>;
  private readonly entries: WireEntry[] = [];
  /** A listing longer than this is cancelled (ListingTooLongError). */
  private readonly maxEntries: number;
  private result: unknown;

  constructor(
    host: ClientHost,
    id: number,
    op: OperationOf<'request'>,
    deferred: Deferred<unknown>,
    maxEntries: number = DEFAULTS.maxListingEntries,
  ) {
    super(host, id);
    this.op = op;
    this.deferred = deferred;
    this.maxEntries = maxEntries;
  }

  override onReply(result: Record<string, unknown>, more: boolean): void {
    const reply = OPERATIONS[this.op].reply(result);
    if (this.op === 'list') {
      this.entries.push(...(reply as ReplyOf<'list'>).entries);
      if (this.entries.length > this.maxEntries) {
        this.cancel(new ListingTooLongError(this.maxEntries));
        return;
      }
      this.result = { entries: this.entries };
    } else if (more) {
      throw onlyListingsSpanReplies(this.op);
    } else {
      this.result = reply;
    }
    if (!more) this.settle();
  }

  protected release(error: MuxftpError | undefined): void {
    if (error) this.deferred.reject(error);
    else this.deferred.resolve(this.result);
  }
}

/** What a finished download moved, as verified against the server's digest. */
export interface GetResult {
  /** Bytes received. */
  size: number;
  /** The connection's integrity algorithm. */
  algorithm: IntegrityAlgorithm;
  /** The content digest under it (4 MiB blocks, docs/PROTOCOL.md), hex. */
  digest: string;
  /** The remote file's modification time (ms since the epoch), as REPLY said. */
  mtime: number;
  /** The remote file's permission bits, from a server that sends them. */
  mode?: number;
  /** A download that continued a partial file (get -c, a retry): the bytes it had already, not received now. */
  continuedFrom?: number;
}

/** get -c: the local partial file's whole-block digests, and the sink that continues it. */
export interface GetResume {
  blocks: readonly Buffer[];
  sink: ContinueSink;
  /**
   * The partial file is what a failed download kept (ours, not the user's file): one that differs
   * from the server's fails with {@link KeptPartialDiffersError}, so the caller starts over.
   */
  kept?: boolean;
  /**
   * The size of the local file `get -c` was asked to continue, so that one larger than the server's
   * is refused as such. Unset for a partial file a retry kept (the digests decide there).
   */
  localSize?: number;
  /** Told the offset the server continues from, once its blocks matched (TransferOptions.onContinue). */
  onContinue?: (fromBytes: number) => void;
}

/** DATA or END on a download before its REPLY: the server's PROTOCOL_ERROR (PROTOCOL.md, `get`). */
const beforeReply = (frame: 'DATA' | 'END', id: number) =>
  new ProtocolError('PROTOCOL_ERROR', `${frame} before REPLY on download stream ${id}`);

/** A listing asked with `maxEntries` had more: cancelled once its REPLY frames said so. */
export class ListingTooLongError extends MuxftpError {
  constructor(maxEntries: number) {
    // Not CANCELLED, which says Ctrl-C: the directory is larger than this client takes.
    super('UNSUPPORTED', `listing cancelled: more than ${maxEntries} entries`);
    this.name = 'ListingTooLongError';
  }
}

/**
 * What a failed download kept differs from the server's file (another version of it): it is
 * dropped, and the caller downloads the file afresh instead of failing.
 */
export class KeptPartialDiffersError extends MuxftpError {
  constructor(message: string) {
    super('INTEGRITY_ERROR', message);
    this.name = 'KeptPartialDiffersError';
  }
}

/**
 * get -c refused the partial file under the target's name (the user's, not one muxftp kept): its
 * blocks differ from the server's file, or it is larger and cannot be a partial copy. It is left
 * as it was; the caller may say what to do (remove it, or get without -c). Not a failed
 * verification of the bytes received, which is a plain INTEGRITY_ERROR.
 */
export class LocalPartialRefusedError extends MuxftpError {
  /** What a caller that downloads the file afresh instead says (`replaceDiffering`). */
  readonly restartReason: string;

  /** `why`: what is wrong with the local file; `asPartial`: the same, said of a partial copy. */
  constructor(why: string, asPartial: string = why) {
    super('INTEGRITY_ERROR', `${asPartial}: not continued, left as it was`);
    this.name = 'LocalPartialRefusedError';
    this.restartReason = `${why}: downloading it afresh`;
  }
}

/** A download: grants credit, hashes and writes DATA to a sink, verifies END. */
export class GetCall extends ClientStream {
  private readonly deferred: Deferred<GetResult>;
  private readonly sink: ByteSink;
  private readonly onProgress: ProgressCallback | undefined;
  private readonly digester: ContentDigester;
  /** Credit granted back as bytes reach the sink. */
  private readonly window: InboundWindow;
  private received = 0;
  private expectedSize: number | undefined;
  /** The remote file's modification time, from REPLY. */
  private remoteMtime = 0;
  /** The remote file's permission bits, from REPLY (undefined: a server that sends none). */
  private remoteMode: number | undefined;
  /** Credit the window gave back that a bandwidth limit holds until its turn. */
  private ungranted = 0;
  /** Under a bandwidth limit: the credit granted (and charged to the limit) so far. */
  private limitedCredit = 0;
  /** Received, not yet written to the sink (copied out of a shared read buffer when borrowed). */
  private readonly unwritten = new ReceivedBytes(receivedBlocks);
  private writing = false;
  /** What END said; set when the phase becomes Ended. */
  private end: EndPayload | undefined;
  private result: GetResult | undefined;

  /** get -c: what the local partial file holds, and the sink that continues it. */
  private readonly resume: GetResume | undefined;
  /** Told what a failure kept for get -c (the sink was opened to keep it). */
  private readonly onPartialKept: ((kept: KeptPartial) => void) | undefined;
  /** The offset the server chose for a resumed download; the DATA starts there. */
  private resumedFrom = 0;

  constructor(
    host: ClientHost,
    id: number,
    sink: ByteSink,
    onProgress: ProgressCallback | undefined,
    deferred: Deferred<GetResult>,
    resume?: GetResume,
    onPartialKept?: (kept: KeptPartial) => void,
    /** Give the local file the remote one's time, its bits (TransferOptions.keepTimes, keepModes). */
    private readonly keeps: { times?: boolean; modes?: boolean } = {},
  ) {
    super(host, id);
    this.sink = sink;
    this.onProgress = onProgress;
    this.deferred = deferred;
    this.resume = resume;
    this.onPartialKept = onPartialKept;
    // Under a bandwidth limit, credit the server holds unused is a burst past it: keep it small.
    const throttle = host.downloadThrottle;
    this.window =
      throttle === undefined
        ? new InboundWindow(id, host.streamWindowBytes, {
            maxSize: Math.max(host.streamWindowBytes, host.streamWindowMaxBytes),
            budget: host.windowBudget,
            roundTrips: host.roundTrips,
          })
        : new InboundWindow(id, Math.min(host.streamWindowBytes, 2 * throttle.maxChunkBytes));
    this.digester = new ContentDigester(host.integrity);
    sink.onFailure?.((error) => this.abandon(error));
  }

  /**
   * The WINDOW sent right behind OPEN, so the server may start sending at once. Under a bandwidth
   * limit none: the first credit waits for REPLY (the size, so no more is granted, and charged,
   * than the file needs) and for the stream's turn, or fifty gets opened at once would each bring
   * a window's worth past the limit.
   */
  initialWindow(): Buffer[] {
    const credit = this.window.open();
    if (this.host.downloadThrottle === undefined) return [encodeWindow(this.id, credit)];
    this.ungranted += credit;
    return [];
  }

  override onReply(result: Record<string, unknown>, more: boolean): void {
    // After END the download has what it needs: a REPLY then (a resumed one) would abandon it.
    if (this.phase === StreamPhase.Ended)
      throw new ProtocolError('STREAM_CLOSED', `REPLY after END on stream ${this.id}`);
    if (more) throw onlyListingsSpanReplies('get');
    if (this.expectedSize !== undefined)
      throw new ProtocolError('PROTOCOL_ERROR', `a second REPLY on download stream ${this.id}`);
    const reply = OPERATIONS.get.reply(result);
    this.expectedSize = reply.size;
    this.remoteMtime = reply.mtime;
    this.remoteMode = reply.mode;
    if (this.resume !== undefined && !this.acceptResume(this.resume, result)) return;
    const resumedFrom = this.resumedFrom;
    if (resumedFrom > 0 && !this.callCaller('onContinue', () => this.resume?.onContinue?.(resumedFrom)))
      return;
    if (!this.toldProgress(this.onProgress, resumedFrom, this.expectedSize)) return;
    if (this.host.downloadThrottle !== undefined) this.grantCredit();
  }

  /**
   * get -c: the server chose an offset and sent the digests of the blocks before it. Every one must
   * equal the local partial file's, or nothing of that file is reused: the stream is cancelled and
   * the file left as it was. Afterwards the digester starts from those blocks, so END's D checks
   * the whole file, prefix included.
   */
  private acceptResume(resume: GetResume, result: Record<string, unknown>): boolean {
    const offset = typeof result.offset === 'number' ? result.offset : 0;
    const blocks = Array.isArray(result.blocks) ? result.blocks : [];
    const count = offset / INTEGRITY_BLOCK_BYTES;
    if (!Number.isSafeInteger(count) || count > resume.blocks.length || blocks.length !== count) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `stream ${this.id}: a resumed REPLY with an offset not asked for`,
      );
    }
    const differing = blocks.findIndex((hex, i) => hex !== resume.blocks[i]!.toString('hex'));
    // A local file larger than the server's whose blocks do not match (or that has no whole block
    // to compare): no partial copy of it, and "differs at block 0" would not say why. One whose
    // blocks match is a longer, stale copy: its tail is replaced like any partial's.
    const larger =
      resume.localSize !== undefined &&
      this.expectedSize !== undefined &&
      resume.localSize > this.expectedSize;
    if (larger && (differing !== -1 || count === 0)) {
      this.abandon(
        new LocalPartialRefusedError(
          `the local file is larger than the server's (${resume.localSize} > ${this.expectedSize} bytes), so it is not a partial copy of it`,
        ),
      );
      return false;
    }
    if (differing !== -1 && resume.kept === true) {
      this.abandon(
        new KeptPartialDiffersError(
          `the partial download kept for it differs from the server's file at block ${differing} (another version of it): starting over`,
        ),
      );
      return false;
    }
    if (differing !== -1) {
      this.abandon(
        new LocalPartialRefusedError(
          `the local file differs from the server's at block ${differing} (another version of it)`,
          `the local partial file differs from the server's at block ${differing} (another version?)`,
        ),
      );
      return false;
    }
    this.resumedFrom = offset;
    const reused = resume.blocks.slice(0, count);
    resume.sink.startAt({ algorithm: this.digester.algorithm, digests: reused });
    this.digester.blockDigests.push(...reused);
    return true;
  }

  override onData(payload: Buffer, credit: number, borrowed: boolean): void {
    if (this.phase === StreamPhase.Ended)
      throw new ProtocolError('STREAM_CLOSED', `DATA after END on stream ${this.id}`);
    // REPLY first (PROTOCOL.md): it says where the DATA starts. Bytes taken before it went to the
    // sink at 0 and into the digest ahead of a get -c's prefix: a file not the one verified.
    if (this.expectedSize === undefined) throw beforeReply('DATA', this.id);
    this.window.take(credit);
    this.received += payload.length;
    if (this.resumedFrom + this.received > this.expectedSize)
      throw this.notAsReplied(`more than the ${this.expectedSize} bytes`);
    this.digester.update(payload);
    if (this.sink.discards === true) {
      this.wrote(payload.length); // hashed: that is all a discarding sink needs
      return;
    }
    if (borrowed && this.sink.keepsChunks) {
      // A sink that holds on to what it is given (a Writable, memory) gets bytes of its own.
      this.unwritten.append(Buffer.from(payload), false);
    } else {
      this.unwritten.append(payload, borrowed);
    }
    this.writeNext();
  }

  override onEnd(end: EndPayload): void {
    // Taken as the first, it finished the download twice (the second's clean-up removed the file).
    if (this.phase === StreamPhase.Ended)
      throw new ProtocolError('STREAM_CLOSED', `END after END on stream ${this.id}`);
    // Without REPLY there is no mtime nor mode to keep (a file given 1970), nor a checked offset.
    if (this.expectedSize === undefined) throw beforeReply('END', this.id);
    if (end.size !== this.expectedSize)
      throw this.notAsReplied(`an END of ${end.size} bytes, not the ${this.expectedSize}`);
    this.end = end;
    this.markEnded();
    this.finishWhenWritten();
  }

  /** The server closed the stream with its END: an ERROR after it would fail a download that completes. */
  override onError(code: MuxftpError['code'], message: string, details?: ErrorDetails): void {
    if (this.phase === StreamPhase.Ended)
      throw new ProtocolError('STREAM_CLOSED', `ERROR after END on stream ${this.id}: ${message}`);
    super.onError(code, message, details);
  }

  /** Once END is in, everything needed is here: finish writing and checking locally. */
  override connectionLost(error: MuxftpError): void {
    if (this.phase !== StreamPhase.Ended) super.connectionLost(error);
  }

  private writeNext(): void {
    if (this.writing || this.unwritten.byteLength === 0 || this.isSettled) return;
    const taken = this.unwritten.take();
    const bytes = taken.bytes;
    this.writing = true;
    this.sink.write(taken.chunks).then(
      () => {
        taken.release();
        this.writing = false;
        if (this.isSettled) return;
        this.wrote(bytes);
        this.writeNext();
        this.finishWhenWritten();
      },
      (err: MuxftpError) => {
        taken.release();
        this.writing = false;
        this.abandon(err);
      },
    );
  }

  /** `bytes` reached the sink: their credit goes back, and progress is reported. */
  private wrote(bytes: number): void {
    if (this.phase !== StreamPhase.Ended) {
      this.ungranted += this.window.consumed(bytes);
      this.grantCredit();
    }
    const done = this.resumedFrom + this.received - this.unwritten.byteLength;
    this.toldProgress(this.onProgress, done, this.expectedSize);
  }

  /**
   * Grants what the window gave back: at once, or under a bandwidth limit a piece at a time as the
   * limit allows (the credit is what paces the server), the rest when onThrottleTurn calls back.
   */
  private grantCredit(): void {
    const throttle = this.host.downloadThrottle;
    if (throttle === undefined) {
      if (this.ungranted > 0) this.host.send(encodeWindow(this.id, this.ungranted));
      this.ungranted = 0;
      return;
    }
    if (this.expectedSize === undefined) return; // REPLY first
    for (;;) {
      const needed = this.expectedSize - this.resumedFrom - this.limitedCredit;
      const amount = Math.min(this.ungranted, throttle.maxChunkBytes, needed);
      if (amount <= 0 || this.phase !== StreamPhase.Open || !throttle.mayGo(this.onThrottleTurn)) return;
      throttle.take(amount);
      this.ungranted -= amount;
      this.limitedCredit += amount;
      this.host.send(encodeWindow(this.id, amount));
    }
  }

  private readonly onThrottleTurn = (): void => {
    this.grantCredit();
  };

  private finishWhenWritten(): void {
    const end = this.end;
    if (end === undefined || this.writing || this.unwritten.byteLength > 0 || this.isSettled) return;
    const digest = this.digester.digest();
    const algorithm = this.digester.algorithm;
    const total = this.resumedFrom + this.received;
    if (end.size !== total || end.algorithm !== algorithm || !digest.equals(end.digest)) {
      const what =
        end.size !== total
          ? `expected ${end.size} bytes, have ${total}`
          : end.algorithm !== algorithm
            ? `END names ${end.algorithm}, the connection uses ${algorithm}`
            : `${algorithm} digest mismatch`;
      this.settle(new MuxftpError('INTEGRITY_ERROR', `download failed verification: ${what}`));
      return;
    }
    const mtime = this.remoteMtime;
    const mode = this.remoteMode;
    const kept: KeptAttributes = {};
    if (this.keeps.times === true) kept.mtimeMs = mtime;
    if (this.keeps.modes === true) kept.mode = mode;
    this.sink.finish(kept).then(
      () => {
        this.result = { size: total, algorithm, digest: digest.toString('hex'), mtime };
        if (mode !== undefined) this.result.mode = mode;
        if (this.resumedFrom > 0) this.result.continuedFrom = this.resumedFrom;
        this.settle();
      },
      (err: MuxftpError) => this.settle(err),
    );
  }

  /** The server sent another file than its REPLY described: a broken server, not a damaged transfer. */
  private notAsReplied(what: string): ProtocolError {
    return new ProtocolError(
      'PROTOCOL_ERROR',
      `download stream ${this.id}: the server sent ${what} its REPLY said the file holds`,
    );
  }

  protected release(error: MuxftpError | undefined): void {
    this.host.downloadThrottle?.cancel(this.onThrottleTurn);
    // A write still in flight keeps its blocks until it is over (its own release).
    this.unwritten.dispose();
    this.digester.release();
    this.window.release();
    if (error) {
      // A failed verification keeps nothing (the bytes are suspect), nor does a full local disk
      // (what was kept would be what fills it, failing the next download too; the server drops
      // an upload's the same way), but for the blocks of a kept partial it continued, put back as
      // they were (they took no room this run; dropped, an earlier run's download was lost); any
      // other failure keeps the whole blocks received for get -c when the sink was opened to.
      // Reject only once the temporary file is settled, so callers never see it.
      const keepPartial = this.sink.keepPartial;
      const diskFull = isLocalDiskFull(error);
      const keeps =
        error.code !== 'INTEGRITY_ERROR' &&
        keepPartial !== undefined &&
        (!diskFull || this.sink.continuesKept === true);
      const settled = keeps
        ? keepPartial.call(this.sink, diskFull ? this.resumedFrom : undefined).then((kept) => {
            if (kept !== undefined) this.onPartialKept?.(kept);
          })
        : this.sink.abort();
      settled.then(
        () => this.deferred.reject(error),
        () => this.deferred.reject(error),
      );
    } else {
      this.deferred.resolve(this.result!);
    }
  }
}

/** A local write failed for want of space (or of the user's quota). */
function isLocalDiskFull(error: MuxftpError): boolean {
  const errno = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  return error.code === 'LOCAL_IO_ERROR' && (errno === 'ENOSPC' || errno === 'EDQUOT');
}

/** What a finished upload stored, as the server verified and committed it. */
export interface PutResult {
  /** The stored file as the server reports it after the commit. */
  entry: WireEntry;
  /** The connection's integrity algorithm. */
  algorithm: IntegrityAlgorithm;
  /** The content digest the server verified, hex. */
  digest: string;
  /** An upload that continued what the server kept (put -c, a retry): the bytes not sent again. */
  continuedFrom?: number;
}

/** A content digest the caller already knows (a benchmark's seeded payloads). */
export interface KnownDigest {
  /** The algorithm `digest` is under; one not the connection's is not used. */
  algorithm: IntegrityAlgorithm;
  /** The whole source's content digest D, raw bytes (not hex). */
  digest: Buffer;
}

/** An upload: a FrameProducer reading its source into DATA frames as credit and room allow. */
export class PutCall extends ClientStream implements FrameProducer {
  private readonly deferred: Deferred<PutResult>;
  private readonly source: ByteSource;
  private readonly onProgress: ProgressCallback | undefined;
  /** Hashes what is sent, unless the caller vouched for the digest (the server checks it either way). */
  private readonly digester: ContentDigester | undefined;
  private readonly knownDigest: Buffer | undefined;
  private readonly credit: OutboundCredit;
  /** Bytes sent in DATA frames so far. */
  private sent = 0;
  /** The digest END carried: the server's REPLY must confirm it. */
  private endDigest: Buffer | undefined;
  /** Bytes of the source whose read has been started. */
  private readPosition = 0;
  /** Credit set aside for reads in flight or ready (spent when their frame is pulled). */
  private creditReserved = 0;
  private readonly reads = new FrameReadAhead(DEFAULTS.readAheadChunks);
  private result: PutResult | undefined;
  /** A resumed upload's first byte: the server holds those before it. */
  private readonly startOffset: number;
  private readonly takesInitialWindow: boolean;
  private onContinue: ((fromBytes: number) => void) | undefined;

  constructor(
    host: ClientHost,
    id: number,
    source: ByteSource,
    onProgress: ProgressCallback | undefined,
    deferred: Deferred<PutResult>,
    known?: readonly KnownDigest[],
    startOffset = 0,
    /** A resumed upload's d_0 … of the blocks before startOffset (checked equal to the server's). */
    prefixBlockDigests: readonly Buffer[] = [],
    /** false: the OPEN declined the handshake's initial window (`"initialWindow": false`). */
    takesInitialWindow = true,
    /** A resumed upload: told startOffset once the server took it (its first WINDOW). */
    onContinue?: (fromBytes: number) => void,
  ) {
    super(host, id);
    this.onContinue = onContinue;
    this.source = source;
    // A resumed upload: the server holds the bytes before startOffset, and the source reads from there.
    this.startOffset = startOffset;
    this.sent = startOffset;
    this.readPosition = startOffset;
    this.onProgress = onProgress;
    this.deferred = deferred;
    this.knownDigest = known?.find((k) => k.algorithm === host.integrity)?.digest;
    this.digester = this.knownDigest === undefined ? new ContentDigester(host.integrity) : undefined;
    // D covers the whole file: the blocks the server kept enter it by their digests.
    this.digester?.blockDigests.push(...prefixBlockDigests);
    this.credit = new OutboundCredit(id);
    this.takesInitialWindow = takesInitialWindow;
    host.queue.addProducer(this);
  }

  /**
   * The handshake's initial window: DATA (and END, when the file fits) goes right behind the OPEN,
   * without waiting a round trip for the first WINDOW. Not for a resumed upload (`offset`), which
   * the server checks before it takes any DATA, nor for one whose OPEN declined it.
   */
  override opened(): void {
    if (this.startOffset > 0 || !this.takesInitialWindow || this.host.uploadInitialWindow === 0) return;
    this.credit.add(this.host.uploadInitialWindow);
    this.readAhead();
  }

  override onWindow(increment: number): void {
    // A resumed upload's first credit: the server checked the offset and took it (it may refuse
    // it instead, NOT_FOUND when what it kept is gone), so it continues now.
    const told = this.onContinue;
    this.onContinue = undefined;
    if (told !== undefined && !this.callCaller('onContinue', () => told(this.startOffset))) return;
    this.credit.add(increment);
    this.readAhead();
  }

  override onReply(result: Record<string, unknown>, more: boolean): void {
    if (this.phase !== StreamPhase.Ended)
      throw new ProtocolError('PROTOCOL_ERROR', `REPLY before END on upload stream ${this.id}`);
    if (more) throw onlyListingsSpanReplies('put');
    const reply = OPERATIONS.put.reply(result);
    // The server confirms what END said: anything else was not what this stream sent, and is
    // never reported as stored (a broken server's or a proxy's word).
    const sent = this.endDigest!.toString('hex');
    const differs =
      reply.algorithm !== this.host.integrity || reply.digest !== sent
        ? `${reply.algorithm} ${reply.digest}, not the ${this.host.integrity} ${sent} sent`
        : reply.entry.type !== 'file'
          ? `a ${reply.entry.type}, not a file`
          : reply.entry.size !== this.sent
            ? `a file of ${reply.entry.size} bytes, not the ${this.sent} of END`
            : undefined;
    if (differs !== undefined)
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `REPLY to put on stream ${this.id} says it stored ${differs}`,
      );
    this.result = this.startOffset > 0 ? { ...reply, continuedFrom: this.startOffset } : reply;
    this.settle();
  }

  pull(): Buffer | null {
    if (this.isSettled) return null;
    const next = this.reads.next();
    if (next === undefined) return null;
    const { frame, bytesRead } = next;
    const length = frame.length - HEADER_BYTES;
    // Charged in full when the read started: one that came back short (a pipe, stdin, the end of
    // the input) gives the limit back what it did not send.
    if (bytesRead < length) this.host.uploadThrottle?.take(bytesRead - length);
    if (bytesRead === 0 && this.source.size === undefined) {
      // The end of a source of unknown size (such a source is read one chunk at a time).
      this.host.queue.release(frame.length);
      this.sendEnd();
      return null;
    }
    if (bytesRead !== length && this.source.size !== undefined) {
      this.host.queue.release(frame.length);
      this.abandon(
        new MuxftpError(
          'LOCAL_IO_ERROR',
          `local file shrank while being uploaded (expected ${this.source.size} bytes, read ${this.sent + bytesRead})`,
        ),
      );
      return null;
    }
    let ready = frame;
    if (bytesRead < length) {
      this.host.queue.release(length - bytesRead);
      ready = frame.subarray(0, HEADER_BYTES + bytesRead);
      ready.writeUInt32BE(bytesRead, 8);
    }
    // Credit was reserved when the read started; hashed here, in order.
    this.credit.take(bytesRead);
    this.creditReserved -= length;
    this.sent += bytesRead;
    this.digester?.update(ready.subarray(HEADER_BYTES));
    if (!this.toldProgress(this.onProgress, this.sent, this.source.size)) {
      this.host.queue.release(ready.length);
      return null;
    }
    this.readAhead();
    return ready;
  }

  onRoom(): void {
    this.readAhead();
  }

  /** Starts reads of the next chunks while there is credit, room in the queue and in the read-ahead. */
  private readAhead(): void {
    if (this.phase !== StreamPhase.Open) return;
    const size = this.source.size;
    if (size !== undefined && this.sent === size && this.reads.isEmpty) {
      this.sendEnd();
      return;
    }
    // A source of unknown size (a pipe) cannot be read at two places at once.
    const depth = size === undefined ? 1 : this.reads.depth;
    const throttle = this.host.uploadThrottle;
    while (this.reads.count < depth) {
      const remaining = size === undefined ? Number.POSITIVE_INFINITY : size - this.readPosition;
      const length = Math.min(
        this.credit.available - this.creditReserved,
        remaining,
        this.host.chunkBytes,
        this.host.serverMaxFramePayload,
        throttle?.maxChunkBytes ?? Number.POSITIVE_INFINITY,
      );
      if (length <= 0) return;
      // Under a bandwidth limit a read starts in the stream's turn (onThrottleTurn comes back).
      if (throttle !== undefined && !throttle.mayGo(this.onThrottleTurn)) return;
      // Only a stream with nothing reserved waits in line for room (see tryReserve).
      const waiter = this.reads.isEmpty ? this : undefined;
      if (!this.host.queue.tryReserve(HEADER_BYTES + length, waiter)) return;
      throttle?.take(length);
      this.creditReserved += length;
      this.readPosition += length;
      const frame = this.host.queue.dataFrame(this.id, length);
      this.reads.add(frame, this.source.readInto(frame, HEADER_BYTES, length), (err) => {
        if (err !== undefined) this.abandon(err as MuxftpError);
        else this.host.queue.wake();
      });
    }
  }

  private readonly onThrottleTurn = (): void => {
    this.readAhead();
  };

  private sendEnd(): void {
    // Told before END goes: a throw then still cancels the upload, which END would commit.
    if (!this.toldProgress(this.onProgress, this.sent, this.source.size ?? this.sent)) return;
    this.markEnded();
    this.endDigest = this.knownDigest ?? this.digester!.digest();
    this.host.send(encodeEnd(this.id, this.sent, this.host.integrity, this.endDigest));
  }

  protected release(error: MuxftpError | undefined): void {
    this.host.uploadThrottle?.cancel(this.onThrottleTurn);
    this.digester?.release();
    this.host.queue.removeProducer(this);
    for (const frame of this.reads.clear()) this.host.queue.release(frame.length);
    void this.source.close();
    if (error) this.deferred.reject(error);
    else this.deferred.resolve(this.result!);
  }
}
