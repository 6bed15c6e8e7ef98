/**
 * The muxftp client library: one connection, many operations at once. Every call opens a stream;
 * their frames interleave on the socket, uploads take turns on the outbound queue, and every
 * server error surfaces as a RemoteError carrying the server's code.
 */

import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { characterProblem } from '../shared/clientPaths.js';
import { DEFAULTS } from '../shared/defaults.js';
import {
  ConnectionLostError,
  ERROR_STATUS,
  type ErrorCode,
  type ErrorDetails,
  endedConnectionWith,
  MuxftpError,
  ProtocolError,
  RemoteError,
  refusedForUploadBacklog,
  SettingError,
} from '../shared/errors.js';
import {
  DIGEST_BYTES,
  INTEGRITY_ALGORITHMS,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
  isIntegrityAlgorithm,
} from '../shared/integrity/algorithms.js';
import { prepareBlockHashes } from '../shared/integrity/blockHash.js';
import {
  Flags,
  FRAME_TYPE_NAMES,
  FrameType,
  MAX_CREDIT,
  MAX_STREAM_ID,
  MIN_FRAME_PAYLOAD_BYTES,
  PROTOCOL_NAME,
  PROTOCOL_VERSION,
} from '../shared/protocol/constants.js';
import { encodeAuth, encodeCancel, encodeHello, encodeOpen, encodePing } from '../shared/protocol/encoder.js';
import { creditTaken, type Frame } from '../shared/protocol/frame.js';
import {
  ANONYMOUS_USER,
  parseAuthResult,
  parseEnd,
  parseErrorPayload,
  parseJsonObject,
  parseWelcome,
  parseWindow,
  type Request,
  type ServerStats,
  type SpaceReport,
  type Welcome,
  type WireEntry,
} from '../shared/protocol/messages.js';
import type { ReplyOf, RequestOf } from '../shared/protocol/operations.js';
import { timerDelay } from '../shared/timerDelay.js';
import { WindowBudget } from '../shared/transport/flow.js';
import { FramedSocket } from '../shared/transport/framedSocket.js';
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';
import { RateLimiter, Throttle } from '../shared/transport/rateLimiter.js';
import { RoundTripSampler } from '../shared/transport/roundTrips.js';
import { SharedBufferReads } from '../shared/transport/sharedReadBuffer.js';
import { packageVersion } from '../shared/version.js';
import { leftAloneFor } from './downloadsLeftBehind.js';
import { type LocalDigestMemo, localBlockDigests, localSourceIdentity } from './localDigests.js';
import {
  type ByteSink,
  ContinueSink,
  DiscardSink,
  type GetTarget,
  isSpecialFile,
  type KeptPartial,
  keptPartialPath,
  MemorySink,
  openSink,
} from './sinks.js';
import { type ByteSource, holdStreamErrors, localError, openSource, type PutSource } from './sources.js';
import {
  type ClientStream,
  callCaller,
  GetCall,
  type GetResult,
  type GetResume,
  KeptPartialDiffersError,
  type KnownDigest,
  LocalPartialRefusedError,
  type ProgressCallback,
  PutCall,
  type PutResult,
  RequestCall,
} from './streams.js';

/** How {@link Client.connect} reaches the server and the limits it asks for; every field is optional. */
export interface ClientOptions {
  /** Server host. Default 127.0.0.1. */
  host?: string;
  /** Server port. Default 7421. */
  port?: number;
  /** Give up on connect plus handshake after this long (ms). Default 10000 (10 s). */
  connectTimeoutMs?: number;
  /** Download credit granted per stream at first (bytes). Default 4 MiB. */
  streamWindowBytes?: number;
  /**
   * Largest a download's window grows to while the server is starved for credit and the sink keeps
   * up (bytes). Default 32 MiB.
   */
  streamWindowMaxBytes?: number;
  /**
   * What all download windows of the connection together may grow beyond their initial size
   * (bytes). Default 64 MiB.
   */
  connectionWindowGrowthBytes?: number;
  /** Largest DATA payload sent (bytes); also capped by the server's limit. Default 256 KiB. */
  chunkBytes?: number;
  /** Largest frame payload accepted (bytes, at least 16 KiB). Default 1 MiB. */
  maxFramePayloadBytes?: number;
  /** Bytes held for the server before uploads stop reading their sources. Default 4 MiB. */
  outboundHighWaterBytes?: number;
  /** Uploads resume reading once the bytes held fall to this (bytes). Default 1 MiB. */
  outboundLowWaterBytes?: number;
  /** Sent in HELLO, shown in server logs. Default `muxftp-client/<package version>`. */
  agent?: string;
  /**
   * Integrity algorithms accepted, in order of preference; the server takes the first it supports.
   * Default `['xxh128', 'sha256']`; `['sha256']` insists on SHA-256 (Dropbox's content_hash).
   */
  integrity?: IntegrityAlgorithm[];
  /** Connect over TLS; `true` checks the server against the system's CAs. Default plain TCP. */
  tls?: boolean | ClientTlsOptions;
  /**
   * Log in as this user (the server needs a users file). Without it: anonymous when the server
   * requires a login; `anonymous` without a password is the same, but fails if the server has none.
   */
  user?: string;
  /**
   * The user's password; sent only after the server said it may be (over TLS when the server
   * offers TLS). Without it, a server that requires a login is sent none: connect rejects with a
   * SettingError (`password`), and one that takes no logins is connected to as it is.
   */
  password?: string;
  /**
   * Aborting it before the handshake is done gives up: connect() rejects with CANCELLED and the
   * socket is closed at once (Ctrl-C while a server takes its time). No effect once connected.
   */
  signal?: AbortSignal;
  /**
   * Requests (stat, list, digest, mkdir, delete, rename, …; not put and get, whose callers decide)
   * the server refuses SERVER_BUSY while the connection stays up (its open-file cap, say) are sent
   * again on it after the wait the policy this makes gives, one policy per request; when it gives
   * none the call rejects with the refusal. Default: none, every refusal rejects (a load generator
   * counts them). A throw from it, or from its `next`, fails that request alone, as
   * LOCAL_IO_ERROR with the thrown value as cause.
   */
  busyRetries?: () => BusyRetryPolicy;
  /**
   * Bytes per second each way, all of this connection's transfers together: uploads send and
   * downloads grant credit no faster (`put`/`get --limit-rate`, as curl's). Default 0: no limit.
   */
  maxRate?: number;
  /**
   * A server that sends nothing for this long while calls wait on it fails the connection
   * (CONNECTION_LOST): it is pinged after a quarter of it, so a slow server (hashing a large file,
   * committing to a slow disk) still answers, and only a silent one (stopped, cut off without a
   * reset) is given up on. Servers that do not answer PING are never timed out. 0: wait forever.
   * Connecting, no WELCOME within it (when shorter than connectTimeoutMs) fails CONNECT_FAILED.
   * Default 60000 (a minute).
   */
  responseTimeoutMs?: number;
}

/** How one request refused SERVER_BUSY is tried again ({@link ClientOptions.busyRetries}). */
export interface BusyRetryPolicy {
  /** The wait (ms) before trying again after `refusal`, or undefined to give up. */
  next(refusal: MuxftpError): number | undefined;
}

/** How the client checks the server's certificate when {@link ClientOptions.tls} is on. */
export interface ClientTlsOptions {
  /** PEM CA certificate(s) that sign the server's certificate (a private CA). */
  ca?: string | Buffer;
  /** false accepts any certificate: the connection is encrypted but the server unverified. Default true. */
  rejectUnauthorized?: boolean;
  /** Name checked against the certificate. Default the host, unless it is an IP address. */
  servername?: string;
}

/**
 * Per-call options of {@link Client.put}, {@link Client.get} and {@link Client.getBuffer}.
 *
 * A callback here that throws (onProgress, onRestart, onNothingKept, onContinue, onLeftAlone) fails its call
 * alone: the call rejects with a `MuxftpError` LOCAL_IO_ERROR (`onProgress threw: …`) whose
 * `cause` is what was thrown, and its stream is cancelled (an upload is not stored); the
 * connection and the other calls on it go on. A throw from onPartialKept is ignored: the call
 * rejects with its own failure all the same.
 */
