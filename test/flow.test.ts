/** The flow-control arithmetic on its own: both directions, the half-window refill and the 2^31−1 cap. */
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../shared/errors.js';
import { MAX_CREDIT } from '../shared/protocol/constants.js';
import { InboundWindow, OutboundCredit, WindowBudget } from '../shared/transport/flow.js';
import { RoundTripSampler } from '../shared/transport/roundTrips.js';

function flowError(run: () => void): ProtocolError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error('expected a FLOW_CONTROL_ERROR');
}

/** A 64 KiB window (opened) that may grow to 1 MiB, sampled by a connection's RoundTripSampler whose PINGs are kept. */
function sampledWindow(intervalMs: number) {
  const KiB = 1024;
  const pings: Buffer[] = [];
  const roundTrips = new RoundTripSampler((payload) => pings.push(payload), intervalMs);
  const window = new InboundWindow(1, 64 * KiB, {
    maxSize: 1024 * KiB,
    budget: new WindowBudget(1024 * KiB),
    roundTrips,
  });
  window.open();
  return { window, roundTrips, pings };
}

describe('InboundWindow (the receiving side)', () => {
  it('opens with the whole window and refuses DATA beyond the credit', () => {
    const window = new InboundWindow(3, 1000);
    expect(window.available).toBe(0);
    expect(() => window.take(1)).toThrow(ProtocolError);
    expect(window.open()).toBe(1000);
    window.take(600);
    window.take(400);
    expect(window.available).toBe(0);
    const error = flowError(() => window.take(1));
    expect(error.code).toBe('FLOW_CONTROL_ERROR');
    expect(error.message).toBe('stream 3: 1 bytes of DATA with 0 bytes of credit');
  });

  it('grants back only once half a window is consumed, then all of it at once', () => {
    const window = new InboundWindow(1, 1000);
    window.open();
    window.take(1000);
    expect(window.consumed(300)).toBe(0);
    expect(window.consumed(199)).toBe(0);
    expect(window.available).toBe(0);
    expect(window.consumed(1)).toBe(500);
    expect(window.available).toBe(500);
    expect(window.consumed(500)).toBe(500);
    expect(window.available).toBe(1000);
  });

  it('never lets the peer hold more than one window, however the grants fall', () => {
    const window = new InboundWindow(7, 64 * 1024);
    window.open();
    let inFlight = 0;
    for (let i = 0; i < 1000; i++) {
      const bytes = Math.min(window.available, 1 + ((i * 7919) % 9000));
      window.take(bytes);
      inFlight += bytes;
      window.consumed(bytes);
      inFlight -= bytes;
      expect(window.available + inFlight).toBeLessThanOrEqual(64 * 1024);
    }
  });

  it("counts initial credit (the handshake's) as granted: open() sends only the rest", () => {
    const window = new InboundWindow(1, 1000);
    window.grantInitial(256);
    expect(window.available).toBe(256);
    window.take(256);
    expect(() => window.take(1)).toThrow(ProtocolError);
    expect(window.open()).toBe(744);
    expect(window.available).toBe(744);
    window.take(744);
    expect(flowError(() => window.take(1)).code).toBe('FLOW_CONTROL_ERROR');
  });

  it('gives initial credit beyond a smaller window once, then keeps to the window', () => {
    const window = new InboundWindow(1, 100);
    window.grantInitial(300);
    expect(window.open()).toBe(0);
    window.take(300);
    // 200 of the 300 were a one-off: only the window's 100 come back.
    expect(window.consumed(300)).toBe(100);
    window.take(100);
    expect(window.consumed(100)).toBe(100);
    expect(window.available).toBe(100);
    expect(() => window.grantInitial(-1)).toThrow(RangeError);
    expect(() => window.grantInitial(MAX_CREDIT + 1)).toThrow(RangeError);
  });

  it('accepts a window up to 2^31−1 and no bigger', () => {
    expect(new InboundWindow(1, MAX_CREDIT).open()).toBe(MAX_CREDIT);
    expect(() => new InboundWindow(1, MAX_CREDIT + 1)).toThrow(RangeError);
    expect(() => new InboundWindow(1, 0)).toThrow(RangeError);
    expect(() => new InboundWindow(1, 1.5)).toThrow(RangeError);
  });
});

