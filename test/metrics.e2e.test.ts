/**
 * Prometheus metrics, scraped over real HTTP while real transfers run over real sockets, and the
 * whole exposition parsed by a parser (parse-prometheus-text-format), never by matching one line.
 * Storage is wrapped so that uploads can be held mid-write and the upload backlog observed.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { connect as connectTls } from 'node:tls';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { MetricsExporter } from '../server/metrics.js';
import type { ServerOptions } from '../server/options.js';
import { MuxServer } from '../server/server.js';
import { DEFAULTS } from '../shared/defaults.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import {
  encodeAuth,
  encodeData,
  encodeEnd,
  encodeError,
  encodeOpen,
  encodeWindow,
} from '../shared/protocol/encoder.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage, UploadHandle } from '../storage/types.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { peakOf } from './helpers/peak.js';
import { RawPeer } from './helpers/rawPeer.js';
import { makeTestCerts, opensslAvailable } from './helpers/testCerts.js';

/** Memory storage whose upload writes wait while `held` is set. */
class GatedStorage extends MemoryStorage {
  held: Promise<void> | undefined;
  private releaseHeld: (() => void) | undefined;

  hold(): void {
    this.held = new Promise((resolve) => {
      this.releaseHeld = resolve;
    });
  }

  release(): void {
    this.releaseHeld?.();
    this.held = undefined;
  }

  override async createUpload(path: string, options?: { expectedSize?: number }): Promise<UploadHandle> {
    const inner = await super.createUpload(path, options);
    return {
      write: async (chunks) => {
        await this.held;
        return inner.write(chunks);
      },
      commit: (digest) => inner.commit(digest),
      abort: () => inner.abort(),
    };
  }
}

interface Scrape {
  families: Map<string, ParsedFamily>;
  /** The value of a counter or gauge sample with exactly these labels (0 when absent). */
  value(name: string, labels?: Record<string, string>): number;
  histogram(name: string): { count: number; sum: number; buckets: Record<string, number> };
}

