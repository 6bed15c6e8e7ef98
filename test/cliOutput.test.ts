/** How the CLI words an error on one line: expected errors plainly, a broken install with its fix. */
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CliError } from '../cli/cliError.js';
import { connectFailure } from '../cli/connect.js';
import { formatListing } from '../cli/entryFormat.js';
import { EXIT_STATUS, exitStatusFor, gravest } from '../cli/exitStatus.js';
import { describeError, Output } from '../cli/output.js';
import { asMuxftpError } from '../cli/remoteTree.js';
import { Client } from '../client/client.js';
import { ERROR_STATUS, type ErrorCode, MuxftpError, RemoteError, ServerBusyError } from '../shared/errors.js';
import { INTEGRITY_BLOCK_BYTES } from '../shared/integrity/algorithms.js';
import { PROTOCOL_VERSION } from '../shared/protocol/constants.js';
import { encodeWelcome } from '../shared/protocol/encoder.js';

describe('describeError', () => {
  it('names the code of a protocol error, and nothing more for a CLI error', () => {
    expect(describeError(new MuxftpError('NOT_FOUND', 'no such file: a'))).toBe(
      'no such file: a (NOT_FOUND)',
    );
    expect(describeError(new CliError('bad flag'))).toBe('bad flag');
  });

  it('says how to mend a package that is missing, instead of a stack', () => {
    const missing = Object.assign(new Error("Cannot find package 'hdr-histogram-js'"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    expect(describeError(missing)).toBe(
      "not installed completely (Cannot find package 'hdr-histogram-js'); run npm ci",
    );
    expect(describeError(new TypeError('x is undefined'))).toMatch(
      /^internal error: TypeError: x is undefined\n/,
    );
  });
});

describe('exit status', () => {
  // Written out, not derived from the code's own rule: a code moved to the wrong side fails here.
  const connectionFailures: ErrorCode[] = [
    'CONNECT_FAILED',
    'CONNECTION_LOST',
    'SHUTTING_DOWN',
    'LOGIN_FAILED',
    'TEMPORARILY_REFUSED',
    'TLS_REQUIRED',
    'VERSION_MISMATCH',
    'IDLE_TIMEOUT',
  ];

  it('is 3 for a failed connection and 1 for anything the server answered, code by code', () => {
    const statuses = Object.fromEntries(
      (Object.keys(ERROR_STATUS) as ErrorCode[]).map((code) => [
        code,
        exitStatusFor(new MuxftpError(code, 'x')),
      ]),
    );
    const expected = Object.fromEntries(
      (Object.keys(ERROR_STATUS) as ErrorCode[]).map((code) => [
        code,
        connectionFailures.includes(code) ? 3 : 1,
      ]),
    );
    expect(statuses).toEqual(expected);
    // A server that answers what it should not failed what was asked, not the connection.
    expect(statuses).toMatchObject({ NOT_FOUND: 1, SERVER_BUSY: 1, INTEGRITY_ERROR: 1, PROTOCOL_ERROR: 1 });
  });

  it("takes a CLI error's code (its cause's, when it names none), and 1 for anything else", () => {
    const refused = new MuxftpError('CONNECT_FAILED', 'connection refused');
    expect(exitStatusFor(new CliError('cannot connect to 127.0.0.1:1', { cause: refused }))).toBe(3);
    expect(exitStatusFor(new CliError('no password for ci', { code: 'LOGIN_FAILED' }))).toBe(3);
    expect(exitStatusFor(new CliError('--ca root.pem: no such file'))).toBe(1); // LOCAL_IO_ERROR
    // A connect that fails is a failed connection whatever its cause: no muxftp server there too.
    const notMuxftp = new MuxftpError('PROTOCOL_ERROR', 'no muxftp server there, by its first bytes');
    expect(exitStatusFor(connectFailure(notMuxftp, { host: '127.0.0.1', port: 1 }, undefined))).toBe(3);
    expect(exitStatusFor(new CliError('interrupted', { code: 'CANCELLED', exitCode: 130 }))).toBe(130);
    // Refused at connect, whatever by: the connection failed (mid-run, SERVER_BUSY is 1).
    for (const refusal of [
      new ServerBusyError('connections', 'busy'),
      new MuxftpError('TEMPORARILY_REFUSED', 'x'),
    ])
      expect(exitStatusFor(connectFailure(refusal, { host: '127.0.0.1', port: 1 }, undefined))).toBe(3);
    // Its status stays when a caller wraps it (a tree's listing problem), as its code does.
    const wrapped = asMuxftpError(
      connectFailure(new ServerBusyError('connections', 'busy'), { host: 'h', port: 1 }, undefined),
    );
    expect({ code: wrapped.code, status: exitStatusFor(wrapped) }).toEqual({
      code: 'SERVER_BUSY',
      status: 3,
    });
    // A wrapper that names no code of its own takes its cause's.
    expect(
      exitStatusFor(new Error('while listing', { cause: new MuxftpError('CONNECTION_LOST', 'x') })),
    ).toBe(3);
    expect(exitStatusFor(new TypeError('a bug'))).toBe(1);
    expect(exitStatusFor('a string')).toBe(1);
  });

  it("gravest: of one line's failures, the first with the highest status", () => {
    const refused = new MuxftpError('PERMISSION_DENIED', 'a');
    const lost = new MuxftpError('CONNECTION_LOST', 'b');
    const alsoLost = new MuxftpError('CONNECTION_LOST', 'c');
    expect(gravest([refused, lost, alsoLost])).toBe(lost);
    expect(gravest([refused, new MuxftpError('NOT_FOUND', 'd')])).toBe(refused);
    expect(gravest([])).toBeUndefined();
  });

  it('a run with both kinds of failure, in either order, exits 3: never lowered', () => {
    const silent = { write: () => true } as unknown as NodeJS.WritableStream;
    for (const order of [
      ['NOT_FOUND', 'CONNECTION_LOST'],
      ['CONNECTION_LOST', 'NOT_FOUND'],
    ] as const) {
      const output = new Output(silent as never, silent as never);
      output.failure('get a', new MuxftpError(order[0], 'x'));
      output.failure('get b', new MuxftpError(order[1], 'x'));
      expect(output.exitCode).toBe(EXIT_STATUS.connectionFailed);
    }
    const answered = new Output(silent as never, silent as never);
    answered.failure('get a', new MuxftpError('NOT_FOUND', 'x'));
    expect(answered.exitCode).toBe(EXIT_STATUS.failed);
  });
});

describe("the hint for a remote path starting with ~ (the shell's)", () => {
  const written = () => {
    const lines: string[] = [];
    const stderr = { write: (text: string) => lines.push(text) > 0 } as unknown as NodeJS.WritableStream;
    const silent = { write: () => true } as unknown as NodeJS.WritableStream;
    return { output: new Output(silent as never, stderr as never), lines };
  };
  const tilde = '~ is not expanded on the server: remote paths start at its root (your home once logged in)';

  it('takes the place of add -p only; the other hints beside it stay', () => {
    const { output, lines } = written();
    const missing = new RemoteError('NOT_FOUND', 'no such file or directory: ~/docs');
    output.failure('put a', missing, 'add -p to create it; the server keeps the whole 4 MiB blocks');
    output.failure('get b', missing, 'kept in .b.part');
    expect(lines).toEqual([
      `muxftp: put a: no such file or directory: ~/docs (NOT_FOUND); ${tilde}; the server keeps the whole 4 MiB blocks\n`,
      `muxftp: get b: no such file or directory: ~/docs (NOT_FOUND); ${tilde}; kept in .b.part\n`,
    ]);
  });

  it("is not given for a local path's NOT_FOUND", () => {
    const { output, lines } = written();
    output.failure(
      'get a',
      new MuxftpError('NOT_FOUND', 'no such local directory: ~/dl'),
      'add -p to create it',
    );
    expect(lines).toEqual([
      'muxftp: get a: no such local directory: ~/dl (NOT_FOUND); add -p to create it\n',
    ]);
  });
});

describe('a server that accepts the connection and never answers', () => {
  it('is worded once with its address, and the wait in seconds', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const error = await Client.connect({ port, connectTimeoutMs: 300 }).catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'CONNECT_FAILED',
        message: `could not connect to 127.0.0.1:${port}: connected, but no muxftp server answered within 0.3 s`,
      });
      expect(describeError(connectFailure(error, { host: '127.0.0.1', port }, undefined))).toBe(
        `cannot connect to 127.0.0.1:${port}: connected, but no muxftp server answered within 0.3 s (CONNECT_FAILED)`,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('formatListing', () => {
  it('lays out a listing of more entries than a call can take as arguments (ls -r of a large tree)', () => {
    // 300,000 entries: `Math.max(...widths)` overflowed the stack from about 120,000 on.
    const entries = Array.from({ length: 300_000 }, (_, index) => ({
      name: `f${index}`,
      type: 'file' as const,
      size: index === 7 ? 123_456 : 1,
      mtime: 0,
    }));
    const lines = formatListing(entries);
    expect(lines).toHaveLength(300_000);
    // The size column is as wide as the widest size, here 123456's.
    expect(lines[7]).toMatch(/^file {2}123456 {2}/);
    expect(lines[0]).toMatch(/^file {7}1 {2}/);
  });
});

describe("a bug's failure line", () => {
  it('keeps its stack on lines of their own, each printable', () => {
    const lines: string[] = [];
    const stderr = { write: (text: string) => lines.push(text) > 0 } as unknown as NodeJS.WritableStream;
    const silent = { write: () => true } as unknown as NodeJS.WritableStream;
    const output = new Output(silent as never, stderr as never);
    const bug = new TypeError('x is undefined in a\u001b[2Jb');
    bug.stack =
      'TypeError: x is undefined in a\u001b[2Jb\n    at run (cli/main.ts:1:1)\n    at main (cli/main.ts:2:2)';
    output.failure('ls', bug);
    // Before: one line, `…b?    at run (cli/main.ts:1:1)?    at main …`.
    expect(lines).toEqual([
      'muxftp: ls: internal error: TypeError: x is undefined in a?[2Jb\n    at run (cli/main.ts:1:1)\n    at main (cli/main.ts:2:2)\n',
    ]);
  });

  it('keeps a name in its subject on one line: only the stack has lines of its own', () => {
    const lines: string[] = [];
    const stderr = { write: (text: string) => lines.push(text) > 0 } as unknown as NodeJS.WritableStream;
    const silent = { write: () => true } as unknown as NodeJS.WritableStream;
    const output = new Output(silent as never, stderr as never);
    const bug = new TypeError('boom');
    bug.stack = 'TypeError: boom\n    at run (cli/main.ts:1:1)';
    // A name from the server's listing, holding a line break.
    output.failure('get a\nmuxftp: get b', bug, 'see\nthis');
    // Before: `muxftp: get a` and `muxftp: get b: internal error…` on lines of their own.
    expect(lines).toEqual([
      'muxftp: get a?muxftp: get b: internal error: TypeError: boom\n    at run (cli/main.ts:1:1); see?this\n',
    ]);
  });
});

describe('a server that sends its WELCOME and never answers the login', () => {
  it('is said as the login unanswered, not as no muxftp server there', async () => {
    const sockets: Socket[] = [];
    const welcome = encodeWelcome({
      version: PROTOCOL_VERSION,
      limits: { maxFramePayload: 1 << 20, maxStreams: 16, maxPathBytes: 4096, streamWindow: 1 << 20 },
      integrity: { algorithm: 'xxh128', blockBytes: INTEGRITY_BLOCK_BYTES },
      login: { required: true, anonymous: false, passwordNeedsTls: false },
    });
    const mute = createServer((socket) => {
      sockets.push(socket);
      socket.once('data', () => socket.write(welcome));
    });
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const { port } = mute.address() as { port: number };
    try {
      const error = await Client.connect({ port, user: 'u', password: 'pw', connectTimeoutMs: 300 }).catch(
        (e: unknown) => e,
      );
      // Before: "connected, but no muxftp server answered within 0.3 s".
      expect(error).toMatchObject({
        code: 'CONNECT_FAILED',
        message: `could not connect to 127.0.0.1:${port}: the server did not answer the login within 0.3 s`,
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });
});
