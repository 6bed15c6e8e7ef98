/**
 * Every tunable limit and its default, in one place. Units are in the names (…Bytes, …Ms).
 * Server and client options fall back to these; docs/PROTOCOL.md quotes the protocol ones.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/*
 * What the server's descriptor reserve (DEFAULTS.fdReserve) must hold at once: descriptors no
 * budget counts, each bounded on its own. Named here, and the reserve their sum, so that raising
 * one cannot leave the reserve short of what it is taken from (it was a literal 64 while they
 * came to 74).
 */
/** Refused sockets left open for their ERROR to be read (DEFAULTS.maxLingeringRefusals). */
const maxLingeringRefusals = 32;
/** Disk calls holding a directory open at once (DEFAULTS.maxPinnedCalls). */
const maxPinnedCalls = 16;
/** A pinned call's descriptors at most: a rename's two parents, or a listing's pin and its read. */
const descriptorsPerPinnedCall = 2;
/** The metrics listener's connections at once (DEFAULTS.metricsMaxConnections). */
const metricsMaxConnections = 8;
/** The metrics listener itself (`--metrics`): opened after the server counts what it holds. */
const metricsListenerDescriptors = 1;
/** The socket being accepted, before the connection check can refuse it. */
const acceptingDescriptors = 1;
/**
 * Files `muxftp serve` reads for itself while running, one at a time each: the served root's
 * lock (its heartbeat, or a retake's look) and a SIGHUP's reread (the users file, a certificate).
 */
const ownReadsAtOnce = 2;

