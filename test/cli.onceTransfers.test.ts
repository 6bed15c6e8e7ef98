/**
 * stdin (`put -`), stdout (`get … -`) and a FIFO get writes into are tried once whatever
 * `--retries` says: stdin is read as it comes, and bytes written out cannot be taken back. When
 * the connection goes under one, its failure line says so; before, a user who gave (or defaulted
 * to) --retries 5 saw a bare "connection closed" and no retry, and could not tell why. Through a
 * proxy that goes at the first DATA frame; real sockets, the built CLI.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../shared/protocol/constants.js';
import { runCli } from './helpers/cliProcess.js';
import { makeFifo } from './helpers/fifo.js';
import { type FrameProxy, startFrameProxy } from './helpers/frameProxy.js';
import { stopProxyAndServer } from './helpers/serverTeardown.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

let server: TestServer | undefined;
let proxy: FrameProxy | undefined;
const tempDirs = new TempDirs('muxftp-once-');

afterEach(async () => {
  proxy = server = await stopProxyAndServer(proxy, server);
  await tempDirs.removeAll();
});

/** A proxy that goes when the first DATA frame comes from `side`. */
async function lostAtFirstData(side: 'fromClient' | 'fromServer'): Promise<string[]> {
  server = await startServer({ backend: 'disk' });
  await writeFile(join(server.root!, 'big.bin'), Buffer.alloc(2 << 20, 7));
  proxy = await startFrameProxy(server.port, {
    [side]: (frame: { type: number }) => {
      if (frame.type === FrameType.DATA) {
        void proxy!.close();
        return undefined;
      }
      return frame;
    },
  });
  return ['--server', `127.0.0.1:${proxy.port}`];
}

describe('a transfer tried once, its connection lost', () => {
  it('put - says stdin is not retried', async () => {
    const at = await lostAtFirstData('fromClient');
    const result = await runCli([...at, 'put', '--retries', '3', '-', 'in.bin'], await tempDirs.make(), {
      // Within a pipe's buffer: written whole before the CLI stops reading it.
      stdin: 'x'.repeat(60_000),
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /^muxftp: put -: .*\(CONNECTION_LOST\); stdin is read once, as it comes: not retried\n$/,
    );
  });

  it('get … - says stdout is not retried', async () => {
    const at = await lostAtFirstData('fromServer');
    const result = await runCli([...at, 'get', '--retries', '3', 'big.bin', '-'], await tempDirs.make());
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /^muxftp: get big\.bin: .*\(CONNECTION_LOST\); what went to stdout cannot be taken back: not retried\n$/,
    );
  });

  it('get into a FIFO says it is not retried', async () => {
    const at = await lostAtFirstData('fromServer');
    const dir = await tempDirs.make();
    const fifo = makeFifo(join(dir, 'out.fifo'));
    const reader = spawn('cat', [fifo], { stdio: 'ignore' });
    try {
      const result = await runCli([...at, 'get', '--retries', '3', 'big.bin', 'out.fifo'], dir);
      expect(result.code).toBe(3);
      expect(result.stderr).toMatch(
        /^muxftp: get big\.bin: .*\(CONNECTION_LOST\); what went into out\.fifo \(a FIFO or device\) cannot be taken back: not retried\n$/,
      );
    } finally {
      reader.kill();
    }
  });

  it.each([
    ['put', 'not stdin, read once'],
    ['get', 'not stdout, written once'],
  ])('%s --help says so under --retries', async (command, said) => {
    const result = await runCli([command, '--help'], await tempDirs.make());
    const retries = result.stdout.replace(/\s+/g, ' ').match(/--retries <n> (.*?) \(default: 5\)/)?.[1];
    expect(retries).toContain(said);
  });

  it('under --retries 0 nothing is added: nothing is retried', async () => {
    const at = await lostAtFirstData('fromClient');
    const result = await runCli([...at, 'put', '--retries', '0', '-', 'in.bin'], await tempDirs.make(), {
      // Within a pipe's buffer: written whole before the CLI stops reading it.
      stdin: 'x'.repeat(60_000),
    });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^muxftp: put -: .*\(CONNECTION_LOST\)\n$/);
  });
});
