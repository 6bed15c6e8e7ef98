/**
 * Streams that are one request and one reply: list, stat, mkdir, rmdir, delete, rename, utime, chmod, digest,
 * stats, space.
 * Each op's row in shared/protocol/operations.ts says it runs here; this table maps it to its
 * handler. Handlers reach files only through Storage, which confines every path.
 */
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError } from '../shared/errors.js';
import { DIGEST_BYTES } from '../shared/integrity/algorithms.js';
import { printableName } from '../shared/printable.js';
import { blockDigestsFitting } from '../shared/protocol/constants.js';
import { encodeReply } from '../shared/protocol/encoder.js';
import type { ServerStats, SpaceReport, WireEntry } from '../shared/protocol/messages.js';
import type { RequestOf } from '../shared/protocol/operations.js';
import { isFileAsSeen } from '../storage/entryInfo.js';
import { fileDigest, type ReadWatch } from '../storage/fileDigest.js';
import { heldPartial } from '../storage/partialUpload.js';
import type { EntryInfo, ListBatchesOptions, Storage } from '../storage/types.js';
import type { ServerCounters } from './counters.js';
import { checkDirectoryPaths } from './directoryPaths.js';
import type { LogFields } from './logEvents.js';
import { nameRequest, type RequestName, ServerStream, SMALL_REPLY_BYTES, type StreamHost } from './stream.js';

export type SimpleRequest = RequestOf<'request'>;

export function toWireEntry(entry: EntryInfo): WireEntry {
  const wire: WireEntry = {
    name: entry.name,
    type: entry.type,
    size: entry.size,
    mtime: Math.round(entry.mtimeMs),
  };
  if (entry.mode !== undefined) wire.mode = entry.mode;
  if (entry.link === true) wire.link = true;
  if (entry.notUtf8 === true) wire.notUtf8 = true;
  return wire;
}

export function readStats(counters: ServerCounters): ServerStats {
  return {
    connections: counters.connections,
    streams: counters.streams,
    rssBytes: process.memoryUsage.rss(),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    uptimeMs: Date.now() - counters.startedAt,
    bytesIn: counters.bytesIn,
    bytesOut: counters.bytesOut,
    filesIn: counters.filesIn,
    filesOut: counters.filesOut,
  };
}

/**
 * One log line per change a request made (as a transfer logs one when it is over), so the log
 * says who removed or renamed what: pyftpdlib logs each DELE, RMD and RNTO. Paths are the
 * client's, below its home, as printableName() shows them (quoted when a space or quote would
 * make the line ambiguous); the connection's label says whose (its login is logged above).
 */
function logChange(host: StreamHost, event: string, what: string, fields: LogFields): void {
  host.log({ event, text: `${host.label} ${what}`, fields });
}

/** A reply, or a listing's entries a batch at a time (sent as REPLY frames flagged MORE). */
type Result = object | { batches: AsyncIterable<WireEntry[]> };
/**
 * `host` gives the counters, and takes each change for the quotas as soon as storage made it
 * (before the reply, and whether or not the stream is still open: the change happened).
 * `watch.signal` is aborted when the stream is over (cancelled, failed, its connection gone): a
 * handler that reads a file stops then, since the stream's slot is free again at once; it calls
 * `watch.onRead` after each read, so a long read is not taken for a stalled stream. A listing
 * tells `watch.onWaitingForMemory` when it waits on other listings, not on its client.
 */
type Handler<R> = (storage: Storage, request: R, host: StreamHost, watch: StreamWatch) => Promise<Result>;
type StreamWatch = Required<ReadWatch> & Required<Pick<ListBatchesOptions, 'onWaitingForMemory'>>;

async function* wireBatches(batches: AsyncIterable<EntryInfo[]>): AsyncGenerator<WireEntry[]> {
  for await (const batch of batches) yield batch.map(toWireEntry);
}

