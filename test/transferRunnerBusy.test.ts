/**
 * runTransfers' waits on a busy server (cli/busyRetries.ts: up to 60 s of SERVER_BUSY refusals,
 * tried again on the same connection): the 60 s are one wait's, from its first refusal, not the
 * file's. A transfer refused once as it started, then under way for minutes, is refused again
 * (the server took its slot back for another client, DEFAULTS.openFileReclaimIdleMs, "a client's
 * retry continues it"): it waits again. One refused try after another still gives up after the
 * 60 s. A fake connection and transfer; the clock (performance.now) is the test's.
 */
import { PassThrough } from 'node:stream';
import { afterEach, expect, it, vi } from 'vitest';
import { Output } from '../cli/output.js';
import type { ReconnectingClient } from '../cli/reconnect.js';
import { runTransfers } from '../cli/transferRunner.js';
import type { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const busy = () =>
  new MuxftpError('SERVER_BUSY', 'server busy: 1 files are open for transfers', {
    details: { retryAfterMs: 5 },
  });

/** runTransfers of one get whose tries are `perform`'s, on a connection that stays up. */
async function oneGet(perform: Parameters<typeof runTransfers>[0]['perform']) {
  const client = { isOpen: true } as unknown as Client;
  const connection = {
    client,
    goneFailure: undefined,
    markGone() {},
    tryReplace: async () => ({ client }),
  } as unknown as ReconnectingClient;
  const output = new Output(new PassThrough(), new PassThrough());
  output.configure({ json: true, quiet: false });
  const outcomes = await runTransfers({
    command: 'get',
    jobs: [{ local: 'big.bin', remote: 'big.bin', size: 1000, standardStream: false }],
    parallel: 1,
    output,
    connection,
    retries: 5,
    failedBeforeStart: 0,
    perform,
  });
  return { outcomes, exitCode: output.exitCode };
}

it('a transfer refused SERVER_BUSY again minutes after its first refusal waits again, rather than failing at once', async () => {
  let clock = 1_000_000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
  let tries = 0;
  const { outcomes, exitCode } = await oneGet(async (_job, _client, options) => {
    tries++;
    // Refused as it starts: it waits.
    if (tries === 1) throw busy();
    if (tries === 2) {
      // Admitted: under way for two minutes, then refused (its slot taken back).
      options.onProgress?.(500, 1000);
      clock += 120_000;
      throw busy();
    }
    options.onProgress?.(1000, 1000);
    return { bytes: 1000, algorithm: 'xxh128', digest: '00' };
  });
  expect(outcomes).toEqual([expect.objectContaining({ ok: true, bytes: 1000 })]);
  expect(tries).toBe(3);
  expect(exitCode).toBe(0);
});

it('refused try after try (each over at once), it still gives up after the 60 s', async () => {
  let clock = 1_000_000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
  let tries = 0;
  const { outcomes, exitCode } = await oneGet(async () => {
    tries++;
    // The wait before each try, as the clock sees it.
    clock += 5_000;
    throw busy();
  });
  expect(outcomes).toEqual([
    expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'SERVER_BUSY' }) }),
  ]);
  expect(tries).toBeLessThan(14);
  expect(exitCode).toBe(1);
});

// A transfer the server takes back each time because it sat idle (its slot reclaimed after 10 s
// of nothing moved, a local disk stalled): a new wait only after a try that moved bytes, else it
// waited for ever (review L).
it('a try that sat idle until its slot was taken back, again and again with nothing moved, still gives up', async () => {
  let clock = 1_000_000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
  let tries = 0;
  const { outcomes } = await oneGet(async (_job, _client, options) => {
    tries++;
    // Stop the loop the test would otherwise never leave.
    if (tries > 100) return { bytes: 1000, algorithm: 'xxh128', digest: '00' };
    // Admitted, then nothing moved for the server's openFileReclaimIdleMs (10 s): taken back.
    options.onProgress?.(0, 1000);
    clock += 10_000;
    throw busy();
  });
  // 100 tries are over 16 minutes of refusals with nothing moved: it should have failed long before.
  expect(outcomes).toEqual([
    expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'SERVER_BUSY' }) }),
  ]);
  expect(tries).toBeLessThan(20);
}, 30_000);

// Review (reviewO-48) on e1d8916: "moved" is any report above the last one, and a try's first
// report is where it continued from (get's REPLY: onProgress(resumedFrom)). A try that continues
// from the same kept whole blocks, moves less than a block past them (the same bytes every time),
// then sits idle until its slot is taken back, "moved" each time: a new 60 s wait each time, for
// ever, with no net progress. `it.fails` until moved means past the most any try reached.
it('each try moves the same bytes past the same kept blocks, then is taken back: no net progress, still gives up', async () => {
  let clock = 1_000_000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
  let tries = 0;
  const kept = 4 * 1024 * 1024;
  const { outcomes } = await oneGet(async (_job, _client, options) => {
    tries++;
    if (tries > 100) return { bytes: 1000, algorithm: 'xxh128', digest: '00' };
    // Continues from the kept whole block, writes 1 MB more of it, then the local disk stalls.
    options.onContinue?.(kept);
    options.onProgress?.(kept, 3 * kept);
    options.onProgress?.(kept + 1_000_000, 3 * kept);
    clock += 10_000;
    throw busy();
  });
  expect(outcomes).toEqual([
    expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'SERVER_BUSY' }) }),
  ]);
  expect(tries).toBeLessThan(20);
}, 30_000);

// Review (reviewP-48) on 178923b: "moved" means past the most any try reached, also across a try
// that starts over (get -c: its kept part differs from the server's file now, onRestart). The
// new try's bytes are all new and real, but count as moved only past the old try's mark: one
// that moves 800 of the 1000 bytes afresh over two minutes, then is taken back, is not "moved",
// and fails at once (its wait counted from the first try's refusal). `it.fails` until a start
// over sets the mark back (mostBytes = 0 on onRestart).
it('a try that starts over and moves much (not past the old try), then is taken back, waits again', async () => {
  let clock = 1_000_000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
  let tries = 0;
  const { outcomes } = await oneGet(async (_job, _client, options) => {
    tries++;
    if (tries === 1) {
      // Under way for two minutes to 900, then taken back.
      options.onProgress?.(0, 1000);
      options.onProgress?.(900, 1000);
      clock += 120_000;
      throw busy();
    }
    if (tries === 2) {
      // What was kept differs from the server's file now: started over, 800 moved in two minutes.
      options.onRestart?.('the partial differs: starting over');
      options.onProgress?.(0, 1000);
      options.onProgress?.(800, 1000);
      clock += 120_000;
      throw busy();
    }
    options.onProgress?.(1000, 1000);
    return { bytes: 1000, algorithm: 'xxh128', digest: '00' };
  });
  expect(outcomes).toEqual([expect.objectContaining({ ok: true, bytes: 1000 })]);
  expect(tries).toBe(3);
}, 30_000);
