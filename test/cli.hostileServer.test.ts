/**
 * The CLI against a broken or hostile server (a scripted stand-in on 127.0.0.1): what it lists
 * cannot make a command walk, or hold memory, without end.
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { FrameType } from '../shared/protocol/constants.js';
import { encodeReply } from '../shared/protocol/encoder.js';
import { runCli } from './helpers/cliProcess.js';
import { startScriptedServer } from './helpers/scriptedServer.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-hostile-server-');
const servers: Server[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  await tempDirs.removeAll();
});

describe('a server listing a tree without end', () => {
  it('is walked to the deepest path a request can name (256 names) and no further: said, exit 1', async () => {
    // Every directory holds a directory `a`, however deep: a listing the server makes up.
    let listings = 0;
    const { server, port } = await startScriptedServer((socket, frame) => {
      sockets.add(socket);
      if (frame.type !== FrameType.OPEN) return;
      const { op } = JSON.parse(frame.payload.toString()) as { op: string };
      if (op !== 'list') return socket.destroy();
      listings++;
      const entry = { name: 'a', type: 'dir', size: 0, mtime: 1_700_000_000_000 };
      socket.write(encodeReply(frame.streamId, { entries: [entry] }));
    });
    servers.push(server);
    const cwd = await tempDirs.make();
    const result = await runCli(['ls', '-r', 'd', '--server', `127.0.0.1:${port}`], cwd, {
      timeoutMs: 30_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `server listed an invalid path (more than ${DEFAULTS.maxPathDepth} names deep), skipped: d/${'a/'.repeat(255)}a`,
    );
    // d, and d/a… down to 255 names below it: the 256th is no path.
    expect(listings).toBe(DEFAULTS.maxPathDepth);
  });

  it('names muxftp reserves (never listed by a muxftp server) are said and skipped, not copied', async () => {
    const { server, port } = await startScriptedServer((socket, frame) => {
      sockets.add(socket);
      if (frame.type !== FrameType.OPEN) return;
      const { path } = JSON.parse(frame.payload.toString()) as { path: string };
      const file = (name: string) => ({ name, type: 'file', size: 0, mtime: 1_700_000_000_000 });
      const entries =
        path === 'd' ? [file('.muxftp-get-0123456789abcdef.part'), file('.MUXFTP-x'), file('ok')] : [];
      socket.write(encodeReply(frame.streamId, { entries }));
    });
    servers.push(server);
    const cwd = await tempDirs.make();
    const result = await runCli(['ls', '-r', 'd', '--server', `127.0.0.1:${port}`], cwd);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/ ok\n$/);
    for (const name of ['.muxftp-get-0123456789abcdef.part', '.MUXFTP-x'])
      expect(result.stderr).toContain(
        `server listed an invalid path (names starting with .muxftp- are reserved), skipped: d/${name}`,
      );
  });

  it('a name listed twice in one directory (a directory and a file) is said, and fails the walk', async () => {
    // With --delete a mirror then removes nothing: it removed the local directory "in the way" of the file.
    const { server, port } = await startScriptedServer((socket, frame) => {
      sockets.add(socket);
      if (frame.type !== FrameType.OPEN) return;
      const { path } = JSON.parse(frame.payload.toString()) as { path: string };
      const entry = (name: string, type: string) => ({ name, type, size: 0, mtime: 1_700_000_000_000 });
      const entries = path === 'd' ? [entry('sub', 'dir'), entry('sub', 'file')] : [];
      socket.write(encodeReply(frame.streamId, { entries }));
    });
    servers.push(server);
    const cwd = await tempDirs.make();
    const result = await runCli(['ls', '-r', 'd', '--server', `127.0.0.1:${port}`], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('server listed d/sub twice (PROTOCOL_ERROR)');
  });

  it('two names not UTF-8 on the server, both listed with U+FFFD, are each said as such, not as a name listed twice', async () => {
    const { server, port } = await startScriptedServer((socket, frame) => {
      sockets.add(socket);
      if (frame.type !== FrameType.OPEN) return;
      const { path } = JSON.parse(frame.payload.toString()) as { path: string };
      const entry = { name: 'a\ufffd', type: 'file', size: 0, mtime: 1_700_000_000_000, notUtf8: true };
      socket.write(encodeReply(frame.streamId, { entries: path === 'd' ? [entry, entry] : [] }));
    });
    servers.push(server);
    const cwd = await tempDirs.make();
    const result = await runCli(['ls', '-r', 'd', '--server', `127.0.0.1:${port}`], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain('twice');
    expect(result.stderr.match(/is not UTF-8/g)).toHaveLength(2);
  });
});

describe('a server that closes each connection as it is made', () => {
  it('is said once, as closed before it answered: not "cannot connect to X: could not connect to X: connection closed"', async () => {
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const result = await runCli(['ls', '--server', `127.0.0.1:${port}`], await tempDirs.make());
    expect(result.stderr).toBe(
      `muxftp: cannot connect to 127.0.0.1:${port}: the server closed the connection before it answered (CONNECT_FAILED)\n`,
    );
    expect(result.code).toBe(3);
  });
});
