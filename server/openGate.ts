/**
 * The one gate every OPEN passes before a handler runs (pyftpdlib's checks before dispatch): the
 * server still takes work, the connection is under its stream cap, the request is valid for its
 * row of the operation table, and the row's permission is granted.
 */
import { type ErrorCode, MuxftpError } from '../shared/errors.js';
import type { Frame } from '../shared/protocol/frame.js';
import type { Request } from '../shared/protocol/messages.js';
import { type OpenRequest, type Permission, parseOpen } from '../shared/protocol/operations.js';

export interface GateState {
  readonly draining: boolean;
  readonly openStreams: number;
  readonly maxStreams: number;
  /** Who is logged in, for the refusal's message. */
  readonly accountName: string;
  /** Whether this connection may use `permission` for `request`. */
  permits(permission: Permission, request: Request): boolean;
}

/** A refusal of a request that parsed: names the request for the server's log. */
export class RequestRefusal extends MuxftpError {
  readonly request: Request;

  constructor(code: ErrorCode, message: string, request: Request) {
    super(code, message);
    this.name = 'RequestRefusal';
    this.request = request;
  }
}

/**
 * The admitted request and its row; throws a MuxftpError that fails only this stream (a
 * RequestRefusal when the request parsed).
 */
export function admitOpen(frame: Frame, state: GateState): OpenRequest {
  if (state.draining) throw new MuxftpError('SHUTTING_DOWN', 'server is shutting down');
  if (state.openStreams >= state.maxStreams) {
    throw new MuxftpError('TOO_MANY_STREAMS', `at most ${state.maxStreams} streams may be open`);
  }
  const open = parseOpen(frame);
  const { permission } = open.spec;
  if (permission !== null && !state.permits(permission, open.request)) {
    // The op is not named: the client knows what it asked (the CLI's line names the command and path).
    throw new RequestRefusal(
      'PERMISSION_DENIED',
      `permission denied: user ${state.accountName} has no ${permission} permission`,
      open.request,
    );
  }
  return open;
}
