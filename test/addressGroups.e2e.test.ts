/**
 * --max-connections-per-ip and the failed-login refusal count address groups: an IPv4 client
 * reached through a dual-stack listener (::ffff:127.0.0.1) is the same client as over IPv4, and
 * an IPv6 client rotating addresses within its /64 is one client. Sockets are real; addresses
 * other than loopback come from a side listener that hands its sockets to the server's accept()
 * with the address the server is to see. Password checks waiting their turn take the groups in turn.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile, PERMISSIONS } from '../server/auth/usersFile.js';
import type { ServerOptions } from '../server/options.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeAuth } from '../shared/protocol/encoder.js';
import { RawPeer } from './helpers/rawPeer.js';
import { startServer, type TestServer } from './helpers/testServer.js';

/** The machine has an IPv6 loopback to listen and connect on (containers may not). */
let hasIpv6Loopback = false;
beforeAll(async () => {
  const probe = createServer();
  hasIpv6Loopback = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => resolve(true));
  });
  probe.close();
});

let server: TestServer | undefined;
let side: Server | undefined;
const peers: RawPeer[] = [];
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  side?.close();
  side = undefined;
  await server?.stop();
  server = undefined;
});

async function startOnAnyAddress(options: Partial<ServerOptions>): Promise<TestServer> {
  server = await startServer({ host: '::', ...options });
  return server;
}

/** A listener on `host` whose sockets the test server accepts as if from `seenAs` (or their own address). */
async function sideListener(host: string): Promise<(seenAs?: string) => Promise<Socket>> {
  const listener = createServer();
  side = listener;
  listener.listen(0, host);
  await once(listener, 'listening');
  const { port } = listener.address() as { port: number };
  return async (seenAs) => {
    const accepted = once(listener, 'connection') as Promise<[Socket]>;
    const client = connect({ host, port });
    client.on('error', () => {});
    const [socket] = await accepted;
    if (seenAs !== undefined) Object.defineProperty(socket, 'remoteAddress', { value: seenAs });
    server!.server.accept(socket);
    return client;
  };
}

async function welcomed(socket: Socket | number): Promise<RawPeer> {
  const peer = await RawPeer.open(socket);
  peers.push(peer);
  return peer;
}

async function refusal(socket: Socket): Promise<string> {
  const peer = RawPeer.over(socket);
  peers.push(peer);
  return (await peer.connectionError()).code;
}

describe('per-address limits on a server listening on ::', () => {
  it('count an IPv4 client seen as ::ffff:127.0.0.1 as 127.0.0.1', async (context) => {
    if (!hasIpv6Loopback) context.skip('no IPv6 loopback (::1) on this machine');
    const { port } = await startOnAnyAddress({ maxConnectionsPerIp: 1 });
    const overIpv4 = await sideListener('127.0.0.1');
    // Straight to the dual-stack listener: the server sees ::ffff:127.0.0.1.
    await welcomed(port);
    expect(await refusal(await overIpv4())).toBe('SERVER_BUSY');
    // ::1 is another client.
    await welcomed(await viaIpv6Loopback(port));
    expect(server!.server.counters.refused.get('max_connections_per_ip')).toBe(1);
  });

  it('count IPv6 clients by their /64: rotating addresses within it gets no more connections', async (context) => {
    if (!hasIpv6Loopback) context.skip('no IPv6 loopback (::1) on this machine');
    await startOnAnyAddress({ maxConnectionsPerIp: 2 });
    const from = await sideListener('::1');
    await welcomed(await from('2001:db8:0:7::a'));
    await welcomed(await from('2001:0db8:0000:0007:ffff:0:0:b'));
    expect(await refusal(await from('2001:db8:0:7::c'))).toBe('SERVER_BUSY');
    // The next /64 is another client.
    await welcomed(await from('2001:db8:0:8::a'));
  });

  it('refuse every address in a /64 after failed logins from one of them', async (context) => {
    if (!hasIpv6Loopback) context.skip('no IPv6 loopback (::1) on this machine');
    const users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    await startOnAnyAddress({
      accounts: new Accounts({ users }),
      loginFailureDelayMs: 1,
      maxLoginFailureDelayMs: 1,
      loginFailuresPerAddress: 2,
      loginBlockMs: 60_000,
    });
    const from = await sideListener('::1');
    const guessing = await welcomed(await from('2001:db8:0:7::a'));
    for (let attempt = 1; attempt <= 2; attempt++) {
      guessing.write(encodeAuth({ user: 'alice', password: `wrong${attempt}` }));
      await guessing.waitFor(
        () => guessing.frames.filter((f) => f.type === FrameType.AUTH).length === attempt,
      );
    }
    expect(await refusal(await from('2001:db8:0:7::b'))).toBe('TEMPORARILY_REFUSED');
    // The next /64 is another client.
    await welcomed(await from('2001:db8:0:8::a'));
  });
});

describe('password checks waiting their turn', () => {
  it('take address groups in turn: one address with a valid account cannot starve the others', async () => {
    // A right password is never refused for failures, so one account's holder could queue check
    // after check from one address; first come first served, every other login then waited
    // behind all of them past its handshake timeout (a helper's run: 600 such connections, every
    // other address's login IDLE_TIMEOUT). The line now takes address groups in turn.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const checked: string[] = [];
    class HeldAccounts extends Accounts {
      override async verify(name: string, password: string) {
        checked.push(name);
        await held;
        return super.verify(name, password);
      }
    }
    let users = addUser(emptyUsersFile(), {
      name: 'alice',
      passwordHash: await hashPassword('alice-secret'),
      permissions: [...PERMISSIONS],
    });
    users = addUser(users, {
      name: 'bob',
      passwordHash: await hashPassword('bob-secret'),
      permissions: ['list'],
    });
    server = await startServer({ accounts: new HeldAccounts({ users }), maxConcurrentLoginChecks: 1 });
    const flood = await Promise.all(Array.from({ length: 20 }, () => welcomed(server!.port)));
    for (const peer of flood) peer.write(encodeAuth({ user: 'alice', password: 'alice-secret' }));
    const deadline = Date.now() + 8_000;
    const waitingReaches = async (count: number) => {
      while (server!.server.loginChecksWaiting < count && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(server!.server.loginChecksWaiting).toBe(count);
    };
    await waitingReaches(flood.length - 1);
    const from = await sideListener('127.0.0.1');
    const other = await welcomed(await from('192.0.2.7'));
    other.write(encodeAuth({ user: 'bob', password: 'bob-secret' }));
    await waitingReaches(flood.length);
    release();
    const answer = await other.waitFor((f) => f.type === FrameType.AUTH);
    expect(JSON.parse(answer.payload.toString())).toMatchObject({ ok: true, user: 'bob' });
    // The check running when it came and at most one more of alice's, then bob's: not the 19
    // alice queued before it.
    expect(checked.indexOf('bob')).toBeLessThanOrEqual(2);
    await Promise.all(flood.map((peer) => peer.waitFor((f) => f.type === FrameType.AUTH)));
  });
});

function viaIpv6Loopback(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '::1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}
