/**
 * runTransfers' line for the files not started because the server was taken as gone (one
 * transfer spent its --retries on failed reconnects): it names that failure, even when another
 * transfer, with retries left, reconnected later and the server is no longer taken as gone.
 * Before, that later reconnect made the line say `interrupted before 1 file started
 * (CANCELLED)`, with no Ctrl-C anywhere. Seen with real processes (put -j 2 --retries 2, the
 * server killed twice and back before the second file's last retry); a fake connection and
 * transfers here, as the order of those events is the test's.
 */
import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { Output } from '../cli/output.js';
import type { ReconnectingClient } from '../cli/reconnect.js';
import { runTransfers, type TransferDone } from '../cli/transferRunner.js';
import type { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';

it('the files not started while the server was taken as gone are said so, though it came back later', async () => {
  const client = { isOpen: false } as unknown as Client;
  const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
  let away: unknown;
  let reconnects = 0;
  let markedGone!: () => void;
  const gone = new Promise<void>((resolve) => {
    markedGone = resolve;
  });
  const connection = {
    client,
    get goneFailure() {
      return away;
    },
    markGone(failure: unknown) {
      away ??= failure;
      markedGone();
    },
    // The first reconnect finds the server away; a later one reaches it (ReconnectingClient then
    // takes it as back: goneFailure undefined).
    tryReplace: async () => {
      if (++reconnects === 1) return { client, failure: refused };
      away = undefined;
      return { client };
    },
  } as unknown as ReconnectingClient;
  const stderr = new PassThrough();
  let said = '';
  stderr.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  const output = new Output(new PassThrough(), stderr);
  output.configure({ json: true, quiet: false });
  const lost = () => new MuxftpError('CONNECTION_LOST', 'connection to 127.0.0.1:1 closed');
  const done: TransferDone = { bytes: 1, algorithm: 'xxh128', digest: '00' };
  const tries = new Map<string, number>();
  const outcomes = await runTransfers({
    command: 'put',
    jobs: ['a', 'b', 'c'].map((name) => ({ local: name, remote: name, size: 1, standardStream: false })),
    parallel: 2,
    output,
    connection,
    retries: 1,
    failedBeforeStart: 0,
    perform: async (job) => {
      const tried = (tries.get(job.local) ?? 0) + 1;
      tries.set(job.local, tried);
      // a: lost, its one retry's reconnect fails: the server is taken as gone, c is not started.
      if (job.local === 'a') throw lost();
      // b: lost after that, its retry's reconnect reaches the server again.
      if (job.local === 'b' && tried === 1) {
        await gone;
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw lost();
      }
      return done;
    },
  });
  expect(outcomes.map((outcome) => [outcome.local, outcome.ok, outcome.error?.code])).toEqual([
    ['a', false, 'CONNECT_FAILED'],
    ['b', true, undefined],
    ['c', false, 'CONNECT_FAILED'],
  ]);
  const lines = said.split('\n').filter((line) => line !== '');
  expect(lines).not.toContainEqual(expect.stringContaining('interrupted'));
  expect(lines).toContain(
    'muxftp: put: 1 file not started, the server still away: cannot connect to 127.0.0.1:1: connection refused (CONNECT_FAILED)',
  );
  expect(output.exitCode).toBe(3);
});

it('Ctrl-C after that does not turn those files into ones interrupted (CANCELLED)', async () => {
  const client = { isOpen: false } as unknown as Client;
  const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
  let away: unknown;
  let markedGone!: () => void;
  const gone = new Promise<void>((resolve) => {
    markedGone = resolve;
  });
  const connection = {
    client,
    get goneFailure() {
      return away;
    },
    markGone(failure: unknown) {
      away ??= failure;
      markedGone();
    },
    tryReplace: async () => ({ client, failure: refused }),
  } as unknown as ReconnectingClient;
  const stderr = new PassThrough();
  let said = '';
  stderr.on('data', (chunk: Buffer) => {
    said += chunk.toString();
  });
  const output = new Output(new PassThrough(), stderr);
  output.configure({ json: true, quiet: false });
  const outcomes = await runTransfers({
    command: 'get',
    jobs: ['a', 'b', 'c'].map((name) => ({ local: name, remote: name, size: 1, standardStream: false })),
    parallel: 2,
    output,
    connection,
    retries: 1,
    failedBeforeStart: 0,
    perform: async (job, _client, options) => {
      // a: lost, its one retry's reconnect fails: the server is taken as gone, c is not started.
      if (job.local === 'a') throw new MuxftpError('CONNECTION_LOST', 'connection to 127.0.0.1:1 closed');
      // b: still under way when Ctrl-C comes, after c was failed for the server's absence.
      await gone;
      setTimeout(() => process.emit('SIGINT'), 20);
      await new Promise((resolve) => options.signal?.addEventListener('abort', resolve, { once: true }));
      throw new MuxftpError('CANCELLED', 'cancelled');
    },
  });
  expect(outcomes.map((outcome) => [outcome.local, outcome.error?.code])).toEqual([
    ['a', 'CONNECT_FAILED'],
    ['b', 'CANCELLED'],
    ['c', 'CONNECT_FAILED'],
  ]);
  const lines = said.split('\n').filter((line) => line !== '');
  // Before: "get: interrupted before 1 file started (CANCELLED)", though c was failed (its
  // --json says CONNECT_FAILED) before any Ctrl-C, for the server's absence.
  expect(lines).toEqual([
    'muxftp: get a: cannot connect to 127.0.0.1:1: connection refused (CONNECT_FAILED)',
    // The fake reconnect takes no time: a's retry line is said with the others at Ctrl-C.
    expect.stringMatching(/^muxftp: get a: connection to 127\.0\.0\.1:1 closed; retry 1\/1 in /),
    'muxftp: get b: cancelled (CANCELLED)',
    'muxftp: get: 1 file not started, the server still away: cannot connect to 127.0.0.1:1: connection refused (CONNECT_FAILED)',
  ]);
  expect(output.exitCode).toBe(130);
});
