/** Opening the one connection a client command uses, with a plain message when that fails. */

import type { ServerAddress } from '../client/address.js';
import { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';
import { CliError } from './cliError.js';
import { packageVersion } from './version.js';

const REASON_BY_ERRNO: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (is `muxftp serve` running there?)',
  ECONNRESET: 'connection reset by the server',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
};

export function formatAddress({ host, port }: ServerAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The innermost errno-carrying cause says what really happened (ECONNREFUSED, ENOTFOUND, ...). */
function connectFailureReason(error: unknown): string {
  if (error instanceof MuxftpError && error.code !== 'CONNECT_FAILED' && error.code !== 'CONNECTION_LOST') {
    // The server answered, with a refusal: SERVER_BUSY, VERSION_MISMATCH, SHUTTING_DOWN...
    return `${error.message} (${error.code})`;
  }
  let innermost: unknown = error;
  let cause: unknown = error;
  while (cause instanceof Error) {
    const errno = (cause as NodeJS.ErrnoException).code;
    const reason = typeof errno === 'string' ? REASON_BY_ERRNO[errno] : undefined;
    if (reason !== undefined) return reason;
    innermost = cause;
    cause = cause.cause;
  }
  return innermost instanceof Error ? innermost.message : String(innermost);
}

export async function openClient(address: ServerAddress): Promise<Client> {
  try {
    return await Client.connect({
      host: address.host,
      port: address.port,
      agent: `muxftp-cli/${packageVersion()}`,
    });
  } catch (error) {
    throw new CliError(`cannot connect to ${formatAddress(address)}: ${connectFailureReason(error)}`, {
      cause: error,
    });
  }
}

/** Runs `use` on a fresh connection; closes it gently after success, at once after a failure. */
export async function withClient<T>(address: ServerAddress, use: (client: Client) => Promise<T>): Promise<T> {
  const client = await openClient(address);
  try {
    const result = await use(client);
    await client.close();
    return result;
  } catch (error) {
    await client.destroy();
    throw error;
  }
}
