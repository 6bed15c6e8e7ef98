/**
 * What every server-side stream shares: its id, the connection it lives on (StreamHost), and the
 * rule that it ends exactly once — with a final frame, with an ERROR, or silently when cancelled
 * or when the connection goes.
 */

import { type ErrorCode, MuxftpError, ProtocolError } from '../shared/errors.js';
import { formatRate } from '../shared/humanUnits.js';
import type { IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { printableName } from '../shared/printable.js';
import { encodeError } from '../shared/protocol/encoder.js';
import { type EndPayload, errorPayload, type Request } from '../shared/protocol/messages.js';
import type { Permission } from '../shared/protocol/operations.js';
import type { WindowBudget } from '../shared/transport/flow.js';
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';
import type { Throttle } from '../shared/transport/rateLimiter.js';
import type { RoundTripSampler } from '../shared/transport/roundTrips.js';
import { acceptsCancel, laterPhase, StreamPhase } from '../shared/transport/streamPhase.js';
import type { PartialKey, Storage } from '../storage/types.js';
import type { LocatedChange, QuotaTracker } from './auth/quota.js';
import type { ServerCounters } from './counters.js';
import type { ListingTurns } from './listingTurns.js';
import type { LogEvent, LogFields } from './logEvents.js';
import type { ResolvedServerOptions } from './options.js';
import type { ResumableHolder } from './resumableUploads.js';

/** Room reserved for an answer that is not a listing: stat's entry, stats, {} (bytes). */
export const SMALL_REPLY_BYTES = 4 * 1024;

/** The connection, as its streams see it. */
export interface StreamHost {
  readonly label: string;
  /** The logged-in account's view, rooted at its home. */
  readonly storage: Storage;
  /** Bandwidth limits in force for this connection, per direction, when any is set. */
  readonly uploadThrottle: Throttle | undefined;
  readonly downloadThrottle: Throttle | undefined;
  /** The connection's listings under way (DEFAULTS.listingsAtOncePerConnection). */
  readonly listings: ListingTurns;
  /**
   * Counts `bytes` that came over the link outside any credit the limit paced (DATA dropped, an
   * initial window of a put refused or cancelled) against the upload limit, and stops reading
   * the connection until the limit has paid them back: else puts refused one after another went
   * as fast as the client could send.
   */
  takeUnpacedUpload(bytes: number): void;
  /**
   * `holder` writes the data kept for `path` under `key` (server/resumableUploads.ts); returns
   * what ends that.
   */
  holdResumable(path: string, key: PartialKey, holder: ResumableHolder): () => void;
  /**
   * Fails uploads that write the data kept for `path` under `key` and have stalled
   * (DEFAULTS.stalledUploadTakeoverMs); resolves once what they wrote is kept.
   */
  takeOverStalledUpload(path: string, key: PartialKey): Promise<void>;
  /**
   * The server stopped reading this connection (for its disk, a rate limit, or answers the client
   * leaves unread): its uploads' silence may be the server's.
   */
  readonly readingHeld: boolean;
  /** The client half-closed: no frame of its comes again (ServerStream.onPeerEnded). */
  readonly peerHasEnded: boolean;
  /**
   * The connection ends once its last stream is over (the client half-closed, or the server drains
   * for shutdown): what a stream sends after its end may come too late.
   */
  readonly endsWithLastStream: boolean;
  /**
   * A closed stream's answer still to come (a failed upload's ERROR, after its temporary file went):
   * the connection does not end with its last stream before it is sent. Returns what sends it.
   */
  oweAnswer(frame: Buffer): () => void;
  /** The account's quota, when it has one: uploads reserve their bytes in it. */
  readonly quota: QuotaTracker | undefined;
  /** Whether the logged-in account has `permission` (beyond the one its OPEN's row needed). */
  permits(permission: Permission): boolean;
  /**
   * A change storage made (paths relative to this connection's home): quotas whose home holds it
   * apply it at once. Called as soon as storage resolves, even if the stream is finished by then.
   */
  recordChange(change: LocatedChange): void;
  /** What this connection's upload windows may grow by, together. */
  readonly windowBudget: WindowBudget;
  /** Round trips sampled for window growth; undefined for a client that does not answer PING. */
  readonly roundTrips: RoundTripSampler | undefined;
  readonly options: ResolvedServerOptions;
  readonly queue: OutboundQueue;
  readonly counters: ServerCounters;
  /** Largest DATA payload the client accepts. */
  readonly peerMaxFramePayload: number;
  /** The integrity algorithm negotiated in the handshake: every END on this connection uses it. */
  readonly integrity: IntegrityAlgorithm;
  send(frame: Buffer): void;
  /**
   * Counts one more file open against the server's cap until the returned function is called
   * (idempotent): a finished download whose chunks, lent from storage, still wait in the socket.
   */
  holdOpenFile(): () => void;
  /** Forget a finished stream; `discardLateFrames` when the client may still have frames in flight for it. */
  streamClosed(stream: ServerStream, discardLateFrames: boolean): void;
  /**
   * A transfer was cut because the client half-closed before it could end (a client killed
   * between frames): the connection counts CONNECTION_LOST once as it closes, as for a reset
   * (as for a transfer its close cuts: over TLS, which has no half-close).
   */
  transferCutByPeerEnd(): void;
  /** The server's upload backlog is past its mark (uploads then get no credit before they are set up). */
  readonly uploadBacklogHeld: boolean;
  /** Memory holding upload bytes received and not yet on disk, across the connection's streams (+ or −). */
  addUploadBacklog(deltaBytes: number): void;
  /**
   * Takes `bytes` of the connection's reservation allowance for a declared upload size; false
   * when it does not fit (the upload then goes without a size hint).
   */
  claimReservation(bytes: number): boolean;
  releaseReservation(bytes: number): void;
  /** Logs `event` with the connection's fields added (its number, peer, user). */
  log(event: LogEvent): void;
  /** Logs stream `id`'s refusal of `request` (as nameRequest() names it), flood-bounded. */
  logRefusal(id: number, request: RequestName, refusal: MuxftpError): void;
}

/**
 * Failures the server's log says, besides its own (INTERNAL_ERROR): a full or failing disk is
 * the operator's to fix, whoever's transfer it stopped.
 */
const OPERATORS_FAILURES: ReadonlySet<string> = new Set(['NO_SPACE', 'IO_ERROR']);

/**
 * Refusals of what a client asked that the log also says, so it shows who was denied what (a
 * `../` traversal attempt among them): cheap and rare in normal use, and flood-bounded per
 * connection (StreamHost.logRefusal).
 */
export const LOGGED_REFUSALS: ReadonlySet<string> = new Set([
  'PERMISSION_DENIED',
  'QUOTA_EXCEEDED',
  'INVALID_PATH',
]);

/**
 * The process out of descriptors (EMFILE, storage/fsErrors.ts): refused SERVER_BUSY, which the
 * client waits out, but the log's only sign that the descriptor limit is too low for the load
 * (as the IO_ERROR it was before was logged).
 */
function outOfDescriptors(wire: MuxftpError): boolean {
  return wire.code === 'SERVER_BUSY' && wire.details?.limit === 'fileDescriptors';
}

/** A request as log events name it: its text (paths as printableName() shows them) and fields. */
export interface RequestName {
  text: string;
  fields: Pick<LogFields, 'op' | 'path' | 'to'>;
}

export function nameRequest(request: Request): RequestName {
  if (request.op === 'rename')
    return {
      text: `rename ${printableName(request.from)} to ${printableName(request.to)}`,
      fields: { op: 'rename', path: request.from, to: request.to },
    };
  return 'path' in request
    ? { text: `${request.op} ${printableName(request.path)}`, fields: { op: request.op, path: request.path } }
    : { text: request.op, fields: { op: request.op } };
}

/** Whether the log says a stream's failure `wire` (ServerStream.logFailure). */
function failureLogged(wire: MuxftpError): boolean {
  return (
    wire.code === 'INTERNAL_ERROR' ||
    OPERATORS_FAILURES.has(wire.code) ||
    LOGGED_REFUSALS.has(wire.code) ||
    outOfDescriptors(wire)
  );
}

/** Anything thrown by a handler, as the client may see it: no internals, no host paths. */
function toWireError(err: unknown): MuxftpError {
  if (err instanceof MuxftpError && err.status < 400) return err;
  return new MuxftpError('INTERNAL_ERROR', 'internal server error', { cause: err });
}

export abstract class ServerStream {
  readonly host: StreamHost;
  readonly id: number;
  abstract readonly op: string;
  #phase: StreamPhase = StreamPhase.Opening;
  /** When this stream last moved data (or started): the connection fails it after the idle timeout. */
  lastProgressAt = performance.now();

  constructor(host: StreamHost, id: number) {
    this.host = host;
    this.id = id;
  }

  get phase(): StreamPhase {
    return this.#phase;
  }

  get isFinished(): boolean {
    return this.#phase === StreamPhase.Closed;
  }

  /** Moves to a later phase; Closed only through close(), so cleanup always runs. */
  protected advance(phase: Exclude<StreamPhase, 'closed'>): void {
    if (!this.isFinished) this.#phase = laterPhase(this.#phase, phase);
  }

  abstract start(): void;

  /**
   * Storage work on the stream's file still under way once the stream is over: a file still
   * opening when the stream was cancelled (closed once open), an upload's set-up or abort, a
   * digest's read, a request's lookup or change (a stat). The connection gives the stream's
   * open-file slot back only once it settles (each may hold a descriptor meanwhile): given back
   * at the CANCEL, a client opening and cancelling gets as fast as it could write had 18,000
   * opens under way, far past --max-open-files, until the process ran out of descriptors. Until
   * then the stream counts against --max-streams-per-connection too (a client sending OPEN stat
   * and CANCEL had 34,863 stats under way on a slow disk, none of them open). Undefined once the
   * work has settled (a stream that finished is not counted). Asked once, after cleanup().
   */
  fileWorkLeft(): Promise<unknown> | undefined {
    return undefined;
  }

  /**
   * All storage work for the stream still under way once it is over: fileWorkLeft(), or work
   * that holds no file (an upload's set-up before it asked for one). The stream counts against
   * --max-streams-per-connection until it settles; its open-file slot goes with fileWorkLeft().
   * Asked once, after cleanup().
   */
  storageWorkLeft(): Promise<unknown> | undefined {
    return this.fileWorkLeft();
  }

  /**
   * All this stream waits for is room in the connection's output (its data is ready, or waits
   * for room to be produced): then it is alive as long as the client reads, however slowly.
   */
  get waitsForOutput(): boolean {
    return false;
  }

  /**
   * The server itself holds it: it waits its turn under a bandwidth limit (the connection's
   * Throttle), or its upload is being committed (a large file flushed to a slow disk). It is not
   * stalled, however long the turns of many streams at a low rate or the flush take.
   */
  get heldByServer(): boolean {
    return false;
  }

  /** The request this stream serves, as log events name it (nameRequest). */
  protected abstract describe(): RequestName;

  /** Data moved: the stream is alive, whatever the connection's idle timer says. */
  protected progressed(): void {
    this.lastProgressAt = performance.now();
  }

  /**
   * `credit`: the flow-control credit this piece takes (creditTaken(): a whole frame's, or 0).
   * `borrowed`: the payload is valid only during this call (Frame.borrowed).
   */
  onData(_payload: Buffer, _credit: number, _borrowed: boolean): void {
    throw new ProtocolError('PROTOCOL_ERROR', `DATA is not valid on ${this.op} stream ${this.id}`);
  }

  onEnd(_end: EndPayload): void {
    throw new ProtocolError('PROTOCOL_ERROR', `END is not valid on ${this.op} stream ${this.id}`);
  }

  onWindow(_increment: number): void {
    throw new ProtocolError('PROTOCOL_ERROR', `WINDOW is not valid on ${this.op} stream ${this.id}`);
  }

  /**
   * The client gave up on this stream (`code`: CANCELLED, or the code of the ERROR it abandoned
   * it with): stop, send nothing more (unless END came first). A transfer says in the log how far
   * it got, as one cut by a lost connection does.
   */
  onCancel(code: ErrorCode = 'CANCELLED'): void {
    if (!acceptsCancel(this.#phase)) return;
    this.logCut(code);
    this.close(true);
  }

  /**
   * The client half-closed: no frame of its will come again. A stream that needs none to finish
   * (a request being answered) goes on; one that does ends here as if the connection were gone.
   */
  onPeerEnded(): void {}

  /**
   * The connection is gone (`code`: why, when it did not just drop): release everything, send
   * nothing. A transfer it cuts short says in the log how far it got, so that a cut one is
   * named (the connection's close line names no file). Returns whether it cut a transfer short.
   */
  destroy(code: ErrorCode = 'CONNECTION_LOST'): boolean {
    const cut = this.cutShort;
    if (cut) this.logCut(code);
    this.close(false);
    return cut;
  }

  /** The client half-closed and this stream cannot end without it: it ends as a lost connection ends it. */
  protected endForPeerEnd(): void {
    if (this.cutShort) this.host.transferCutByPeerEnd();
    this.destroy();
  }

  /**
   * Ending it now drops the transfer: one before its END (an upload after it too, until its
   * commit has the file: UploadStream).
   */
  protected get cutShort(): boolean {
    return acceptsCancel(this.#phase);
  }

  /** A transfer cut before its file was stored: one `cut` line, with how far it got and why (`code`). */
  protected logCut(code: ErrorCode): void {
    const progress = this.transferProgress();
    if (progress === undefined) return;
    const { kind, path, done, total } = progress;
    const of = total === undefined ? '' : ` of ${total}`;
    this.host.log({
      event: 'cut',
      level: 'warn',
      text: `${this.host.label} ${kind} of ${printableName(path)} cut after ${done}${of} B (${code})`,
      fields: {
        stream: this.id,
        op: kind === 'upload' ? 'put' : 'get',
        path,
        bytes: done,
        ...(total === undefined ? {} : { size: total }),
        code,
      },
    });
  }

  /** A transfer's file and the bytes of it moved so far (from its start: a resumed one's offset on); undefined for a request. */
  protected transferProgress():
    | { kind: 'upload' | 'download'; path: string; done: number; total: number | undefined }
    | undefined {
    return undefined;
  }

  private readonly startedAt = performance.now();

  /**
   * Counts a finished transfer and logs its one line: `sent` or `received`, with its rate; one
   * that continued an earlier one from byte `from` says so and gives the file's whole size (an
   * auditor adding up the lines got the bytes of the last attempt only).
   */
  protected recordTransfer(verb: 'sent' | 'received', path: string, bytes: number, from = 0): void {
    const seconds = (performance.now() - this.startedAt) / 1000;
    this.host.counters.transferFinished(verb === 'received' ? 'in' : 'out', bytes, seconds, from + bytes);
    // Three digits in the unit that fits (a throttled 32 KiB put read "0.0 MB/s").
    const rate = seconds > 0 ? formatRate(bytes / seconds) : '-';
    const moved = `${bytes} B in ${seconds.toFixed(3)} s (${rate})`;
    this.host.log({
      event: verb,
      text:
        from === 0
          ? `${this.host.label} ${verb} ${printableName(path)} ${moved}`
          : `${this.host.label} ${verb} ${printableName(path)} ${from + bytes} B, continued from ${from} B: ${moved}`,
      // ms to the microsecond, as the text's seconds to the millisecond: a small file takes less than one.
      fields: {
        stream: this.id,
        path,
        bytes,
        ...(from === 0 ? {} : { from, size: from + bytes }),
        ms: Math.round(seconds * 1_000_000) / 1000,
      },
    });
  }

  /**
   * The server gave up on it for moving nothing (`err`: the stall check's STREAM_TIMEOUT, or
   * SERVER_BUSY when its file went to a client waiting for one): fail it, and a transfer says in
   * the log how far it got, as a cut one does (else no line named the file it cut).
   */
  timeOut(err: MuxftpError): void {
    if (this.isFinished) return;
    if (this.cutShort) this.logCut(err.code);
    this.fail(err);
  }

  /** Fails this stream only: ERROR to the client, then close. */
  fail(err: unknown): void {
    if (this.isFinished) return;
    this.host.send(this.errorFrame(err));
    this.close(true);
  }

  /** The ERROR frame telling the client why this stream failed (counted; logged when internal). */
  protected errorFrame(err: unknown): Buffer {
    const wire = toWireError(err);
    this.host.counters.error(wire.code);
    this.logFailure(err, wire);
    return encodeError(this.id, errorPayload(wire));
  }

  /**
   * A transfer whose every byte came failed to be stored (`err`): its failure's own line says it
   * when it has one (errorFrame: the operator's, a logged refusal, the server's own); any other
   * (a directory made at its name meanwhile, IS_A_DIRECTORY) gets the `cut` line, or no line at
   * all named the file it dropped.
   */
  protected logStoringFailed(err: unknown): void {
    const wire = toWireError(err);
    if (!failureLogged(wire)) this.logCut(wire.code);
  }

  /** Logs a failure errorFrame() tells the client of, when the log says such failures (failureLogged). */
  private logFailure(err: unknown, wire: MuxftpError): void {
    if (wire.code === 'INTERNAL_ERROR')
      this.host.log({
        event: 'internal_error',
        level: 'error',
        text: `${this.host.label} stream ${this.id}: ${String(err)}`,
        fields: { stream: this.id, ...this.describe().fields, code: wire.code, reason: String(err) },
      });
    else if (OPERATORS_FAILURES.has(wire.code))
      this.host.log({
        event: 'storage_failed',
        level: 'error',
        text: `${this.host.label} stream ${this.id}: ${wire.message} (${wire.code})`,
        fields: { stream: this.id, ...this.describe().fields, code: wire.code, reason: wire.message },
      });
    else if (LOGGED_REFUSALS.has(wire.code) || outOfDescriptors(wire))
      this.host.logRefusal(this.id, this.describe(), wire);
  }

  /** Ends the stream once; subclasses release their resources in cleanup(). */
  protected close(discardLateFrames: boolean): void {
    if (this.isFinished) return;
    this.#phase = StreamPhase.Closed;
    this.cleanup();
    this.host.streamClosed(this, discardLateFrames);
  }

  protected abstract cleanup(): void;
}

/**
 * `call`'s promise, or a rejected one when it throws at once: a Storage of an embedder's own
 * whose method is not async would otherwise throw out of the stream's handlers (the abort's
 * throw skipped the quota's release and left a failed upload's answer owed).
 */
export function rejectingCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(error);
  }
}
