/**
 * One client connection on the server (pyftpdlib's handler, Twisted's protocol): the handshake
 * and login, the stream table, stream-id rules, timers, the permission gate, and dispatch of each
 * frame to its stream. Bytes move through a FramedSocket; every file operation goes through the
 * logged-in account's Storage view, rooted at its home.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';
import { ERROR_STATUS, MuxftpError, ProtocolError, ServerBusyError, StorageError } from '../shared/errors.js';
import { processUmask } from '../shared/fileModes.js';
import {
  chooseIntegrityAlgorithm,
  DEFAULT_INTEGRITY_ALGORITHM,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
} from '../shared/integrity/algorithms.js';
import { printableName } from '../shared/printable.js';
import {
  Flags,
  FRAME_TYPE_NAMES,
  FrameType,
  MIN_FRAME_PAYLOAD_BYTES,
  SUPPORTED_VERSIONS,
} from '../shared/protocol/constants.js';
import { encodeAuth, encodeError, encodePing, encodeWelcome } from '../shared/protocol/encoder.js';
import { creditTaken, type Frame } from '../shared/protocol/frame.js';
import {
  ANONYMOUS_USER,
  type AuthRequest,
  errorPayload,
  type LoginRequirement,
  parseAuthRequest,
  parseEnd,
  parseErrorPayload,
  parseHello,
  parseWindow,
} from '../shared/protocol/messages.js';
import type { OpenRequest, Permission, RequestOf } from '../shared/protocol/operations.js';
import { timerDelay } from '../shared/timerDelay.js';
import type { ControlFrameBudget } from '../shared/transport/controlFrameBudget.js';
import type { DataFramePool } from '../shared/transport/dataFramePool.js';
import { WindowBudget } from '../shared/transport/flow.js';
import { FramedSocket } from '../shared/transport/framedSocket.js';
import type { OutboundBudget } from '../shared/transport/outboundBudget.js';
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';
import { RateLimiter, Throttle } from '../shared/transport/rateLimiter.js';
import { RoundTripSampler } from '../shared/transport/roundTrips.js';
import type { SharedBufferReads } from '../shared/transport/sharedReadBuffer.js';
import { packageVersion } from '../shared/version.js';
import type { PartialKey, Storage } from '../storage/types.js';
import { addressGroup } from './addressGroup.js';
import type { AccountResourceTable } from './auth/accountResources.js';
import { type Account, type Accounts, OPEN_ACCESS_ACCOUNT } from './auth/accounts.js';
import { type LoginGuard, refusalForFailedLogins } from './auth/loginGuard.js';
import type { LocatedChange, QuotaTracker } from './auth/quota.js';
import type { ServerCounters } from './counters.js';
import { DownloadStream } from './downloadStream.js';
import { outOfDescriptorsRefusal } from './fileDescriptors.js';
import { ListingTurns } from './listingTurns.js';
import type { LogEvent, LogFields } from './logEvents.js';
import type { OpenFileSlots } from './openFileSlots.js';
import { admitOpen, RequestRefusal } from './openGate.js';
import type { ResolvedServerOptions } from './options.js';
import { OutputProgress } from './outputProgress.js';
import type { RefusalLog } from './refusalLog.js';
import { RequestStream } from './requestStream.js';
import type { ResumableHolder, ResumableUploads } from './resumableUploads.js';
import {
  LOGGED_REFUSALS,
  nameRequest,
  type RequestName,
  type ServerStream,
  type StreamHost,
} from './stream.js';
import type { UploadBacklogBudget } from './uploadBacklogBudget.js';
import { UploadStream } from './uploadStream.js';

/** Ids of streams the server failed or the client cancelled, whose late frames are discarded. */
const MAX_REMEMBERED_RESETS = 4096;

/**
 * Requests that hold a stored file open while they read it (a file's digest, an interrupted
 * upload's kept data): they count against the open-file cap as transfers do.
 */
const READS_A_STORED_FILE: ReadonlySet<string> = new Set(['digest', 'partial']);

let nextConnectionNumber = 1;

/** How a Unix-domain peer (a net.Socket with neither end's address) is named: in the logs, and as its address group. */
const UNIX_PEER = 'unix socket';
/** A TCP socket whose peer reset it before its address was read (Node then gives none): not a Unix one. */
const GONE_PEER = 'peer gone';

/**
 * A TCP or TLS peer's `address:port`; `unix socket` for a Unix-domain socket (Node gives neither
 * end an address); `peer gone` for a TCP socket whose peer had left before its address was read;
 * a connection over another duplex stream has no address.
 */
export function describePeer(socket: Duplex): string {
  if (!(socket instanceof Socket)) return 'in-process stream';
  if (socket.remoteAddress !== undefined) return `${socket.remoteAddress}:${socket.remotePort}`;
  return socket.localAddress === undefined ? UNIX_PEER : GONE_PEER;
}

/** The peer as log events' `remote` field: a TCP or TLS peer's `address:port`; none without one. */
export function peerLogFields(socket: Duplex): LogFields {
  return socket instanceof Socket && socket.remoteAddress !== undefined
    ? { remote: describePeer(socket) }
    : {};
}

/**
 * What the per-address limits count by: a TCP or TLS peer's address group (./addressGroup.ts: an
 * IPv6 peer's /64); one name for all Unix-domain peers, one for TCP peers gone before their address
 * was read, and one for in-process streams.
 */
export function peerAddressGroup(socket: Duplex): string {
  if (!(socket instanceof Socket)) return 'in-process';
  return socket.remoteAddress === undefined ? describePeer(socket) : addressGroup(socket.remoteAddress);
}

/** What the server gives each connection besides its options. */
export interface ConnectionContext {
  /** The connection is TLS. */
  secure: boolean;
  /** performance.now() at accept: the handshake timeout counts from here. */
  acceptedAt: number;
  loginGuard: LoginGuard;
  /** Password checks, a few at a time server-wide. */
  loginQueue: ConcurrencyLimit;
  accountResources: AccountResourceTable;
  /** Received upload bytes waiting for the disk, all connections together. */
  uploadBacklogBudget: UploadBacklogBudget;
  /** File data held for clients, all connections together. */
  outboundBudget: OutboundBudget;
  /** Files open for transfers, all connections together (--max-open-files). */
  openFileSlots: OpenFileSlots;
  /** Control frames held for clients, all connections together. */
  controlBudget: ControlFrameBudget;
  /** The DATA frames every connection's downloads are read into, reused (free ones capped). */
  framePool: DataFramePool;
  /** Who may log in: the server's accounts now (replaced when the users file is read again). */
  accounts: () => Accounts;
  /** Where refusals are logged: the first of a kind, then a count per interval. */
  refusalLog: RefusalLog;
  /** Resumable uploads under way, all connections together: a retry takes over a stalled one. */
  resumableUploads: ResumableUploads;
  /** The socket's reads, when it reads into the process's shared buffer. */
  sharedReads?: SharedBufferReads | undefined;
  /** A TLS connection's TCP socket, for the probes of held reading (FramedSocketOptions.probeThrough). */
  tcpBelowTls?: Socket | undefined;
}

