/**
 * Stream phases: they only move forward, and "CANCEL after END is too late" holds on every side —
 * the shared rule, a client upload whose END has gone out, and (in races.e2e) the server.
 */
import { describe, expect, it } from 'vitest';
import type { ByteSource } from '../client/sources.js';
import { type ClientHost, PutCall, type PutResult } from '../client/streams.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { WindowBudget } from '../shared/transport/flow.js';
import type { OutboundQueue } from '../shared/transport/outboundQueue.js';
import { acceptsCancel, laterPhase, StreamPhase } from '../shared/transport/streamPhase.js';

describe('StreamPhase', () => {
  it('never moves back', () => {
    expect(laterPhase(StreamPhase.Opening, StreamPhase.Open)).toBe(StreamPhase.Open);
    expect(laterPhase(StreamPhase.Open, StreamPhase.Ended)).toBe(StreamPhase.Ended);
    expect(laterPhase(StreamPhase.Ended, StreamPhase.Open)).toBe(StreamPhase.Ended);
    expect(laterPhase(StreamPhase.Closed, StreamPhase.Opening)).toBe(StreamPhase.Closed);
  });

  it('accepts a CANCEL only before END', () => {
    expect(acceptsCancel(StreamPhase.Opening)).toBe(true);
    expect(acceptsCancel(StreamPhase.Open)).toBe(true);
    expect(acceptsCancel(StreamPhase.Ended)).toBe(false);
    expect(acceptsCancel(StreamPhase.Closed)).toBe(false);
  });
});

/** `bytes` zero bytes, read in one go. */
function zeroSource(bytes: number): ByteSource {
  let left = bytes;
  return {
    size: bytes,
    async readInto(_target, _offset, length) {
      const n = Math.min(left, length);
      left -= n;
      return n;
    },
    async close() {},
  };
}

/** A connection stand-in that records the frame types the stream sends or asks to send. */
function recordingHost(sent: string[]): ClientHost {
  const queue = {
    addProducer() {},
    removeProducer() {},
    tryReserve: () => true,
    release() {},
    wake() {},
  } as unknown as OutboundQueue;
  return {
    queue,
    serverMaxFramePayload: 64 * 1024,
    chunkBytes: 64 * 1024,
    streamWindowBytes: 64 * 1024,
    uploadInitialWindow: 0,
    integrity: 'xxh128',
    streamWindowMaxBytes: 64 * 1024,
    windowBudget: new WindowBudget(0),
    roundTrips: undefined,
    uploadThrottle: undefined,
    downloadThrottle: undefined,
    send(frame) {
      // The frame type is the header's first byte.
      sent.push(frame[0] === FrameType.END ? 'END' : `type ${frame[0]}`);
    },
    cancelStream() {
      sent.push('CANCEL');
    },
    streamDone() {},
  };
}

describe('a client upload', () => {
  it('cancels before END, and ignores a cancel once END is sent', async () => {
    const sent: string[] = [];
    let settle!: { resolve(v: PutResult): void; reject(e: Error): void };
    const done = new Promise<PutResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    const put = new PutCall(recordingHost(sent), 1, zeroSource(0), undefined, settle);
    expect(put.phase).toBe(StreamPhase.Open);
    put.onWindow(1024); // an empty source: END goes out at once
    expect(sent).toEqual(['END']);
    expect(put.phase).toBe(StreamPhase.Ended);
    put.cancel();
    expect(sent).toEqual(['END']);
    expect(put.isSettled).toBe(false);
    const reply = {
      entry: { name: 'x', type: 'file', size: 0, mtime: 0 },
      algorithm: 'xxh128',
      // What END said: the client takes no other.
      digest: contentDigest('xxh128', Buffer.alloc(0)).toString('hex'),
    };
    put.onReply(reply, false);
    await expect(done).resolves.toEqual(reply);
    expect(put.phase).toBe(StreamPhase.Closed);
  });

  it('cancels while it is still sending: CANCEL goes out and the call fails with CANCELLED', async () => {
    const sent: string[] = [];
    let settle!: { resolve(v: PutResult): void; reject(e: Error): void };
    const done = new Promise<PutResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    const put = new PutCall(recordingHost(sent), 1, zeroSource(10), undefined, settle);
    put.cancel();
    expect(sent).toEqual(['CANCEL']);
    await expect(done).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(put.phase).toBe(StreamPhase.Closed);
  });
});