const OPERATIONS: { [K in SimpleRequest['op']]: Handler<Extract<SimpleRequest, { op: K }>> } = {
  list: async (storage, r, _host, watch) => ({
    batches: wireBatches(
      storage.listBatches(
        r.path,
        r.maxEntries === undefined ? watch : { ...watch, maxEntries: r.maxEntries },
      ),
    ),
  }),
  stat: async (storage, r) => ({ entry: toWireEntry(await storage.stat(r.path)) }),
  mkdir: async (storage, r, host) => {
    const made = await storage.mkdir(r.path, { parents: r.parents === true, mode: r.mode });
    // mkdir -p of a directory that is there: nothing changed, nothing to log.
    if (made === false) return {};
    logChange(
      host,
      'made_directory',
      `made directory ${printableName(r.path)}${r.parents === true ? ' (and parents)' : ''}`,
      { path: r.path, ...(r.parents === true ? { parents: true } : {}) },
    );
    return {};
  },
  rmdir: async (storage, r, host) => {
    await storage.rmdir(r.path, {
      // Kept partial uploads in it go with it: quotas free their bytes as each goes.
      onPartialRemoved: (dir, bytes) => host.recordChange({ op: 'partial', dir, bytes: -bytes }),
    });
    host.recordChange({ op: 'rmdir', path: r.path });
    logChange(host, 'removed_directory', `removed directory ${printableName(r.path)}`, { path: r.path });
    return {};
  },
  delete: async (storage, r, host) => {
    // What interrupted uploads kept for the file goes with it: quotas free their bytes as each goes.
    const removed = await storage.remove(r.path, {
      onPartialRemoved: (dir, bytes) => host.recordChange({ op: 'partial', dir, bytes: -bytes }),
    });
    host.recordChange({ op: 'delete', path: r.path, removed });
    logChange(host, 'deleted', `deleted ${printableName(r.path)}`, { path: r.path });
    return {};
  },
  rename: async (storage, r, host) => {
    // Replacing a file removes it: that takes the delete permission too (the row's is rename).
    const refuseReplacing = r.noReplace
      ? new MuxftpError('ALREADY_EXISTS', `already exists: ${r.to} (kept: the move was not to replace it)`)
      : host.permits('delete')
        ? undefined
        : new MuxftpError(
            'PERMISSION_DENIED',
            `permission denied: ${r.to} exists, and replacing it needs the delete permission`,
          );
    const renamed = await storage.rename(r.from, r.to, refuseReplacing && { refuseReplacing });
    host.recordChange({ op: 'rename', from: r.from, to: r.to, renamed });
    logChange(host, 'renamed', `renamed ${printableName(r.from)} to ${printableName(r.to)}`, {
      path: r.from,
      to: r.to,
    });
    return {};
  },
  utime: async (storage, r, host) => {
    // A Storage of the embedder's own may have no way to set times.
    if (storage.setModifiedTime === undefined)
      throw new MuxftpError('UNSUPPORTED', 'this server cannot set modification times');
    const ifUnchanged =
      r.ifUnchanged === undefined ? undefined : { size: r.ifUnchanged.size, mtimeMs: r.ifUnchanged.mtime };
    const entry = await storage.setModifiedTime(r.path, r.mtime, ifUnchanged && { ifUnchanged });
    // Another file than the one the client saw: storage set nothing. The time asked may have a
    // fraction of a ms (a local file's, as put --skip-identical sends it), an entry has whole ms.
    if (ifUnchanged !== undefined && Math.abs(entry.mtimeMs - r.mtime) >= 1)
      return { entry: toWireEntry(entry) };
    const mtime = new Date(r.mtime).toISOString();
    logChange(host, 'set_time', `set the modification time of ${printableName(r.path)} to ${mtime}`, {
      path: r.path,
      mtime,
    });
    return { entry: toWireEntry(entry) };
  },
  chmod: async (storage, r, host) => {
    if (storage.setPermissions === undefined)
      throw new MuxftpError('UNSUPPORTED', 'this server cannot set permissions');
    const ifUnchanged =
      r.ifUnchanged === undefined ? undefined : { size: r.ifUnchanged.size, mtimeMs: r.ifUnchanged.mtime };
    const entry = await storage.setPermissions(r.path, r.mode, ifUnchanged && { ifUnchanged });
    // Another file than the one the client saw: storage set nothing.
    if (ifUnchanged !== undefined && !isFileAsSeen(entry, ifUnchanged)) return { entry: toWireEntry(entry) };
    const mode = (entry.mode ?? r.mode).toString(8).padStart(4, '0');
    logChange(host, 'set_mode', `set the mode of ${printableName(r.path)} to ${mode}`, {
      path: r.path,
      mode,
    });
    return { entry: toWireEntry(entry) };
  },
  digest: async (storage, r, _host, reading) => {
    const { entry, digest } = await fileDigest(storage, r.path, r.algorithm, reading);
    return { entry: toWireEntry(entry), algorithm: digest.algorithm, digest: digest.digest.toString('hex') };
  },
  partial: async (storage, r, host, reading) => {
    const key = {
      size: r.size,
      algorithm: r.algorithm,
      ...(r.digest !== undefined ? { digest: r.digest } : { source: r.source! }),
    };
    // A stalled upload still writing it (the connection this client's retry replaces) gives way.
    await host.takeOverStalledUpload(r.path, key);
    if (r.drop === true) {
      // The client will not continue it (it found the file whole): what is kept under its key goes
      // (quotas free the bytes), never data an upload in flight writes, nor another key's.
      await storage.dropPartial?.(r.path, key, {
        onPartialRemoved: (dir, bytes) => host.recordChange({ op: 'partial', dir, bytes: -bytes }),
      });
      const inUse = (await storage.partialInUse?.(r.path, key)) === true;
      return { offset: 0, blocks: [], ...(inUse ? { inUse: true } : {}) };
    }
    return heldPartial(
      storage,
      r.path,
      key,
      blockDigestsFitting(host.peerMaxFramePayload, DIGEST_BYTES[r.algorithm], DEFAULTS.maxResumeBlocks),
      reading,
    );
  },
  stats: async (_storage, _r, host) => readStats(host.counters),
  space: async (storage, _r, host) => {
    const report: SpaceReport = {};
    const disk = await storage.space?.();
    if (disk !== undefined) report.disk = disk;
    const quota = host.quota;
    if (quota !== undefined) {
      const usedBytes = await quota.usedBytes();
      report.quota = { limitBytes: quota.limitBytes, usedBytes, reservedBytes: quota.reservedBytes };
    }
    return report;
  },
};