export interface TransferOptions {
  /** Called as bytes move, with the bytes done and the total when known. */
  onProgress?: ProgressCallback;
  /** Aborting cancels the transfer: the server drops it, the call rejects with CANCELLED. */
  signal?: AbortSignal;
  /**
   * put only: the source's content digests, when the caller already knows them (a benchmark's
   * seeded payloads). The client then does not hash if one is under the connection's algorithm;
   * the server still verifies every byte against it.
   */
  knownDigests?: readonly KnownDigest[];
  /**
   * get to a local path only (`get -c`): continue what a failed download into this path kept
   * (`keepPartial`; kept again should this download fail too), else the partial file already there. The server picks the offset (a whole
   * block) and sends the digests of the blocks before it. If what was kept differs, it is dropped
   * and the file downloaded afresh (`onRestart` says so); if the partial file under the target's
   * name differs, the call rejects with INTEGRITY_ERROR and leaves that file as it was. The whole
   * file is verified at the end, and replaces the target only then.
   *
   * put from a local file path (`put -c`): `resumable`, and first ask the server what it holds of
   * an earlier interrupted upload of this same file. The server decides the offset; its blocks'
   * digests must match the local file's first blocks, else the upload starts over from 0
   * (`onRestart` says why). The whole file's D is checked at the end either way.
   */
  continue?: boolean;
  /**
   * With `continue`: a local file under the target's name that is no partial copy of the server's
   * (it differs at a block, or is larger) is replaced by a fresh download (`onRestart` says why)
   * instead of refused. For a tree walk continuing a sync (`get -r -c`), whose files may have
   * changed on the server since; a file the user named is refused.
   */
  replaceDiffering?: boolean;
  /**
   * put from a local file path only (issue #8): declare the file's size and D before sending, so
   * that if the upload is interrupted the server keeps its whole blocks for a resume (for its
   * `--partial-retention`). The digest is computed as the file is sent (a resume reads the kept
   * blocks' share of the local file first, to check them). Files under one block
   * (4 MiB) never leave a partial and are sent as usual.
   */
  resumable?: boolean;
  /**
   * A put with `continue`, or a get continuing what was kept (`continue`, `resumeKept`), that
   * could not reuse it (another version of the file), and why: it starts over from 0.
   */
  onRestart?: (reason: string) => void;
  /**
   * A put with `continue` found nothing kept to continue (none of this file as it is now, with
   * this checksum algorithm; `inUse`: what is kept another upload writes now, as a second put -c
   * of the file at once): it sends the whole file.
   */
  onNothingKept?: (inUse: boolean) => void;
  /**
   * A transfer that continues (put or get with `continue`, a get with `resumeKept`): told once
   * the server agreed where it continues, before the rest moves, with the bytes already at the
   * destination (`onProgress` counts them among the bytes done; they are not moved again).
   */
  onContinue?: (fromBytes: number) => void;
  /**
   * get with `continue`: told the path of each download in progress for this target that a get of
   * an older muxftp left (its name tags the host by the hostname alone), whose process runs
   * nothing here but may in another container or pid namespace of this hostname: it is neither
   * continued nor removed (taking it over made two writers of one file). Told once per path and process.
   */
  onLeftAlone?: (path: string) => void;
  /**
   * get to a local path only: when the download fails (anything but a failed verification:
   * the connection lost, the server's error, a cancel), keep its whole 4 MiB blocks in a hidden
   * file beside the target, `.muxftp-get-<hash>.part` (it replaces what an earlier failure kept
   * there), for a later `continue` or `resumeKept` to continue; a success removes that file.
   * Without it a failed download leaves nothing. Either way the download is written under a name
   * of its process's (`.muxftp-get-<hash>.<host tag>-<pid>-<run>-<n>.part`): what a process killed
   * outright left is continued by a later `continue` once that process is gone (this host's, this
   * user's), and removed by a later get of the target that succeeds. A FIFO, device or stream keeps nothing.
   */
  keepPartial?: boolean;
  /** With `keepPartial`: told where a failure kept what, after it was kept and before the call rejects. */
  onPartialKept?: (kept: KeptPartial) => void;
  /**
   * get to a local path only, for callers that retry (`--retries`): continue what a failed attempt
   * kept (`keepPartial`), checked block by block as with `continue`, or start afresh when there is
   * none or it differs; never the file under the target's name.
   */
  resumeKept?: boolean;
  /**
   * get to a local path only: whether the target is written in place (an existing FIFO or device,
   * see `isSpecialFile`) or replaced, for a caller that has looked already (the CLI does, to know
   * whether the download may be retried): the client then does not stat the target again.
   * Default: the client looks.
   */
  writesInPlace?: boolean;
  /**
   * put from a local path only: read it only if it is a regular file, for a caller that found one
   * there (the CLI's put, which plans its files first): anything else found at the open (a FIFO
   * swapped in since) fails LOCAL_IO_ERROR `not a regular file: PATH`, never waited on. Default:
   * a FIFO or device is read to its end, as a stream.
   */
  regularFileOnly?: boolean;
  /**
   * put only: false declines the handshake's initial upload window — the put sends nothing before
   * the server's first WINDOW (a round trip), and a server whose upload bytes waiting for the disk
   * are past their ceiling admits it to wait for credit instead of refusing it SERVER_BUSY. For
   * retrying a put refused so. Honoured by servers that allow it (WELCOME
   * `uploadInitialWindowOptional`); others get the put as usual. Default: the client's choice,
   * which declines it for a while after such a refusal on the connection; true takes it even then.
   */
  initialWindow?: boolean;
  /**
   * get with `continue` or `resumeKept`, put with `continue`: the local file's block digests
   * computed by an earlier try of this transfer, for a caller that tries it again (after
   * SERVER_BUSY, say): one memo for all of a transfer's tries, and an unchanged file is not read
   * again to hash it.
   */
  localDigests?: LocalDigestMemo;
  /**
   * Keep modification times: a put from a local file gives the remote file the local one's (a
   * server that does not know OPEN's `mtime` ignores it; the result's entry shows the time the
   * file got), a get into a local file gives it the server's (REPLY's `mtime`). Default: the time
   * of writing. Not for stdin, buffers, streams, FIFOs or devices.
   */
  keepTimes?: boolean;
  /**
   * Keep permission bits, as scp and rsync give a new file: a put from a local file asks the
   * server to give the remote file the local one's (less the server's umask, and never without
   * the server's own read and write; a server that does not know OPEN's `mode` ignores it), a get
   * into a local file gives it the server's (REPLY's `mode`) less this process's umask; the file
   * is its owner's alone (0600) until it is given them. Default: what a new file gets there (the
   * umask, or its directory's default ACL). Not for stdin, buffers, streams, FIFOs or devices.
   */
  keepModes?: boolean;
}

/**
 * Options every request that is not a transfer takes ({@link Client.list}, {@link Client.stat},
 * {@link Client.mkdir}, …).
 */
export interface RequestOptions {
  /**
   * Aborting cancels the request: the call rejects with CANCELLED, whose `cause` is the signal's
   * reason, and the server drops the stream (a listing or a digest stops reading); the connection
   * and the other calls on it go on. One aborted already rejects at once and sends nothing. A
   * change the server made before the cancel reached it (a mkdir, a delete) stays made.
   */
  signal?: AbortSignal;
}

/** Rename's `noReplace` asked of a server that does not say it honours it. */
export const noReplaceUnsupported = (): MuxftpError =>
  new MuxftpError(
    'UNSUPPORTED',
    'the server cannot keep a file a move would replace (a muxftp from before it): nothing moved',
  );

/** {@link Client.rename}'s options. */
export interface RenameOptions extends RequestOptions {
  /**
   * Keep a file already at `to`: the call rejects with ALREADY_EXISTS and nothing moves (mv's
   * --no-clobber), decided by the server in the same step as the move. A server from before it
   * would replace the file: the call rejects with UNSUPPORTED, and sends nothing.
   */
  noReplace?: boolean;
}

/** A remote file's content digest, as {@link Client.digest} reports it. */
export interface DigestResult {
  /** The file as the server found it before reading it for the digest. */
  entry: WireEntry;
  /** The algorithm the digest is under: the one asked for (default: the connection's). */
  algorithm: IntegrityAlgorithm;
  /** Hex. */
  digest: string;
}

export type { KnownDigest, ProgressCallback, PutResult, SpaceReport, WireEntry };

/** The streams one AbortSignal serves, behind its one 'abort' listener. */
class AbortGroup {
  readonly streams = new Set<ClientStream>();
  readonly #signal: AbortSignal;
  constructor(signal: AbortSignal) {
    this.#signal = signal;
  }
  readonly onAbort = (): void => {
    for (const stream of [...this.streams]) stream.cancel(cancelledBy(this.#signal));
  };
}

/** CANCELLED, with why the signal aborted (a timeout's TimeoutError, the caller's reason) as its cause. */
function cancelledBy(signal: AbortSignal): MuxftpError {
  return new MuxftpError('CANCELLED', 'cancelled', { cause: signal.reason });
}

/**
 * A known digest not of its algorithm's length (hex, say) would be thrown by the END's encoder,
 * outside any call: the process ended, or the put waited for ever.
 */
function checkKnownDigests(known: unknown): void {
  if (known === undefined) return;
  if (!Array.isArray(known)) throw new TypeError('put: knownDigests must be an array');
  for (const entry of known as Array<Partial<KnownDigest> | null>) {
    const algorithm = entry?.algorithm;
    if (!isIntegrityAlgorithm(algorithm))
      throw new TypeError(
        `put: knownDigests: the algorithm must be one of ${INTEGRITY_ALGORITHMS.join(', ')}`,
      );
    const digest = entry?.digest;
    if (!Buffer.isBuffer(digest) || digest.length !== DIGEST_BYTES[algorithm])
      throw new TypeError(
        `put: knownDigests: an ${algorithm} digest is its ${DIGEST_BYTES[algorithm]} raw bytes, as a Buffer (not hex)`,
      );
  }
}

/**
 * {@link ClientOptions} with every default filled in. `tls` is the certificate checks, or
 * undefined for plain TCP (`tls: true` resolves to `{}`: the system's CAs).
 */
export type ResolvedClientOptions = Required<
  Omit<ClientOptions, 'tls' | 'user' | 'password' | 'signal' | 'busyRetries'>
> &
  Pick<ClientOptions, 'user' | 'password' | 'busyRetries'> & { tls: ClientTlsOptions | undefined };

/** An option's value in a message: a string quoted and named as one (`the string "7421"`). */
function shownValue(value: unknown): string {
  return typeof value === 'string' ? `the string ${JSON.stringify(value)}` : String(value);
}

function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const resolved: ResolvedClientOptions = {
    host: options.host ?? DEFAULTS.host,
    port: options.port ?? DEFAULTS.port,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    streamWindowBytes: options.streamWindowBytes ?? DEFAULTS.streamWindowBytes,
    streamWindowMaxBytes: options.streamWindowMaxBytes ?? DEFAULTS.streamWindowMaxBytes,
    connectionWindowGrowthBytes: options.connectionWindowGrowthBytes ?? DEFAULTS.connectionWindowGrowthBytes,
    chunkBytes: options.chunkBytes ?? DEFAULTS.chunkBytes,
    maxFramePayloadBytes: options.maxFramePayloadBytes ?? DEFAULTS.maxFramePayloadBytes,
    outboundHighWaterBytes: options.outboundHighWaterBytes ?? DEFAULTS.outboundHighWaterBytes,
    outboundLowWaterBytes: options.outboundLowWaterBytes ?? DEFAULTS.outboundLowWaterBytes,
    agent: options.agent ?? `muxftp-client/${packageVersion()}`,
    tls: options.tls === true ? {} : options.tls === false ? undefined : options.tls,
    user: options.user,
    password: options.password,
    integrity: options.integrity ?? [...INTEGRITY_ALGORITHMS],
    busyRetries: options.busyRetries,
    maxRate: options.maxRate ?? 0,
    responseTimeoutMs: options.responseTimeoutMs ?? DEFAULTS.responseTimeoutMs,
  };
  if (!Number.isFinite(resolved.responseTimeoutMs) || resolved.responseTimeoutMs < 0) {
    throw new TypeError(
      `client: responseTimeoutMs must be a non-negative number, got ${shownValue(resolved.responseTimeoutMs)}`,
    );
  }
  if (!Number.isFinite(resolved.maxRate) || resolved.maxRate < 0) {
    throw new TypeError(`client: maxRate must be a non-negative number, got ${shownValue(resolved.maxRate)}`);
  }
  if (resolved.busyRetries !== undefined && typeof resolved.busyRetries !== 'function') {
    throw new TypeError('client: busyRetries must be a function');
  }
  if (typeof resolved.host !== 'string' || resolved.host === '') {
    throw new TypeError(`client: host must be a non-empty string, got ${shownValue(resolved.host)}`);
  }
  // Else node's ERR_SOCKET_BAD_PORT (a RangeError, not a TypeError naming the option) or, for 0,
  // a connection attempt to a port nothing listens on.
  // `port: process.env.PORT` is a string: said as one, or "got 7421" reads as a port refused.
  if (typeof resolved.port !== 'number') {
    throw new TypeError(`client: port must be a number, got ${shownValue(resolved.port)}`);
  }
  if (!Number.isSafeInteger(resolved.port) || resolved.port < 1 || resolved.port > 65535) {
    throw new TypeError(`client: port must be an integer from 1 to 65535, got ${shownValue(resolved.port)}`);
  }
  if (resolved.user !== undefined && (typeof resolved.user !== 'string' || resolved.user === '')) {
    throw new TypeError('client: user must be a non-empty string');
  }
  if (resolved.password !== undefined && typeof resolved.password !== 'string') {
    throw new TypeError('client: password must be a string');
  }
  const { integrity } = resolved;
  if (
    !Array.isArray(integrity) ||
    integrity.length === 0 ||
    !integrity.every(isIntegrityAlgorithm) ||
    new Set(integrity).size !== integrity.length
  ) {
    throw new TypeError(
      `client: integrity must list distinct algorithms of ${INTEGRITY_ALGORITHMS.join(', ')}, got ${String(integrity)}`,
    );
  }
  for (const key of [
    'connectTimeoutMs',
    'streamWindowBytes',
    'streamWindowMaxBytes',
    'connectionWindowGrowthBytes',
    'chunkBytes',
    'maxFramePayloadBytes',
    'outboundHighWaterBytes',
    'outboundLowWaterBytes',
  ] as const) {
    if (!Number.isSafeInteger(resolved[key]) || resolved[key] <= 0) {
      throw new TypeError(`client: ${key} must be a positive integer, got ${shownValue(resolved[key])}`);
    }
  }
  // Else the outbound queue's RangeError, thrown with the socket already connecting (left open).
  if (resolved.outboundLowWaterBytes > resolved.outboundHighWaterBytes) {
    throw new TypeError(
      `client: outboundLowWaterBytes (${resolved.outboundLowWaterBytes}) must not exceed outboundHighWaterBytes (${resolved.outboundHighWaterBytes})`,
    );
  }
  // Each get's window is credit, which the protocol bounds (docs/PROTOCOL.md "Flow control").
  if (resolved.streamWindowBytes > MAX_CREDIT) {
    throw new TypeError(
      `client: streamWindowBytes must be at most ${MAX_CREDIT} (2^31 - 1), got ${resolved.streamWindowBytes}`,
    );
  }
  if (resolved.maxFramePayloadBytes < MIN_FRAME_PAYLOAD_BYTES) {
    throw new TypeError(`client: maxFramePayloadBytes must be at least ${MIN_FRAME_PAYLOAD_BYTES}`);
  }
  return resolved;
}

/** Certificate checks node's TLS reports by these codes. */
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

/** Certificates a CA does not help with: the hint to pass one would send the user the wrong way. */
const WRONG_CERTIFICATE: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's TLS certificate is not for the name or address connected to",
  CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
  CERT_NOT_YET_VALID: "the server's TLS certificate is not valid yet",
  // A client's certificate, or one whose extended key usage leaves out serverAuth.
  INVALID_PURPOSE: "the server's TLS certificate is not one for a server, by its key usage",
};