export const DEFAULTS = {
  host: '127.0.0.1',
  /** Default TCP port of `muxftp serve` and of the client. */
  port: 7421,
  /** Default storage root of `muxftp serve`, relative to the working directory. */
  root: 'data',
  /** How `muxftp serve` writes its log: `text` lines, or `json`, one object per line. */
  logFormat: 'text' as 'text' | 'json',

  /** Largest frame payload this side accepts; advertised in HELLO / WELCOME. */
  maxFramePayloadBytes: 1 * MiB,
  /** Bytes a client's DATA frame (an upload) carries when the window allows. */
  chunkBytes: 256 * KiB,
  /**
   * Bytes a server's DATA frame (a download) carries: one fs read per frame, so fewer reads per
   * GiB. Measured (bench/README.md): 1 MiB reads speed up downloads; 1 MiB upload frames cost the
   * receiving server more CPU than 256 KiB ones (~3x the write CPU while the decoder copied
   * payloads; since, +0.1 s per GiB against the client's −0.1 s, no faster), hence two sizes.
   */
  serverChunkBytes: 1 * MiB,
  /**
   * The most a client's plain TCP socket takes per read, into one buffer its process shares
   * (shared/transport/sharedReadBuffer.ts; a server's sockets read 256 KiB). Measured
   * (bench/README.md): against 256 KiB, the client's loop spent ~0.07 CPU-s less per 800 MiB
   * downloaded as 200 files at once (fewer reads, each decoded and hashed in one go).
   */
  clientReadBufferBytes: 1 * MiB,
  /** Chunks a sending stream reads at once, so the next is read while one is sent. */
  readAheadChunks: 2,
  /** Receive window granted per stream at first; more is granted when half has been consumed. */
  streamWindowBytes: 4 * MiB,
  /**
   * A stream's window grows (doubling) up to this while the sender runs out of credit and the
   * receiver keeps up (shared/transport/flow.ts): one fast stream is not held to a small window.
   */
  streamWindowMaxBytes: 32 * MiB,
  /**
   * Server: the credit every new upload starts with, announced in WELCOME to clients that opt in
   * (HTTP/2's SETTINGS_INITIAL_WINDOW_SIZE), so a file that fits is sent with its OPEN and costs
   * no round trip before its first byte; 0 for none. 256 KiB: one client DATA frame (chunkBytes)
   * and one receive block, so a 64 KiB file and its END go at once. Bytes that arrive before the
   * upload is set up count in the upload backlog like any other, so the marks bound them (the
   * server stops reading, TCP pushes back), not maxStreamsPerConnection × this. At most the
   * stream window.
   */
  uploadInitialWindowBytes: 256 * KiB,
  /**
   * Client: after a put sent on the initial window is refused SERVER_BUSY because the server's
   * upload bytes waiting for the disk are past their ceiling (ERROR details.limit `uploadBacklog`,
   * or no limit named: an older server), the connection's puts decline the window
   * for this long (each waits a round trip for its first WINDOW, and is admitted instead of
   * refused), counted from the last such refusal. A while, not for good: the server is past its
   * ceiling until its disk has written its backlog down to half the mark, which the client cannot
   * see; after a short stall the connection gets its round-trip-free small puts back, and during
   * a long one a new refusal costs at most one burst of puts a retry each (their retries decline
   * the window, so they are not refused again).
   */
  uploadInitialWindowPauseMs: 10_000,
  /** What all of one connection's windows together may grow beyond their initial size. */
  connectionWindowGrowthBytes: 64 * MiB,
  /**
   * Both sides: how often at most a connection receiving DATA measures a round trip (a PING of its
   * own, to a peer that answers PING), so that a window holding a stream back on a long path grows
   * (shared/transport/roundTrips.ts). A tenth of a second: a few PINGs a second per busy connection
   * on loopback, and a window of 4 MiB doubled to 32 MiB within half a second on a 50 ms path.
   */
  roundTripSampleIntervalMs: 100,
  /** Largest JSON control payload (OPEN, REPLY, ERROR, HELLO, WELCOME). */
  maxControlPayloadBytes: 256 * KiB,
  /**
   * Server: largest JSON payload it accepts from a client (HELLO, AUTH, OPEN, ERROR). The largest
   * request, a rename of two 4096-byte paths with every non-ASCII character escaped (\uXXXX), is
   * ~24.6 KB (docs/PROTOCOL.md); an unfinished frame is held until it completes (for up to the
   * handshake or idle timeout), so 256 KiB each let 10,000 connections hold 2.5 GiB by sending a
   * header and part of its payload.
   */
  maxRequestPayloadBytes: 32 * KiB,
  /**
   * Server: largest JSON payload before login (HELLO, AUTH: a 1 KiB password escaped is at most
   * 6 KiB). Held, unfinished, by connections not yet known for the handshake timeout: at
   * maxRequestPayloadBytes, 10,000 of them held ~430 MiB, outside --max-buffered.
   */
  maxHandshakePayloadBytes: 8 * KiB,

  /** Concurrent streams one connection may open. */
  maxStreamsPerConnection: 256,
  /**
   * Files open at once for transfers, server-wide; the next get or put is answered SERVER_BUSY.
   * By default also at most half of what the process's descriptor limit leaves after fdReserve
   * and the descriptors the process holds.
   */
  maxOpenFiles: 1024,
  /**
   * Server: after a connection holding less than its share of the open-file cap was refused at the
   * cap, connections holding their share or more get no new file for this long, so that the slots
   * their finished transfers free go to the others (server/openFileSlots.ts).
   */
  openFileContentionMs: 10_000,
  /**
   * Server: ...and while a connection holding less than its share is refused at the cap, each
   * refusal takes back one slot from a connection holding more than its share: the file of its
   * transfer that has moved nothing for longest, once for at least this long (a client that opens
   * files and reads none of them held the cap for as long as it stayed connected). That transfer
   * fails SERVER_BUSY; a client's retry continues it.
   */
  openFileReclaimIdleMs: 10_000,
  /**
   * Server: the retry-after hint (ERROR details.retryAfterMs) of a get or put refused SERVER_BUSY
   * for open files. A slot frees whenever a transfer ends, which the server cannot foresee; during
   * contention the refused connection's turn comes at the next one. Short, since a retry costs one
   * OPEN and its answer.
   */
  openFileRetryAfterMs: 500,
  /**
   * File descriptors kept free for accepting connections and answering them SERVER_BUSY, on top of
   * those the process already holds when the server starts (counted then: shared/fileDescriptorLimit.ts):
   * the sum of what is taken from it, each bounded on its own (named above): refused sockets
   * lingering (32), pinned directories (16 calls, two descriptors each), the metrics listener and
   * its connections (1 + 8), the socket being accepted (1), the server's own reads (2). 76.
   */
  fdReserve:
    maxLingeringRefusals +
    maxPinnedCalls * descriptorsPerPinnedCall +
    metricsListenerDescriptors +
    metricsMaxConnections +
    acceptingDescriptors +
    ownReadsAtOnce,
  /**
   * The descriptors a process is taken to hold at start where they cannot be counted (no
   * /proc/self/fd): what `muxftp serve` holds on Linux as it listens (node's epoll, eventfds and
   * threadpool pipes, stdio, the listener), 21 to 22, with a few to spare.
   */
  heldDescriptorsEstimate: 24,
  /**
   * Client: descriptors a transfer run keeps free beside what the process holds as it starts its
   * transfers (its connection and one to reconnect, a directory synced or walked, a credentials or
   * --ca read); `-j` is capped at half of what the open-file limit leaves after both (cli/transferRunner.ts).
   */
  clientDescriptorMargin: 16,
  /**
   * Server: disk calls held in a directory opened for them (storage/pinnedDirectories.ts) at
   * once, all roots and homes of the process together, each holding a descriptor (a rename in
   * two directories two); the rest wait their
   * turn. Taken from fdReserve: 512 removals at once held 230 descriptors (a review).
   */
  maxPinnedCalls,
  /**
   * `serve` refuses to start when the descriptor limit leaves fewer than this past fdReserve and
   * the descriptors the process holds already.
   */
  minWorkingDescriptors: 16,
  /**
   * Refused sockets kept open at once so their one ERROR can be read (each for up to 2 s), taken
   * from fdReserve; past it a refused socket is closed as soon as its ERROR is written, so peers
   * that never close cannot hold descriptors by being refused.
   */
  maxLingeringRefusals,
  /**
   * Connections the metrics listener (`--metrics`) holds at once, taken from fdReserve (a
   * scraper needs one); past it a new one is closed at once.
   */
  metricsMaxConnections,
  /**
   * Milliseconds a metrics connection may send nothing (no request, nor the rest of one), or take
   * to send a whole request, before it is closed.
   */
  metricsIdleTimeoutMs: 10_000,
  /** Concurrent connections the server accepts before answering SERVER_BUSY. */
  maxConnections: 10_000,
  /**
   * A connection with no open stream and no incoming frame for this long is closed; a stream that
   * moves no data for this long fails with STREAM_TIMEOUT; a connection whose client reads none
   * of what is held for it for this long is closed with IDLE_TIMEOUT.
   */
  idleTimeoutMs: 5 * 60_000,
  /** The client must finish the handshake (TLS, HELLO, login) within this time of connecting. */
  handshakeTimeoutMs: 10_000,
  /**
   * Server: a failed upload's ERROR waits at most this long for its temporary file to be removed,
   * so a client that goes on at once (its next file after NO_SPACE) finds the space free.
   */
  failedUploadAnswerWaitMs: 1_000,
  /** Connections at once from one address; 0 for no limit beyond maxConnections. */
  maxConnectionsPerIp: 0,
  /**
   * The per-address limits (maxConnectionsPerIp, the failed-login refusal) count an IPv6 client by
   * this many leading bits of its address: a host gets a whole /64 and may use any address in it.
   */
  ipv6AddressGroupPrefixBits: 64,
  /**
   * Server log: the first refused connection of a kind gets a line, then one line per this
   * interval counts the rest, so a flood of refused connections cannot flood the log.
   */
  refusalLogIntervalMs: 10_000,
  /**
   * Server log: bytes of lines stderr may hold for a reader that stopped reading (a pipe); past
   * it lines are dropped and counted (server/stderrLines.ts), not held without bound.
   */
  maxStderrBacklogBytes: 1024 * 1024,
  /**
   * Largest users file read (server/auth/usersFile.ts), about 250,000 users: past it the file is
   * refused, not read into memory without bound (`--users /dev/zero`), at start or on SIGHUP.
   */
  maxUsersFileBytes: 64 * MiB,
  /**
   * Bytes read of a users file's edit lock (`FILE.lock`, `PID HOST`, server/auth/usersFile.ts)
   * to judge its holder: a larger file there is no edit's lock, not read whole at each retry.
   */
  maxUsersFileLockBytes: 4 * 1024,
  /** Largest --exclude-from file read (cli/transferOptions.ts): a list of patterns, not read without bound (`/dev/zero`). */
  maxExcludeFileBytes: 16 * MiB,
  /**
   * Fewest characters (code points) a password `user add` sets may have: NIST SP 800-63B's least
   * for a secret the user picks. Passwords already in a users file are not checked against it.
   */
  minNewPasswordChars: 8,
  /** Largest PEM file read (`--tls-cert`, `--tls-key`, `--ca`): a chain or a CA bundle is kilobytes. */
  maxPemFileBytes: 4 * MiB,
  /**
   * Largest `--credentials` file read (cli/clientAccess.ts): a user name and a password of at most
   * 1 KiB, not read without bound (a mode-600 pipe, `/dev/stdin` fed by a runaway producer).
   */
  maxCredentialsFileBytes: 64 * 1024,
  /**
   * `serve` (disk): homes of the users file checked at start and on SIGHUP (cli/serverAccess.ts
   * homeWarnings), a few stat calls each; past it the rest are checked only at each login.
   */
  maxHomesCheckedAtStart: 10_000,
  /** Of those homes, how many unusable ones `serve` names in a line each; the others are counted. */
  maxHomeWarningsNamed: 20,
  /**
   * `serve`: how long a SIGHUP waits for its check of the homes (boundedHomeWarnings) before it
   * goes on without it: a home under a hung mount (NFS, FUSE) never answers, and the reload,
   * every later one and the stop waiting for it hung with it.
   */
  homeCheckWaitMs: 10_000,
  /** Bytes/s per connection, each direction (uploads and downloads separately); 0 for no limit. */
  maxRateBytesPerSecond: 0,
  /** Bytes/s per user, all their connections together, each direction; 0 for no limit. */
  maxUserRateBytesPerSecond: 0,

  /**
   * A quota is a user's own (the users file's `quota`, bytes; `user add --quota`), with no default:
   * a user without one has none, and nor do anonymous uploads.
   * A quota's usage is walked once, then kept up to date by each change's exact byte delta; a
   * reservation walks the home again once the last walk is this old, to see changes made outside
   * muxftp (ms).
   */
  quotaRecountIntervalMs: 60_000,

  /** Failed logins a connection may make; the last one closes it. */
  maxLoginAttempts: 3,
  /** Delay before answering a failed login; doubles with each recent failure from the address... */
  loginFailureDelayMs: 500,
  /** ...up to this. */
  maxLoginFailureDelayMs: 8_000,
  /** Failed logins from one address within loginFailureWindowMs after which it is refused... */
  loginFailuresPerAddress: 10,
  loginFailureWindowMs: 10 * 60_000,
  /** ...for this long. */
  loginBlockMs: 5 * 60_000,
  /**
   * Password checks (scrypt, on libuv's thread pool of 4) run at once, server-wide; the others
   * wait their turn, so logins never hold the threads the disk calls need (MuxServer's loginQueue).
   */
  maxConcurrentLoginChecks: 2,
  /** On SIGINT/SIGTERM, transfers in flight get this long to finish. */
  shutdownGraceMs: 10_000,
  /**
   * ...then a connection still busy is told SHUTTING_DOWN and closed within this long (its
   * socket may be full of what a client never read: the ERROR waits behind it that long at most).
   */
  shutdownCutLingerMs: 250,
  /**
   * `serve`, stopped: how long filesystem calls still running (a hung mount's) may keep the
   * process from exiting before it ends without them (by its stop's signal), said in the log.
   */
  stoppedExitWaitMs: 2_000,
  /**
   * The CLI, interrupted: a local call on a path it was given (a stat, a readdir) that has not
   * returned in this long is taken for a hung mount's: said, and the process ends by the signal
   * without waiting for it (an exit waits for the threadpool thread that holds it).
   */
  localCallHungMs: 500,
  /**
   * `serve`, stopping: how long the storage's own work (a sweep stopping at its next directory, a
   * kept partial's removal, a download's file closing) is waited for before `stopped`; past it,
   * what still runs is taken for hung (stoppedExitWaitMs).
   */
  stopStorageWaitMs: 10_000,
  /** `serve --metrics`: the exporter's port when the address names none. */
  metricsPort: 9464,
  /** With a users file and anonymous access on: anonymous's root, under the served root. */
  anonymousHome: 'public',

  /**
   * Frames a connection may hold for its peer (queued, or in the socket's buffer until the kernel
   * takes them); past it the connection is closed with FRAME_FLOOD. As x/net/http2's
   * maxQueuedControlFrames: ~400 bytes each with their write requests, ~4 MiB at most. The
   * server's bound on each client (`maxHeldFramesPerConnection`), and the client's on its server.
   */
  maxHeldFramesPerConnection: 10_000,
  /** Outbound queue: stop pulling file chunks above this many queued bytes... */
  outboundHighWaterBytes: 4 * MiB,
  /** ...and pull again below this many. */
  outboundLowWaterBytes: 1 * MiB,
  /**
   * Server: file data held for clients by all connections together; past it, a connection holding
   * any stops reading the disk for its downloads (shared/transport/outboundBudget.ts).
   */
  serverOutboundHighWaterBytes: 256 * MiB,
  /**
   * Server: the two marks above (downloads waiting on clients, uploads waiting on the disk) are at
   * most this share of the memory the process may use between them (shared/memoryLimit.ts): half
   * of it each. 512 MiB on a machine of 2 GiB or more; in a 200 MB container, 50 MB.
   */
  bufferedShareOfMemory: 1 / 4,
  /**
   * Server: past serverOutboundHighWaterBytes, a connection holding nothing for its client may
   * still take one chunk of at most this many bytes (frame header included), so that none stalls:
   * all together hold at most the budget plus this much per connection.
   */
  serverOutboundTrickleBytes: 64 * KiB,
  /**
   * Server: control frames (replies, errors, credit, listings) held for clients by all connections
   * together, until the kernel takes them; past it, a connection holding any stops reading new
   * requests until they have left (shared/transport/controlFrameBudget.ts). Small frames cost
   * ~4 times their bytes in buffers and write requests.
   */
  serverControlHighWaterBytes: 64 * MiB,
  /**
   * Memory storage: bytes all uploads in flight may have reserved ahead of their data. A declared
   * size is a claim, reserved only once 1/64 of it has arrived; a reservation is address
   * space, not memory, until the data fills it. A file beyond the caps is grown by doubling,
   * each step one synchronous copy into fresh memory (512 MiB on a 1 GiB file: a stall of every
   * connection, and a third more server CPU per upload; bench/README.md).
   */
  memoryMaxReservedBytes: 4 * GiB,
  /**
   * MemoryStorage: past this share of the memory the process may use (its resident size;
   * shared/memoryLimit.ts), a write that would grow a file fails NO_SPACE ("no room left in the
   * server's memory"), and a declared size is not reserved ahead: the server says so instead of
   * being killed, with every file it holds, by the OOM killer.
   */
  memoryStorageShareOfMemory: 3 / 4,
  /** Declared upload sizes one connection may pass to storage as reservation hints at once. */
  maxReservedBytesPerConnection: 2 * GiB,
  /**
   * `--fsync always`: an upload starts flushing its file in the background after each this many
   * bytes written, so the flush before its commit has little left (storage/upload.ts).
   */
  uploadFlushAheadBytes: 32 * MiB,
  /**
   * Disk storage and get's local files: a sample of the free space (statfs) no older than this
   * admits a write whose size fits twice over without asking again (shared/diskRoom.ts); a closer
   * call asks.
   */
  diskRoomSampleMs: 1000,
  /**
   * `serve` on a root where it could not write its lock (a full disk at start): how often it tries
   * again, so that a server started on the root later is refused (storage/servedRootLock.ts).
   */
  servedRootLockRetryMs: 2_000,
  /**
   * A takeover mark beside a served root's lock (storage/servedRootLock.ts) older than this was
   * left by a server that died mid-takeover, which holds it for a millisecond: removed. A start
   * waits up to 1.5 times this for another server's takeover before it is refused.
   */
  servedRootTakeoverMarkStaleMs: 5_000,
  /**
   * `serve` touches its root's lock this often (storage/servedRootLock.ts), and says so in it: a
   * server that cannot check the holder's pid (another host, another container of this hostname)
   * watches the lock for 2.5 times this and takes it over if it did not change.
   */
  servedRootLockHeartbeatMs: 2_000,
  /**
   * Bytes read of what is under the served root's lock name (a line of JSON, a few hundred bytes):
   * a larger file a host user put there is no server's lock, not read whole at every heartbeat.
   */
  maxServedRootLockBytes: 64 * 1024,
  /** A lock declaring a longer heartbeat is judged as one without (honoured when not checkable): a start never waits long on it. */
  servedRootLockHeartbeatMaxMs: 60_000,
  /**
   * `serve` without its root's lock: the start-up sweep removes an upload's temporary file only
   * when it has not changed for this long (an upload in flight on another server changes its
   * file far more often: a stream that moves nothing fails within two idle timeouts), so that a
   * disk filled by a crash's leftovers is freed. Younger ones stay until a start with the lock.
   */
  locklessSweepAgeMs: 60 * 60_000,
  /** How often such a server, still without the lock for want of room, sweeps them again. */
  locklessSweepEveryMs: 5 * 60_000,
  /**
   * File reads (downloads, `put`'s local files) and other fs calls but large data writes run on the
   * loop while each takes at most this long; slower ones send the next ones to the threadpool for a back-off
   * that starts at inlineFileCallBackoffMs and doubles up to inlineFileCallMaxBackoffMs
   * (shared/inlineFileCalls.ts). A 1 MiB read from the page cache takes ~0.1–0.3 ms.
   */
  inlineFileCallSlowMs: 5,
  inlineFileCallBackoffMs: 1_000,
  inlineFileCallMaxBackoffMs: 60_000,
  /**
   * Slow calls that start the first back-off, each among this many calls after the one before: a
   * slow disk makes call after call slow; a lone slow call now and then is the machine.
   */
  inlineFileCallSlowCallsToOffload: 2,
  inlineFileCallSlowCallWindow: 16,
  /** A call on the loop slower than this (ms) starts the first back-off alone: the disk, surely. */
  inlineFileCallVerySlowMs: 20,
  /**
   * File calls on the loop hold it at most about this long in one turn; the next wait for the next
   * turn, so a file read in a loop (a digest) does not keep other connections waiting.
   */
  inlineFileCallTurnBudgetMs: 2,
  /**
   * An upload's write of at most this many bytes runs on the loop too (while file calls are fast):
   * a small file's one write costs less than handing it to the threadpool. Larger ones go there.
   */
  inlineUploadWriteMaxBytes: 64 * KiB,
  /**
   * Uploads: stop reading the socket while this much memory holds received bytes waiting for the
   * disk (their receive blocks, counted whole: ReceivedBytes).
   */
  uploadBacklogHighWaterBytes: 8 * MiB,
  /**
   * Uploads, all connections together: past this much memory holding received bytes waiting for the disk, every
   * connection holding some stops reading until the total is back at half (server/uploadBacklogBudget.ts).
   */
  serverUploadBacklogHighWaterBytes: 256 * MiB,
  /**
   * Received file bytes waiting for a write are copied into blocks of this size (ReceivedBytes),
   * and at most `receivedBlocksFreeBytes` of them are kept between uses, per process.
   */
  receivedBlockBytes: 256 * KiB,
  receivedBlocksFreeBytes: 32 * MiB,
  /**
   * A stream holding no block copies what it receives into a buffer of its own until this much has
   * gathered, then into a block: a stream receiving a few bytes does not hold a whole block, and a
   * TLS socket's 16 KiB records still go into blocks (a fresh buffer for each cost TLS uploads
   * ~13%, bench/README.md).
   */
  receivedOwnBufferBytes: 4 * KiB,

  /** Directory entries looked up (lstat) at once, and sent per step, while listing. */
  listBatchEntries: 256,
  /**
   * Client: entries one listing may bring (4 Mi: a directory far larger than most, ~1 GB held;
   * ~2.5 GB at most, since a REPLY naming an entry in more than maxNameBytes is refused);
   * past it the listing is cancelled (ListingTooLongError): a server sending REPLY frames flagged
   * MORE without end held the CLI's memory without bound.
   */
  maxListingEntries: 4 * 1024 * 1024,
  /**
   * Listings one connection has under way at once; the rest wait their turn, holding nothing. A
   * listing holds its directory's names, sorted, until it is sent: a client asking 256 listings
   * of a 30,000-entry directory and reading none held 256 copies (16 such clients: 4.8 GB). A
   * tree walk asks up to planningRequests at once, each over in a moment.
   */
  listingsAtOncePerConnection: 8,
  /**
   * Memory the names of directories being listed may hold across the server (ListingBudget):
   * a listing whose names hold more than listingNamesUnbudgetedBytes takes its share first, and
   * waits while others hold it. Without it 16 clients asking big listings and reading none held
   * 3.7 GB even at 8 listings per connection.
   */
  listingNamesBudgetBytes: 64 * MiB,
  /** A listing holding less than this (some 500 names of 200 bytes, 2,500 of 40) takes no share. */
  listingNamesUnbudgetedBytes: 256 * KiB,
  /**
   * Server: stored files are hashed (a digest not cached, what an interrupted upload kept, a
   * resumed get's prefix) through read buffers of hashReadBufferBytes, at most this many at once
   * for the whole process, reused;
   * a reader past them waits its turn (storage/hashReadBuffers.ts). Each reader took one of its
   * own before: 1,024 digests at once (--max-open-files) held 1 GiB outside --max-buffered.
   */
  hashReadBuffers: 16,
  /** Of them, what one connection holds at once: one client hashing many large files leaves the rest. */
  hashReadBuffersPerOwner: 4,
  hashReadBufferBytes: 1 * MiB,
  /** A file this small is read through a buffer of its own size, outside the shared ones. */
  hashReadUnsharedBytes: 64 * KiB,

  /** Longest client path in UTF-8 bytes, and longest single name. */
  maxPathBytes: 4096,
  maxNameBytes: 255,
  /** Most names in one client path (a/b/c is 3): bounds the work of one `mkdir -p`. */
  maxPathDepth: 256,

  /** Client: how long to wait for TCP connect plus handshake. */
  connectTimeoutMs: 10_000,
  /**
   * Client (the CLI's retries): a connection whose server refused a new call SHUTTING_DOWN is left
   * to end, for up to this long, before it is replaced: the server lets the transfers in flight on
   * it finish (shutdownGraceMs), and replacing it at once cut them. The grace and a few seconds more.
   */
  drainWaitMs: 15_000,
  /**
   * Client: a server that sends nothing, not even the answer to a PING, for this long while calls
   * wait on it is given up on (CONNECTION_LOST; the CLI's --retries then reconnect and continue).
   * A minute, lftp's net:timeout is five: long enough for a loaded server's answer, short enough
   * that a stopped one does not hang a transfer for the 2 hours TCP keepalive would take.
   */
  responseTimeoutMs: 60_000,
  /**
   * Server: how often a connection whose reading is held back (uploads waiting for the disk) gets
   * a PING, as its HELLO's keepaliveMs asks, within these bounds: more often than once a second
   * for every such connection would be a cost a client could make the server pay.
   */
  minKeepaliveMs: 1_000,
  maxKeepaliveMs: 60_000,
  /**
   * Server: how often a connection whose reading is held back, for a client that asked for no
   * PING, is probed with an empty write: a socket not read never sees the peer's reset (the kernel
   * says it to a read or a write), so a client gone while its upload waited for a stalled disk
   * was logged cut, and its descriptor freed, only once the disk answered. One write(2) of no
   * bytes per held connection per second.
   */
  heldReadingProbeMs: 1_000,
  /**
   * get -c: at most this many block digests in a resumed download's REPLY (8 GiB of 4 MiB
   * blocks; 2048 sha256 digests in hex fit the control-frame limit). Beyond, the rest is sent again.
   */
  maxResumeBlocks: 2048,
  /**
   * Server: file versions whose digests storage remembers (storage/digestCache.ts), and the memory
   * they may hold. A version not remembered is read and hashed again when asked for: as it is
   * sent, for `stat --hash` and `--skip-identical`, and the prefix a `get -c` continues after. Each
   * costs about 1 KiB of heap, and ~200 B more per 4 MiB block: with only the count's bound, one
   * `put -r` of 100,000 small files left 118 MB of heap after GC for good (10 MB before), as long
   * as the files stayed. 64 MiB: some 55,000 small files, or 326,000 blocks (1.3 TB of large
   * files); past it the versions set or served longest ago go first (so a tree larger than that,
   * read whole again and again, is hashed each time). The count's bound only matters with a larger
   * memory one.
   */
  digestCacheMaxEntries: 100_000,
  digestCacheMaxBytes: 64 * MiB,
  /**
   * A tree walk that follows symbolic links to directories (the client's get -r and ls -r, the
   * server's count of a home's bytes for its quota) follows one only through at most this many
   * links on its way down, and at most `maxLinksFollowed` in all: a link loop (two links to `.`)
   * is otherwise walked without end, each level twice as wide.
   */
  maxLinksOnTheWay: 4,
  maxLinksFollowed: 1024,
  /**
   * Server: how long an interrupted resumable upload's data is kept for a `put -c` (issue #8);
   * 0 keeps nothing. `serve --partial-retention`.
   */
  partialRetentionMs: 24 * 60 * 60 * 1000,
  /**
   * Server: an upload or `partial` query of data a resumable upload still writes fails that
   * upload (its whole blocks kept) once it has moved no data for this long, or for the idle
   * timeout if shorter, and continues what it kept: the retry of a client whose connection stalled
   * (server/resumableUploads.ts). Well under a client's 60 s response timeout, after which it retries.
   */
  stalledUploadTakeoverMs: 10_000,
  /**
   * Server: how long a taker waits for a stalled upload to give way (what it wrote kept); past
   * it (the abort stuck on a hung disk) it goes on with what is kept by then.
   */
  stalledUploadGiveWayWaitMs: 5_000,
  /** Server: how often expired partial uploads are looked for (at most; a shorter retention is used instead). */
  partialSweepIntervalMs: 10 * 60 * 1000,
  /** CLI: transfers at once for multi-file commands. */
  parallel: 8,
  /**
   * CLI: local file calls at once where a command makes one per entry of a tree (put -r's walk
   * stats each name, get -r sets each directory's time). They run on the loop while the disk is
   * fast (InlineFileCalls), so more would gain nothing; all of a directory's at once held a
   * suspended call each (some 3 KiB): 160 MB of heap for one directory of 50,000 files, and a
   * run under a 96 MB heap ran out of memory.
   */
  localCallsAtOnce: 64,
  /**
   * CLI: requests at once while a multi-file command plans (get's stat of each remote, a tree's
   * listings, put's mkdirs): small requests, not transfers, so -j does not cap them below this.
   */
  planningRequests: 64,
  /**
   * CLI: what is at the remote paths of a directory that this many or more of a command's paths
   * are in (put --skip-unchanged/--skip-identical's remote copies, the files get names) comes
   * from one listing of it, as rsync and lftp mirror do, rather than a stat each (a request and a
   * stream at both ends per file: a 7,000-file tree's check took three times `ls -r` of it).
   * Fewer: a stat each, which does not read a large directory for one file (cli/crowdedDirectories.ts).
   */
  listDirectoryFromPaths: 8,
  /**
   * ... but not a directory of more than this many entries per path (the listing asks with
   * `maxEntries`, refused by the server before it sorts the names): a stat each instead. An entry
   * listed costs about a tenth of a stat (a 20,000-entry directory read whole for 10 files took
   * twice their stats), and a 300,000-entry one read and sorted for 8 files 0.6 s of the server's CPU.
   */
  listEntriesPerPath: 16,
  /**
   * CLI: times a transfer is tried again after its connection dropped (`--retries`): with the
   * backoff below, 15.5–31 s in all, through a server's restart or a short outage (3 spanned
   * 3.5–7 s: the files in flight through an 8 s one failed while those queued went through).
   */
  retries: 5,
  /**
   * CLI: how long a transfer refused SERVER_BUSY on a connection that stays up keeps trying again
   * on it, from its first such refusal (each try after the server's retry-after hint, else the
   * backoff): an open-file contention lasts openFileContentionMs (10 s), so a count of retries
   * with a backoff could give up on a file the server would serve a few seconds later.
   */
  serverBusyRetryMs: 60_000,
  /**
   * CLI: the least wait between two tries of a transfer refused SERVER_BUSY, after the first retry,
   * whatever the hint says (a hint of 0, "again at once", twice in a row would make a tight loop).
   */
  serverBusyRetryMinDelayMs: 100,
  /**
   * CLI: at most one "server busy, trying again" line per this long for a whole command, not one
   * per refused file (a get -r of thousands under an open-file cap printed thousands); each
   * waiting file's bar says "(server busy)".
   */
  busyNoticeIntervalMs: 10_000,
  /**
   * CLI: how long a `retry k/N` line waits to count the transfers one lost connection (or one
   * stall) sends back to retry, said in one line (cli/retryNotices.ts); under the shortest
   * backoff (half of retryBaseDelayMs), so the line comes before the retry.
   */
  retryNoticeGatherMs: 100,
  /** Backoff before reconnecting: between half and all of base · 2^attempt (at most max). */
  retryBaseDelayMs: 1_000,
  retryMaxDelayMs: 30_000,
} as const;