export class RequestStream extends ServerStream {
  readonly op: SimpleRequest['op'];
  /** Room this stream holds in the connection's outbound budget for its next frame. */
  private reserved = 0;
  /** A listing waiting for the connection's others to be sent (DEFAULTS.listingsAtOncePerConnection). */
  private waitingForTurn = false;
  private readonly request: SimpleRequest;
  /** Aborted when the stream is over, so that a handler reading a file stops. */
  private readonly over = new AbortController();
  /** Waiting for room in the connection's output for its next frame. */
  private waitingForRoom = false;
  /**
   * Storage's work for it under way (its path's check, then its handler), until it settles:
   * undefined once it has (a stream answered is not counted as working: fileWorkLeft).
   */
  private handling: Promise<unknown> | undefined;
  /** Waiting for memory others hold: a listing, storage's listing budget; a digest, a read buffer. */
  private waitingForMemory = false;
  /** A handler reading a file (a digest, a partial's blocks) stops with the stream and moves it. */
  private readonly watch: StreamWatch = {
    signal: this.over.signal,
    // The connection: it holds a few of the server's read buffers for hashing at most.
    owner: this.host,
    onRead: () => this.progressed(),
    onWaitingForMemory: (waiting) => {
      this.waitingForMemory = waiting;
      // Room held in the connection's output would be held for as long: taken again after.
      if (waiting) this.releaseReserved();
      // (A digest waits for a read buffer: no listing's turn is held.)
      if (this.op === 'list') this.host.listings.waitingForMemory(waiting);
      // However long it waited, its stall check starts now.
      if (!waiting) this.progressed();
    },
  };

  constructor(host: StreamHost, id: number, request: SimpleRequest) {
    super(host, id);
    this.op = request.op;
    this.request = request;
  }

  protected describe(): RequestName {
    return nameRequest(this.request);
  }

  override get waitsForOutput(): boolean {
    return this.waitingForRoom || (this.waitingForTurn && !this.host.listings.aheadWaitForMemory);
  }

  /** Waiting for memory other streams hold, or a listing behind listings that all do. */
  override get heldByServer(): boolean {
    return this.waitingForMemory || (this.waitingForTurn && this.host.listings.aheadWaitForMemory);
  }

  start(): void {
    if (this.op !== 'list') {
      this.run().catch((err: unknown) => this.fail(err));
      return;
    }
    // A listing holds its directory's names until it is sent: one connection has a few at once.
    this.waitingForTurn = true;
    this.host.listings
      .run(() => {
        this.waitingForTurn = false;
        return this.run();
      }, this.over.signal)
      .catch((err: unknown) => this.fail(err));
  }

