/**
 * requestWithRetries (cli/reconnect.ts), what put --delete's listings and removals run under:
 * a request whose connection went is asked again on a new one; when the server stays away, the
 * try after a failed reconnect fails with why it failed. The connection here is a stand-in for
 * ReconnectingClient that counts; the failures are the CLI's own error types.
 */
import { describe, expect, it } from 'vitest';
import { ReconnectingClient, requestWithRetries } from '../cli/reconnect.js';
import type { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';

function standIn(replaceWith: () => Promise<Client>) {
  const first = { name: 'first' } as unknown as Client;
  let replaced = 0;
  const connection = {
    client: first,
    replace: async () => {
      replaced++;
      return replaceWith();
    },
    // The real one, over the stand-in's replace().
    tryReplace: ReconnectingClient.prototype.tryReplace,
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
});
