/**
 * requestWithRetries (cli/reconnect.ts), what put --delete's listings and removals run under:
 * a request whose connection went is asked again on a new one; when the server stays away, the
 * try after a failed reconnect fails with why it failed, and once one request's retries are spent
 * that way the server is taken as gone: the next fails at once. The connection here is a stand-in for
 * ReconnectingClient that counts; the failures are the CLI's own error types.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectTarget } from '../cli/connect.js';
import { planningClient, ReconnectingClient, requestWithRetries, ServerAwayError } from '../cli/reconnect.js';
import type { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';

function standIn(replaceWith: (signal?: AbortSignal) => Promise<Client>) {
  const first = { name: 'first' } as unknown as Client;
  let replaced = 0;
  const connection = {
    client: first,
    replace: async (_failed: Client, _delayMs: number, signal?: AbortSignal) => {
      replaced++;
      return replaceWith(signal);
    },
    // The real ones, over the stand-in's replace() and its own field.
    tryReplace: ReconnectingClient.prototype.tryReplace,
    markGone: ReconnectingClient.prototype.markGone,
    awayFailure: undefined as unknown,
    get goneFailure(): unknown {
      return (this as { awayFailure?: unknown }).awayFailure;
    },
  } as unknown as ReconnectingClient;
  return { first, connection, replaced: () => replaced };
}

describe('requestWithRetries', () => {
  it('asks again on the new connection once the old one went', async () => {
    const second = { name: 'second' } as unknown as Client;
    const { first, connection } = standIn(async () => second);
    const asked: Client[] = [];
    const result = await requestWithRetries(
      connection,
      2,
      async (client) => {
        asked.push(client);
        if (client === first) throw new MuxftpError('CONNECTION_LOST', 'connection closed');
        return 'listed';
      },
      () => {},
    );
    expect(result).toBe('listed');
    expect(asked).toEqual([first, second]);
  });

  it('a try after a failed reconnect fails with why it failed, not the old connection again', async () => {
    const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
    const { first, connection, replaced } = standIn(async () => {
      throw refused;
    });
    const asked: Client[] = [];
    const told: string[] = [];
    const failure = await requestWithRetries(
      connection,
      2,
      async (client) => {
        asked.push(client);
        throw new MuxftpError('CONNECTION_LOST', 'connection closed');
      },
      (error, attempt) => told.push(`${attempt}: ${(error as Error).message}`),
    ).catch((error: unknown) => error);
    expect(failure).toBe(refused);
    // Before: each try went to the dead connection, and every line said "connection closed".
    expect(asked).toEqual([first]);
    expect(told).toEqual(['1: connection closed', `2: ${refused.message}`]);
    expect(replaced()).toBe(2);
  });

  it('retries spent on failed reconnects: the server is taken as gone, and the next request is not asked', async () => {
    const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
    const { connection, replaced } = standIn(async () => {
      throw refused;
    });
    const lost = async (): Promise<never> => {
      throw new MuxftpError('CONNECTION_LOST', 'connection closed');
    };
    await expect(requestWithRetries(connection, 1, lost, () => {}, { planning: 'list' })).rejects.toBe(
      refused,
    );
    expect(connection.goneFailure).toBe(refused);
    let asked = 0;
    const ask = async () => {
      asked++;
      return 'listed';
    };
    // A planning request: given up, said as such (its reason the refusal, its code and exit status too).
    const away = await requestWithRetries(connection, 5, ask, () => {}, { planning: 'stat' }).catch(
      (error: unknown) => error,
    );
    expect(away).toBeInstanceOf(ServerAwayError);
    expect(away).toMatchObject({ request: 'stat', code: 'CONNECT_FAILED', cause: refused });
    // Anything else: the refusal itself.
    await expect(requestWithRetries(connection, 5, ask, () => {})).rejects.toBe(refused);
    expect(asked).toBe(0);
    expect(replaced()).toBe(1);
  });

  it('a reconnect that meets a certificate this client refuses is not tried again: the server is taken as gone', async () => {
    // As Client words it: the certificate's check in the cause's code.
    const expired = new MuxftpError(
      'CONNECT_FAILED',
      "could not connect to 127.0.0.1:1: the server's TLS certificate has expired (CERT_HAS_EXPIRED)",
      {
        cause: Object.assign(new Error("the server's TLS certificate has expired (CERT_HAS_EXPIRED)"), {
          code: 'CERT_HAS_EXPIRED',
        }),
      },
    );
    const { connection, replaced } = standIn(async () => {
      throw expired;
    });
    const told: number[] = [];
    const lost = async (): Promise<never> => {
      throw new MuxftpError('CONNECTION_LOST', 'connection closed');
    };
    const failure = await requestWithRetries(connection, 5, lost, (_error, attempt) => told.push(attempt), {
      planning: 'list',
    }).catch((error: unknown) => error);
    expect(failure).toBe(expired);
    // Before: tried 5 times, each after a longer backoff, to meet the same certificate.
    expect(told).toEqual([1]);
    expect(replaced()).toBe(1);
    expect(connection.goneFailure).toBe(expired);
  });

  it('a reconnect that meets a certificate not valid yet is tried again: the clocks may be seconds apart', async () => {
    // A server restarted with a certificate issued that second (openssl x509 -req dates it now),
    // and this machine's clock a little behind the CA's: valid by the next try.
    const notYet = new MuxftpError(
      'CONNECT_FAILED',
      "could not connect to 127.0.0.1:1: the server's TLS certificate is not valid yet (CERT_NOT_YET_VALID)",
      {
        cause: Object.assign(
          new Error("the server's TLS certificate is not valid yet (CERT_NOT_YET_VALID)"),
          {
            code: 'CERT_NOT_YET_VALID',
          },
        ),
      },
    );
    const second = { name: 'second' } as unknown as Client;
    let reconnects = 0;
    const { first, connection } = standIn(async () => {
      if (++reconnects === 1) throw notYet;
      return second;
    });
    const told: number[] = [];
    const result = await requestWithRetries(
      connection,
      5,
      async (client) => {
        if (client === first) throw new MuxftpError('CONNECTION_LOST', 'connection closed');
        return 'listed';
      },
      (_error, attempt) => told.push(attempt),
    );
    // Before: given up on after the first reconnect, the server taken as gone.
    expect(result).toBe('listed');
    expect(told).toEqual([1, 2]);
    expect(connection.goneFailure).toBeUndefined();
  });

  it("a request whose retries end on the reconnect another's ended on first is given up, not said again", async () => {
    const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
    const { connection } = standIn(async () => {
      throw refused;
    });
    const lost = async (): Promise<never> => {
      throw new MuxftpError('CONNECTION_LOST', 'connection closed');
    };
    // Both in flight when the connection went: the same reconnect's failure ends both.
    const [first, second] = await Promise.all([
      requestWithRetries(connection, 1, lost, () => {}, { planning: 'list' }).catch(
        (error: unknown) => error,
      ),
      requestWithRetries(connection, 1, lost, () => {}, { planning: 'list' }).catch(
        (error: unknown) => error,
      ),
    ]);
    expect(first).toBe(refused);
    expect(second).toBeInstanceOf(ServerAwayError);
  });

  it('Ctrl-C during the wait to reconnect: cancelled at once, and the server not taken as gone', async () => {
    const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
    const interrupt = new AbortController();
    // A reconnect that waits out its backoff (3 s) unless Ctrl-C ends the wait, as replace() does.
    let waitEndedBy: 'Ctrl-C' | 'its time' | undefined;
    const { connection, replaced } = standIn(async (signal) => {
      await new Promise<void>((resolve) => {
        const end = (by: typeof waitEndedBy) => {
          waitEndedBy ??= by;
          resolve();
        };
        const timer = setTimeout(() => end('its time'), 3_000);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          end('Ctrl-C');
        });
      });
      if (signal?.aborted === true)
        throw new MuxftpError('CANCELLED', 'cancelled while waiting to reconnect');
      throw refused;
    });
    let asked = 0;
    const lost = async (): Promise<never> => {
      asked++;
      throw new MuxftpError('CONNECTION_LOST', 'connection closed');
    };
    // Ctrl-C once the retry is said, during the wait.
    const failure = await requestWithRetries(
      connection,
      1,
      lost,
      () => setTimeout(() => interrupt.abort(), 20),
      {
        signal: interrupt.signal,
      },
    ).catch((error: unknown) => error);
    // Before: the wait went on to its end, and the refusal after it marked the server gone.
    expect(waitEndedBy).toBe('Ctrl-C');
    expect(failure).toMatchObject({ code: 'CANCELLED' });
    expect(connection.goneFailure).toBeUndefined();
    expect([asked, replaced()]).toEqual([1, 1]);
    // A request lost as Ctrl-C came (its connection closed on the way out), under --retries 0:
    // not the server gone either.
    const second = new AbortController();
    const closed = new MuxftpError('CONNECTION_LOST', 'connection closed');
    const lostOnCtrlC = async (): Promise<never> => {
      second.abort();
      throw closed;
    };
    await expect(
      requestWithRetries(connection, 0, lostOnCtrlC, () => {}, { signal: second.signal }),
    ).rejects.toMatchObject({ code: 'CANCELLED', cause: closed });
    expect(connection.goneFailure).toBeUndefined();
  });

  it('Ctrl-C as a reconnect succeeds: the request is not asked again on the new connection', async () => {
    const interrupt = new AbortController();
    const second = { name: 'second' } as unknown as Client;
    const { connection } = standIn(async () => second);
    const asked: Client[] = [];
    const failure = await requestWithRetries(
      connection,
      2,
      async (client) => {
        asked.push(client);
        throw new MuxftpError('CONNECTION_LOST', 'connection closed');
      },
      () => interrupt.abort(),
      { signal: interrupt.signal },
    ).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'CANCELLED' });
    expect(asked).toHaveLength(1);
  });

  it('retries spent on connections that reconnected and were lost again: the server is not taken as gone', async () => {
    // Each reconnect reaches the server (a link that drops each connection soon): it is there.
    const { connection, replaced } = standIn(async () => ({ name: 'next' }) as unknown as Client);
    const closed = new MuxftpError('CONNECTION_LOST', 'connection closed');
    const lost = async (): Promise<never> => {
      throw closed;
    };
    await expect(requestWithRetries(connection, 2, lost, () => {}, { planning: 'list' })).rejects.toBe(
      closed,
    );
    expect(replaced()).toBe(2);
    expect(connection.goneFailure).toBeUndefined();
  });

  it('--retries 0: the first loss is said; nothing reconnects, so the rest are given up at once', async () => {
    const { connection, replaced } = standIn(async () => {
      throw new Error('not asked to reconnect');
    });
    const closed = new MuxftpError('CONNECTION_LOST', 'connection closed');
    const lost = async (): Promise<never> => {
      throw closed;
    };
    const [first, inFlight] = await Promise.all([
      requestWithRetries(connection, 0, lost, () => {}, { planning: 'list' }).catch(
        (error: unknown) => error,
      ),
      requestWithRetries(connection, 0, lost, () => {}, { planning: 'list' }).catch(
        (error: unknown) => error,
      ),
    ]);
    expect(first).toBe(closed);
    expect(inFlight).toBeInstanceOf(ServerAwayError);
    expect(connection.goneFailure).toBe(closed);
    await expect(
      requestWithRetries(connection, 0, lost, () => {}, { planning: 'stat' }),
    ).rejects.toBeInstanceOf(ServerAwayError);
    // A refusal is no loss: said as itself, and the connection not taken as gone for it.
    const fresh = standIn(async () => {
      throw new Error('not asked to reconnect');
    }).connection;
    const refused = new MuxftpError('PERMISSION_DENIED', 'no');
    await expect(
      requestWithRetries(
        fresh,
        0,
        async () => Promise.reject(refused),
        () => {},
        { planning: 'list' },
      ),
    ).rejects.toBe(refused);
    expect(fresh.goneFailure).toBeUndefined();
    expect(replaced()).toBe(0);
  });

  it('--retries 0: a request in flight lost with an error of its own (a stream refused SHUTTING_DOWN, then the close) is given up too', async () => {
    const { connection } = standIn(async () => {
      throw new Error('not asked to reconnect');
    });
    const refused = new MuxftpError('SHUTTING_DOWN', 'server is shutting down');
    const closed = new MuxftpError('CONNECTION_LOST', 'connection closed');
    let lose!: () => void;
    const asked = new Promise<never>((_, reject) => {
      lose = () => reject(closed);
    });
    // Asked before the loss, it fails after it with a failure of its own.
    const inFlight = requestWithRetries(
      connection,
      0,
      () => asked,
      () => {},
      { planning: 'list' },
    ).catch((error: unknown) => error);
    await expect(
      requestWithRetries(
        connection,
        0,
        async () => Promise.reject(refused),
        () => {},
        { planning: 'list' },
      ),
    ).rejects.toBe(refused);
    lose();
    const given = await inFlight;
    expect(given).toBeInstanceOf(ServerAwayError);
    expect((given as Error).cause).toBe(closed);
    expect(connection.goneFailure).toBe(refused);
  });

  it('planningClient: a mkdir -p refused whose look finds the server gone is given up as a mkdir', async () => {
    const refused = new MuxftpError('CONNECT_FAILED', 'cannot connect to 127.0.0.1:1: connection refused');
    const { connection } = standIn(async () => {
      throw refused;
    });
    // Refused (no mkdir permission) as another request spends its retries: the look is not asked.
    (connection as unknown as { client: unknown }).client = {
      mkdir: async () => {
        connection.markGone(refused);
        throw new MuxftpError('PERMISSION_DENIED', 'permission denied');
      },
    };
    const client = planningClient(connection, 1, () => {});
    const away = await client.mkdir('d', { parents: true }).catch((error: unknown) => error);
    // One line says how many directories were not made: this is one of them, not a path not looked at.
    expect(away).toBeInstanceOf(ServerAwayError);
    expect(away).toMatchObject({ request: 'mkdir', cause: refused });
  });

  it('a refusal SHUTTING_DOWN on a connection still up: replaced only once the server ends it (it drains)', async () => {
    const second = { name: 'second' } as unknown as Client;
    const { connection, replaced } = standIn(async () => second);
    let end!: () => void;
    const draining = { isOpen: true, closed: new Promise<void>((resolve) => (end = resolve)) };
    (connection as unknown as { client: unknown }).client = draining;
    const asked = requestWithRetries(
      connection,
      1,
      async (client) => {
        if (client === (draining as unknown))
          throw new MuxftpError('SHUTTING_DOWN', 'server is shutting down');
        return 'answered';
      },
      () => {},
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Before: replaced at once, which cut the transfers the server was letting finish on it.
    expect(replaced()).toBe(0);
    draining.isOpen = false;
    end();
    await expect(asked).resolves.toBe('answered');
    expect(replaced()).toBe(1);
  });
  it('a reconnect the server was too busy for (SERVER_BUSY, its busy wait spent) does not end the command: the next request reconnects', async () => {
    // openClient's CliError: the SERVER_BUSY it gave up on as its cause.
    const busy = new Error('cannot connect to 127.0.0.1:1: the server is busy', {
      cause: new MuxftpError('SERVER_BUSY', 'too many connections'),
    });
    const second = { name: 'second' } as unknown as Client;
    let tries = 0;
    const { first, connection } = standIn(async () => {
      if (++tries === 1) throw busy;
      return second;
    });
    const request = (client: Client) =>
      client === first
        ? Promise.reject(new MuxftpError('CONNECTION_LOST', 'connection closed'))
        : Promise.resolve('listed');
    await expect(requestWithRetries(connection, 3, request, () => {})).rejects.toBe(busy);
    // Not a refusal of this client (a login): a busy server is not taken as gone with retries left.
    expect(connection.goneFailure).toBeUndefined();
    await expect(requestWithRetries(connection, 3, request, () => {})).resolves.toBe('listed');
  });

  it('the real replace(): a remembered busy failure does not stop a later reconnect; a refused login does', async () => {
    const target = { server: { host: '127.0.0.1', port: 1 }, access: {} } as unknown as ConnectTarget;
    const first = { destroy: async () => {} } as unknown as Client;
    const busyGone = new ReconnectingClient(target, first);
    busyGone.markGone(new MuxftpError('SERVER_BUSY', 'too many connections'));
    // It tries (and fails to connect to port 1): not rejected at once with the busy failure.
    const failure = await busyGone.replace(first, 0).catch((error: unknown) => error);
    expect(failure).toMatchObject({ cause: { code: 'CONNECT_FAILED' } });
    const refused = new MuxftpError('LOGIN_FAILED', 'login failed');
    const loginGone = new ReconnectingClient(target, first);
    loginGone.markGone(refused);
    await expect(loginGone.replace(first, 0)).rejects.toBe(refused);
  });
});