enum Phase {
  /** Waiting for HELLO. */
  Hello,
  /** WELCOME sent; waiting for AUTH. */
  Login,
  /** Checking an AUTH; the socket is not read meanwhile. */
  Verifying,
  /** Logged in (or no login needed): streams may open. */
  Ready,
}

/** What a server's own PING carries (the client only answers it). */
const KEEPALIVE_PAYLOAD = Buffer.alloc(8);
/** Why a closed connection's password check left the login line: nothing to answer or log. */
const LEFT_LOGIN_LINE = new Error('connection closed while its login check waited');

export class ServerConnection implements StreamHost {
  readonly label: string;
  /** What each of its log events carries: its number, peer, TLS, and once logged in, the user. */
  private readonly logFields: LogFields;
  /** Before login the whole storage (unused: no stream opens); after, the account's home view. */
  storage: Storage;
  readonly options: ResolvedServerOptions;
  readonly counters: ServerCounters;
  readonly transport: FramedSocket;
  peerMaxFramePayload: number = MIN_FRAME_PAYLOAD_BYTES;
  /** Chosen at HELLO; nothing reads it before (no stream opens before the handshake). */
  integrity: IntegrityAlgorithm = DEFAULT_INTEGRITY_ALGORITHM;
  /** Credit each new upload starts with, as WELCOME announced it (0: the client did not opt in). */
  private uploadInitialWindow = 0;
  private readonly streams = new Map<number, ServerStream>();
  private readonly resetStreams = new Set<number>();
  /** Ids of open streams that count against the server's open-file cap. */
  private readonly fileStreams = new Set<number>();
  private lastOpenedId = 0;
  private phase = Phase.Hello;
  private account: Account | undefined;
  private failedLogins = 0;
  /** Codes of the refused requests it logged (logRefusal): their counts are told when it closes. */
  private readonly refusalCodesLogged = new Set<string>();
  private loginDelay: NodeJS.Timeout | undefined;
  /** Aborted when the connection closes while its password check waits for a turn. */
  private loginCheckWait: AbortController | undefined;
  private readonly context: ConnectionContext;
  /** The peer's address group, as the failed-login refusal counts it. */
  private readonly peerGroup: string;
  uploadThrottle: Throttle | undefined;
  downloadThrottle: Throttle | undefined;
  /** Reading waits for the upload limit to pay back bytes it did not pace (takeUnpacedUpload). */
  private readsHeldByLimit = false;
  /** Streams over whose storage work still runs (ServerStream.fileWorkLeft): counted as streams. */
  private closedStreamsWorking = 0;
  /** Reading waits for such work to settle (readUnlessTooManyStreams). */
  private readsHeldForStreams = false;
  readonly listings: ListingTurns;
  quota: QuotaTracker | undefined;
  readonly windowBudget: WindowBudget;
  roundTrips: RoundTripSampler | undefined;
  private draining = false;
  /** Closed by the shutdown once its transfers were over: no failure, whatever the client is told. */
  private drainedIdle = false;
  /** How often the client asked for a PING while its reading is held back (HELLO keepaliveMs). */
  private keepaliveMs: number | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private uploadBacklog = 0;
  /** Upload streams open: while the server's backlog budget is held, they stop this connection's reading. */
  private uploadStreams = 0;
  private reservedBytes = 0;
  /** What the kernel took of our output, between two stall checks. */
  private readonly output: OutputProgress;
  /** performance.now() when the stall check's current interval began (its last check, or the first stream). */
  private intervalStartedAt = 0;
  private timer: NodeJS.Timeout;
  private readonly openedAt = performance.now();
  private streamsOpened = 0;
  private readonly onClosed: (connection: ServerConnection) => void;

  constructor(
    socket: Duplex,
    options: ResolvedServerOptions,
    counters: ServerCounters,
    onClosed: (connection: ServerConnection) => void,
    context: ConnectionContext,
  ) {
    this.context = context;
    this.peerGroup = peerAddressGroup(socket);
    const number = nextConnectionNumber++;
    this.label = `conn#${number} ${describePeer(socket)}${context.secure ? ' tls' : ''}`;
    this.logFields = {
      conn: number,
      ...peerLogFields(socket),
      ...(context.secure ? { tls: true } : {}),
    };
    this.storage = options.storage;
    this.options = options;
    this.counters = counters;
    this.onClosed = onClosed;
    this.windowBudget = new WindowBudget(options.connectionWindowGrowthBytes);
    this.transport = new FramedSocket(
      socket,
      {
        maxFramePayloadBytes: options.maxFramePayloadBytes,
        // Raised to maxRequestPayloadBytes once logged in (loggedIn).
        maxControlPayloadBytes: DEFAULTS.maxHandshakePayloadBytes,
        outboundHighWaterBytes: options.outboundHighWaterBytes,
        outboundLowWaterBytes: options.outboundLowWaterBytes,
        dataFramePayloadBytes: options.chunkBytes,
        outboundBudget: context.outboundBudget,
        framePool: context.framePool,
        controlBudget: context.controlBudget,
        maxHeldFrames: options.maxHeldFramesPerConnection,
        probeThrough: context.tcpBelowTls,
      },
      {
        onFrame: this.decoderOnFrame,
        onClose: this.transportOnClose,
        onPeerEnded: this.transportOnPeerEnded,
      },
      context.sharedReads,
    );
    this.output = new OutputProgress(socket, this.transport.queue);
    this.listings = new ListingTurns(DEFAULTS.listingsAtOncePerConnection, this.transport.queue);
    const handshakeLeftMs = options.handshakeTimeoutMs - (performance.now() - context.acceptedAt);
    this.timer = setTimeout(this.timerOnFire, timerDelay(Math.max(1, handshakeLeftMs)));
  }

  get queue(): OutboundQueue {
    return this.transport.queue;
  }

  get peerHasEnded(): boolean {
    return this.transport.peerHasEnded;
  }

  /** A transfer was cut by the client's half-close (StreamHost.transferCutByPeerEnd): counted as it closes. */
  private transfersCutByPeerEnd = false;
  /** The client left with an ERROR on stream 0 (handleClientError): its cut transfers were not lost. */
  private clientLeftWithError = false;
  /** Answers of closed streams still to come (StreamHost.oweAnswer). */
  private owedAnswers = 0;

  oweAnswer(frame: Buffer): () => void {
    this.owedAnswers++;
    let owed = true;
    return () => {
      if (!owed) return;
      owed = false;
      this.owedAnswers--;
      if (this.transport.isClosed) return;
      this.transport.send(frame);
      if (this.streams.size === 0) this.lastStreamOver();
    };
  }

  get endsWithLastStream(): boolean {
    return this.transport.peerHasEnded || this.draining;
  }

  /** Bytes the server holds for this client right now (queued, in the socket, reserved). */
  get bufferedAmount(): number {
    return this.transport.queue.bufferedAmount;
  }

