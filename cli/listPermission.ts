/**
 * An account that may not list (its login's permissions say so) gets no stat: the CLI's look
 * before a transfer or a move is refused, and it cannot tell a directory there from a missing
 * name. Commands then act as named and let the server refuse what does not fit.
 */
import type { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';

/** The account's login says it may not list. */
export const mayNotList = (client: Client): boolean =>
  client.permissions !== undefined && !client.permissions.includes('list');

/** A look refused because the account may not list; any other refusal (the host's) is the answer. */
export const cannotLook = (client: Client, error: unknown): boolean =>
  error instanceof MuxftpError && error.code === 'PERMISSION_DENIED' && mayNotList(client);