/**
 * A plain-language reason for a failed TLS handshake, and the setting that would help (a CA, or
 * no TLS), or undefined when it was not one. `caGiven`: the client was given a CA, so an
 * untrusted certificate is not signed by that one.
 */
function tlsFailureReason(
  error: unknown,
  caGiven: boolean,
): { reason: string; code: string; setting?: SettingError['setting'] } | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') continue;
    if (UNTRUSTED_CERTIFICATE.has(code)) {
      const reason = caGiven
        ? `the server's TLS certificate is not signed by the CA given (${code})`
        : `the server's TLS certificate is not trusted (${code})`;
      return { reason, code, setting: caGiven ? 'otherCa' : 'ca' };
    }
    const wrong = WRONG_CERTIFICATE[code];
    if (wrong !== undefined) return { reason: `${wrong} (${code})`, code };
    // A plain server answers the ClientHello with a muxftp frame: "wrong version number" (EPROTO).
    if (
      code.startsWith('ERR_SSL_') ||
      code === 'EPROTO' ||
      (cause as { library?: unknown }).library === 'SSL routines'
    ) {
      return {
        reason: `TLS handshake failed (${code}): the server does not seem to speak TLS`,
        code,
        setting: 'plain',
      };
    }
  }
  return undefined;
}

/**
 * Whether `error` (or one of its causes) is a connect that failed on the server's certificate: not
 * trusted, expired, for another name, not one for a server. Another try meets the same certificate.
 * Not a handshake that failed otherwise: a server that seems not to speak TLS may be one past its
 * lingering refusals, which refuses a TLS client in plain (server.ts refuseInKind). Nor one not
 * valid yet: issued that second (openssl dates it now) for a server restarted with it, and this
 * machine's clock a few seconds behind the CA's, it is valid by a later try.
 */
export function failedCertificateCheck(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof MuxftpError && cause.code === 'CONNECT_FAILED') {
      const failure = tlsFailureReason(cause.cause, false);
      return failure !== undefined && failure.setting !== 'plain' && failure.code !== 'CERT_NOT_YET_VALID';
    }
  }
  return false;
}

/** What a put sends: its source (read from `offset`), its OPEN, and a resumed upload's prefix digests. */
interface PutPlan {
  byteSource: ByteSource;
  request: RequestOf<'upload'>;
  offset: number;
  prefix: Buffer[];
}

/**
 * A connection to a muxftp server. Every method opens its own stream on the one connection, so
 * calls may run concurrently (`Promise.all` over many puts is the intended use); a server error
 * rejects that call only, with a {@link RemoteError} carrying the server's code.
 *
 * Remote paths are relative to the account's home (the served root without a login), names
 * separated by '/': `backup/a.bin`. There is no leading '/' (`/backup` is INVALID_PATH, where the
 * CLI drops it), `''` is the home itself, and `..` is INVALID_PATH. A trailing '/' means a
 * directory, as in POSIX and the CLI: `delete('f/')` or `stat('f/')` of a file fails
 * NOT_A_DIRECTORY and leaves it, `put('x/', …)` fails IS_A_DIRECTORY.
 */
// Not `implements ClientHost`: what the streams use of it is internal, left out of the published
// declarations (stripInternal), which would then not match; each stream checks `this` as one.
export class Client {
  /** The options in force: the caller's, with defaults filled in. */
  readonly options: ResolvedClientOptions;
  private readonly transport: FramedSocket;
  /** @internal What the connection's download windows may grow by, together. */
  readonly windowBudget: WindowBudget;
  /** @internal Round trips sampled for download window growth; undefined for a server that does not answer PING. */
  roundTrips: RoundTripSampler | undefined;
  /** @internal `maxRate` for uploads and for downloads (undefined: none). */
  readonly uploadThrottle: Throttle | undefined;
  /** @internal */
  readonly downloadThrottle: Throttle | undefined;
  private readonly streams = new Map<number, ClientStream>();
  /** Streams waiting for one of the server's maxStreams slots, with the frames that open them. */
  private readonly waitingToOpen: Array<{ stream: ClientStream; frames: Buffer[] }> = [];
  private nextStreamId = 1;
  private welcome: Welcome | undefined;
  /** What the server's answer to the login said this account may do; undefined without a login. */
  private loginPermissions: readonly string[] | undefined;
  /** Streams may open: the WELCOME came, and the login when the server asked for one. */
  private ready = false;
  private lostError: MuxftpError | undefined;
  private handshake: { resolve(): void; reject(err: Error): void } | undefined;
  /** Until WELCOME: the response timeout's bound on a server that takes the connection and says nothing. */
  private welcomeTimer: NodeJS.Timeout | undefined;
  /**
   * Settles once the connection has ended, for any reason, and never rejects: with undefined when
   * this side ended it (`close()`, `destroy()`), else with the error the calls on it reject with,
   * which is {@link MuxftpError.fatal}: the server's code as a {@link RemoteError} when the server
   * ended it (`SHUTTING_DOWN`, `IDLE_TIMEOUT`, …), a {@link ConnectionLostError}
   * (`CONNECTION_LOST`) when it went otherwise (a reset, a server that stopped answering within
   * `responseTimeoutMs`). A pooled client can watch it to replace itself while idle.
   */
  readonly closed: Promise<MuxftpError | undefined>;
  private markClosed!: (reason: MuxftpError | undefined) => void;
  /** The connection has ended: close() and destroy() settle when it has. */
  private readonly ended: Promise<void>;
  /** close() or destroy() ended the connection (closed then settles with undefined). */
  private endedHere = false;
  private closeRequested = false;
  /** Who the connection is to, for messages: `host:port`, or "the server" for over(). */
  private readonly peer: string;
  /**
   * The streams each caller's AbortSignal serves. One listener per signal, not per stream: the
   * CLI passes one signal to every transfer, and a listener each made Node warn past ten.
   */
  private readonly abortGroups = new Map<AbortSignal, AbortGroup>();
  /** performance.now() until which puts decline the initial window (a SERVER_BUSY refusal's pause). */
  private initialWindowPausedUntil = 0;
  /** performance.now() of the last frame from the server, or of the first call waiting on it. */
  private lastHeardAt = 0;
  /** Looks for a silent server while calls wait on it (responseTimeoutMs). */
  private silenceWatch: NodeJS.Timeout | undefined;
  /** performance.now() of its last look. */
  private lastLookAt = 0;
  /** A late look already gave this silence the rest of the timeout (lookForSilence). */
  private graceGiven = false;
  /** The socket's TCP connection is made (false too for a byte stream that is no socket). */
  private readonly tcpConnected: () => boolean;
  private pingsSent = 0;
  /** pingFlooded(): the kernel's count of our frames taken at the last PING, and PINGs since. */
  private framesTakenAtPing = 0;
  private pingsSinceTaken = 0;

