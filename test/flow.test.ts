/** The flow-control arithmetic on its own: both directions, the half-window refill and the 2^31−1 cap. */
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../shared/errors.js';
import { MAX_CREDIT } from '../shared/protocol/constants.js';
import { InboundWindow, OutboundCredit } from '../shared/transport/flow.js';

function flowError(run: () => void): ProtocolError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error('expected a FLOW_CONTROL_ERROR');
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

  it('accepts a window up to 2^31−1 and no bigger', () => {
    expect(new InboundWindow(1, MAX_CREDIT).open()).toBe(MAX_CREDIT);
    expect(() => new InboundWindow(1, MAX_CREDIT + 1)).toThrow(RangeError);
    expect(() => new InboundWindow(1, 0)).toThrow(RangeError);
    expect(() => new InboundWindow(1, 1.5)).toThrow(RangeError);
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
