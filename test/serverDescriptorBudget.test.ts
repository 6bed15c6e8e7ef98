/**
 * The server's descriptor budget under a flood (server/fileDescriptors.ts): `muxftp serve` on
 * disk in a child under `ulimit -n 256`; peers connect until refused, then each asks for a
 * download it gives no credit (a file held open). The connections admitted leave room for the
 * open-file cap past what the process held at start (node's own, stdio, the listener: some 22),
 * so no download, listing or newcomer meets EMFILE. Counting only the files open, 192
 * connections were admitted, and of the cap's 96 downloads some 40 were refused "out of file
 * descriptors", as was a listing.
 * Linux only (the limit is read from /proc/self/limits). Needs dist/ (npm run build).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { FrameType, PROTOCOL_VERSION } from '../shared/protocol/constants.js';
import { encodeHello, encodeOpen } from '../shared/protocol/encoder.js';
import { parseErrorPayload } from '../shared/protocol/messages.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { RawPeer } from './helpers/rawPeer.js';
import { TempDirs } from './helpers/tempDirs.js';

const havePrlimit = process.platform === 'linux' && spawnSync('prlimit', ['--version']).status === 0;
const DIST = resolve(__dirname, '..', 'dist');
const tempDirs = new TempDirs('muxftp-fdbudget-');
const peers: RawPeer[] = [];
let child: ChildProcess | undefined;

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  child?.kill('SIGKILL');
  child = undefined;
  await tempDirs.removeAll();
});

/** `muxftp serve` on `root` under `prlimit --nofile=<nofile>`; resolves to its port. */
function serveLimited(nofile: number, root: string): Promise<number> {
  child = spawn(
    'prlimit',
    [`--nofile=${nofile}`, process.execPath, CLI_BIN, 'serve', '--root', root, '--port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stderr!.resume();
  const started = child;
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 20_000);
    started.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on [^ ]+:(\d+) \(/.exec(out);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    started.once('exit', (code) => reject(new Error(`serve exited early (${code})`)));
  });
}

/**
 * A MuxServer on DiskStorage at `root` in a child under `prlimit --nofile=<nofile>`, as a program
 * embedding the library runs one, with `maxOpenFiles` as given; resolves to its port.
 */
