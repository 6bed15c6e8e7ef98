/**
 * The failed-login policy a server gets when it is given none of the login options: the figures
 * README.md and docs/PROTOCOL.md state (3 attempts per connection; delays of 0.5 s, 1 s, 2 s …
 * doubling up to 8 s; 10 failures from an address within 10 minutes refuse it for 5 minutes). Over
 * real sockets, with the server's timers and clock faked (setTimeout and performance only: sockets
 * and scrypt run for real), so each delay is seen to the millisecond without waiting it out:
 * nothing is answered 1 ms before it, the answer comes at it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import { DEFAULTS } from '../shared/defaults.js';
import { FrameType, PROTOCOL_VERSION } from '../shared/protocol/constants.js';
import { encodeAuth, encodeHello } from '../shared/protocol/encoder.js';
import type { Frame } from '../shared/protocol/frame.js';
import { parseAuthResult, parseErrorPayload } from '../shared/protocol/messages.js';
import { RawPeer } from './helpers/rawPeer.js';
import { stopServerAndPeers } from './helpers/serverTeardown.js';
import { startServer, type TestServer } from './helpers/testServer.js';
import { delay, until, valueWhen } from './helpers/waits.js';

let env: TestServer | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  vi.useRealTimers();
  env = await stopServerAndPeers(env, peers);
});

const failures = () => env!.logs.filter((line) => line.includes('failed login')).length;

/** A connection that has sent HELLO; resolves to its first frame (WELCOME, or a refusal). */
async function hello(): Promise<{ peer: RawPeer; first: Frame }> {
  const peer = await RawPeer.connect(env!.port);
  peers.push(peer);
  peer.write(
    encodeHello({
      protocol: 'muxftp',
      versions: [PROTOCOL_VERSION],
      maxFramePayload: DEFAULTS.maxFramePayloadBytes,
      integrity: ['xxh128'],
    }),
  );
  return { peer, first: await valueWhen(() => peer.frames[0], 'the first frame', { everyMs: 10 }) };
}

/**
 * Sends a wrong password on `peer` and checks the failure is answered exactly `delayMs` (on the
 * faked clock) after the server recorded it: nothing 1 ms before. Resolves to the answer.
 */
async function failAfter(peer: RawPeer, delayMs: number): Promise<Frame> {
  const before = failures();
  const seen = peer.frames.length;
  peer.write(encodeAuth({ user: 'alice', password: 'wrong' }));
  await until(() => failures() > before, 'the failure to be recorded', { everyMs: 10 });
  await vi.advanceTimersByTimeAsync(delayMs - 1);
  await delay(30);
  expect(peer.frames.slice(seen), `answered before ${delayMs} ms`).toEqual([]);
  await vi.advanceTimersByTimeAsync(1);
  return valueWhen(() => peer.frames[seen], `the answer after ${delayMs} ms`, { everyMs: 10 });
}

describe('the failed-login policy by default', () => {
  it('3 attempts a connection, delays 0.5 s doubling to 8 s, 10 failures refuse the address for 5 min', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    env = await startServer({ backend: 'memory', accounts: new Accounts({ users }) });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });

    // One connection: two failures answered (attempts left 2, 1), the third closes it.
    const { peer: first } = await hello();
    for (const [delayMs, attemptsLeft] of [
      [500, 2],
      [1_000, 1],
    ] as const) {
      const answer = await failAfter(first, delayMs);
      expect(answer.type).toBe(FrameType.AUTH);
      expect(parseAuthResult(answer)).toEqual({ ok: false, message: 'login failed', attemptsLeft });
    }
    const last = await failAfter(first, 2_000);
    expect(last.type).toBe(FrameType.ERROR);
    expect(parseErrorPayload(last)).toEqual({ code: 'LOGIN_FAILED', message: 'login failed' });
    await first.closed;

    // The delay is the address's, not the connection's: it goes on doubling, up to 8 s.
    for (const delayMs of [4_000, 8_000, 8_000, 8_000, 8_000, 8_000]) {
      const { peer } = await hello();
      const answer = await failAfter(peer, delayMs);
      expect(parseAuthResult(answer)).toMatchObject({ ok: false, attemptsLeft: 2 });
      peer.destroy();
    }

    // 9 failures: still let in. The 10th refuses the address, before it reads anything, for 5 min.
    const { peer: tenth, first: welcome } = await hello();
    expect(welcome.type).toBe(FrameType.WELCOME);
    tenth.write(encodeAuth({ user: 'alice', password: 'wrong' }));
    await until(() => failures() === 10, 'the 10th failure', { everyMs: 10 });
    const refusal = async () => {
      const { peer, first } = await hello();
      expect(first.type).toBe(FrameType.ERROR);
      await peer.closed;
      return parseErrorPayload(first);
    };
    expect(await refusal()).toEqual({
      code: 'TEMPORARILY_REFUSED',
      message: 'too many failed logins from this address: try again in 300 s',
    });
    tenth.destroy();
    await vi.advanceTimersByTimeAsync(5 * 60_000 - 1);
    expect((await refusal()).message).toMatch(/try again in 1 s$/);
    await vi.advanceTimersByTimeAsync(1);
    const { peer: again, first: welcomed } = await hello();
    expect(welcomed.type).toBe(FrameType.WELCOME);
    // The refusal forgot the failures: the next is answered after 0.5 s again.
    expect(parseAuthResult(await failAfter(again, 500))).toMatchObject({ ok: false, attemptsLeft: 2 });
  });

  it('counts the failures of the last 10 minutes', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    env = await startServer({ backend: 'memory', accounts: new Accounts({ users }) });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const failOnce = async (delayMs: number) => {
      const { peer } = await hello();
      await failAfter(peer, delayMs);
      peer.destroy();
    };
    await failOnce(500); // at t = 0, answered at 0.5 s
    await vi.advanceTimersByTimeAsync(599_000 - 500);
    await failOnce(1_000); // at 599 s: the first still counts; answered at 600 s
    await vi.advanceTimersByTimeAsync(1);
    await failOnce(1_000); // at 600.001 s: the first no longer counts, the second does
  });
});