  private constructor(
    options: ResolvedClientOptions,
    socket: Duplex,
    peer: string,
    sharedReads?: SharedBufferReads,
  ) {
    this.options = options;
    this.peer = peer;
    this.tcpConnected = () => (socket as Partial<Socket>).connecting === false;
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    this.ended = this.closed.then(() => undefined);
    this.windowBudget = new WindowBudget(this.options.connectionWindowGrowthBytes);
    const limit = (): Throttle | undefined =>
      options.maxRate > 0 ? new Throttle([new RateLimiter({ bytesPerSecond: options.maxRate })]) : undefined;
    this.uploadThrottle = limit();
    this.downloadThrottle = limit();
    this.transport = new FramedSocket(
      socket,
      {
        maxFramePayloadBytes: options.maxFramePayloadBytes,
        maxControlPayloadBytes: DEFAULTS.maxControlPayloadBytes,
        outboundHighWaterBytes: options.outboundHighWaterBytes,
        outboundLowWaterBytes: options.outboundLowWaterBytes,
        dataFramePayloadBytes: this.options.chunkBytes,
      },
      { onFrame: this.decoderOnFrame, onEnding: this.transportOnEnding, onClose: this.transportOnClose },
      sharedReads,
    );
  }

  /**
   * TCP, or TLS over it; writes before the TLS handshake completes wait for it. Plain TCP reads
   * into the process's shared buffer (SharedBufferReads; TLS has no such option).
   */
  private static openSocket(options: ResolvedClientOptions): {
    socket: Socket;
    sharedReads?: SharedBufferReads;
  } {
    const { host, port, tls } = options;
    if (tls === undefined) {
      const sharedReads = new SharedBufferReads(DEFAULTS.clientReadBufferBytes);
      return { socket: netConnect({ host, port, onread: sharedReads.onread }), sharedReads };
    }
    // Node honours highWaterMark here (its types omit it): a 16 KiB default would let only one
    // chunk at a time into the TLS socket, where plain sockets take the outbound high-water mark.
    const buffering = { highWaterMark: options.outboundHighWaterBytes } as object;
    const socket = tlsConnect({
      ...buffering,
      host,
      port,
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      rejectUnauthorized: tls.rejectUnauthorized ?? true,
      // SNI takes names only (RFC 6066 §3).
      ...(tls.servername !== undefined
        ? { servername: tls.servername }
        : isIP(host)
          ? {}
          : { servername: host }),
    });
    return { socket, sharedReads: SharedBufferReads.adopt(socket) };
  }

  /**
   * Connects and completes the handshake. Rejects with CONNECT_FAILED, SERVER_BUSY,
   * VERSION_MISMATCH..., and with a TypeError naming the option for an option that is invalid.
   */
  static async connect(options: ClientOptions = {}): Promise<Client> {
    const resolved = resolveClientOptions(options);
    const { socket, sharedReads } = Client.openSocket(resolved);
    return new Client(resolved, socket, `${resolved.host}:${resolved.port}`, sharedReads).start(
      options.signal,
    );
  }

  /**
   * Completes the handshake over a byte stream already connected to a server (an in-process
   * pair in tests, a tunnel); `host`, `port` and `tls` are not used. Same results as connect().
   */
  static async over(socket: Duplex, options: ClientOptions = {}): Promise<Client> {
    return new Client(resolveClientOptions(options), socket, 'the server').start(options.signal);
  }