function libraryServerLimited(
  nofile: number,
  root: string,
  maxOpenFiles: number,
  openFileReclaimIdleMs: number = DEFAULTS.openFileReclaimIdleMs,
): Promise<number> {
  const script = `
import { DiskStorage, MuxServer } from ${JSON.stringify(join(DIST, 'server', 'index.js'))};
const storage = await DiskStorage.open({ root: process.argv[1] });
const server = new MuxServer({ storage, port: 0, host: '127.0.0.1', maxOpenFiles: ${maxOpenFiles}, openFileReclaimIdleMs: ${openFileReclaimIdleMs} });
const { port } = await server.listen();
console.log('port ' + port);
`;
  child = spawn(
    'prlimit',
    [`--nofile=${nofile}`, process.execPath, '--input-type=module', '-e', script, root],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stderr!.resume();
  const started = child;
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no port: ${out}`)), 20_000);
    started.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /port (\d+)/.exec(out);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    started.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
}

/** Connects and says HELLO: the peer once WELCOME comes, or the refusal's ERROR (or none, if closed unanswered). */
async function knock(port: number): Promise<RawPeer | { refused: string }> {
  const peer = await RawPeer.connect(port);
  peer.write(
    encodeHello({
      protocol: 'muxftp',
      versions: [PROTOCOL_VERSION],
      maxFramePayload: DEFAULTS.maxFramePayloadBytes,
      integrity: ['xxh128'],
    }),
  );
  const first = await peer
    .waitFor((f) => f.type === FrameType.WELCOME || (f.type === FrameType.ERROR && f.streamId === 0), 10_000)
    .catch(() => undefined);
  if (first?.type === FrameType.WELCOME) return peer;
  peer.destroy();
  if (first === undefined) return { refused: 'closed with no ERROR' };
  const error = parseErrorPayload(first);
  return { refused: `${error.code} ${String(error.details?.limit)}` };
}

/** Knocks (at most 300 times) until refused: the peers let in go to `peers`; the refusal, if any. */
async function knockUntilRefused(port: number): Promise<string | undefined> {
  for (let i = 0; i < 300; i++) {
    const knocked = await knock(port);
    if (!(knocked instanceof RawPeer)) return knocked.refused;
    peers.push(knocked);
  }
  return undefined;
}

/** The outcome of stream `id`: 'answered' (its REPLY), or its ERROR as code, limit and message. */
async function outcome(peer: RawPeer, id: number): Promise<string> {
  const frame = await peer.waitFor(
    (f) => f.streamId === id && (f.type === FrameType.REPLY || f.type === FrameType.ERROR),
    10_000,
  );
  if (frame.type !== FrameType.ERROR) return 'answered';
  const error = parseErrorPayload(frame);
  return `${error.code} ${String(error.details?.limit)}: ${error.message}`;
}

describe.skipIf(!havePrlimit)('a flood of connections and uploads under ulimit -n 256', () => {
  it('never takes the server to EMFILE: downloads, a listing and a newcomer are answered', async () => {
    const root = await tempDirs.make();
    await writeFile(join(root, 'f.bin'), randomBytes(4096));
    const port = await serveLimited(256, root);
    const refusal = await knockUntilRefused(port);
    // Refused near the limit, with its ERROR, well before every descriptor was a connection.
    expect(refusal).toBe('SERVER_BUSY fileDescriptors');
    expect(peers.length).toBeGreaterThan(40);

    // Every connection asks for a download and gives it no credit: each REPLY comes once the
    // server holds the file open, which it keeps open while the client sends no WINDOW.
    for (const peer of peers) peer.write(encodeOpen(1, { op: 'get', path: 'f.bin' }));
    const downloads = await Promise.all(peers.map((peer) => outcome(peer, 1)));
    const counts = new Map<string, number>();
    for (const result of downloads) {
      const kind = result.replace(/:.*/, '');
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    // Taken, or refused at the cap on open files; none for want of a descriptor.
    expect(counts.get('SERVER_BUSY fileDescriptors') ?? 0).toBe(0);
    expect(counts.get('answered') ?? 0).toBeGreaterThan(40);
    expect([...counts.keys()].every((kind) => /^(answered|SERVER_BUSY openFiles.*)$/.test(kind))).toBe(true);

    // The reserve is whole: a listing is answered, and a newcomer refused with its ERROR.
    peers[0]!.write(encodeOpen(3, { op: 'list', path: '' }));
    expect(await outcome(peers[0]!, 3)).toBe('answered');
    const newcomer = await knock(port);
    expect(newcomer).toEqual({ refused: 'SERVER_BUSY fileDescriptors' });
  }, 30_000);
});

describe.skipIf(!havePrlimit)('a library server given maxOpenFiles above what ulimit -n 256 allows', () => {
  it('refuses files past the descriptor budget, so a listing and a newcomer are still answered', async () => {
    // The cap is the caller's (1000), not held to half of what the limit leaves: past the files'
    // half, files were opened out of the reserve until EMFILE, and a listing, then a newcomer,
    // found none (the newcomer closed unanswered).
    const root = await tempDirs.make();
    for (let i = 0; i < 4; i++) await writeFile(join(root, `f${i}.bin`), randomBytes(4096));
    const port = await libraryServerLimited(256, root, 1000);
    const refusal = await knockUntilRefused(port);
    expect(refusal).toBe('SERVER_BUSY fileDescriptors');
    expect(peers.length).toBeGreaterThan(40);

    // Four downloads each, given no credit: each holds its file open, twice what the limit has.
    for (const peer of peers)
      for (let i = 0; i < 4; i++) peer.write(encodeOpen(2 * i + 1, { op: 'get', path: `f${i}.bin` }));
    const downloads = await Promise.all(
      peers.flatMap((peer) => Array.from({ length: 4 }, (_, i) => outcome(peer, 2 * i + 1))),
    );
    expect(downloads.filter((result) => result === 'answered').length).toBeGreaterThan(40);

    // The reserve is whole: a listing is answered, and a newcomer refused with its ERROR.
    peers[0]!.write(encodeOpen(21, { op: 'list', path: '' }));
    expect(await outcome(peers[0]!, 21)).toBe('answered');
    expect(await knock(port)).toEqual({ refused: 'SERVER_BUSY fileDescriptors' });
  }, 30_000);
});

describe.skipIf(!havePrlimit)('a library server whose descriptors run out below its maxOpenFiles', () => {
  it('shares what they allow: a client holding them all, reading none, gives one back to a waiting one', async () => {
    const root = await tempDirs.make();
    await writeFile(join(root, 'f.bin'), randomBytes(4096));
    const port = await libraryServerLimited(256, root, 1000, 200);
    const hog = await knock(port);
    const waiter = await knock(port);
    if (!(hog instanceof RawPeer) || !(waiter instanceof RawPeer)) throw new Error('not let in');
    peers.push(hog, waiter);
    // The hog opens downloads and gives them no credit until the descriptors are out (some 150
    // under ulimit -n 256), far below the cap of 1000.
    let hogRefused: string | undefined;
    let held = 0;
    for (let id = 1; id < 2 * DEFAULTS.maxStreamsPerConnection && hogRefused === undefined; id += 2) {
      hog.write(encodeOpen(id, { op: 'get', path: 'f.bin' }));
      const result = await outcome(hog, id);
      if (result === 'answered') held++;
      else hogRefused = result.replace(/:.*/, '');
    }
    expect(hogRefused).toBe('SERVER_BUSY fileDescriptors');
    expect(held).toBeGreaterThan(40);
    // Its transfers idle past openFileReclaimIdleMs (200 ms), the waiter asks, as a client retrying
    // does: a refusal of one holding none takes a file back from the one holding past its share.
    // Shares of 1000 were never reached: it was refused every time.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const tries: string[] = [];
    for (let id = 1; id < 20 && tries.at(-1) !== 'answered'; id += 2) {
      waiter.write(encodeOpen(id, { op: 'get', path: 'f.bin' }));
      tries.push(await outcome(waiter, id));
      if (tries.at(-1) !== 'answered') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(tries.at(-1)).toBe('answered');
    expect(tries.length).toBeLessThanOrEqual(3);
  }, 30_000);
});
