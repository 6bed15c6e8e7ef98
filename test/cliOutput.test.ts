/** How the CLI words an error on one line: expected errors plainly, a broken install with its fix. */
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CliError } from '../cli/cliError.js';
import { connectFailure } from '../cli/connect.js';
import { formatListing } from '../cli/entryFormat.js';
import { describeError } from '../cli/output.js';
import { Client } from '../client/client.js';
import { MuxftpError } from '../shared/errors.js';

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
        message: `could not connect to 127.0.0.1:${port}: no answer within 0.3 s`,
      });
      expect(describeError(connectFailure(error, { host: '127.0.0.1', port }, undefined))).toBe(
        `cannot connect to 127.0.0.1:${port}: no answer within 0.3 s (CONNECT_FAILED)`,
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