  private start(signal: AbortSignal | undefined): Promise<Client> {
    const { connectTimeoutMs, responseTimeoutMs } = this.options;
    // No WELCOME within the response timeout, when that is shorter, is a server that says nothing
    // (stopped) too; after it, a login may take the server's deliberate delay, up to the connect's.
    const welcomeWithinMs =
      responseTimeoutMs > 0 ? Math.min(connectTimeoutMs, responseTimeoutMs) : connectTimeoutMs;
    // A connection made that nothing answers on is something else's port, or a server stopped;
    // one never made, a host down or a firewall that drops it.
    const noAnswer = (withinMs: number) => () =>
      this.transport.destroy(
        // The peer is named by the CONNECT_FAILED this becomes the cause of (transportOnClose).
        new MuxftpError(
          'CONNECT_FAILED',
          // After its WELCOME a muxftp server answered: the login is what went unanswered.
          this.welcome !== undefined
            ? `the server did not answer the login within ${withinMs / 1000} s`
            : this.tcpConnected()
              ? `connected, but no muxftp server answered within ${withinMs / 1000} s`
              : `no answer within ${withinMs / 1000} s`,
        ),
      );
    return new Promise<Client>((resolve, reject) => {
      // Past what a timer holds, node would wait 1 ms: as long as a timer goes is as good as no limit.
      const timer = setTimeout(noAnswer(connectTimeoutMs), timerDelay(connectTimeoutMs));
      this.welcomeTimer = setTimeout(noAnswer(welcomeWithinMs), timerDelay(welcomeWithinMs));
      const onAbort = (): void => {
        // The signal's reason as the cause, as every call's CANCELLED has (a timeout tells itself).
        this.lostError = endedConnectionWith(
          new MuxftpError('CANCELLED', `connecting to ${this.peer} was cancelled`, { cause: signal?.reason }),
        );
        this.transport.destroy(this.lostError);
      };
      const settled = (): void => {
        clearTimeout(timer);
        clearTimeout(this.welcomeTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.handshake = {
        resolve: () => {
          settled();
          resolve(this);
        },
        reject: (err) => {
          settled();
          reject(err);
        },
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.transport.send(
        encodeHello({
          protocol: PROTOCOL_NAME,
          versions: [PROTOCOL_VERSION],
          maxFramePayload: this.options.maxFramePayloadBytes,
          agent: this.options.agent,
          integrity: this.options.integrity,
          uploadInitialWindow: true,
          // A server that holds back reading us (its disk behind) pings us this often instead.
          ...(this.options.responseTimeoutMs > 0 ? { keepaliveMs: this.pingIntervalMs } : {}),
        }),
      );
    });
  }

  // ClientHost, for the streams: not part of the library API.
  /** @internal */
  get queue(): OutboundQueue {
    return this.transport.queue;
  }
  /** @internal */
  get serverMaxFramePayload(): number {
    return this.welcome?.limits.maxFramePayload ?? MIN_FRAME_PAYLOAD_BYTES;
  }
  /** @internal */
  get chunkBytes(): number {
    return this.options.chunkBytes;
  }
  /**
   * What the account may do, as the server answered the login (`list`, `read`, `write`, `delete`,
   * `rename`, `mkdir`); undefined when the server asked for no login (everything is allowed).
   */
  get permissions(): readonly string[] | undefined {
    return this.loginPermissions;
  }
  /** The integrity algorithm the server chose (valid once connected). */
  get integrity(): IntegrityAlgorithm {
    return this.welcome?.integrity.algorithm ?? this.options.integrity[0]!;
  }
  /** @internal */
  get uploadInitialWindow(): number {
    return this.welcome?.limits.uploadInitialWindow ?? 0;
  }
  /** @internal */
  get streamWindowBytes(): number {
    return this.options.streamWindowBytes;
  }
  /** @internal */
  get streamWindowMaxBytes(): number {
    return this.options.streamWindowMaxBytes;
  }
  /** @internal */
  send(frame: Buffer): void {
    this.transport.send(frame);
  }
  /** @internal */
  cancelStream(stream: ClientStream): void {
    const index = this.waitingToOpen.findIndex((w) => w.stream === stream);
    if (index >= 0) this.waitingToOpen.splice(index, 1);
    else this.transport.send(encodeCancel(stream.id));
  }
  /** @internal */
  streamDone(stream: ClientStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.openWaiting();
    this.endOnceIdleIfClosing();
  }

  /** The server's WELCOME: its version and limits. */
  get serverInfo(): Welcome {
    return this.welcome!;
  }

  /** The connection is up: calls may be made on it (false once it closed or was lost). */
  get isOpen(): boolean {
    return this.ready && this.lostError === undefined && !this.transport.isClosed;
  }

  /** Operations in flight, and waiting for a free stream slot. */
  get activeStreams(): number {
    return this.streams.size + this.waitingToOpen.length;
  }

  /**
   * The entries of a remote directory (the root by default), sorted by name. A directory with
   * more than `maxEntries` entries (4 Mi when not given) rejects with code UNSUPPORTED: a
   * RemoteError when the server refused to list it (before reading it whole), or, from a server
   * older than `maxEntries`, a ListingTooLongError once its REPLY frames said so (cancelled).
   */
  async list(
    path = '',
    { maxEntries, signal }: RequestOptions & { maxEntries?: number } = {},
  ): Promise<WireEntry[]> {
    // Told to the server too, which refuses a larger directory before sorting it (one before
    // that ignores it: the listing is cancelled here as its frames come).
    const request =
      maxEntries === undefined ? { op: 'list' as const, path } : { op: 'list' as const, path, maxEntries };
    return (await this.request(request, signal, maxEntries)).entries;
  }

  /** One remote entry: its name, type, size and mtime. Rejects NOT_FOUND if it is missing. */
  async stat(path: string, options: RequestOptions = {}): Promise<WireEntry> {
    return (await this.request({ op: 'stat', path }, options.signal)).entry;
  }

  /**
   * Creates a remote directory; with `parents`, its missing ancestors too and no error if it
   * exists. With `mode`, the directory it creates at `path` (not its ancestors, nor one that was
   * there) gets those bits less the server's umask, never without the server's own (a server
   * that does not know them makes it as any other).
   */
  async mkdir(
    path: string,
    options: RequestOptions & { parents?: boolean; mode?: number } = {},
  ): Promise<void> {
    const request: Extract<Request, { op: 'mkdir' }> = {
      op: 'mkdir',
      path,
      parents: options.parents === true,
    };
    if (options.mode !== undefined) request.mode = options.mode;
    await this.request(request, options.signal);
  }

  /** Removes an empty remote directory. */
  async rmdir(path: string, options: RequestOptions = {}): Promise<void> {
    await this.request({ op: 'rmdir', path }, options.signal);
  }

  /** Removes a remote file (not a directory). */
  async delete(path: string, options: RequestOptions = {}): Promise<void> {
    await this.request({ op: 'delete', path }, options.signal);
  }

  /**
   * Moves a remote file or directory; replaces an existing file at `to` (unless `noReplace`),
   * never a directory.
   */
  async rename(from: string, to: string, options: RenameOptions = {}): Promise<void> {
    if (options.noReplace === true && this.welcome?.renameNoReplace !== true) throw noReplaceUnsupported();
    await this.request(
      { op: 'rename', from, to, ...(options.noReplace === true ? { noReplace: true } : {}) },
      options.signal,
    );
  }

  /**
   * Gives a remote file or directory `mtimeMs` (ms since the epoch) as its modification time;
   * resolves to the entry as it is then. Needs write permission; a symbolic link is refused
   * UNSUPPORTED, as is the call by a server from before the operation. `ifUnchanged`: the file as
   * you saw it (its entry's size and mtime); when it is not that any more (another client replaced
   * it), the server sets nothing and the entry it resolves to keeps its own time (a server from
   * before the option sets the time all the same).
   */
  async setModifiedTime(
    path: string,
    mtimeMs: number,
    options: RequestOptions & { ifUnchanged?: { size: number; mtime: number } } = {},
  ): Promise<WireEntry> {
    const request: Extract<Request, { op: 'utime' }> = { op: 'utime', path, mtime: mtimeMs };
    if (options.ifUnchanged !== undefined)
      request.ifUnchanged = { size: options.ifUnchanged.size, mtime: options.ifUnchanged.mtime };
    return (await this.request(request, options.signal)).entry;
  }

  /**
   * Gives a remote file or directory the permission bits `mode` (0 to 0o777; the server keeps
   * its own read and write, and search of a directory, whatever it is asked); resolves to the
   * entry as it is then. Needs the write permission; a symbolic link is refused UNSUPPORTED, as
   * is the request by a server from before it. `ifUnchanged`: as for setModifiedTime.
   */
  async setPermissions(
    path: string,
    mode: number,
    options: RequestOptions & { ifUnchanged?: { size: number; mtime: number } } = {},
  ): Promise<WireEntry> {
    const request: Extract<Request, { op: 'chmod' }> = { op: 'chmod', path, mode };
    if (options.ifUnchanged !== undefined)
      request.ifUnchanged = { size: options.ifUnchanged.size, mtime: options.ifUnchanged.mtime };
    return (await this.request(request, options.signal)).entry;
  }

  /**
   * A remote file's content digest under `algorithm` (default: the connection's), from the
   * server's digest cache or computed by the server reading the file. `signal` cancels the request
   * (the server stops reading) and rejects with CANCELLED.
   */
  async digest(
    path: string,
    algorithm: IntegrityAlgorithm = this.integrity,
    options: RequestOptions = {},
  ): Promise<DigestResult> {
    const result = await this.request({ op: 'digest', path, algorithm }, options.signal);
    if (
      typeof result.entry !== 'object' ||
      !isIntegrityAlgorithm(result.algorithm) ||
      typeof result.digest !== 'string'
    ) {
      throw new ProtocolError('PROTOCOL_ERROR', 'digest REPLY lacks entry, algorithm or digest');
    }
    return { entry: result.entry as WireEntry, algorithm: result.algorithm, digest: result.digest };
  }

  /**
   * Asks the server to drop what it keeps of an interrupted resumable upload of the local file
   * `localPath` to `remotePath` (the blocks `put` with `continue` would continue: this version of
   * the file, by the identity a put declares, under the connection's algorithm), once they are no
   * longer wanted: the remote file is already whole (`put -c` and `--skip-identical` finding it
   * identical). Nothing kept of another version, nor what an upload writes now, goes. Resolves
   * false without asking when nothing can be kept of it (a file under one block, 4 MiB), the
   * server is from before the request (its WELCOME lacks `partialDrop`) or the account lacks the
   * write permission it needs, else true once the
   * server answered. `signal` cancels it (CANCELLED).
   */
  async dropPartial(remotePath: string, localPath: string, options: RequestOptions = {}): Promise<boolean> {
    this.assertOpen();
    if (this.welcome?.partialDrop !== true) return false;
    // An account that may not write is refused it: not asked (the server logs each refusal).
    if (this.loginPermissions !== undefined && !this.loginPermissions.includes('write')) return false;
    const local = await localSourceIdentity(localPath);
    if (local.size < INTEGRITY_BLOCK_BYTES) return false;
    const request: Extract<Request, { op: 'partial' }> = {
      op: 'partial',
      path: remotePath,
      size: local.size,
      algorithm: this.integrity,
      source: local.source,
      drop: true,
    };
    await this.request(request, options.signal);
    return true;
  }

  /** The server's running totals: connections, streams, bytes and files each way, memory, uptime. */
  async stats(options: RequestOptions = {}): Promise<ServerStats> {
    return this.request({ op: 'stats' }, options.signal);
  }

  /**
   * Room left for this connection's uploads: the disk under the served tree and the account's
   * quota, each when the server knows it (memory storage has no disk; an account may have no quota).
   */
  async space(options: RequestOptions = {}): Promise<SpaceReport> {
    return this.request({ op: 'space' }, options.signal);
  }

  /**
   * Uploads a local file path, bytes, or a readable stream to `remotePath`.
   *
   * A FIFO's path is read as a stream, to its writer's end: opened once, without waiting for the
   * writer, so a cancel ends a put whose writer never came; a terminal's (`/dev/pts/N`) likewise,
   * to its end of file (Ctrl-D). Another device's path is read to its end through the threadpool:
   * one whose read waits for ever holds a thread there that a cancel does not free, and the process
   * exits only once that read returns (pass it opened as a Readable instead).
   *
   * A Readable is read, never destroyed by the call (as get() does not end a Writable), unlike
   * `stream.pipeline`: when the put fails or is cancelled, the stream is left as it was, its
   * unread bytes in it and no listener of the call's on it, for you to destroy (what was read of
   * it went with the failed upload: it cannot simply be put again). While the call is pending, an
   * 'error' of the stream fails it (LOCAL_IO_ERROR, the error as cause) and is never unhandled;
   * after, it is yours to listen for.
   */
  put(remotePath: string, source: PutSource, options: TransferOptions = {}): Promise<PutResult> {
    const letGo = holdStreamErrors(source);
    const call = this.underway(() => this.putNow(remotePath, source, options));
    return letGo === undefined ? call : call.finally(letGo);
  }

  private async putNow(remotePath: string, source: PutSource, options: TransferOptions): Promise<PutResult> {
    this.assertOpen();
    checkKnownDigests(options.knownDigests);
    await prepareBlockHashes();
    let plan: PutPlan | undefined;
    let opened: ByteSource | undefined;
    if ((options.resumable === true || options.continue === true) && typeof source === 'string') {
      // Opened first: the open's own stat says whether the file holds a whole block, and a smaller
      // one (most of a put -r) is sent as it is, with no stat of its path nor identity to make.
      opened = await openSource(source, 0, options.regularFileOnly);
      if (opened.size !== undefined && opened.size >= INTEGRITY_BLOCK_BYTES) {
        await opened.close();
        opened = undefined;
        const local = await localSourceIdentity(source);
        if (local.size >= INTEGRITY_BLOCK_BYTES) {
          plan = await this.planResumablePut(remotePath, source, local, options);
          if (plan.offset > 0) return this.putContinuing(remotePath, source, local, plan, options);
        }
      }
    }
    if (plan === undefined) {
      const byteSource = opened ?? (await openSource(source, 0, options.regularFileOnly));
      const request: RequestOf<'upload'> =
        byteSource.size === undefined
          ? { op: 'put', path: remotePath }
          : { op: 'put', path: remotePath, size: byteSource.size };
      plan = { byteSource, request, offset: 0, prefix: [] };
    }
    return this.sendPut(plan, options);
  }

  /**
   * A put continuing what the server kept: the server may refuse the offset it offered, NOT_FOUND
   * before any credit, when what it kept went meanwhile (another upload of the file dropped it:
   * one kept upload per file). Then it starts over from 0, as when the kept blocks differ, rather
   * than fail as if the directory were missing; a missing directory then fails the new put. So
   * too RESOURCE_BUSY, when another upload of this file version took them over meanwhile.
   */
  private async putContinuing(
    remotePath: string,
    source: string,
    local: { size: number; source: string },
    plan: PutPlan,
    options: TransferOptions,
  ): Promise<PutResult> {
    let offsetTaken = false;
    const onContinue = (fromBytes: number): void => {
      offsetTaken = true;
      options.onContinue?.(fromBytes);
    };
    let busy = false;
    try {
      return await this.sendPut(plan, { ...options, onContinue });
    } catch (error) {
      if (offsetTaken || !(error instanceof RemoteError)) throw error;
      // Another upload of this file version took the blocks over since they were offered (two
      // put -c at once): sent whole, as when `partial` says they are in use, not failed.
      busy = error.code === 'RESOURCE_BUSY';
      if (!busy && error.code !== 'NOT_FOUND') throw error;
    }
    const reason = busy
      ? `what the server kept of ${remotePath} is in use by another upload of it now (another put -c?): sending all of it`
      : `what the server kept of ${remotePath} went before this upload could continue it (another upload of it?): starting over`;
    callCaller('onRestart', () => options.onRestart?.(reason));
    return this.sendPut(
      await this.planResumablePut(remotePath, source, local, { ...options, continue: false }),
      options,
    );
  }

  private async sendPut(plan: PutPlan, options: TransferOptions): Promise<PutResult> {
    const { byteSource, offset, prefix } = plan;
    const takesWindow = offset === 0 && this.uploadInitialWindow > 0;
    const declines = takesWindow && this.declinesInitialWindow(options);
    const request: RequestOf<'upload'> = { ...plan.request };
    if (declines) request.initialWindow = false;
    if (options.keepTimes === true && byteSource.mtimeMs !== undefined) request.mtime = byteSource.mtimeMs;
    if (options.keepModes === true && byteSource.mode !== undefined) request.mode = byteSource.mode;
    const pauseWindowIfRefused = (error: Error): void => {
      // Refused at once while the server's disk is behind: later puts wait for credit instead.
      // Not for another limit (open files): declining the window would only slow them.
      if (takesWindow && !declines && refusedForUploadBacklog(error))
        this.initialWindowPausedUntil = performance.now() + DEFAULTS.uploadInitialWindowPauseMs;
    };
    let id: number;
    try {
      this.assertSendablePaths(request);
      id = this.allocateStreamId();
    } catch (error) {
      await byteSource.close().catch(() => {});
      throw error;
    }
    return new Promise<PutResult>((resolve, reject) => {
      const stream = new PutCall(
        this,
        id,
        byteSource,
        options.onProgress,
        {
          resolve,
          reject: (error) => {
            pauseWindowIfRefused(error);
            reject(error);
          },
        },
        options.knownDigests,
        offset,
        prefix,
        !declines,
        offset > 0 ? options.onContinue : undefined,
      );
      this.open(stream, [encodeOpen(id, request)], options.signal);
    });
  }

  /**
   * A put declines the initial window when asked to, or for a while after one sent on it was
   * refused SERVER_BUSY (DEFAULTS.uploadInitialWindowPauseMs says why a while) — only with a
   * server that allows it: one that does not would count the window as granted all the same.
   */
  private declinesInitialWindow(options: TransferOptions): boolean {
    if (this.welcome?.uploadInitialWindowOptional !== true) return false;
    if (options.initialWindow !== undefined) return !options.initialWindow;
    return performance.now() < this.initialWindowPausedUntil;
  }

  /**
   * A put that declares its size and source identity (so the server keeps an interrupted upload's
   * whole blocks) and, with `continue`, continues from what the server kept once its block digests
   * match the local file's first blocks. Only those blocks are read before sending, never the
   * whole file: D is computed as the rest is sent, and decides success at END.
   */
  private async planResumablePut(
    remotePath: string,
    path: string,
    local: { size: number; source: string },
    options: TransferOptions,
  ): Promise<PutPlan> {
    let offset = 0;
    let prefix: Buffer[] = [];
    let hashed: BigIntStats | undefined;
    if (options.continue === true) {
      const held = await this.request(
        {
          op: 'partial',
          path: remotePath,
          size: local.size,
          algorithm: this.integrity,
          source: local.source,
        },
        options.signal,
      );
      if (held.offset > local.size) {
        throw new ProtocolError('PROTOCOL_ERROR', 'partial REPLY: an offset beyond the file');
      }
      if (held.blocks.length === 0)
        callCaller('onNothingKept', () => options.onNothingKept?.(held.inUse === true));
      const mine = await localBlockDigests(
        path,
        this.integrity,
        held.blocks.length,
        options.localDigests,
        options.signal,
        // The file as its blocks are hashed: the one opened to send the rest must still be it.
        (stats) => {
          hashed = stats;
        },
      );
      const mismatch = held.blocks.findIndex((hex, i) => hex !== mine[i]?.toString('hex'));
      if (mismatch === -1) {
        offset = held.offset;
        prefix = mine;
      } else {
        const reason = `the server's partial upload of ${remotePath} differs from the local file at block ${mismatch}: starting over`;
        callCaller('onRestart', () => options.onRestart?.(reason));
      }
    }
    return {
      byteSource: await openSource(path, offset, options.regularFileOnly, hashed),
      request: { op: 'put', path: remotePath, size: local.size, source: local.source, offset },
      offset,
      prefix,
    };
  }

  /**
   * Downloads `remotePath` to a local file path (atomically) or a writable stream, which is
   * written to but not ended (several gets may append to one): end or close it yourself.
   */
  get(remotePath: string, target: GetTarget, options: TransferOptions = {}): Promise<GetResult> {
    return this.underway(() => this.getNow(remotePath, target, options));
  }

  private async getNow(remotePath: string, target: GetTarget, options: TransferOptions): Promise<GetResult> {
    this.assertOpen();
    // Before anything local: a kept partial taken over to continue was dropped by the refusal.
    this.assertSendablePaths({ op: 'get', path: remotePath });
    const keepsPartial = options.keepPartial === true;
    // Looked at once (a stat, on the loop while fs calls are fast), by the caller or here.
    const inPlace =
      typeof target === 'string' ? (options.writesInPlace ?? (await isSpecialFile(target))) : undefined;
    // A FIFO or device is written in place (openSink), never read: opening a FIFO to read its
    // blocks would wait for a writer, and there is none; nor is anything kept for one.
    const continues =
      (options.continue === true || options.resumeKept === true) &&
      typeof target === 'string' &&
      inPlace === false;
    if (continues) {
      const fromKept = await this.getFromKept(remotePath, target, options);
      if (fromKept !== undefined) return fromKept;
    }
    if (continues && options.continue === true) {
      const blocks = await localBlockDigests(
        target,
        this.integrity,
        DEFAULTS.maxResumeBlocks,
        options.localDigests,
        options.signal,
      );
      const localSize = await stat(target).then(
        (stats) => (stats.isFile() ? stats.size : 0),
        (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
          throw localError(err, target);
        },
      );
      // A file under one block has nothing to compare, but is still the user's: asked for from
      // offset 0, one larger than the server's is refused as such (GetCall), not replaced.
      if (blocks.length > 0 || localSize > 0) {
        const sink = await ContinueSink.open(target, keepsPartial, options.keepModes === true);
        try {
          return await this.getInto(remotePath, undefined, options, { blocks, sink, localSize });
        } catch (error) {
          if (!(error instanceof LocalPartialRefusedError) || options.replaceDiffering !== true) throw error;
          callCaller('onRestart', () => options.onRestart?.(error.restartReason));
        }
      }
    }
    return this.getInto(
      remotePath,
      await openSink(target, options.signal, inPlace, keepsPartial, options.keepModes === true),
      options,
    );
  }

  /**
   * Continues what a failed download into `target` kept, once its blocks match the server's;
   * undefined when there is nothing kept (or not one whole block), or when it differed from the
   * server's file and was dropped (`onRestart` told): the caller then downloads it afresh.
   */
  private async getFromKept(
    remotePath: string,
    target: string,
    options: TransferOptions,
  ): Promise<GetResult | undefined> {
    // get -c also continues what a get killed outright left in progress; a retry, only its own.
    // Said before anything is claimed: a callback that throws leaves nothing half-claimed.
    if (options.continue === true && options.onLeftAlone !== undefined) {
      for (const path of await leftAloneFor(keptPartialPath(target))) {
        callCaller('onLeftAlone', () => options.onLeftAlone?.(path));
      }
    }
    const sink = await ContinueSink.claimKept(target, {
      leftBehind: options.continue === true,
      bitsCarried: options.keepModes === true,
    });
    if (sink === undefined) return undefined;
    let blocks: Buffer[];
    try {
      blocks = await localBlockDigests(
        sink.temporary,
        this.integrity,
        DEFAULTS.maxResumeBlocks,
        options.localDigests,
        options.signal,
      );
    } catch (error) {
      await sink.keepPartial(); // put back, as it was
      throw error;
    }
    if (blocks.length === 0) {
      await sink.abort();
      return undefined;
    }
    try {
      return await this.getInto(remotePath, undefined, options, { blocks, sink, kept: true });
    } catch (error) {
      if (!(error instanceof KeptPartialDiffersError)) throw error;
      callCaller('onRestart', () => options.onRestart?.(error.message));
      return undefined;
    }
  }

  /**
   * Downloads `remotePath` and checks it like {@link Client.get}, keeping nothing: an integrity
   * check of a remote file, or a benchmark's download without a local write.
   */
  async verify(remotePath: string, options: TransferOptions = {}): Promise<GetResult> {
    this.assertOpen();
    return this.getInto(remotePath, new DiscardSink(), options);
  }

  /** Downloads `remotePath` into memory, checked like {@link Client.get}. */
  async getBuffer(remotePath: string, options: TransferOptions = {}): Promise<Buffer> {
    const sink = new MemorySink();
    await this.getInto(remotePath, sink, options);
    return sink.toBuffer();
  }

  /**
   * Lets the calls begun before it finish (an upload from a stream waits for its end, a request
   * a busy server refused waits out its retries), then closes the connection; a call begun after
   * it runs only while others keep the connection open (else it rejects CONNECTION_LOST, "closed
   * by close()"). With `graceMs`, as MuxServer.close: what is still in flight after that long is
   * cut off (rejecting CANCELLED) and the connection closed; Infinity is no limit. A `graceMs`
   * that is no duration rejects with a TypeError.
   */
  async close(graceMs?: number): Promise<void> {
    if (graceMs !== undefined && !(graceMs >= 0))
      throw new TypeError(`close(graceMs): milliseconds, 0 or more (Infinity: no limit), not ${graceMs}`);
    this.closeRequested = true;
    this.endOnceIdleIfClosing();
    if (graceMs !== undefined && graceMs !== Number.POSITIVE_INFINITY && this.graceTimer === undefined) {
      this.graceTimer = setTimeout(() => {
        this.destroy(new MuxftpError('CANCELLED', `cut off by close() after ${graceMs / 1000} s of grace`));
      }, timerDelay(graceMs));
      // Nothing else waits for it: it must not keep the process alive once the connection closed.
      this.graceTimer.unref();
      void this.ended.finally(() => clearTimeout(this.graceTimer));
    }
    return this.ended;
  }

  private graceTimer: NodeJS.Timeout | undefined;

  /**
   * Calls begun and not settled: some wait before their stream opens (a local file opened, the
   * hash loaded, a busy server's delay), and close() lets them finish as it does open streams.
   */
  private callsUnderway = 0;

  private async underway<T>(call: () => Promise<T>): Promise<T> {
    this.callsUnderway++;
    try {
      return await call();
    } finally {
      this.callsUnderway--;
      this.endOnceIdleIfClosing();
    }
  }

  /** After close(), the connection ends once no call is underway and no stream open or waiting. */
  private endOnceIdleIfClosing(): void {
    if (
      this.closeRequested &&
      this.callsUnderway === 0 &&
      this.streams.size === 0 &&
      this.waitingToOpen.length === 0 &&
      !this.transport.isClosed
    ) {
      this.endedByClose = true;
      this.endedHere = true;
      this.transport.end();
    }
  }

  /** The connection ended because close() asked (not the server, nor destroy()). */
  private endedByClose = false;

  /**
   * Closes at once; operations in flight reject with `error` or CONNECTION_LOST (either
   * {@link MuxftpError.fatal}), but for downloads whose END came: each has all its bytes, and is
   * verified and takes its name as it would have.
   */
  destroy(error?: MuxftpError): Promise<void> {
    if (!this.transport.isClosed) this.endedHere = true;
    this.transport.destroy(error);
    return this.ended;
  }

  private getInto(
    remotePath: string,
    sink: ByteSink | undefined,
    options: TransferOptions,
    resume?: GetResume,
  ): Promise<GetResult> {
    return this.underway(() => this.getIntoNow(remotePath, sink, options, resume));
  }

  private async getIntoNow(
    remotePath: string,
    sink: ByteSink | undefined,
    options: TransferOptions,
    resume?: GetResume,
  ): Promise<GetResult> {
    await prepareBlockHashes();
    let id: number;
    try {
      this.assertSendablePaths({ op: 'get', path: remotePath });
      id = this.allocateStreamId();
    } catch (error) {
      await (sink ?? resume!.sink).abort().catch(() => {});
      throw error;
    }
    return new Promise<GetResult>((resolve, reject) => {
      const stream = new GetCall(
        this,
        id,
        sink ?? resume!.sink,
        options.onProgress,
        { resolve, reject },
        resume === undefined || options.onContinue === undefined
          ? resume
          : { ...resume, onContinue: options.onContinue },
        typeof options.onPartialKept === 'function' ? options.onPartialKept : undefined,
        { times: options.keepTimes, modes: options.keepModes },
      );
      const request: Request =
        resume === undefined
          ? { op: 'get', path: remotePath }
          : { op: 'get', path: remotePath, offset: resume.blocks.length * INTEGRITY_BLOCK_BYTES };
      this.open(stream, [encodeOpen(id, request), ...stream.initialWindow()], options.signal);
    });
  }

  /**
   * One request, its REPLY checked against the op's row of the operation table; sent again while
   * the server refuses it SERVER_BUSY and `busyRetries` says to wait.
   */
  private request<R extends RequestOf<'request'>>(
    request: R,
    signal?: AbortSignal,
    maxEntries?: number,
  ): Promise<ReplyOf<R['op']>> {
    // Aborted already: nothing is sent, so nothing is done (a CANCEL could come after the change).
    if (signal?.aborted === true) return Promise.reject(cancelledBy(signal));
    return this.underway(() => this.requestWithRetries(request, signal, maxEntries));
  }

  private async requestWithRetries<R extends RequestOf<'request'>>(
    request: R,
    signal?: AbortSignal,
    maxEntries?: number,
  ): Promise<ReplyOf<R['op']>> {
    const policy = callCaller('busyRetries', () => this.options.busyRetries?.());
    for (;;) {
      try {
        return await this.requestOnce(request, signal, maxEntries);
      } catch (error) {
        const busy = error instanceof MuxftpError && error.code === 'SERVER_BUSY';
        const delayMs =
          busy && this.isOpen && signal?.aborted !== true
            ? callCaller('busyRetries', () => policy?.next(error))
            : undefined;
        if (delayMs === undefined) throw error;
        // The signal's reason as the cause, as a cancel in flight gives (sleep's is an AbortError).
        await sleep(delayMs, undefined, signal === undefined ? {} : { signal }).catch((abort: unknown) => {
          throw new MuxftpError('CANCELLED', 'cancelled while waiting for a busy server', {
            cause: signal?.reason ?? abort,
          });
        });
      }
    }
  }

  private requestOnce<R extends RequestOf<'request'>>(
    request: R,
    signal?: AbortSignal,
    maxEntries?: number,
  ): Promise<ReplyOf<R['op']>> {
    return new Promise((resolve, reject) => {
      this.assertSendablePaths(request);
      const id = this.allocateStreamId();
      const deferred = { resolve: (reply: unknown) => resolve(reply as ReplyOf<R['op']>), reject };
      const call = new RequestCall(this, id, request.op, deferred, maxEntries);
      this.open(call, [encodeOpen(id, request)], signal);
    });
  }

  private assertOpen(): void {
    if (this.lostError !== undefined || this.transport.isClosed) {
      throw this.lostError ?? new ConnectionLostError('connection is closed');
    }
  }

  /**
   * Refuses, unsent and in the server's words, a path every server refuses INVALID_PATH
   * (PROTOCOL.md, Operations): past the announced maxPathBytes, or with control characters (six
   * bytes each in JSON), an OPEN could be larger than the server takes from a client, and its
   * FRAME_TOO_LARGE ended the connection and every transfer on it.
   */
  private assertSendablePaths(request: Request): void {
    const limit = this.welcome?.limits.maxPathBytes ?? DEFAULTS.maxPathBytes;
    const paths =
      request.op === 'rename' ? [request.from, request.to] : 'path' in request ? [request.path] : [];
    for (const path of paths) {
      if (typeof path !== 'string') continue; // the server's BAD_REQUEST
      const problem =
        Buffer.byteLength(path, 'utf8') > limit ? `longer than ${limit} bytes` : characterProblem(path);
      if (problem !== undefined) throw new MuxftpError('INVALID_PATH', `invalid path: ${problem}`);
    }
  }

  private allocateStreamId(): number {
    if (this.nextStreamId > MAX_STREAM_ID)
      throw new MuxftpError('TOO_MANY_STREAMS', 'stream ids exhausted: reconnect');
    return this.nextStreamId++;
  }

  /**
   * Opens a stream now if the server's maxStreams allows, else queues it. The queue is FIFO and
   * ids were allocated in call order, so OPENs still reach the server with increasing ids.
   */
  private open(stream: ClientStream, frames: Buffer[], signal?: AbortSignal): void {
    if (this.lostError !== undefined || this.transport.isClosed) {
      // The connection went while the caller opened its local file: fail now, freeing that file.
      stream.connectionLost(this.lostError ?? new ConnectionLostError('connection is closed'));
      return;
    }
    // The first call after a quiet spell: the server's silence is counted from now.
    if (this.activeStreams === 0) {
      this.lastHeardAt = performance.now();
      this.graceGiven = false;
    }
    this.waitingToOpen.push({ stream, frames });
    this.openWaiting();
    if (signal === undefined) return;
    if (signal.aborted) {
      queueMicrotask(() => stream.cancel(cancelledBy(signal)));
      return;
    }
    this.cancelOnAbort(signal, stream);
  }

  /** Cancels `stream` when `signal` aborts; the signal's listener goes with the last stream it serves. */
  private cancelOnAbort(signal: AbortSignal, stream: ClientStream): void {
    let group = this.abortGroups.get(signal);
    if (group === undefined) {
      group = new AbortGroup(signal);
      this.abortGroups.set(signal, group);
      signal.addEventListener('abort', group.onAbort, { once: true });
    }
    const members = group;
    members.streams.add(stream);
    stream.onSettled(() => {
      members.streams.delete(stream);
      if (members.streams.size > 0) return;
      signal.removeEventListener('abort', members.onAbort);
      if (this.abortGroups.get(signal) === members) this.abortGroups.delete(signal);
    });
  }

  private openWaiting(): void {
    const limit = this.welcome?.limits.maxStreams ?? 1;
    while (this.waitingToOpen.length > 0 && this.streams.size < limit && !this.transport.isClosed) {
      const { stream, frames } = this.waitingToOpen.shift()!;
      this.streams.set(stream.id, stream);
      for (const frame of frames) this.transport.send(frame);
      stream.opened();
    }
  }

  private readonly decoderOnFrame = (frame: Frame): void => {
    this.lastHeardAt = performance.now();
    this.graceGiven = false;
    if (!this.ready) {
      this.handleHandshake(frame);
      return;
    }
    if (frame.type === FrameType.PING) {
      if ((frame.flags & Flags.ACK) !== 0) this.roundTrips?.acked(frame.payload);
      else if (this.pingFlooded()) {
        this.transport.fail(
          new ProtocolError(
            'FRAME_FLOOD',
            `${DEFAULTS.maxHeldFramesPerConnection} PINGs from a server that read nothing of ours meanwhile`,
          ),
        );
      } else this.transport.send(encodePing(frame.payload, true));
      return;
    }
    if (frame.type === FrameType.ERROR && frame.streamId === 0) {
      this.serverEndedConnection(parseErrorPayload(frame));
      return;
    }
    const stream = this.streams.get(frame.streamId);
    if (stream === undefined) {
      // A stream we cancelled or finished may still have frames in flight; anything else is bogus.
      if (frame.streamId < this.nextStreamId) return;
      throw new ProtocolError(
        'UNKNOWN_STREAM',
        `${FRAME_TYPE_NAMES[frame.type]} for stream ${frame.streamId}, never opened`,
      );
    }
    switch (frame.type) {
      case FrameType.REPLY:
        stream.onReply(parseJsonObject(frame, 'REPLY'), (frame.flags & Flags.MORE) !== 0);
        return;
      case FrameType.DATA:
        stream.onData(frame.payload, creditTaken(frame), frame.borrowed === true);
        return;
      case FrameType.END:
        stream.onEnd(parseEnd(frame));
        return;
      case FrameType.WINDOW:
        stream.onWindow(parseWindow(frame));
        return;
      case FrameType.ERROR: {
        const error = parseErrorPayload(frame);
        // 1xx statuses are connection errors wherever they are sent (docs/PROTOCOL.md, Errors).
        if (ERROR_STATUS[error.code] < 200) this.serverEndedConnection(error);
        else stream.onError(error.code, error.message, error.details);
        return;
      }
      default:
        throw new ProtocolError('PROTOCOL_ERROR', `${FRAME_TYPE_NAMES[frame.type]} is not sent by servers`);
    }
  };

  /** WELCOME, then (when the server requires a login) the AUTH answer. */
  private handleHandshake(frame: Frame): void {
    if (frame.type === FrameType.ERROR) {
      this.serverEndedConnection(parseErrorPayload(frame));
      return;
    }
    if (this.welcome === undefined) {
      if (frame.type !== FrameType.WELCOME) {
        throw new ProtocolError('PROTOCOL_ERROR', `expected WELCOME, got ${FRAME_TYPE_NAMES[frame.type]}`);
      }
      this.welcome = this.usableWelcome(frame);
      clearTimeout(this.welcomeTimer);
      if (this.welcome.login?.required === true) this.sendLogin(this.welcome.login);
      else this.handshakeDone();
      return;
    }
    if (frame.type !== FrameType.AUTH) {
      throw new ProtocolError('PROTOCOL_ERROR', `expected AUTH, got ${FRAME_TYPE_NAMES[frame.type]}`);
    }
    const result = parseAuthResult(frame);
    if (result.ok) {
      this.loginPermissions = result.permissions;
      this.handshakeDone();
      return;
    }
    // One attempt per connection here: a wrong password does not improve by sending it again.
    this.serverEndedConnection({ code: 'LOGIN_FAILED', message: result.message });
  }

  /**
   * The server's WELCOME, checked. One well formed but on terms this client cannot take (a
   * version or an algorithm it did not offer, another block size, a maxFramePayload under 16 KiB)
   * still came from a muxftp server: it fails VERSION_MISMATCH, which the CLI words as such, not
   * as a peer that is no muxftp server. One that is not well formed (not JSON, a field missing or
   * of another type) is a PROTOCOL_ERROR.
   */
  private usableWelcome(frame: Frame): Welcome {
    const welcome = parseWelcome(frame);
    // The server picks from what HELLO offered: another is not the check asked for (--checksum).
    if (!this.options.integrity.includes(welcome.integrity.algorithm))
      throw new ProtocolError(
        'VERSION_MISMATCH',
        `WELCOME chose integrity ${welcome.integrity.algorithm}, which this client did not offer (${this.options.integrity.join(', ')})`,
      );
    return welcome;
  }

  private sendLogin(login: NonNullable<Welcome['login']>): void {
    const { user, password } = this.options;
    const refuse = (
      code: 'LOGIN_FAILED' | 'TLS_REQUIRED',
      message: string,
      setting?: 'user' | 'password' | 'tls',
    ) => {
      this.lostError =
        setting === undefined ? new MuxftpError(code, message) : new SettingError(code, message, setting);
      this.transport.end(this.lostError);
    };
    if (user === undefined || (user === ANONYMOUS_USER && password === undefined)) {
      if (login.anonymous) this.transport.send(encodeAuth({ user: ANONYMOUS_USER }));
      else if (user === undefined)
        refuse('LOGIN_FAILED', 'the server requires a login: give a user name', 'user');
      else refuse('LOGIN_FAILED', 'the server takes no anonymous logins');
      return;
    }
    if (login.passwordNeedsTls) {
      refuse('TLS_REQUIRED', 'the server takes passwords over TLS only (password not sent)', 'tls');
      return;
    }
    // An empty one would only fail (no account has one), counted against this address.
    if (password === undefined) {
      refuse('LOGIN_FAILED', `the server requires a password for ${user}`, 'password');
      return;
    }
    this.transport.send(encodeAuth({ user, password }));
  }

  private handshakeDone(): void {
    this.ready = true;
    this.handshake?.resolve();
    this.handshake = undefined;
    if (this.welcome?.ping === true)
      this.roundTrips = new RoundTripSampler(
        (payload) => this.transport.send(encodePing(payload)),
        DEFAULTS.roundTripSampleIntervalMs,
      );
    const timeoutMs = this.options.responseTimeoutMs;
    if (timeoutMs > 0 && this.welcome?.ping === true) {
      this.lastLookAt = performance.now();
      this.silenceWatch = setInterval(this.lookForSilence, this.pingIntervalMs);
      this.silenceWatch.unref();
    }
  }

  /**
   * How often a quiet server is pinged (and asked to ping us while it holds back reading us): a
   * quarter of the response timeout, within what a timer holds (a larger delay fires at once,
   * every millisecond).
   */
  private get pingIntervalMs(): number {
    return Math.round(timerDelay(Math.max(50, this.options.responseTimeoutMs / 4)));
  }

  /**
   * While calls wait on the server: a PING once it has been quiet for a quarter of the timeout,
   * and the connection failed once it has been for all of it (nothing, not even the PING's
   * answer). With nothing waiting, quiet is fine.
   */
  private readonly lookForSilence = (): void => {
    const now = performance.now();
    const sinceLastLook = now - this.lastLookAt;
    this.lastLookAt = now;
    if (this.activeStreams === 0) {
      this.lastHeardAt = now;
      return;
    }
    // A look that comes late: this process was not running (stopped by Ctrl-Z, the machine
    // asleep, the loop held), and what the server sent meanwhile waits unread in the socket,
    // read only after this timer. That time is not the server's silence: it is pinged, and given
    // the rest of the timeout to answer; counted, every call in flight failed after an fg past
    // --timeout. That once for each silence; a later late look before the server is heard (a
    // second stop before the ping's answer came) counts one interval of its gap, so two stops
    // do not fail a live server, and a loop late at every look still gives up on a dead one.
    const interval = this.pingIntervalMs;
    if (sinceLastLook > 2 * interval) {
      this.lastHeardAt = this.graceGiven
        ? Math.min(now, this.lastHeardAt + sinceLastLook - interval)
        : Math.max(this.lastHeardAt, now - interval);
      this.graceGiven = true;
    }
    const quietMs = now - this.lastHeardAt;
    const timeoutMs = this.options.responseTimeoutMs;
    if (quietMs >= timeoutMs) {
      const seconds = Math.round(timeoutMs / 100) / 10;
      this.transport.destroy(new ConnectionLostError(`no answer from ${this.peer} in ${seconds} s`));
    } else if (quietMs >= timeoutMs / 4) {
      const payload = Buffer.alloc(8);
      payload.writeUInt32BE(++this.pingsSent, 4);
      this.transport.send(encodePing(payload));
    }
  };

  /** The server sent a connection-level ERROR: every call in flight fails with it, and the socket ends. */
  private serverEndedConnection({
    code,
    message,
    details,
  }: {
    code: ErrorCode;
    message: string;
    details?: ErrorDetails;
  }): void {
    this.lostError = endedConnectionWith(new RemoteError(code, message, details));
    this.transport.end(this.lostError);
  }

  /**
   * A server flooding us with PINGs and reading none of the ACKs (the server's own bound on its
   * clients): else up to twice the outbound mark of 20-byte ACKs, ~100 MB. Counted from the last
   * time the kernel took any of our frames, so only what the server makes us produce counts
   * (not a burst of our own OPENs), and a server that reads, however slowly, is never cut.
   */
  private pingFlooded(): boolean {
    const taken = this.transport.queue.framesTaken;
    if (taken !== this.framesTakenAtPing) {
      this.framesTakenAtPing = taken;
      this.pingsSinceTaken = 0;
    }
    return ++this.pingsSinceTaken > DEFAULTS.maxHeldFramesPerConnection;
  }

  /**
   * Ending before the handshake is done (a frame that did not decode, a WELCOME this client cannot
   * take, the server's refusal): the connect fails now, not once the socket has closed, which a
   * peer that is no muxftp server (an HTTP server answering 400) may hold off for LINGER_MS.
   * After it, ending for a cause fails the calls in flight now, for the same reason.
   */
  private readonly transportOnEnding = (error: MuxftpError | undefined): void => {
    if (this.ready) {
      // Ended for a cause (a frame that broke the protocol, the server's ERROR): nothing more is
      // read, so no call can finish. They fail now, not when the socket closes: a server that
      // keeps its side open held every call LINGER_MS more (2 s) before it failed, and a CLI's
      // retry with it. A clean end (close()) comes with no call left.
      if (error !== undefined) this.failCalls(this.lostError ?? endedConnectionWith(error));
      return;
    }
    if (this.handshake === undefined) return;
    // No caller holds this client: its socket, lingering for our ERROR frame to go out, does not
    // keep the program alive either (as the linger timer does not).
    (this.transport.socket as Partial<Socket>).unref?.();
    const lost = this.lostError ?? this.connectFailure(error);
    this.lostError = endedConnectionWith(lost);
    this.handshake.reject(lost);
    this.handshake = undefined;
  };

  /** CONNECT_FAILED for a connection that ended, `error` its reason, before the handshake was done. */
  private connectFailure(error: MuxftpError | undefined): MuxftpError {
    // A failed TLS handshake gets a plain reason in place of OpenSSL's, as the innermost cause.
    const tls = this.options.tls;
    const caGiven = typeof tls === 'object' && tls.ca !== undefined;
    const tlsFailure = tls !== undefined ? tlsFailureReason(error, caGiven) : undefined;
    // A server that ends the connection unasked (a port forwarded to nothing, a peer that is no
    // muxftp server) is named as the one that closed it: the cause is what the CLI says alone.
    const closedUnasked =
      error === undefined
        ? new Error(
            `the server closed the connection ${this.welcome === undefined ? 'before it answered' : 'during the login'}`,
          )
        : undefined;
    // A frame that breaks the protocol after the WELCOME came from a muxftp server (a broken
    // one), not from something else on the port: said as that, with the protocol's code.
    const brokeLogin =
      error instanceof ProtocolError && !this.ready && this.welcome !== undefined
        ? Object.assign(new Error(`the server broke the protocol during the login (${error.message})`), {
            code: error.code,
          })
        : undefined;
    // It keeps OpenSSL's code, which tells callers which check failed.
    const cause =
      tlsFailure !== undefined
        ? Object.assign(new Error(tlsFailure.reason), { code: tlsFailure.code })
        : (brokeLogin ?? error ?? closedUnasked);
    const message = `could not connect to ${this.peer}: ${tlsFailure?.reason ?? cause?.message ?? 'connection closed'}`;
    return tlsFailure?.setting !== undefined
      ? new SettingError('CONNECT_FAILED', message, tlsFailure.setting, { cause })
      : new MuxftpError('CONNECT_FAILED', message, { cause });
  }

  private readonly transportOnClose = (error: MuxftpError | undefined): void => {
    clearInterval(this.silenceWatch);
    const lost =
      this.lostError ??
      (!this.ready
        ? this.connectFailure(error)
        : (error ??
          new ConnectionLostError(
            // A call after the caller's own close() is told so, not that the server went away.
            `connection to ${this.peer} closed${this.endedByClose ? ' by close()' : ''}`,
          )));
    this.lostError = endedConnectionWith(lost);
    this.handshake?.reject(lost);
    this.handshake = undefined;
    this.failCalls(lost);
    this.markClosed(this.endedHere ? undefined : lost);
  };

  /** The connection is over for `lost`: every stream open or waiting to open fails with it. */
  private failCalls(lost: MuxftpError): void {
    this.lostError = lost;
    const waiting = this.waitingToOpen.splice(0).map((w) => w.stream);
    for (const stream of [...this.streams.values(), ...waiting]) stream.connectionLost(lost);
    this.streams.clear();
  }
}
