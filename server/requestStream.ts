/**
 * Streams that are one request and one reply: list, stat, mkdir, rmdir, delete, rename, digest, stats.
 * Each op's row in shared/protocol/operations.ts says it runs here; this table maps it to its
 * handler. Handlers reach files only through Storage, which confines every path.
 */
import { DEFAULTS } from '../shared/defaults.js';
import { encodeReply } from '../shared/protocol/encoder.js';
import type { ServerStats, WireEntry } from '../shared/protocol/messages.js';
import type { RequestOf } from '../shared/protocol/operations.js';
import { fileDigest } from '../storage/fileDigest.js';
import type { EntryInfo, Storage } from '../storage/types.js';
import type { ServerCounters } from './counters.js';
import { ServerStream, type StreamHost } from './stream.js';

export type SimpleRequest = RequestOf<'request'>;

export function toWireEntry(entry: EntryInfo): WireEntry {
  return { name: entry.name, type: entry.type, size: entry.size, mtime: Math.round(entry.mtimeMs) };
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

type Handler<R> = (storage: Storage, request: R, counters: ServerCounters) => Promise<object | WireEntry[]>;

const OPERATIONS: { [K in SimpleRequest['op']]: Handler<Extract<SimpleRequest, { op: K }>> } = {
  list: async (storage, r) => (await storage.list(r.path)).map(toWireEntry),
  stat: async (storage, r) => ({ entry: toWireEntry(await storage.stat(r.path)) }),
  mkdir: async (storage, r) => {
    await storage.mkdir(r.path, { parents: r.parents === true });
    return {};
  },
  rmdir: async (storage, r) => {
    await storage.rmdir(r.path);
    return {};
  },
  delete: async (storage, r) => {
    await storage.remove(r.path);
    return {};
  },
  rename: async (storage, r) => {
    await storage.rename(r.from, r.to);
    return {};
  },
  digest: async (storage, r) => {
    const { entry, digest } = await fileDigest(storage, r.path, r.algorithm);
    return { entry: toWireEntry(entry), algorithm: digest.algorithm, digest: digest.digest.toString('hex') };
  },
  stats: async (_storage, _r, counters) => readStats(counters),
};

export class RequestStream extends ServerStream {
  readonly op: SimpleRequest['op'];
  private readonly request: SimpleRequest;

  constructor(host: StreamHost, id: number, request: SimpleRequest) {
    super(host, id);
    this.op = request.op;
    this.request = request;
  }

  start(): void {
    const handler = OPERATIONS[this.op] as Handler<SimpleRequest>;
    handler(this.host.storage, this.request, this.host.counters).then(
      (result) => {
        if (this.isFinished) return;
        if (Array.isArray(result)) this.sendEntries(result);
        else this.host.send(encodeReply(this.id, result));
        this.close(false);
      },
      (err: unknown) => this.fail(err),
    );
  }

  /** A listing may not fit one control frame: split it into REPLY frames flagged MORE. */
  private sendEntries(entries: WireEntry[]): void {
    // Half the smaller of the control limit and what the client accepts: JSON framing has headroom.
    const budget = Math.min(DEFAULTS.maxControlPayloadBytes, this.host.peerMaxFramePayload) / 2;
    let batch: WireEntry[] = [];
    let batchBytes = 0;
    for (const entry of entries) {
      const bytes = Buffer.byteLength(JSON.stringify(entry)) + 1;
      if (batch.length > 0 && batchBytes + bytes > budget) {
        this.host.send(encodeReply(this.id, { entries: batch }, true));
        batch = [];
        batchBytes = 0;
      }
      batch.push(entry);
      batchBytes += bytes;
    }
    this.host.send(encodeReply(this.id, { entries: batch }));
  }

  protected cleanup(): void {}
}