  /**
   * Bytes of control frames held for this client (queued, or in the socket until the kernel takes
   * them), and of room reserved for replies.
   */
  get heldControlBytes(): number {
    return this.transport.queue.heldControlBytes;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Memory holding upload bytes received and not yet written to storage (their receive blocks). */
  get uploadBacklogBytes(): number {
    return this.uploadBacklog;
  }

  /** The server's upload backlog is past its mark: uploads get no credit before they are set up. */
  get uploadBacklogHeld(): boolean {
    return this.context.uploadBacklogBudget.held;
  }

  send(frame: Buffer): void {
    this.transport.send(frame);
  }

  log(event: LogEvent): void {
    this.options.logEvent(this.withLogFields(event));
  }

  /** `event` with this connection's fields (its own, where both have one, win). */
  private withLogFields(event: LogEvent): LogEvent {
    return { ...event, fields: { ...this.logFields, ...event.fields } };
  }

  logRefusal(id: number, request: RequestName, refusal: MuxftpError): void {
    // A client can send refused OPENs as fast as it likes: past the first of a code, counted.
    this.refusalCodesLogged.add(refusal.code);
    this.context.refusalLog.refused(
      this.refusalLogKind(refusal.code),
      this.withLogFields({
        event: 'refused',
        level: 'warn',
        text: `${this.label} stream ${id}: ${request.text} refused: ${refusal.message} (${refusal.code})`,
        fields: { stream: id, ...request.fields, code: refusal.code, reason: refusal.message },
      }),
      refusal.code,
      { prefix: `${this.label} `, noun: 'request', fields: { ...this.logFields, code: refusal.code } },
    );
  }

  /** The refusal log's kind for this connection's refused requests of `code`. */
  private refusalLogKind(code: string): string {
    return `request ${this.label} ${code}`;
  }

  /** Stop taking new streams; close once the open ones are done. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    if (this.streams.size === 0 && this.owedAnswers === 0) this.closeForShutdown();
  }

  /**
   * Closes now; `reason` is what the log says of it (the shutdown's grace over, its transfers
   * cut), and the client is told it too where its socket still takes a frame: ERROR on stream 0,
   * then the socket goes at once or within DEFAULTS.shutdownCutLingerMs (a client told only
   * "connection closed" could not tell a shutdown from a failure).
   */
  destroy(reason?: MuxftpError): void {
    if (reason !== undefined && this.streams.size > 0)
      this.log({
        event: 'streams_cut',
        level: 'warn',
        text: `${this.label} ${this.streams.size} stream${this.streams.size === 1 ? '' : 's'} cut: ${reason.message}`,
        fields: { count: this.streams.size, code: reason.code, reason: reason.message },
      });
    if (reason === undefined || this.transport.isClosed) {
      this.transport.destroy(reason);
      return;
    }
    this.transport.fail(reason);
    setTimeout(() => this.transport.destroy(reason), DEFAULTS.shutdownCutLingerMs).unref();
  }

  /** Draining and idle: tell the client why, then close (a normal end: its transfers finished). */
  private closeForShutdown(): void {
    // (Its streams ending as the connection closes for another reason: not drained.)
    if (this.transport.isClosed) return;
    this.drainedIdle = true;
    this.transport.fail(new MuxftpError('SHUTTING_DOWN', 'server is shutting down'));
  }

  holdOpenFile(): () => void {
    this.context.openFileSlots.hold(this);
    let held = true;
    return () => {
      if (held) this.context.openFileSlots.release(this);
      held = false;
    };
  }

  transferCutByPeerEnd(): void {
    this.transfersCutByPeerEnd = true;
  }

  streamClosed(stream: ServerStream, discardLateFrames: boolean): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    this.counters.streamClosed(stream.op);
    if (this.fileStreams.delete(stream.id)) {
      // Its file's work goes on: its file slot until it settles.
      const release = () => this.context.openFileSlots.release(this);
      const fileLeft = stream.fileWorkLeft();
      if (fileLeft === undefined) release();
      else fileLeft.then(release, release);
    }
    const left = stream.storageWorkLeft();
    if (left !== undefined) {
      // Its storage work goes on: its place among the streams until it settles.
      this.closedStreamsWorking++;
      const settled = () => {
        this.closedStreamsWorking--;
        this.readUnlessTooManyStreams();
      };
      left.then(settled, settled);
    }
    if (stream instanceof UploadStream && --this.uploadStreams === 0) {
      this.context.uploadBacklogBudget.unwatchHold(this.budgetOnHold);
      this.readUnlessBacklogged();
    }
    if (discardLateFrames) this.rememberReset(stream.id);
    this.readUnlessTooManyStreams();
    if (this.streams.size === 0) this.lastStreamOver();
  }

  /**
   * Stops reading while the streams open and those over whose storage work still runs
   * (fileWorkLeft) reach --max-streams-per-connection, at least one of them over; reads again
   * once they are below it. Else a client sending OPEN, then CANCEL once the call had started,
   * had any number of calls under way with none of its streams open. The cap is not checked at
   * OPEN against them: a client counts a cancelled stream's slot as free, so its next OPEN
   * waits, and is not refused. What the read that reached the cap still holds is handled (at
   * most one socket read: up to 256 KiB, sharedReadBuffer.ts).
   */
  private readUnlessTooManyStreams(): void {
    if (this.transport.isClosed) return;
    const working = this.closedStreamsWorking;
    const tooMany = working > 0 && this.streams.size + working >= this.options.maxStreamsPerConnection;
    if (tooMany === this.readsHeldForStreams) return;
    this.readsHeldForStreams = tooMany;
    if (tooMany) this.holdReading();
    // Read again, unless the disk or the upload limit holds reading back too.
    else this.readUnlessBacklogged();
  }

  private lastStreamOver(): void {
    if (this.owedAnswers > 0) {
      // The last of them comes back here; meanwhile the connection is not idle.
      this.timer.refresh();
      return;
    }
    // The client half-closed: once its last answer is out, the connection is done.
    if (this.transport.peerHasEnded) {
      this.transport.end();
      return;
    }
    if (this.draining) this.closeForShutdown();
    else {
      this.timer.refresh();
      this.output.mark();
    }
  }

  get readingHeld(): boolean {
    return this.transport.readingPaused;
  }

  holdResumable(path: string, key: PartialKey, holder: ResumableHolder): () => void {
    return this.context.resumableUploads.hold(this.account!.home, path, key, holder);
  }

  takeOverStalledUpload(path: string, key: PartialKey): Promise<void> {
    const stalledMs = Math.min(this.options.idleTimeoutMs, this.options.stalledUploadTakeoverMs);
    return this.context.resumableUploads.takeOverStalled(this.account!.home, path, key, stalledMs);
  }

  permits(permission: Permission): boolean {
    return this.account?.permissions.has(permission) === true;
  }

  recordChange(change: LocatedChange): void {
    const account = this.account;
    if (account === undefined) return;
    this.context.accountResources.recordChange(account.home, change, this.quota);
  }

  addUploadBacklog(deltaBytes: number): void {
    this.uploadBacklog += deltaBytes;
    this.context.uploadBacklogBudget.add(deltaBytes);
    this.readUnlessBacklogged();
  }