describe('InboundWindow bounds', () => {
  it('accepts the smallest window, and initial credit from 0 to 2^31−1', () => {
    expect(new InboundWindow(1, 1).open()).toBe(1);
    const none = new InboundWindow(1, 1000);
    none.grantInitial(0);
    expect(none.open()).toBe(1000);
    const all = new InboundWindow(1, 1000);
    all.grantInitial(MAX_CREDIT);
    expect(all.available).toBe(MAX_CREDIT);
    expect(all.open()).toBe(0);
  });

  it('counts initial credit already consumed but not yet granted back when it opens', () => {
    const window = new InboundWindow(1, 1000);
    window.grantInitial(256);
    window.take(256);
    // Less than half a window consumed: nothing goes back yet, and open() must not give it twice.
    expect(window.consumed(100)).toBe(0);
    expect(window.open()).toBe(1000 - 256);
    window.take(744);
    expect(() => window.take(1)).toThrow(ProtocolError);
  });

  it('can be released without growth (nothing taken from a budget, no sampler)', () => {
    const window = new InboundWindow(1, 1000);
    window.open();
    expect(() => window.release()).not.toThrow();
  });
});

describe('WindowBudget', () => {
  it('takes a budget of 0 or more whole bytes, and refuses others', () => {
    expect(new WindowBudget(0).take(10)).toBe(0);
    expect(() => new WindowBudget(-1)).toThrow(RangeError);
    expect(() => new WindowBudget(1.5)).toThrow(RangeError);
    expect(() => new WindowBudget(Number.NaN)).toThrow(RangeError);
  });
});

