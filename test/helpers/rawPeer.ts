/** A hand-driven protocol peer for tests: writes any bytes, records every frame the server sends. */
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULTS } from '../../shared/defaults.js';
import type { IntegrityAlgorithm } from '../../shared/integrity/algorithms.js';
import { FrameType, PROTOCOL_VERSION } from '../../shared/protocol/constants.js';
import { FrameDecoder, wholeFrames } from '../../shared/protocol/decoder.js';
import { encodeHello } from '../../shared/protocol/encoder.js';
import type { Frame } from '../../shared/protocol/frame.js';
import { parseErrorPayload } from '../../shared/protocol/messages.js';

/** A test peer's decoder takes frames up to this: above what either real side announces. */
export const ANY_FRAME_PAYLOAD_BYTES = 16 * 1024 * 1024;

export class RawPeer {
  /** A TCP socket, or one end of an in-memory pair (./transports.ts). */
  readonly socket: Duplex;
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private readonly waiters = new Set<() => void>();

  private constructor(socket: Duplex) {
    this.socket = socket;
    const decoder = new FrameDecoder(
      {
        maxFramePayloadBytes: ANY_FRAME_PAYLOAD_BYTES,
        maxControlPayloadBytes: DEFAULTS.maxControlPayloadBytes,
      },
      wholeFrames((frame) => {
        this.frames.push({ ...frame, payload: Buffer.from(frame.payload) });
        for (const wake of this.waiters) wake();
      }),
    );
    socket.on('data', (chunk) => decoder.push(chunk));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    this.closed.then(() => {
      for (const wake of this.waiters) wake();
    });
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  /** A peer over a byte stream already connected to a server. */
  static over(socket: Duplex): RawPeer {
    return new RawPeer(socket);
  }

  /**
   * Connects (to a port, or over a connected byte stream) and completes the handshake, offering
   * `integrity` (the server picks xxh128 by default); `uploadInitialWindow` opts in to the
   * server's initial upload window (off: as a client written before it); `maxFramePayload` is the
   * largest frame payload it announces it takes.
   */
  static async open(
    to: number | Duplex,
    integrity: readonly IntegrityAlgorithm[] = ['xxh128'],
    {
      uploadInitialWindow = false,
      maxFramePayload = DEFAULTS.maxFramePayloadBytes,
    }: { uploadInitialWindow?: boolean; maxFramePayload?: number } = {},
  ): Promise<RawPeer> {
    const peer = typeof to === 'number' ? await RawPeer.connect(to) : RawPeer.over(to);
    peer.write(
      encodeHello({
        protocol: 'muxftp',
        versions: [PROTOCOL_VERSION],
        maxFramePayload,
        integrity: [...integrity],
        ...(uploadInitialWindow ? { uploadInitialWindow: true } : {}),
      }),
    );
    await peer.waitFor((f) => f.type === FrameType.WELCOME);
    return peer;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first recorded frame matching `predicate`, waiting up to `timeoutMs` for it. */
  waitFor(predicate: (frame: Frame) => boolean, timeoutMs = 5_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(predicate);
        if (found) {
          done();
          resolve(found);
        } else if (this.socket.destroyed) {
          done();
          reject(new Error(`connection closed; frames seen: ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out; frames seen: ${this.describe()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** The connection-level ERROR (stream 0) the server sent before closing, as {code, message}. */
  async connectionError(timeoutMs = 5_000): Promise<{ code: string; message: string }> {
    const frame = await this.waitFor((f) => f.type === FrameType.ERROR && f.streamId === 0, timeoutMs);
    return parseErrorPayload(frame);
  }

  async streamError(streamId: number): Promise<{ code: string; message: string }> {
    const frame = await this.waitFor((f) => f.type === FrameType.ERROR && f.streamId === streamId);
    return parseErrorPayload(frame);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private describe(): string {
    return this.frames.map((f) => `${f.type}@${f.streamId}`).join(' ') || 'none';
  }
}
