/**
 * RetryNotices (cli/retryNotices.ts), the `retry k/N` lines of one command's transfers, on a fake
 * clock: what one lost connection (or one stall) sends back to retry is one line that says how
 * many, and what comes after that line for the same loss is not said again.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RetryNotices } from '../cli/retryNotices.js';
import { DEFAULTS } from '../shared/defaults.js';
import { ConnectionLostError, MuxftpError } from '../shared/errors.js';

let lines: string[];
let notices: RetryNotices;
const connection = {};
const gathered = () => vi.advanceTimersByTime(DEFAULTS.retryNoticeGatherMs);

beforeEach(() => {
  vi.useFakeTimers();
  lines = [];
  notices = new RetryNotices('get', (line) => lines.push(line));
});

afterEach(() => {
  vi.useRealTimers();
});

describe('RetryNotices', () => {
  it('says a lone transfer as it always was, once its gathering time is over', () => {
    notices.retrying('get a.bin', new ConnectionLostError('connection closed'), connection, 1, 5, 700);
    expect(lines).toEqual([]);
    gathered();
    expect(lines).toEqual(['muxftp: get a.bin: connection closed; retry 1/5 in 0.7 s']);
  });

  it("says the transfers one loss sends back in one line: how many, their attempts, the one reconnect's wait", () => {
    const lost = new ConnectionLostError('connection closed');
    notices.retrying('get a.bin', lost, connection, 1, 3, 600);
    notices.retrying('get b.bin', lost, connection, 2, 3, 1_400);
    notices.retrying('get c.bin', lost, connection, 1, 3, 900);
    gathered();
    // All wait for one reconnect, which waits the first one's delay.
    expect(lines).toEqual(['muxftp: get: connection closed; 3 transfers retry 1–2/3 in 0.6 s']);
  });

  it("gives a stall's retries on a connection still up the range of their own waits", () => {
    const timedOut = new MuxftpError('STREAM_TIMEOUT', 'the server timed the stream out');
    notices.retrying('get a.bin', timedOut, connection, 1, 3, 600);
    notices.retrying('get b.bin', timedOut, connection, 1, 3, 950);
    gathered();
    expect(lines).toEqual([
      'muxftp: get: the server timed the stream out; 2 transfers retry 1/3 in 0.6–0.9 s',
    ]);
  });

  it("names the lost connection when a stall's timeouts came first", () => {
    const timedOut = new MuxftpError('STREAM_TIMEOUT', 'the server timed the stream out');
    const lost = new ConnectionLostError('no answer from 127.0.0.1:1 in 2 s');
    notices.retrying('get a.bin', timedOut, connection, 1, 3, 700);
    notices.retrying('get b.bin', lost, connection, 1, 3, 800);
    gathered();
    expect(lines).toEqual(['muxftp: get: no answer from 127.0.0.1:1 in 2 s; 2 transfers retry 1/3 in 0.8 s']);
  });

  it('says nothing more of a loss said already, and says another failure after it', () => {
    const lost = new ConnectionLostError('connection closed');
    notices.retrying('get a.bin', lost, connection, 1, 3, 700);
    notices.retrying('get b.bin', lost, connection, 1, 3, 700);
    gathered();
    // A transfer that comes to its retry later (it kept its partial file first), the same loss.
    notices.retrying('get c.bin', lost, connection, 1, 3, 700);
    gathered();
    expect(lines).toHaveLength(1);
    notices.retrying('get d.bin', new ConnectionLostError('connection reset'), connection, 2, 3, 1_500);
    gathered();
    expect(lines.slice(1)).toEqual(['muxftp: get d.bin: connection reset; retry 2/3 in 1.5 s']);
  });

  it("says a draining server's refused transfers retry once the ones still on its connection end", () => {
    const open = { isOpen: true };
    const refused = () => new MuxftpError('SHUTTING_DOWN', 'server is shutting down');
    notices.retrying('get a.bin', refused(), open, 1, 3, 700);
    gathered();
    notices.retrying('get b.bin', refused(), open, 1, 3, 700);
    notices.retrying('get c.bin', refused(), open, 2, 3, 1_500);
    gathered();
    // Its connection gone already: no end to wait for (untilDrained), the backoff's wait.
    notices.retrying('get d.bin', refused(), { isOpen: false }, 1, 3, 700);
    gathered();
    expect(lines).toEqual([
      'muxftp: get a.bin: server is shutting down; retry 1/3 once the transfers still on its connection end',
      'muxftp: get: server is shutting down; 2 transfers retry 1–2/3 once the transfers still on its connection end',
      'muxftp: get d.bin: server is shutting down; retry 1/3 in 0.7 s',
    ]);
  });

  it("says so too when a draining server's refusal comes after a stall's timeout: the line names the refusal", () => {
    const open = { isOpen: true };
    const timedOut = new MuxftpError('STREAM_TIMEOUT', 'the server timed the stream out');
    notices.retrying('get a.bin', timedOut, open, 1, 3, 700);
    notices.retrying(
      'get b.bin',
      new MuxftpError('SHUTTING_DOWN', 'server is shutting down'),
      open,
      1,
      3,
      800,
    );
    gathered();
    expect(lines).toEqual([
      'muxftp: get: server is shutting down; 2 transfers retry 1/3 once the transfers still on its connection end',
    ]);
  });

  it('gives each connection its own line', () => {
    notices.retrying('get a.bin', new ConnectionLostError('connection closed'), connection, 1, 3, 700);
    notices.retrying('get b.bin', new ConnectionLostError('connection closed'), {}, 1, 3, 700);
    gathered();
    expect(lines).toHaveLength(2);
  });

  it('says what is still gathering at once when flushed (Ctrl-C, the command ending), and only once', () => {
    const lost = new ConnectionLostError('connection closed');
    notices.retrying('get a.bin', lost, connection, 1, 3, 700);
    notices.retrying('get b.bin', lost, connection, 1, 3, 700);
    notices.flush();
    expect(lines).toEqual(['muxftp: get: connection closed; 2 transfers retry 1/3 in 0.7 s']);
    gathered();
    notices.flush();
    expect(lines).toHaveLength(1);
  });

  it('gathers for less than the shortest backoff, so the line comes before the retries', () => {
    expect(DEFAULTS.retryNoticeGatherMs).toBeLessThan(DEFAULTS.retryBaseDelayMs / 2);
  });
});