  /**
   * Stops reading while this connection's bytes for the disk are past its own mark, or while it
   * holds some, or has an upload open that could bring some, and the server's are past theirs;
   * reads again below half of its own mark, once the server's budget is released or it holds
   * none and has no upload open. One holding none and with no upload open is read even then, so
   * it is answered: past the server's ceiling, a put it opens that could bring bytes with its
   * OPEN (an initial window) is refused instead (refusedPastCeiling).
   */
  private readUnlessBacklogged(): void {
    const highWater = this.options.uploadBacklogHighWaterBytes;
    const budget = this.context.uploadBacklogBudget;
    const mayBringBytes = this.uploadBacklog > 0 || this.uploadStreams > 0;
    if (this.uploadBacklog > highWater) this.holdReading();
    else if (mayBringBytes && budget.held) {
      this.holdReading();
      budget.waitForRelease(this.budgetOnRelease);
    } else if (this.uploadBacklog <= highWater / 2) this.releaseReading();
  }

  /**
   * Reading held back for the disk: the client's PINGs go unread meanwhile, so a client that asked
   * for it (HELLO keepaliveMs) gets a PING from us this often, or it would take a server waiting
   * for a slow disk for a silent one and give up on it. Its write is also what sees the client's
   * reset, which a socket not read does not: for any other client an empty write
   * (DEFAULTS.heldReadingProbeMs; over TLS to the TCP socket below: FramedSocket.probes) does
   * that alone. Without it a client gone while its upload waited for a stalled disk was logged
   * cut and closed, and its socket freed, only once the disk answered.
   */
  private holdReading(): void {
    // Closing: nothing to hold (it reads on to see the client's FIN), no timer to leave behind.
    if (this.transport.isClosed) return;
    this.transport.pauseReading();
    if (this.keepalive !== undefined || (this.keepaliveMs === undefined && !this.transport.probes)) return;
    this.keepalive =
      this.keepaliveMs === undefined
        ? setInterval(() => this.transport.probe(), DEFAULTS.heldReadingProbeMs)
        : setInterval(() => this.transport.send(encodePing(KEEPALIVE_PAYLOAD)), this.keepaliveMs);
    this.keepalive.unref();
  }