async function scrape(port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const parsed = parsePrometheusTextFormat(text);
  // The parser skips lines it does not understand, and folds a histogram with labels other than
  // `le` into one (prom-client's nodejs_gc_duration_seconds): so every declared family must come
  // out, and every other family with as many samples as it has lines.
  const declared = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
  expect(parsed.map((family) => family.name)).toEqual(declared);
  for (const family of parsed) {
    const lines = text
      .split('\n')
      .filter((line) => new RegExp(`^${family.name}(_bucket|_sum|_count)?[{ ]`).test(line));
    const labelledHistogram = family.type === 'HISTOGRAM' && lines.some((l) => /\{(?!le=)/.test(l));
    if (labelledHistogram) continue;
    const samples = family.metrics.reduce(
      (n, m) => n + (m.buckets === undefined ? 1 : Object.keys(m.buckets).length + 2),
      0,
    );
    expect(samples, family.name).toBe(lines.length);
  }
  const families = new Map(parsed.map((family) => [family.name, family]));
  return {
    families,
    value(name, labels = {}) {
      const family = families.get(name);
      if (family === undefined) throw new Error(`no metric ${name} in the exposition`);
      const sample = family.metrics.find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
      return sample === undefined ? 0 : Number(sample.value);
    },
    histogram(name) {
      const family = families.get(name);
      const [metric] = family?.metrics ?? [];
      if (family?.type !== 'HISTOGRAM' || metric?.buckets === undefined)
        throw new Error(`no histogram ${name}`);
      const buckets = Object.fromEntries(Object.entries(metric.buckets).map(([le, n]) => [le, Number(n)]));
      return { count: Number(metric.count), sum: Number(metric.sum), buckets };
    },
  };
}

/** Polls until `check` passes on a fresh scrape (bounded: 5 s). */
async function scrapeUntil(port: number, check: (s: Scrape) => boolean): Promise<Scrape> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const s = await scrape(port);
    if (check(s)) return s;
    if (Date.now() > deadline) throw new Error('metrics never reached the expected state');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function start(storage: Storage, maxConnections = 100, options: Partial<ServerOptions> = {}) {
  const server = new MuxServer({
    storage,
    host: '127.0.0.1',
    port: 0,
    maxConnections,
    log: () => {},
    ...options,
  });
  const { port } = await server.listen();
  const exporter = new MetricsExporter(server, { host: '127.0.0.1', port: 0 });
  const metricsPort = (await exporter.listen()).port;
  cleanup.push(
    () => server.close(),
    () => exporter.close(),
  );
  return { server, port, metricsPort };
}

/** start() over TLS on memory storage, with a test CA's certificate (removed after the test). */
async function startTls(maxConnections = 100) {
  const certs = await makeTestCerts();
  cleanup.push(() => certs.remove());
  const started = await start(new MemoryStorage(), maxConnections, {
    tls: { cert: certs.cert, key: certs.key },
  });
  return { ...started, certs };
}

describe('MetricsExporter', () => {
  it('tracks connections, streams, bytes, backlog and histograms as an upload and a download run', async () => {
    const storage = new GatedStorage();
    const { port, metricsPort } = await start(storage);
    const before = await scrape(metricsPort);
    expect(before.value('muxftp_connections')).toBe(0);
    expect(before.value('muxftp_transfer_bytes_total', { direction: 'in' })).toBe(0);
    expect(before.histogram('muxftp_upload_size_bytes').count).toBe(0);
    expect(before.families.get('muxftp_upload_duration_seconds')?.help).toBe(
      'Time from an upload stream opening to its end, completed uploads.',
    );
    expect(before.families.get('muxftp_download_duration_seconds')?.help).toMatch(/^Time from a download /);

    const client = await Client.connect({ port });
    cleanup.push(() => client.destroy());
    const N = 3 * 1024 * 1024 + 17;
    const content = Buffer.alloc(N, 7);
    storage.hold();
    const source = new PassThrough();
    const upload = client.put('up.bin', source);
    source.write(content.subarray(0, 1024 * 1024));
    // Mid-upload: one connection, one put stream, and the bytes waiting for the held disk.
    const during = await scrapeUntil(
      metricsPort,
      (s) => s.value('muxftp_upload_backlog_bytes') >= 1024 * 1024,
    );
    expect(during.value('muxftp_connections')).toBe(1);
    expect(during.value('muxftp_connections_total')).toBe(1);
    expect(during.value('muxftp_streams', { op: 'put' })).toBe(1);
    expect(during.value('muxftp_streams_total', { op: 'put' })).toBe(1);
    expect(during.value('muxftp_transfer_bytes_total', { direction: 'in' })).toBe(0);
    storage.release();
    source.end(content.subarray(1024 * 1024));
    await upload;

    const afterUpload = await scrape(metricsPort);
    expect(afterUpload.value('muxftp_transfer_bytes_total', { direction: 'in' })).toBe(N);
    expect(afterUpload.value('muxftp_transfer_files_total', { direction: 'in' })).toBe(1);
    expect(afterUpload.value('muxftp_streams', { op: 'put' })).toBe(0);
    expect(afterUpload.value('muxftp_upload_backlog_bytes')).toBe(0);
    const uploadSize = afterUpload.histogram('muxftp_upload_size_bytes');
    expect(uploadSize).toMatchObject({ count: 1, sum: N });
    expect(uploadSize.buckets[String(1024 * 4 ** 5)]).toBe(0); // 1 MiB < N
    expect(uploadSize.buckets[String(1024 * 4 ** 6)]).toBe(1); // 4 MiB >= N
    expect(afterUpload.histogram('muxftp_upload_duration_seconds').count).toBe(1);
    expect(afterUpload.histogram('muxftp_download_size_bytes').count).toBe(0);

    // A download to a peer that stops reading its socket: the server's outbound queue fills.
    const M = 24 * 1024 * 1024;
    await client.put('big.bin', Buffer.alloc(M, 3));
    const peer = await RawPeer.open(port);
    cleanup.push(async () => peer.destroy());
    peer.socket.pause();
    peer.write(encodeOpen(1, { op: 'get', path: 'big.bin' }));
    peer.write(encodeWindow(1, M));
    const queued = await scrapeUntil(metricsPort, (s) => s.value('muxftp_outbound_queue_bytes') > 0);
    expect(queued.value('muxftp_streams', { op: 'get' })).toBe(1);
    expect(queued.value('muxftp_connections')).toBe(2);
    expect(queued.value('muxftp_transfer_bytes_total', { direction: 'out' })).toBe(0);
    peer.socket.resume();
    await peer.waitFor((frame) => frame.type === FrameType.END && frame.streamId === 1, 10_000);
    const got = await client.getBuffer('up.bin');
    expect(got.equals(content)).toBe(true);

    const afterDownload = await scrape(metricsPort);
    expect(afterDownload.value('muxftp_transfer_bytes_total', { direction: 'out' })).toBe(M + N);
    expect(afterDownload.value('muxftp_transfer_files_total', { direction: 'out' })).toBe(2);
    expect(afterDownload.value('muxftp_transfer_bytes_total', { direction: 'in' })).toBe(N + M);
    expect(afterDownload.histogram('muxftp_download_size_bytes')).toMatchObject({ count: 2, sum: M + N });
    expect(afterDownload.value('muxftp_streams_total', { op: 'get' })).toBe(2);
    expect(afterDownload.value('muxftp_outbound_queue_bytes')).toBe(0);
    expect(afterDownload.value('muxftp_control_frame_bytes')).toBe(0);
    expect(afterDownload.value('muxftp_login_checks_waiting')).toBe(0);

    await client.close();
    peer.destroy();
    const closed = await scrapeUntil(metricsPort, (s) => s.value('muxftp_connections') === 0);
    expect(closed.value('muxftp_connections_total')).toBe(2);
  });

  it('counts errors by code and refused connections by reason', async () => {
    const { port, metricsPort } = await start(new MemoryStorage(), 1);
    const client = await Client.connect({ port });
    cleanup.push(() => client.destroy());
    await expect(client.stat('missing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.delete('missing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.mkdir('a/b')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(Client.connect({ port })).rejects.toMatchObject({ code: 'SERVER_BUSY' });
    const s = await scrapeUntil(
      metricsPort,
      (m) => m.value('muxftp_connections_refused_total', { reason: 'max_connections' }) === 1,
    );
    expect(s.value('muxftp_errors_total', { code: 'NOT_FOUND' })).toBe(3);
    expect(s.value('muxftp_streams_total', { op: 'stat' })).toBe(1);
    expect(s.value('muxftp_streams_total', { op: 'delete' })).toBe(1);
    expect(s.value('muxftp_connections')).toBe(1);
  });

  /** A server with one user, alice (password alice-secret), answering a failed login after `delayMs`. */
  async function startWithAlice(delayMs: number) {
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    return start(new MemoryStorage(), 100, {
      accounts: new Accounts({ users }),
      loginFailureDelayMs: delayMs,
      loginFailuresPerAddress: 100,
    });
  }

  it('counts each failed login once: its answer, or the end of the connection it closes', async () => {
    const { port, metricsPort } = await startWithAlice(1);
    for (const user of ['alice', 'mallory'])
      await expect(Client.connect({ port, user, password: 'nope' })).rejects.toMatchObject({
        code: 'LOGIN_FAILED',
      });
    // Three on one connection: two answers, then the connection's end.
    const peer = await RawPeer.open(port);
    cleanup.push(async () => peer.destroy());
    for (let attempt = 1; attempt <= 2; attempt++) {
      peer.write(encodeAuth({ user: 'alice', password: `wrong${attempt}` }));
      await peer.waitFor(
        (f) =>
          f.type === FrameType.AUTH &&
          peer.frames.filter((g) => g.type === FrameType.AUTH).length === attempt,
      );
    }
    peer.write(encodeAuth({ user: 'alice', password: 'wrong3' }));
    expect(await peer.connectionError()).toMatchObject({ code: 'LOGIN_FAILED' });
    await peer.closed;
    const s = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections') === 0);
    expect(s.value('muxftp_errors_total', { code: 'LOGIN_FAILED' })).toBe(5);
  });

  it('counts a failed login whose client left before the answer, held back, was sent', async () => {
    const { port, metricsPort } = await startWithAlice(30_000);
    const leaver = await RawPeer.open(port);
    cleanup.push(async () => leaver.destroy());
    leaver.write(encodeAuth({ user: 'alice', password: 'wrong' }));
    // Counted once it is known to have failed, its answer held back 30 s; the guesser leaves
    // without it. Before: counted only as the answer went, so a guesser that never waited for one
    // was not (this waited 5 s for a count that came 30 s later, or never).
    const failed = await scrapeUntil(
      metricsPort,
      (m) => m.value('muxftp_errors_total', { code: 'LOGIN_FAILED' }) >= 1,
    );
    expect(failed.value('muxftp_errors_total', { code: 'LOGIN_FAILED' })).toBe(1);
    leaver.destroy();
    await leaver.closed;
  });

  it('counts a client that half-closes mid-transfer as a lost connection, once, as one that resets', async () => {
    // A client killed between frames closes with a FIN (a reset only with bytes unread): its cut
    // upload and download were logged CONNECTION_LOST and counted nowhere.
    const { port, metricsPort } = await start(new MemoryStorage());
    const client = await Client.connect({ port });
    cleanup.push(() => client.destroy());
    await client.put('big.bin', Buffer.alloc(4 * 1024 * 1024, 1));
    await client.close();
    const peer = await RawPeer.open(port);
    cleanup.push(async () => peer.destroy());
    peer.write(encodeOpen(1, { op: 'put', path: 'cut.bin', size: 1024 * 1024 }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, Buffer.alloc(1000, 2)));
    peer.write(encodeOpen(3, { op: 'get', path: 'big.bin' }));
    peer.write(encodeWindow(3, 64 * 1024));
    await peer.waitFor((f) => f.type === FrameType.DATA && f.streamId === 3);
    peer.socket.end();
    const s = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections') === 0);
    expect(s.value('muxftp_errors_total', { code: 'CONNECTION_LOST' })).toBe(1);
    expect(s.value('muxftp_streams', { op: 'put' })).toBe(0);
    expect(s.value('muxftp_streams', { op: 'get' })).toBe(0);
    // One that half-closes with its put ended and its get's credit given: both finish, nothing counted.
    const quiet = await RawPeer.open(port);
    cleanup.push(async () => quiet.destroy());
    const small = Buffer.alloc(1000, 3);
    quiet.write(encodeOpen(1, { op: 'put', path: 'whole.bin', size: small.length }));
    await quiet.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    quiet.write(encodeData(1, small));
    quiet.write(encodeEnd(1, small.length, 'xxh128', contentDigest('xxh128', small)));
    quiet.write(encodeOpen(3, { op: 'get', path: 'big.bin' }));
    quiet.write(encodeWindow(3, 4 * 1024 * 1024));
    quiet.socket.end();
    await quiet.closed;
    expect(quiet.frames.some((f) => f.type === FrameType.END && f.streamId === 3)).toBe(true);
    expect(quiet.frames.some((f) => f.type === FrameType.REPLY && f.streamId === 1)).toBe(true);
    // One that leaves saying why (ERROR on stream 0) mid-transfer was not lost: counted by its
    // own code, as the reason its connection ended (its cut transfer was in no metric).
    const leaver = await RawPeer.open(port);
    cleanup.push(async () => leaver.destroy());
    leaver.write(encodeOpen(1, { op: 'put', path: 'left.bin', size: 1024 * 1024 }));
    await leaver.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    leaver.write(encodeData(1, Buffer.alloc(1000, 2)));
    leaver.write(encodeError(0, { status: 100, code: 'PROTOCOL_ERROR', message: 'leaving' }));
    leaver.socket.end();
    await leaver.closed;
    const after = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections') === 0);
    expect(after.value('muxftp_errors_total', { code: 'CONNECTION_LOST' })).toBe(1);
    expect(after.value('muxftp_errors_total', { code: 'PROTOCOL_ERROR' })).toBe(1);
  });

  it('counts no error for a connection a shutdown closed with its transfers done, one for each it cut', async () => {
    // SHUTTING_DOWN was counted for every connection a stop closed, idle ones too: each restart
    // read as errors, though the log says "(drained for shutdown)", no error.
    const storage = new GatedStorage();
    const { server, port } = await start(storage);
    const idle = await Client.connect({ port });
    cleanup.push(() => idle.destroy());
    const peer = await RawPeer.open(port);
    cleanup.push(async () => peer.destroy());
    storage.hold();
    cleanup.push(async () => storage.release());
    peer.write(encodeOpen(1, { op: 'put', path: 'held.bin', size: 1024 * 1024 }));
    await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
    peer.write(encodeData(1, Buffer.alloc(1000, 2)));
    // The idle client closed at once; the put, its write held, cut once the grace is over.
    await server.close(200);
    expect(server.counters.errors.get('SHUTTING_DOWN')).toBe(1);
  });

  it.skipIf(!opensslAvailable)(
    'counts a TLS client killed mid-transfer as a lost connection, once',
    async () => {
      // Its kernel ends the TCP connection with a FIN and no close_notify: TLS has no half-close,
      // so the transfers were cut as the connection closed with no error, logged CONNECTION_LOST
      // and counted nowhere.
      const { port, metricsPort, certs } = await startTls();
      const client = await Client.connect({ port, tls: { ca: certs.ca } });
      cleanup.push(() => client.destroy());
      await client.put('big.bin', Buffer.alloc(4 * 1024 * 1024, 1));
      const openOverTls = async (): Promise<{ peer: RawPeer; tcp: Socket }> => {
        const tcp = connect({ host: '127.0.0.1', port });
        tcp.on('error', () => {});
        cleanup.push(async () => tcp.destroy());
        await once(tcp, 'connect');
        const secure = connectTls({ socket: tcp, ca: certs.ca, servername: 'localhost' });
        await once(secure, 'secureConnect');
        return { peer: await RawPeer.open(secure), tcp };
      };
      const { peer, tcp } = await openOverTls();
      peer.write(encodeOpen(1, { op: 'put', path: 'cut.bin', size: 1024 * 1024 }));
      await peer.waitFor((f) => f.type === FrameType.WINDOW && f.streamId === 1);
      peer.write(encodeData(1, Buffer.alloc(1000, 2)));
      peer.write(encodeOpen(3, { op: 'get', path: 'big.bin' }));
      peer.write(encodeWindow(3, 64 * 1024));
      await peer.waitFor((f) => f.type === FrameType.DATA && f.streamId === 3);
      tcp.end(); // as its kernel does for a killed process: a FIN under the TLS session
      const s = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections') === 1);
      expect(s.value('muxftp_errors_total', { code: 'CONNECTION_LOST' })).toBe(1);
      expect(s.value('muxftp_streams', { op: 'put' })).toBe(0);
      expect(s.value('muxftp_streams', { op: 'get' })).toBe(0);
      // Closed the same way with nothing cut (its get done): nothing counted.
      const quiet = await openOverTls();
      quiet.peer.write(encodeOpen(1, { op: 'get', path: 'big.bin' }));
      quiet.peer.write(encodeWindow(1, 4 * 1024 * 1024));
      await quiet.peer.waitFor((f) => f.type === FrameType.END && f.streamId === 1);
      quiet.tcp.end();
      await client.close();
      const after = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections') === 0);
      expect(after.value('muxftp_errors_total', { code: 'CONNECTION_LOST' })).toBe(1);
    },
  );

  it.skipIf(!opensslAvailable)('counts failed TLS handshakes as refused connections', async () => {
    const { port, metricsPort, certs } = await startTls();
    // A client that does not trust the certificate closes the handshake; a TLS record that is
    // not a ClientHello fails it on the server's side.
    await expect(Client.connect({ port, tls: true })).rejects.toMatchObject({ code: 'CONNECT_FAILED' });
    const raw = connect({ host: '127.0.0.1', port });
    raw.on('error', () => {});
    raw.end(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]));
    raw.resume();
    const s = await scrapeUntil(
      metricsPort,
      (m) => m.value('muxftp_connections_refused_total', { reason: 'tls_handshake' }) >= 2,
    );
    expect(s.value('muxftp_connections_refused_total', { reason: 'tls_handshake' })).toBe(2);
    // A good client afterwards is not counted.
    const client = await Client.connect({ port, tls: { ca: certs.ca } });
    await client.close();
    const after = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections_total') === 1);
    expect(after.value('muxftp_connections_refused_total', { reason: 'tls_handshake' })).toBe(2);
  });

  it.skipIf(!opensslAvailable)(
    'shows the sockets whose TLS handshake is under way, which the connection cap counts',
    async () => {
      // Refused at --max-connections 2 while muxftp_connections said 0: two sockets that had
      // sent nothing yet held both places, and no metric showed them.
      const { port, metricsPort, certs } = await startTls(2);
      const silent = [0, 1].map(() => {
        const socket = connect({ host: '127.0.0.1', port });
        socket.on('error', () => {});
        socket.resume();
        return socket;
      });
      cleanup.push(async () => {
        for (const socket of silent) socket.destroy();
      });
      await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections_handshaking') === 2);
      await expect(Client.connect({ port, tls: { ca: certs.ca } })).rejects.toMatchObject({
        code: 'SERVER_BUSY',
      });
      const refused = await scrapeUntil(
        metricsPort,
        (m) => m.value('muxftp_connections_refused_total', { reason: 'max_connections' }) === 1,
      );
      expect(refused.value('muxftp_connections')).toBe(0);
      expect(refused.value('muxftp_connections_handshaking')).toBe(2);
      for (const socket of silent) socket.destroy();
      await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections_handshaking') === 0);
      const client = await Client.connect({ port, tls: { ca: certs.ca } });
      cleanup.push(() => client.destroy());
      const connected = await scrapeUntil(metricsPort, (m) => m.value('muxftp_connections') === 1);
      expect(connected.value('muxftp_connections_handshaking')).toBe(0);
    },
  );

  it.skipIf(!opensslAvailable)(
    'counts a client that sends nothing within the handshake timeout, TLS on or not',
    async () => {
      const certs = await makeTestCerts();
      cleanup.push(() => certs.remove());
      for (const tls of [undefined, { cert: certs.cert, key: certs.key }]) {
        const { port, metricsPort } = await start(new MemoryStorage(), 100, {
          handshakeTimeoutMs: 200,
          ...(tls === undefined ? {} : { tls }),
        });
        const silent = connect({ host: '127.0.0.1', port });
        silent.on('error', () => {});
        silent.resume();
        await once(silent, 'close');
        // Refused IDLE_TIMEOUT (with TLS on, before its first byte told TLS from plain): the
        // scanner an operator alerts on counted as on a plain server, not in the log alone.
        const s = await scrapeUntil(
          metricsPort,
          (m) => m.value('muxftp_errors_total', { code: 'IDLE_TIMEOUT' }) >= 1,
        );
        expect(s.value('muxftp_errors_total', { code: 'IDLE_TIMEOUT' })).toBe(1);
      }
    },
  );

  it('reports the process: event-loop lag and utilisation, RSS, open file descriptors', async () => {
    const { metricsPort } = await start(new MemoryStorage());
    const s = await scrape(metricsPort);
    expect(s.value('process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(s.value('process_open_fds')).toBeGreaterThan(3);
    expect(s.families.get('nodejs_eventloop_lag_p99_seconds')?.type).toBe('GAUGE');
    const utilization = s.value('muxftp_event_loop_utilization');
    expect(utilization).toBeGreaterThan(0);
    expect(utilization).toBeLessThanOrEqual(1);
    // Every family has help text and a type.
    for (const family of s.families.values()) {
      expect(family.help).not.toBe('');
      expect(['COUNTER', 'GAUGE', 'HISTOGRAM', 'SUMMARY']).toContain(family.type);
    }
  });

  it('answers 404 off /metrics, HEAD as GET, 405 to other methods, and refuses the protocol port', async () => {
    const { server, port, metricsPort } = await start(new MemoryStorage());
    const response = await fetch(`http://127.0.0.1:${metricsPort}/`);
    expect(response.status).toBe(404);
    await response.text();
    // HEAD is GET without the body (an uptime check's `curl -I`); another method is no 404.
    const head = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await head.text()).toBe('');
    const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.text();
    const clash = new MetricsExporter(server, { port });
    await expect(clash.listen()).rejects.toThrow(/protocol port/);
    // Closed while listen() bound (it looks the host up first): close() resolved at once, and the
    // port was bound after, for good (the process kept alive); listen() resolved on it.
    for (const host of ['127.0.0.1', 'localhost']) {
      const raced = new MetricsExporter(server, { host, port: 0 });
      const binding = raced.listen();
      await raced.close();
      await expect(binding).rejects.toThrow(/closed before it was listening/);
      expect(() => raced.address()).toThrow(/not listening/);
      await expect(raced.listen()).rejects.toThrow(/was closed/);
      await raced.close();
    }
    expect(() => new MetricsExporter(server, { port: 70_000 })).toThrow(/port must be/);
  });
});

describe('the metrics listener under idle connections', () => {
  it('closes a connection whose request does not come whole in time, however it trickles', async () => {
    // A header line every 100 ms kept each of the 8 places for Node's 60 s headers deadline
    // (checked every 30 s: 93 s seen), so 8 such peers had every scrape closed unanswered.
    const server = new MuxServer({ storage: new MemoryStorage(), host: '127.0.0.1', port: 0, log: () => {} });
    await server.listen();
    const exporter = new MetricsExporter(server, { host: '127.0.0.1', port: 0, idleTimeoutMs: 400 });
    const metricsPort = (await exporter.listen()).port;
    cleanup.push(
      () => server.close(),
      () => exporter.close(),
    );
    const trickling = Array.from({ length: DEFAULTS.metricsMaxConnections }, () => {
      const socket = connect({ host: '127.0.0.1', port: metricsPort });
      socket.on('error', () => {});
      socket.resume();
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      const timer = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
      cleanup.push(async () => {
        clearInterval(timer);
        socket.destroy();
      });
      return once(socket, 'close').then(() => clearInterval(timer));
    });
    const closed = await Promise.race([
      Promise.all(trickling).then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
    ]);
    expect(closed).toBe(true);
    expect((await scrape(metricsPort)).value('muxftp_connections')).toBe(0);
  });

  it('holds a few at once, and closes those that send nothing, so it cannot take the descriptors the protocol port needs', async () => {
    // Its sockets are descriptors the server's reserve does not count: a helper's 234 sockets that
    // sent nothing took every descriptor of a server under `ulimit -n 256` and kept them, and the
    // protocol port's clients were then closed unanswered.
    const server = new MuxServer({ storage: new MemoryStorage(), host: '127.0.0.1', port: 0, log: () => {} });
    await server.listen();
    const exporter = new MetricsExporter(server, { host: '127.0.0.1', port: 0, idleTimeoutMs: 300 });
    const metricsPort = (await exporter.listen()).port;
    cleanup.push(
      () => server.close(),
      () => exporter.close(),
    );
    const idle = Array.from({ length: 30 }, () => {
      const socket = connect({ host: '127.0.0.1', port: metricsPort });
      socket.on('error', () => {});
      cleanup.push(async () => socket.destroy());
      return { socket, closed: once(socket, 'close').then(() => Date.now()) };
    });
    const opened = Date.now();
    let closedCount = 0;
    for (const s of idle) void s.closed.then(() => closedCount++);
    // 15 s, far below node's own deadlines (60 s and more), far above the 300 ms asked: a loaded CI
    // machine once had some still open at 5 s.
    const closedAt = await Promise.race([
      Promise.all(idle.map((s) => s.closed)),
      new Promise<undefined>((resolve) => setTimeout(resolve, 15_000)),
    ]);
    // Every one closed by the server (the client closed none): past the cap at once, the rest once idle.
    expect(closedAt, `${closedCount} of 30 closed in 15 s`).toBeDefined();
    const atOnce = closedAt!.filter((at) => at - opened < 250).length;
    expect(atOnce).toBeGreaterThanOrEqual(30 - DEFAULTS.metricsMaxConnections);
    // And a scrape is answered again.
    expect((await scrape(metricsPort)).value('muxftp_connections')).toBe(0);
  });
});

describe('muxftp serve --metrics', () => {
  function serve(args: string[]) {
    const child = spawn(process.execPath, [CLI_BIN, 'serve', '--memory', '--port', '0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanup.push(async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    return { child, stderr: () => stderr };
  }

  async function stdoutLine(process: ReturnType<typeof serve>): Promise<string> {
    const [line] = await once(process.child.stdout, 'data');
    return String(line);
  }

  async function metricsLine(process: ReturnType<typeof serve>): Promise<number> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const match = /metrics at http:\/\/[^ ]+:(\d+)\/metrics/.exec(process.stderr());
      if (match !== null) return Number(match[1]);
      if (Date.now() > deadline || process.child.exitCode !== null)
        throw new Error(`serve --metrics did not start: ${process.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('serves metrics on loopback on their own port, with no warning on any loopback address', async () => {
    const loopback = serve(['--metrics', '127.0.0.1:0']);
    const s = await scrape(await metricsLine(loopback));
    expect(s.value('muxftp_connections')).toBe(0);
    expect(loopback.stderr()).not.toContain('warning');

    // The host is the one given, and 127.0.0.2 is loopback too. (The warning beyond loopback is
    // test/cli.test.ts's, in a network namespace of its own: tests listen on loopback only.)
    const other = serve(['--metrics', '127.0.0.2:0']);
    const port = await metricsLine(other);
    expect(other.stderr()).toContain(`metrics at http://127.0.0.2:${port}/metrics`);
    const response = await fetch(`http://127.0.0.2:${port}/metrics`);
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/^muxftp_connections 0$/m);
    expect(other.stderr()).not.toContain('warning');
  });

  it('does not say it is listening when its metrics port is taken, and exits 1 saying why', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as { port: number }).port;
      const busy = serve(['--metrics', `127.0.0.1:${port}`]);
      let stdout = '';
      busy.child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      const [code] = await once(busy.child, 'exit');
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(busy.stderr()).toContain(
        `muxftp: serve: cannot serve metrics on 127.0.0.1:${port}: address already in use`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('--max-buffered bounds what slow readers make the server hold, all connections together', async () => {
    // Half of 4 MiB is the bound for downloads: 8 clients that read nothing could hold their own
    // 4 MiB marks (32 MiB) under the default 512 MiB.
    const server = serve(['--max-buffered', '4MiB', '--metrics', '127.0.0.1:0']);
    const metricsPort = await metricsLine(server);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(await stdoutLine(server))![1]);
    const client = await Client.connect({ host: '127.0.0.1', port });
    cleanup.push(() => client.destroy());
    await client.put('big', Buffer.alloc(48 * 1024 * 1024, 7));
    for (let i = 0; i < 8; i++) {
      const peer = await RawPeer.open(port);
      cleanup.push(async () => peer.destroy());
      peer.socket.pause();
      peer.write(encodeOpen(1, { op: 'get', path: 'big' }));
      peer.write(encodeWindow(1, 2 ** 31 - 1));
    }
    // The server is another process: until its figure has filled to a chunk and stopped growing.
    const peak = await peakOf(async () => (await scrape(metricsPort)).value('muxftp_outbound_queue_bytes'), {
      above: 1024 * 1024 - 1,
      stableMs: 500,
      everyMs: 20,
    });
    // Filled up to within a chunk (1 MiB) of the budget, and past it at most a small chunk
    // (64 KiB) for each connection holding nothing.
    expect(peak).toBeGreaterThanOrEqual(1024 * 1024);
    expect(peak).toBeLessThanOrEqual(2 * 1024 * 1024 + 8 * (64 * 1024 + 1024));
  });

  it('is off by default and rejects a malformed address as a usage error', async () => {
    const plain = serve([]);
    await new Promise((resolve) => plain.child.stdout.once('data', resolve));
    expect(plain.stderr()).not.toContain('metrics');
    const bad = serve(['--metrics', 'nonsense:port']);
    const [code] = await once(bad.child, 'exit');
    expect(code).toBe(2);
    expect(bad.stderr()).toContain('--metrics');
    // A port alone was taken for a host (inet_aton reads `9100` as 0.0.35.140): the server started,
    // then exited 1 with "cannot serve metrics on 9100:9464: not an address of this machine".
    const portAlone = serve(['--metrics', '9100']);
    const [portAloneCode] = await once(portAlone.child, 'exit');
    expect(portAloneCode).toBe(2);
    expect(portAlone.stderr()).toContain("a port alone is written ':9100'");
  });
});