describe('InboundWindow growth (autotuning)', () => {
  const KiB = 1024;
  /** The peer sends everything its credit allows; this side consumes it at once. */
  function starvedRound(window: InboundWindow): number {
    const sent = window.available;
    window.take(sent);
    return window.consumed(sent);
  }

  it('doubles while the peer runs out of credit and this side keeps up, up to maxSize', () => {
    const budget = new WindowBudget(1024 * KiB);
    const window = new InboundWindow(1, 64 * KiB, { maxSize: 256 * KiB, budget });
    window.open();
    // The grant carries the consumed bytes plus the growth.
    expect(starvedRound(window)).toBe(64 * KiB + 64 * KiB);
    expect(window.size).toBe(128 * KiB);
    expect(starvedRound(window)).toBe(128 * KiB + 128 * KiB);
    expect(window.size).toBe(256 * KiB);
    expect(starvedRound(window)).toBe(256 * KiB);
    expect(window.size).toBe(256 * KiB);
    expect(budget.usedBytes).toBe(192 * KiB);
    window.release();
    expect(budget.usedBytes).toBe(0);
  });

  it('does not grow when the peer still had credit, or when this side is behind', () => {
    const window = new InboundWindow(1, 64 * KiB, {
      maxSize: 1024 * KiB,
      budget: new WindowBudget(1024 * KiB),
    });
    window.open();
    // Not starved: the peer sent less than it could.
    window.take(40 * KiB);
    expect(window.consumed(40 * KiB)).toBe(40 * KiB);
    expect(window.size).toBe(64 * KiB);
    // Starved, but most of what arrived is still waiting here (a slow disk): no growth.
    window.take(window.available);
    expect(window.consumed(32 * KiB)).toBe(32 * KiB);
    expect(window.size).toBe(64 * KiB);
  });

  it('grows on one starved grant only: a later grant the peer was not starved for does not grow', () => {
    const window = new InboundWindow(1, 64 * KiB, {
      maxSize: 1024 * KiB,
      budget: new WindowBudget(1024 * KiB),
    });
    window.open();
    starvedRound(window);
    expect(window.size).toBe(128 * KiB);
    // The peer now sends less than its 128 KiB of credit: the next grant is the bytes alone.
    window.take(70 * KiB);
    expect(window.consumed(70 * KiB)).toBe(70 * KiB);
    expect(window.size).toBe(128 * KiB);
  });

  it('grows when two thirds of the window arrived in one sampled round trip, though the peer never ran out', () => {
    const { window, roundTrips, pings } = sampledWindow(100);
    // Half a window arrives and goes back at once, as a receiver keeping up grants it: never starved.
    window.take(32 * KiB);
    expect(pings).toHaveLength(1); // the first DATA began a round trip, and counts in it
    expect(window.consumed(32 * KiB)).toBe(32 * KiB);
    window.take(12 * KiB);
    expect(window.consumed(12 * KiB)).toBe(0);
    // 44 KiB in the round trip: more than two thirds of 64 KiB. Its ACK ends it, and the next grant grows.
    expect(roundTrips.acked(pings[0]!)).toBe(true);
    window.take(20 * KiB);
    expect(window.consumed(20 * KiB)).toBe(32 * KiB + 64 * KiB);
    expect(window.size).toBe(128 * KiB);
    window.release();
  });

  it('does not grow on a round trip that brought less than two thirds, nor on an ACK not its own', () => {
    const { window, roundTrips, pings } = sampledWindow(0);
    window.take(40 * KiB);
    expect(roundTrips.acked(Buffer.alloc(8))).toBe(false); // a keepalive's ACK
    expect(roundTrips.acked(pings[0]!)).toBe(true);
    expect(window.consumed(40 * KiB)).toBe(40 * KiB);
    expect(window.size).toBe(64 * KiB);
    // Released, a window is sampled no more: a round trip begins only while one is there.
    window.release();
    roundTrips.dataArrived(Number.MAX_SAFE_INTEGER);
    expect(pings).toHaveLength(1);
  });

  it('counts a round trip as far as the path took it: one queued ten times longer than the least does not grow', () => {
    const { window, roundTrips, pings } = sampledWindow(100);
    // A round trip of 10 ms, little in it: the path's, and no growth.
    roundTrips.dataArrived(0);
    window.take(10 * KiB);
    expect(roundTrips.acked(pings[0]!, 10)).toBe(true);
    expect(window.consumed(10 * KiB)).toBe(0);
    // 100 ms with 50 KiB: the PING waited behind bytes already sent; the path carried a tenth.
    roundTrips.dataArrived(200);
    window.take(50 * KiB);
    expect(roundTrips.acked(pings[1]!, 300)).toBe(true);
    expect(window.consumed(50 * KiB)).toBe(60 * KiB);
    expect(window.size).toBe(64 * KiB);
    // 50 KiB within the path's own 10 ms: the window held the stream back.
    roundTrips.dataArrived(500);
    window.take(50 * KiB);
    expect(roundTrips.acked(pings[2]!, 510)).toBe(true);
    expect(window.consumed(50 * KiB)).toBe(50 * KiB + 64 * KiB);
    expect(window.size).toBe(128 * KiB);
    window.release();
  });

  it('grows when exactly two thirds of the window arrived in one round trip', () => {
    const window = new InboundWindow(1, 3000, { maxSize: 1024 * KiB, budget: new WindowBudget(1024 * KiB) });
    window.open();
    window.roundTripStarted();
    window.take(2000);
    window.roundTripEnded(1);
    expect(window.consumed(2000)).toBe(2000 + 3000);
    expect(window.size).toBe(6000);
  });

  it('does not count an empty DATA frame before any credit as the peer running out', () => {
    const window = new InboundWindow(1, 64 * KiB, {
      maxSize: 1024 * KiB,
      budget: new WindowBudget(1024 * KiB),
    });
    window.take(0);
    window.open();
    window.take(40 * KiB);
    expect(window.consumed(40 * KiB)).toBe(40 * KiB);
    expect(window.size).toBe(64 * KiB);
  });

  it('grows no window past 2^31−1, whatever maxSize says', () => {
    const size = 2 ** 30 + 100;
    const window = new InboundWindow(1, size, { maxSize: 2 ** 32, budget: new WindowBudget(2 ** 32) });
    window.open();
    window.take(size);
    expect(window.consumed(size)).toBe(MAX_CREDIT);
    expect(window.size).toBe(MAX_CREDIT);
    expect(window.available).toBe(MAX_CREDIT);
  });

  it('counts exactly a quarter of the window still held as keeping up', () => {
    const window = new InboundWindow(1, 64 * KiB, {
      maxSize: 1024 * KiB,
      budget: new WindowBudget(1024 * KiB),
    });
    window.open();
    window.take(64 * KiB);
    expect(window.consumed(48 * KiB)).toBe(48 * KiB + 64 * KiB);
    expect(window.size).toBe(128 * KiB);
  });

  it('gives its growth back to the budget once, however often it is released', () => {
    const budget = new WindowBudget(1024 * KiB);
    const window = new InboundWindow(1, 64 * KiB, { maxSize: 1024 * KiB, budget });
    window.open();
    starvedRound(window);
    expect(budget.usedBytes).toBe(64 * KiB);
    window.release();
    window.release();
    expect(budget.usedBytes).toBe(0);
    // A budget given back twice would hand out more than its limit.
    expect(budget.take(2048 * KiB)).toBe(1024 * KiB);
  });

  it('grows only as far as the shared budget allows, and never lets the peer hold more than the window', () => {
    const budget = new WindowBudget(96 * KiB);
    const a = new InboundWindow(1, 64 * KiB, { maxSize: 1024 * KiB, budget });
    const b = new InboundWindow(2, 64 * KiB, { maxSize: 1024 * KiB, budget });
    a.open();
    b.open();
    starvedRound(a); // +64 KiB
    starvedRound(b); // +32 KiB, all that is left
    expect(a.size + b.size).toBe(128 * KiB + 96 * KiB);
    starvedRound(b);
    expect(b.size).toBe(96 * KiB);
    a.release();
    starvedRound(b); // the budget a gave back
    expect(b.size).toBe(160 * KiB);
    let inFlight = 0;
    for (let i = 0; i < 500; i++) {
      const bytes = Math.min(b.available, 1 + ((i * 7919) % 50_000));
      b.take(bytes);
      inFlight += bytes;
      b.consumed(bytes);
      inFlight -= bytes;
      expect(b.available + inFlight).toBeLessThanOrEqual(b.size);
    }
  });
});

describe('OutboundCredit (the sending side)', () => {
  it('adds grants and takes what DATA spends', () => {
    const credit = new OutboundCredit(5);
    expect(credit.available).toBe(0);
    credit.add(100);
    credit.add(50);
    credit.take(120);
    expect(credit.available).toBe(30);
    // Spending credit it does not have is this side's bug, not a peer's protocol error.
    expect(() => credit.take(31)).toThrow(RangeError);
  });

  it('fails a grant that would take the credit past 2^31−1 (FLOW_CONTROL_ERROR) and keeps the old credit', () => {
    const credit = new OutboundCredit(9);
    credit.add(MAX_CREDIT - 10);
    credit.add(10);
    expect(credit.available).toBe(MAX_CREDIT);
    const error = flowError(() => credit.add(1));
    expect(error.code).toBe('FLOW_CONTROL_ERROR');
    expect(error.message).toBe('credit on stream 9 would exceed 2^31-1');
    expect(credit.available).toBe(MAX_CREDIT);
    credit.take(MAX_CREDIT);
    credit.add(MAX_CREDIT);
    expect(credit.available).toBe(MAX_CREDIT);
  });
});
