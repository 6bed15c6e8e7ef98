/** The operation table and the one gate every OPEN passes before a handler runs. */
import { describe, expect, it } from 'vitest';
import { admitOpen, type GateState } from '../server/openGate.js';
import { MuxftpError } from '../shared/errors.js';
import { FrameType } from '../shared/protocol/constants.js';
import type { Frame } from '../shared/protocol/frame.js';
import type { Request } from '../shared/protocol/messages.js';
import { OPERATIONS, type Permission } from '../shared/protocol/operations.js';

const open = (payload: unknown): Frame => ({
  type: FrameType.OPEN,
  flags: 0,
  streamId: 1,
  payload: Buffer.from(JSON.stringify(payload)),
});

const state = (overrides: Partial<GateState> = {}): GateState => ({
  draining: false,
  openStreams: 0,
  maxStreams: 4,
  accountName: 'alice',
  permits: () => true,
  ...overrides,
});

function refusal(frame: Frame, gate: GateState): MuxftpError {
  try {
    admitOpen(frame, gate);
  } catch (error) {
    expect(error).toBeInstanceOf(MuxftpError);
    return error as MuxftpError;
  }
  throw new Error('the gate admitted it');
}

describe('the operation table', () => {
  it('gives every op its stream kind and permission', () => {
    const rows = Object.fromEntries(
      Object.entries(OPERATIONS).map(([op, row]) => [op, `${row.stream}/${row.permission}`]),
    );
    expect(rows).toEqual({
      list: 'request/list',
      stat: 'request/list',
      mkdir: 'request/mkdir',
      rmdir: 'request/delete',
      delete: 'request/delete',
      rename: 'request/rename',
      // Setting a modification time changes the entry: what may write it may.
      utime: 'request/write',
      chmod: 'request/write',
      get: 'download/read',
      put: 'upload/write',
      // What the server keeps of an interrupted upload: asked only by one who may write it (put -c).
      partial: 'request/write',
      // Hashing a file reads all of it: the read permission, like get.
      digest: 'request/read',
      stats: 'request/null',
      // Room left for uploads: as much as a listing shows.
      space: 'request/list',
    });
  });
});

describe('admitOpen', () => {
  it('admits a valid request with its row', () => {
    const admitted = admitOpen(open({ op: 'put', path: 'a.bin', size: 3 }), state());
    expect(admitted.request).toEqual({ op: 'put', path: 'a.bin', size: 3 });
    expect(admitted.spec).toBe(OPERATIONS.put);
    expect(admitOpen(open({ op: 'mkdir', path: 'd' }), state()).request).toEqual({
      op: 'mkdir',
      path: 'd',
      parents: false,
    });
  });

  it("refuses by the row's validator: BAD_REQUEST for bad fields, UNSUPPORTED for an unknown op", () => {
    expect(refusal(open({ op: 'rename', from: 'a' }), state())).toMatchObject({
      code: 'BAD_REQUEST',
      message: 'rename: "to" must be a string',
    });
    expect(refusal(open({ op: 'put', path: 'a', size: -1 }), state()).code).toBe('BAD_REQUEST');
    expect(refusal(open({ op: 'toString' }), state()).code).toBe('UNSUPPORTED');
    expect(refusal(open({ op: 'chown', path: 'a' }), state()).code).toBe('UNSUPPORTED');
    expect(refusal(open([1]), state()).code).toBe('BAD_REQUEST');
  });

  it('asks for the permission in the row, and refuses with PERMISSION_DENIED', () => {
    const asked: Array<[Permission, Request]> = [];
    const readOnly = state({
      permits: (permission, request) => {
        asked.push([permission, request]);
        return permission === 'read' || permission === 'list';
      },
    });
    expect(admitOpen(open({ op: 'get', path: 'f' }), readOnly).request.op).toBe('get');
    expect(refusal(open({ op: 'put', path: 'f' }), readOnly)).toMatchObject({
      code: 'PERMISSION_DENIED',
      message: 'permission denied: user alice has no write permission',
    });
    expect(refusal(open({ op: 'rename', from: 'a', to: 'b' }), readOnly).code).toBe('PERMISSION_DENIED');
    // stats needs no permission: the gate does not ask.
    expect(admitOpen(open({ op: 'stats' }), readOnly).request.op).toBe('stats');
    expect(asked.map(([permission]) => permission)).toEqual(['read', 'write', 'rename']);
  });

  it('refuses before validating while the server drains or the stream cap is reached', () => {
    expect(refusal(open({ op: 'nonsense' }), state({ draining: true })).code).toBe('SHUTTING_DOWN');
    expect(refusal(open({ op: 'stats' }), state({ openStreams: 4 }))).toMatchObject({
      code: 'TOO_MANY_STREAMS',
      message: 'at most 4 streams may be open',
    });
  });
});