  private async run(): Promise<void> {
    if (this.isFinished) return; // cancelled while it waited its turn
    // Nothing is looked up until the answer has room in the connection's budget (issue #7).
    if (!(await this.reserve(this.op === 'list' ? this.frameBudget() : SMALL_REPLY_BYTES))) return;
    // A path ending in '/' must name a directory (directoryPaths.ts).
    const checking = checkDirectoryPaths(this.host.storage, this.request);
    if (checking !== undefined) {
      await this.storageWork(checking);
      if (this.isFinished) return;
    }
    const handler = OPERATIONS[this.op] as Handler<SimpleRequest>;
    const result = await this.storageWork(handler(this.host.storage, this.request, this.host, this.watch));
    if (this.isFinished) return;
    if ('batches' in result) {
      await this.sendEntries(result.batches);
      return;
    }
    const reply = encodeReply(this.id, result);
    // Room for its real length: a partial's REPLY lists up to 2048 block digests (~72 KB in
    // xxh128, ~137 KB in sha256), far past the small answer reserved; sent in 4 KiB, 256 partial
    // queries on each of a few connections reading none held them all, past the control budget.
    // (Room given back while the handler waited for memory is taken again here too.)
    if (this.reserved < reply.length) {
      this.releaseReserved();
      if (!(await this.reserve(reply.length))) return;
    }
    this.sendReserved(reply);
    this.close(false);
  }

  /** `work` is what fileWorkLeft() gives until it settles (before the stream goes on). */
  private storageWork<T>(work: Promise<T>): Promise<T> {
    this.handling = work;
    const settled = () => {
      if (this.handling === work) this.handling = undefined;
    };
    work.then(settled, settled);
    return work;
  }

  /** Half the smaller of the control limit and what the client accepts: JSON framing has headroom. */
  private frameBudget(): number {
    return Math.min(DEFAULTS.maxControlPayloadBytes, this.host.peerMaxFramePayload) / 2;
  }

  /**
   * Waits until room for the next frame fits in the connection's budget: `bytes`, or past the
   * server's budget as little as a small answer needs (a listing then sends smaller frames).
   * False when the stream ended meanwhile.
   */
  private async reserve(bytes: number): Promise<boolean> {
    this.waitingForRoom = true;
    const reserved = await this.host.queue
      .reserveForReply(bytes, Math.min(bytes, SMALL_REPLY_BYTES))
      .finally(() => {
        this.waitingForRoom = false;
      });
    this.reserved = reserved;
    if (this.isFinished) {
      this.releaseReserved();
      return false;
    }
    return reserved > 0;
  }

  /** Sends a frame in place of the room reserved for it. */
  private sendReserved(frame: Buffer): void {
    this.releaseReserved();
    this.progressed();
    this.host.send(frame);
  }

  private releaseReserved(): void {
    if (this.reserved > 0) this.host.queue.releaseReply(this.reserved);
    this.reserved = 0;
  }

  /**
   * A listing, as storage produces it: REPLY frames flagged MORE, each built only once the
   * connection has room for it. Leaving the loop early (the stream or its connection gone)
   * stops storage looking entries up.
   */
  private async sendEntries(batches: AsyncIterable<WireEntry[]>): Promise<void> {
    let frame: WireEntry[] = [];
    let frameBytes = 0;
    for await (const batch of batches) {
      if (this.isFinished) return;
      // Storage looked a batch up: a long listing of a huge directory moves, as each read of a
      // file being hashed does (a single lookup hung for the idle timeout is a dying disk).
      this.progressed();
      // Given back while storage waited for memory: taken again.
      if (this.reserved === 0 && !(await this.reserve(this.frameBudget()))) return;
      for (const entry of batch) {
        const bytes = Buffer.byteLength(JSON.stringify(entry)) + 1;
        // The room reserved for this frame: frameBudget(), or less past the server's budget.
        if (frame.length > 0 && frameBytes + bytes > this.reserved) {
          this.sendReserved(encodeReply(this.id, { entries: frame }, true));
          frame = [];
          frameBytes = 0;
          if (!(await this.reserve(this.frameBudget()))) return;
        }
        frame.push(entry);
        frameBytes += bytes;
      }
    }
    if (this.isFinished) return;
    if (this.reserved === 0 && !(await this.reserve(this.frameBudget()))) return;
    this.sendReserved(encodeReply(this.id, { entries: frame }));
    this.close(false);
  }

  /**
   * Its lookup or change still under way (a stat, a mkdir, a listing's start), or a digest's or a
   * partial query's read of its file: a digest holds the file until it stops.
   */
  override fileWorkLeft(): Promise<unknown> | undefined {
    return this.handling;
  }

  protected cleanup(): void {
    this.releaseReserved();
    this.over.abort();
  }
}