  private releaseReading(): void {
    // Held by the upload limit, or for streams over still working, too: what ends that releases.
    if (this.readsHeldByLimit || this.readsHeldForStreams) return;
    this.transport.resumeReading();
    clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  private readonly budgetOnRelease = (): void => {
    if (this.phase === Phase.Ready) this.readUnlessBacklogged();
  };

  /** The server's backlog passed its mark: an upload open here could bring more, stop reading. */
  private readonly budgetOnHold = (): void => {
    if (this.phase === Phase.Ready && !this.transport.isClosed) this.readUnlessBacklogged();
  };

  claimReservation(bytes: number): boolean {
    if (this.reservedBytes + bytes > this.options.maxReservedBytesPerConnection) return false;
    this.reservedBytes += bytes;
    return true;
  }

  releaseReservation(bytes: number): void {
    this.reservedBytes -= bytes;
  }

  /**
   * Silent streams and a client that reads nothing (issue #7), each time the timer fires while
   * streams are open, on the interval since it last fired (or since the first stream opened). A
   * stream that moved no data during the whole interval fails with STREAM_TIMEOUT (its file is
   * closed), unless all it waits for is room in the connection's output and the client is reading
   * it, however slowly. Then a connection that holds bytes for its client of which the kernel took
   * none during the interval is closed with IDLE_TIMEOUT. Streams first, so every answer the client
   * left unread has its STREAM_TIMEOUT before the connection goes; both within two idle timeouts.
   */
  private failStalled(): void {
    const output = this.output.look();
    // Bytes ready for the client, not room reserved: a reply still being made (a digest of a
    // large file) reserves its room first, and its connection was closed as if the client read
    // nothing. Counted before the streams below fail: their ERRORs have had no time to go.
    const readyForClient = this.transport.queue.readyBytes;
    const intervalStartedAt = this.intervalStartedAt;
    for (const stream of [...this.streams.values()]) {
      // Compared with the interval's start, not with now minus the timeout: the timer counts on
      // libuv's millisecond clock and may fire a little before the timeout has passed on this one.
      if (stream.lastProgressAt > intervalStartedAt) continue;
      if (output.clientRead && stream.waitsForOutput) continue;
      if (stream.heldByServer) continue;
      stream.timeOut(this.streamTimeout());
    }
    if (readyForClient > 0 && !output.took) {
      // Nothing reached the client for a whole interval: an answer waiting for room will not get
      // it, even one that queued a frame during the interval (so had moved data).
      for (const stream of [...this.streams.values()])
        if (stream.waitsForOutput) stream.timeOut(this.streamTimeout());
      this.log({
        event: 'unread_timeout',
        level: 'warn',
        text: `${this.label} read nothing for ${this.options.idleTimeoutMs} ms, closing`,
        fields: { ms: this.options.idleTimeoutMs },
      });
      this.transport.fail(new ProtocolError('IDLE_TIMEOUT', 'client read nothing for too long'));
    }
  }

  /**
   * Another connection waits for a file while this one holds more than its share
   * (openFileSlots.ts): the transfer of ours that has moved nothing for longest, if for at least
   * `idleMs`, fails SERVER_BUSY and gives its file back. True when one did.
   */
  yieldIdleFile(idleMs: number): boolean {
    let idlest: ServerStream | undefined;
    for (const id of this.fileStreams) {
      const stream = this.streams.get(id);
      // One the server itself holds (its turn at a rate limit, a commit) is not idle.
      if (stream === undefined || stream.heldByServer) continue;
      if (idlest === undefined || stream.lastProgressAt < idlest.lastProgressAt) idlest = stream;
    }
    if (idlest === undefined) return false;
    const idleFor = performance.now() - idlest.lastProgressAt;
    if (idleFor < idleMs) return false;
    this.log({
      event: 'file_given_back',
      text: `${this.label} stream ${idlest.id}: gave its file back to a client waiting for one (idle ${Math.round(idleFor / 1000)} s)`,
      fields: { stream: idlest.id, ms: Math.round(idleFor) },
    });
    // As the stall check's: the transfer it drops says in the log how far it got (no line named it).
    idlest.timeOut(
      new ServerBusyError(
        'openFileShare',
        `server busy: this transfer moved nothing for ${Math.round(idleFor / 1000)} s while other clients wait for a file to open; try again later`,
        DEFAULTS.openFileRetryAfterMs,
      ),
    );
    return true;
  }

  private streamTimeout(): MuxftpError {
    return new MuxftpError(
      'STREAM_TIMEOUT',
      `stream moved no data for ${this.options.idleTimeoutMs / 1000} s`,
    );
  }

  /** The stall check's next interval begins now. */
  private startInterval(): void {
    this.timer.refresh();
    this.intervalStartedAt = performance.now();
    this.output.mark();
  }

  private readonly timerOnFire = (): void => {
    // The server holds a failed login's answer back on purpose; answering re-arms the timer.
    if (this.loginDelay !== undefined) return;
    if (this.phase !== Phase.Ready) {
      const what = this.phase === Phase.Hello ? 'no HELLO received in time' : 'no login in time';
      this.transport.fail(new ProtocolError('IDLE_TIMEOUT', what));
    } else if (this.streams.size > 0) {
      this.failStalled();
      if (!this.transport.isClosed) this.startInterval();
    } else if (this.owedAnswers > 0) {
      // A closed stream's answer comes within failedUploadAnswerWaitMs: not idle, not stalled.
      this.timer.refresh();
    } else if (this.transport.queue.readyBytes > 0 && this.output.look().took) {
      // No stream open, but the client is still taking the last answers, however slowly.
      this.timer.refresh();
    } else if (this.readsHeldByLimit) {
      // Reading waits for the upload limit to be paid what came unpaced (the initial windows of
      // puts refused or cancelled): the server holds it, at the rate, its next requests unread.
      // Not idle: it was closed IDLE_TIMEOUT, a put sent meanwhile failing with it.
      this.timer.refresh();
    } else if (this.transport.heldByOwner && (this.readsHeldForStreams || this.uploadBacklog > 0)) {
      this.failHeldByStorage();
    } else {
      this.log({
        event: 'idle_timeout',
        text: `${this.label} idle for ${this.options.idleTimeoutMs} ms, closing`,
        fields: { ms: this.options.idleTimeoutMs },
      });
      this.transport.fail(new ProtocolError('IDLE_TIMEOUT', 'connection idle for too long'));
    }
  };

  /**
   * No stream open, but reading held back for the server's own storage work (streams over whose
   * calls still run at --max-streams-per-connection, upload bytes for the disk) for the idle
   * timeout: a hung disk. Closed as an idle one would be, but not said idle (it was
   * IDLE_TIMEOUT, "idle for 300000 ms" in the log, counted so): the client may have sent requests
   * that wait unread. SERVER_BUSY (`storage`): the server's condition, which a client may try
   * again later.
   */
  private failHeldByStorage(): void {
    const seconds = this.options.idleTimeoutMs / 1000;
    const calls = this.closedStreamsWorking;
    const work = `${calls} storage call${calls === 1 ? '' : 's'} of streams over, ${this.uploadBacklog} B for the disk`;
    this.log({
      event: 'storage_held_timeout',
      level: 'warn',
      text: `${this.label} reading held ${this.options.idleTimeoutMs} ms for its storage work (${work}), closing`,
      fields: { ms: this.options.idleTimeoutMs, count: calls, bytes: this.uploadBacklog },
    });
    this.transport.fail(
      new ServerBusyError(
        'storage',
        `server busy: its storage has not finished this connection's work in ${seconds} s (requests sent meanwhile were not read); try again later`,
      ),
    );
  }

  private readonly decoderOnFrame = (frame: Frame): void => {
    if (this.phase === Phase.Hello) {
      this.handleHello(frame);
      return;
    }
    if (frame.type === FrameType.PING) {
      // Answered at once, whatever the streams wait for (a client tells a slow server from a
      // silent one by it); not activity: it neither keeps an idle connection open nor a stream.
      if ((frame.flags & Flags.ACK) === 0) this.transport.send(encodePing(frame.payload, true));
      else this.roundTrips?.acked(frame.payload);
      return;
    }
    if (this.phase !== Phase.Ready) {
      if (frame.type === FrameType.AUTH && this.phase === Phase.Login) {
        this.handleAuth(parseAuthRequest(frame));
        return;
      }
      const name = FRAME_TYPE_NAMES[frame.type];
      const why = this.phase === Phase.Login ? 'log in (AUTH) first' : 'wait for the AUTH answer';
      throw new ProtocolError('PROTOCOL_ERROR', `${name} before login: ${why}`);
    }
    const idle = this.streams.size === 0;
    if (idle) this.timer.refresh();
    this.dispatch(frame);
    // Begun once the frame is handled: the streams it opened exist when the interval starts, so
    // the first check judges them on a whole interval (started before them, they were not).
    if (idle && this.streams.size > 0 && !this.transport.isClosed) this.startInterval();
  };

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case FrameType.OPEN:
        this.handleOpen(frame);
        return;
      case FrameType.DATA:
        this.handleData(frame);
        return;
      case FrameType.END:
        this.streamFor(frame)?.onEnd(parseEnd(frame));
        return;
      case FrameType.WINDOW:
        this.streamFor(frame)?.onWindow(parseWindow(frame));
        return;
      case FrameType.CANCEL:
        this.streamFor(frame)?.onCancel();
        return;
      case FrameType.ERROR:
        this.handleClientError(frame);
        return;
      case FrameType.HELLO:
      case FrameType.AUTH:
        // Client frames, but of the handshake only: "not sent by clients" would be wrong here.
        throw new ProtocolError('PROTOCOL_ERROR', `${FRAME_TYPE_NAMES[frame.type]} after the handshake`);
      default:
        throw new ProtocolError('PROTOCOL_ERROR', `${FRAME_TYPE_NAMES[frame.type]} is not sent by clients`);
    }
  }

  private handleHello(frame: Frame): void {
    if (frame.type !== FrameType.HELLO) {
      throw new ProtocolError('PROTOCOL_ERROR', `expected HELLO, got ${FRAME_TYPE_NAMES[frame.type]}`);
    }
    const hello = parseHello(frame);
    const version = Math.max(...hello.versions.filter((v) => SUPPORTED_VERSIONS.includes(v)));
    if (!Number.isFinite(version)) {
      throw new ProtocolError(
        'VERSION_MISMATCH',
        `no common protocol version: client speaks ${hello.versions.join(', ') || 'none'}, server ${SUPPORTED_VERSIONS.join(', ')}`,
      );
    }
    this.integrity = chooseIntegrityAlgorithm(hello.integrity ?? []);
    if (hello.keepaliveMs !== undefined) {
      this.keepaliveMs = Math.min(
        DEFAULTS.maxKeepaliveMs,
        Math.max(DEFAULTS.minKeepaliveMs, hello.keepaliveMs),
      );
      // A client that asks for keepalive PINGs answers PING: its uploads' windows can grow to the path.
      this.roundTrips = new RoundTripSampler(
        (payload) => this.transport.send(encodePing(payload)),
        DEFAULTS.roundTripSampleIntervalMs,
      );
    }
    if (hello.maxFramePayload < MIN_FRAME_PAYLOAD_BYTES) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `HELLO: maxFramePayload must be at least ${MIN_FRAME_PAYLOAD_BYTES}`,
      );
    }
    this.peerMaxFramePayload = hello.maxFramePayload;
    // Announced only to a client that asked: the server sends no WINDOW for this credit, so a
    // client that ignored it would have less, or none at all (a window no larger than it: a hang).
    // One connecting while uploads wait for the disk past their ceiling gets none (0): its puts
    // then wait for credit, as before there was an initial window, instead of being refused
    // SERVER_BUSY (refusedPastCeiling) — a new `muxftp put` during a disk stall waits, not fails.
    if (hello.uploadInitialWindow === true && !this.context.uploadBacklogBudget.full) {
      this.uploadInitialWindow = this.options.uploadInitialWindowBytes; // at most the window (options.ts)
    }
    const accounts = this.context.accounts();
    const login: LoginRequirement | undefined = accounts.loginRequired
      ? {
          required: true,
          anonymous: accounts.anonymous !== undefined,
          // The password never travels in the clear on a server that offers TLS.
          passwordNeedsTls: this.options.tls !== undefined && !this.context.secure,
        }
      : undefined;
    const umask = processUmask();
    this.send(
      encodeWelcome({
        version,
        agent: `muxftp/${packageVersion()}`,
        limits: {
          maxFramePayload: this.options.maxFramePayloadBytes,
          maxStreams: this.options.maxStreamsPerConnection,
          maxPathBytes: DEFAULTS.maxPathBytes,
          streamWindow: this.options.streamWindowBytes,
          ...(hello.uploadInitialWindow === true ? { uploadInitialWindow: this.uploadInitialWindow } : {}),
        },
        // A put may decline the window ("initialWindow": false): it then waits for credit, and is
        // admitted past the ceiling (refusedPastCeiling). Told so a client never sends the field
        // to a server that would ignore it and count the window as granted.
        ...(hello.uploadInitialWindow === true ? { uploadInitialWindowOptional: true } : {}),
        ping: true,
        links: true,
        renameNoReplace: true,
        partialDrop: true,
        ...(umask !== undefined ? { umask } : {}),
        ...(login !== undefined ? { login } : {}),
        integrity: { algorithm: this.integrity, blockBytes: INTEGRITY_BLOCK_BYTES },
      }),
    );
    if (login === undefined) this.loggedIn(OPEN_ACCESS_ACCOUNT, this.options.storage);
    else this.phase = Phase.Login;
  }

  /**
   * One login attempt. Whatever fails — an unknown name, a wrong password, anonymous when it is
   * off — gets the same answer after the same work (one scrypt) and the same growing delay.
   */
  private handleAuth(auth: AuthRequest): void {
    const accounts = this.context.accounts();
    if (auth.password !== undefined && this.options.tls !== undefined && !this.context.secure) {
      throw new ProtocolError('TLS_REQUIRED', 'passwords are accepted over TLS only (use --tls)');
    }
    // Checked at each attempt, not only at accept: connections opened before the refusal began
    // would otherwise go on guessing, 3 attempts each.
    const refusal = refusalForFailedLogins(this.context.loginGuard, this.peerGroup);
    if (refusal !== undefined) {
      this.logLoginRefused(refusal);
      throw refusal;
    }
    this.phase = Phase.Verifying;
    this.transport.pauseReading();
    const anonymous = auth.user === ANONYMOUS_USER && auth.password === undefined;
    // A connection closing while its check waits leaves the line at once (transportOnClose):
    // a connect-AUTH-close flood would otherwise queue a check per connection until its turn.
    this.loginCheckWait = anonymous ? undefined : new AbortController();
    const verified: Promise<Account | undefined> = anonymous
      ? Promise.resolve(accounts.anonymous)
      : this.context.loginQueue.run(
          async () => {
            // The turn may come after the address was refused: that costs no scrypt.
            // (A connection that closed while waiting left the line: transportOnClose.)
            if (this.transport.isClosed) return undefined;
            const refusedNow = refusalForFailedLogins(this.context.loginGuard, this.peerGroup);
            if (refusedNow !== undefined) throw refusedNow;
            // The users as they are now: the file may have been read again while this waited,
            // or while the check ran (a removed user, a replaced password): then checked again.
            let checkedAgainst = this.context.accounts();
            let account = await checkedAgainst.verify(auth.user, auth.password ?? '');
            for (let again = 0; again < 3 && this.context.accounts() !== checkedAgainst; again++) {
              checkedAgainst = this.context.accounts();
              account = await checkedAgainst.verify(auth.user, auth.password ?? '');
            }
            // Read again during every check: the answer stands if this user's entry is the same in
            // the file as it is now; else no answer is sure. Not the client's failure: not counted.
            const now = this.context.accounts();
            if (now !== checkedAgainst && !now.sameEntry(checkedAgainst, auth.user))
              throw new MuxftpError(
                'TEMPORARILY_REFUSED',
                'the users file was read again during every check of this login: try again',
              );
            // Counted before the next check in line starts, so a refusal it begins stops that one.
            if (account === undefined) this.loginFailed(auth.user);
            return account;
          },
          this.loginCheckWait?.signal,
          // Addresses take turns: one queueing many checks delays the others by one per turn.
          this.peerGroup,
        );
    verified
      .then(async (account) => {
        if (this.transport.isClosed) return;
        if (account === undefined) {
          if (anonymous) this.loginFailed(auth.user);
          return;
        }
        let home: Storage;
        try {
          home = await this.options.storage.subtree(account.home);
        } catch (error) {
          if (!(error instanceof StorageError)) throw error;
          // Out of descriptors (EMFILE, storage/fsErrors.ts): the process's state, not the home's.
          // Refused as a connection near the limit is, which the client waits out and connects
          // again; IO_ERROR "home cannot be used" failed it for good and sent the operator to the home.
          if (error.code === 'SERVER_BUSY') {
            const busy = outOfDescriptorsRefusal();
            this.logLoginRefused(busy);
            this.transport.fail(busy);
            return;
          }
          // The users file names a home that cannot be used (a symlink out of the root, a file,
          // no permission): the administrator's to fix, said in the log; not a bug's INTERNAL_ERROR.
          this.log({
            event: 'home_unusable',
            level: 'error',
            text: `${this.label} cannot use home ${printableName(`/${account.home}`)} of ${printableName(account.name)}: ${error.message} (${error.code})`,
            fields: { user: account.name, path: `/${account.home}`, code: error.code, reason: error.message },
          });
          this.transport.fail(
            new MuxftpError(
              'IO_ERROR',
              "the account's home directory cannot be used (the server's log says why)",
            ),
          );
          return;
        }
        if (this.transport.isClosed) return;
        this.loggedIn(account, home);
        this.send(encodeAuth({ ok: true, user: account.name, permissions: [...account.permissions] }));
        this.log({
          event: 'logged_in',
          text: `${this.label} logged in as ${printableName(account.name)}`,
        });
        this.transport.resumeReading();
      })
      .catch((error: unknown) => {
        if (error === LEFT_LOGIN_LINE) return;
        if (error instanceof MuxftpError && error.code === 'TEMPORARILY_REFUSED') {
          this.logLoginRefused(error);
          this.transport.fail(error);
          return;
        }
        this.log({
          event: 'login_error',
          level: 'error',
          text: `${this.label} login error: ${String(error)}`,
          fields: { reason: String(error) },
        });
        this.transport.fail(
          new MuxftpError('INTERNAL_ERROR', 'login failed on the server', { cause: error }),
        );
      });
  }

  /**
   * Logged as the server's refusals at accept are, under the same kind: an address refused for
   * failed logins that opens connection after connection, or many opened before the refusal,
   * would otherwise write a line per connection for as long as it went on.
   */
  private logLoginRefused(refusal: MuxftpError): void {
    this.context.refusalLog.refused(
      refusal.code,
      this.withLogFields({
        event: 'login_refused',
        level: 'warn',
        text: `${this.label} login refused: ${refusal.message}`,
        fields: { code: refusal.code, reason: refusal.message },
      }),
      refusal.message,
    );
  }

  private loginFailed(user: string): void {
    const delayMs = this.context.loginGuard.recordFailure(this.peerGroup);
    // Counted as it fails, not as it is answered: a client that sends a wrong password and goes
    // before the (delayed) answer is the guessing an operator alerts on. Its end is not counted again.
    this.counters.error('LOGIN_FAILED');
    const name = user.slice(0, 64);
    if (this.transport.isClosed) {
      // Logged too (its handshake timed out during the check, say): every wrong password is
      // what an operator, or fail2ban reading the log, counts.
      this.log({
        event: 'login_failed',
        level: 'warn',
        text: `${this.label} failed login as ${printableName(name)} (the connection closed before the answer)`,
        fields: { user: name },
      });
      return;
    }
    this.failedLogins++;
    const attemptsLeft = this.options.maxLoginAttempts - this.failedLogins;
    this.log({
      event: 'login_failed',
      level: 'warn',
      text: `${this.label} failed login as ${printableName(name)} (${attemptsLeft} attempts left)`,
      fields: { user: name, attempts_left: attemptsLeft },
    });
    this.loginDelay = setTimeout(() => {
      this.loginDelay = undefined;
      if (attemptsLeft <= 0) {
        this.transport.fail(new ProtocolError('LOGIN_FAILED', 'login failed'));
        return;
      }
      this.phase = Phase.Login;
      this.send(encodeAuth({ ok: false, message: 'login failed', attemptsLeft }));
      this.transport.resumeReading();
      // The next attempt gets the whole timeout: the delay was the server's, not the client's.
      clearTimeout(this.timer);
      this.timer = setTimeout(this.timerOnFire, timerDelay(this.options.handshakeTimeoutMs));
    }, timerDelay(delayMs));
  }

  /** Streams may open from now on, as `account`, inside `home`. */
  private loggedIn(account: Account, home: Storage): void {
    this.transport.setMaxControlPayloadBytes(DEFAULTS.maxRequestPayloadBytes);
    this.account = account;
    this.storage = home;
    // Open access has no login: no user to name.
    if (account !== OPEN_ACCESS_ACCOUNT) this.logFields.user = account.name;
    const resources =
      account === OPEN_ACCESS_ACCOUNT ? undefined : this.context.accountResources.for(account, home);
    const rate = this.options.maxRateBytesPerSecond;
    const connectionLimiter = () => (rate > 0 ? new RateLimiter({ bytesPerSecond: rate }) : undefined);
    this.uploadThrottle = Throttle.of([connectionLimiter(), resources?.uploadLimiter]);
    this.downloadThrottle = Throttle.of([connectionLimiter(), resources?.downloadLimiter]);
    this.quota = resources?.quota;
    this.phase = Phase.Ready;
    // From now on the timer watches for idleness instead of the handshake.
    clearTimeout(this.timer);
    this.timer = setTimeout(this.timerOnFire, timerDelay(this.options.idleTimeoutMs));
  }

  private handleOpen(frame: Frame): void {
    const id = frame.streamId;
    if (id <= this.lastOpenedId) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `OPEN on stream ${id}: ids must increase (last was ${this.lastOpenedId})`,
      );
    }
    this.lastOpenedId = id;
    let open: OpenRequest;
    try {
      open = admitOpen(frame, {
        draining: this.draining,
        openStreams: this.streams.size,
        maxStreams: this.options.maxStreamsPerConnection,
        permits: (permission) => this.permits(permission),
        accountName: this.account!.name,
      });
    } catch (err) {
      if (!(err instanceof MuxftpError)) throw err;
      this.counters.error(err.code);
      if (err instanceof RequestRefusal && LOGGED_REFUSALS.has(err.code))
        this.logRefusal(id, nameRequest(err.request), err);
      this.send(encodeError(id, errorPayload(err)));
      this.rememberReset(id);
      return;
    }
    const refusal = this.refusedPastCeiling(open);
    if (refusal !== undefined) {
      this.counters.error(refusal.code);
      this.send(encodeError(id, errorPayload(refusal)));
      this.rememberReset(id); // the DATA and END sent with it are dropped as they come, not held
      return;
    }
    if (open.spec.stream !== 'request' || READS_A_STORED_FILE.has(open.request.op)) {
      // A transfer holds a file open: server-wide, that is capped below the descriptor limit, and
      // shared between connections when they contend for it (openFileSlots.ts).
      const busy = this.context.openFileSlots.take(this);
      if (busy !== undefined) {
        this.counters.error(busy.code);
        this.send(encodeError(id, errorPayload(busy)));
        this.rememberReset(id);
        return;
      }
      this.fileStreams.add(id);
    }
    const stream = this.createStream(id, open);
    this.streams.set(id, stream);
    this.streamsOpened++;
    this.counters.streamOpened(stream.op);
    if (stream instanceof UploadStream && this.uploadStreams++ === 0)
      this.context.uploadBacklogBudget.watchHold(this.budgetOnHold);
    stream.start();
    if (stream instanceof UploadStream) this.readUnlessBacklogged();
    this.readUnlessTooManyStreams();
  }

  /**
   * A put that may bring bytes with its OPEN (on the initial window), while the server's upload
   * bytes waiting for the disk are past their ceiling: SERVER_BUSY. Past the mark a connection is
   * read only while it holds none and has no upload open (or for the rest of the read that
   * admitted one), so such bytes could bring every connection one read past the ceiling; not
   * reading it, a client that took the initial window could not even list while the disk is
   * stalled. A put that declined the window (or resumes) brings nothing until credited: admitted,
   * it holds nothing, and the connection stops reading while it is open.
   */
  private refusedPastCeiling({ request, spec }: OpenRequest): ServerBusyError | undefined {
    if (spec.stream !== 'upload' || !this.context.uploadBacklogBudget.full) return undefined;
    if (this.initialCreditOf(request as RequestOf<'upload'>) === 0) return undefined;
    // Again at once, declining the window: such a put is admitted (PROTOCOL.md, Flow control).
    return new ServerBusyError(
      'uploadBacklog',
      'server busy: uploads are waiting for the disk; try again later',
      0,
    );
  }

  /** Credit a put holds from its OPEN: the handshake's window, unless it resumes or declined it. */
  private initialCreditOf(put: RequestOf<'upload'>): number {
    if ((put.offset ?? 0) > 0 || put.initialWindow === false) return 0;
    return this.uploadInitialWindow;
  }

  /** The stream kind comes from the op's row; the gate has checked the request against it. */
  private createStream(id: number, { request, spec }: OpenRequest): ServerStream {
    switch (spec.stream) {
      case 'download':
        return new DownloadStream(this, id, request as RequestOf<'download'>);
      case 'upload': {
        const put = request as RequestOf<'upload'>;
        return new UploadStream(
          this,
          id,
          put.path,
          put.size,
          this.initialCreditOf(put),
          put.digest !== undefined || put.source !== undefined
            ? {
                ...(put.digest !== undefined ? { digest: put.digest } : { source: put.source! }),
                offset: put.offset ?? 0,
              }
            : undefined,
          { mtimeMs: put.mtime, mode: put.mode },
        );
      }
      case 'request':
        return new RequestStream(this, id, request as RequestOf<'request'>);
    }
  }

  private rememberReset(id: number): void {
    this.resetStreams.add(id);
    if (this.resetStreams.size > MAX_REMEMBERED_RESETS) {
      this.resetStreams.delete(this.resetStreams.values().next().value as number);
    }
  }

  /**
   * The open stream a frame is for, or undefined when the frame is a harmless late arrival for
   * a stream that was reset or has finished (docs/PROTOCOL.md, Streams).
   */
  private streamFor(frame: Frame): ServerStream | undefined {
    const id = frame.streamId;
    const stream = this.streams.get(id);
    if (stream !== undefined) return stream;
    const name = FRAME_TYPE_NAMES[frame.type];
    if (id > this.lastOpenedId)
      throw new ProtocolError('UNKNOWN_STREAM', `${name} for stream ${id}, which was never opened`);
    if (this.resetStreams.has(id)) {
      if (frame.type === FrameType.END || frame.type === FrameType.CANCEL) this.resetStreams.delete(id);
      return undefined;
    }
    // Harmless races with a stream's normal end: credit, a cancel or an error that crossed it.
    if (
      frame.type === FrameType.WINDOW ||
      frame.type === FrameType.CANCEL ||
      frame.type === FrameType.ERROR
    ) {
      return undefined;
    }
    throw new ProtocolError(
      'STREAM_CLOSED',
      `${name} for stream ${id}, which is closed (it finished, or its id was skipped)`,
    );
  }

  private handleData(frame: Frame): void {
    const credit = creditTaken(frame);
    const stream = this.streamFor(frame);
    if (stream !== undefined) stream.onData(frame.payload, credit, frame.borrowed === true);
    // Dropped (its stream refused or reset), it came over the link all the same: a bandwidth
    // limit counts it, or puts refused one after another sent their initial windows unthrottled.
    else this.takeUnpacedUpload(credit);
  }

  takeUnpacedUpload(bytes: number): void {
    const throttle = this.uploadThrottle;
    if (throttle === undefined) return;
    throttle.take(bytes);
    // Closing (a stream's owed bytes paid as it goes): nothing more to read, so no wait; one
    // would put it back in the line it left, its timer holding the connection for the debt.
    if (this.transport.isClosed) return;
    // In debt past what the limit admits: nothing more is read until it has paid it back (the
    // limit's line calls back, in turn with the uploads it paces).
    if (this.readsHeldByLimit || throttle.mayGo(this.onLimitPaid)) return;
    this.readsHeldByLimit = true;
    // With the client's keepalive answered by ours, as a hold for the disk: its PINGs go unread.
    this.holdReading();
  }

  private readonly onLimitPaid = (): void => {
    this.readsHeldByLimit = false;
    // Read again, unless the disk holds reading back too.
    this.readUnlessBacklogged();
  };

  /** ERROR from a client: on stream 0 it is leaving; on a stream it abandons that stream. */
  private handleClientError(frame: Frame): void {
    const { code, message } = parseErrorPayload(frame);
    // 1xx statuses are connection errors wherever they are sent (docs/PROTOCOL.md, Errors).
    if (frame.streamId === 0 || ERROR_STATUS[code] < 200) {
      this.log({
        event: 'client_error',
        text: `${this.label} client error ${code}: ${message}`,
        fields: { code, reason: message },
      });
      this.clientLeftWithError = true;
      // Why the connection ended, as the server's own codes are (errors_total): its transfers
      // cut, in the log alone, were in no metric. Once: the connection reads nothing more.
      this.counters.error(code);
      this.transport.end();
      return;
    }
    this.streamFor(frame)?.onCancel(code);
  }

  /**
   * The client ended its side between frames (a half-close): the streams that can still finish
   * without it do (requests are answered, an upload whose END came is committed, a download whose
   * credit covers the rest is sent), the others end as if the connection were gone, and the
   * connection ends once the last is over. Before login, or with nothing open: ended now.
   */
  private readonly transportOnPeerEnded = (): boolean => {
    if (this.phase !== Phase.Ready || (this.streams.size === 0 && this.owedAnswers === 0)) return false;
    for (const stream of [...this.streams.values()]) stream.onPeerEnded();
    return this.streams.size > 0 || this.owedAnswers > 0;
  };

  private readonly transportOnClose = (error: MuxftpError | undefined): void => {
    clearTimeout(this.timer);
    this.uploadThrottle?.cancel(this.onLimitPaid);
    clearInterval(this.keepalive);
    clearTimeout(this.loginDelay);
    this.loginCheckWait?.abort(LEFT_LOGIN_LINE);
    let transfersCut = this.transfersCutByPeerEnd;
    for (const stream of [...this.streams.values()]) if (stream.destroy(error?.code)) transfersCut = true;
    this.streams.clear();
    // A login's failure was counted as it failed (loginFailed). A connection closed for a
    // shutdown with its transfers done ended normally (its log line says no error): SHUTTING_DOWN
    // on every connection at each stop or restart read as errors (one cut at the grace's end counts).
    if (error !== undefined && error.code !== 'LOGIN_FAILED' && !this.drainedIdle)
      this.counters.error(error.code);
    // A client killed mid-transfer closes with a FIN when it had nothing unread (a reset otherwise,
    // counted above): its transfers, cut as it half-closed (plain TCP) or as it closed here (TLS,
    // which has no half-close), were in the log alone, in no metric. One that left saying why
    // (ERROR on stream 0, handleClientError) was not lost.
    else if (error === undefined && transfersCut && !this.clientLeftWithError)
      this.counters.error('CONNECTION_LOST');
    this.context.openFileSlots.forget(this);
    // The streams' writes still in flight take their bytes off the server's budget as they end.
    this.context.uploadBacklogBudget.cancelWait(this.budgetOnRelease);
    this.context.uploadBacklogBudget.unwatchHold(this.budgetOnHold);
    this.uploadBacklog = 0;
    // Its refusals still counted are told before the line saying it closed.
    for (const code of this.refusalCodesLogged) this.context.refusalLog.flushKind(this.refusalLogKind(code));
    const seconds = ((performance.now() - this.openedAt) / 1000).toFixed(1);
    const why = this.drainedIdle
      ? ' (drained for shutdown)'
      : error
        ? ` (${error.code}: ${error.message})`
        : '';
    this.log({
      event: 'closed',
      text: `${this.label} closed after ${seconds} s, ${this.streamsOpened} stream${this.streamsOpened === 1 ? '' : 's'}, ${this.transport.bytesRead} B in, ${this.queue.bytesWritten} B out${why}`,
      fields: {
        ms: Math.round(performance.now() - this.openedAt),
        streams: this.streamsOpened,
        bytes_in: this.transport.bytesRead,
        bytes_out: this.queue.bytesWritten,
        ...(this.drainedIdle
          ? { reason: 'drained for shutdown' }
          : error
            ? { code: error.code, reason: error.message }
            : {}),
      },
    });
    this.onClosed(this);
  };
}
