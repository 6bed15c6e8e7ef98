/**
 * A transfer that continues (get -c, put -c) as a user at a terminal sees it: one line saying
 * where it continues from, and a summary whose rate counts only the bytes moved now, not those
 * already at the destination. A real `muxftp serve` child on 127.0.0.1 port 0, temp dirs, and
 * script(1) (util-linux) for the terminal. Needs dist/ (npm run build).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../client/client.js';
import { SERVED_ROOT_LOCK_NAME } from '../shared/temporaryNames.js';
import { cliShellLine, runCli, startServeChild, stopChildren } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
const tempDirs = new TempDirs('muxftp-continued-');
const children = new Set<ChildProcess>();

afterEach(async () => {
  await stopChildren(children);
  await tempDirs.removeAll();
});

/** `muxftp serve --port 0 --root ROOT …`, once it has printed its listening line: its port. */
async function serve(root: string, args: string[] = []): Promise<number> {
  return (await startServeChild(['--root', root, ...args], children)).port;
}

/** `muxftp ARGS` on a pseudo-terminal, in `cwd`: its exit status and all it showed. */
async function onTerminal(args: string[], cwd: string): Promise<{ code: number | null; shown: string }> {
  const env = { ...process.env };
  delete env.MUXFTP_SERVER;
  const child = spawn('script', ['-qec', cliShellLine(args), '/dev/null'], { cwd, env, stdio: 'pipe' });
  children.add(child); // killed after the test if it hangs
  let shown = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    shown += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, shown };
}

/** The summary's rate in MiB/s (`… in 1.1 s (912 KiB/s)`). */
function summaryRateMiB(shown: string): number {
  const match = /muxftp: 1 file \([^)]*\) in [^(]+\(([\d.]+) (B|KiB|MiB|GiB)\/s\)/.exec(shown);
  if (match === null) throw new Error(`no summary in: ${shown}`);
  const scale = { B: 1 / MiB, KiB: 1 / 1024, MiB: 1, GiB: 1024 }[match[2] as 'B' | 'KiB' | 'MiB' | 'GiB'];
  return Number(match[1]) * scale;
}

describe.skipIf(spawnSync('script', ['--version']).status !== 0)('a continued transfer at a terminal', () => {
  it('get -c says where it continues, and its rate counts only the bytes moved now', async () => {
    const dir = await tempDirs.make();
    const root = join(dir, 'data');
    await mkdir(root);
    const content = randomBytes(2 * BLOCK + MiB);
    await writeFile(join(root, 'big.bin'), content);
    const port = await serve(root);
    const server = ['--server', `127.0.0.1:${port}`];
    // Two whole blocks here already: 1 MiB left to move, at 1 MiB/s.
    const atTerminal = join(dir, 'terminal');
    const piped = join(dir, 'piped');
    for (const local of [atTerminal, piped]) {
      await mkdir(local);
      await writeFile(join(local, 'big.bin'), content.subarray(0, 2 * BLOCK));
    }
    const { code, shown } = await onTerminal(
      [...server, 'get', '-c', '--limit-rate', '1MiB', 'big.bin'],
      atTerminal,
    );
    expect(code).toBe(0);
    expect(shown.match(/continuing from/g)).toEqual(['continuing from']);
    expect(shown).toContain('muxftp: get big.bin: continuing from 8.00 MiB');
    expect(shown).toMatch(/muxftp: 1 file \(9\.00 MiB, 1\.00 MiB moved\) in /);
    // Counting the 8 MiB that were there, it said 9 MiB in about a second.
    expect(summaryRateMiB(shown)).toBeLessThan(2);
    expect((await readFile(join(atTerminal, 'big.bin'))).equals(content)).toBe(true);
    // Not on a terminal: no line about it (a script has --json's continuedFrom).
    const result = await runCli([...server, 'get', '-c', 'big.bin'], piped);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('put -c says where it continues, and its rate counts only the bytes moved now', async () => {
    const dir = await tempDirs.make();
    const root = join(dir, 'data');
    await mkdir(root);
    // Small fixed windows: a cut after 8.6 MiB sent leaves the server two whole blocks, or one
    // when the bytes in flight are lost with the connection (a loaded machine).
    const serving = await startServeChild(['--root', root, '--stream-window', '256KiB'], children);
    const port = serving.port;
    const content = randomBytes(2 * BLOCK + MiB);
    await writeFile(join(dir, 'big.bin'), content);
    const client = await Client.connect({ host: '127.0.0.1', port });
    const cut = client.put('big.bin', join(dir, 'big.bin'), {
      resumable: true,
      onProgress: (done) => {
        if (done >= 2 * BLOCK + 0.6 * MiB) void client.destroy();
      },
    });
    await expect(cut).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    // Once the server has dropped the stream (its cut line) it cuts what it kept to whole blocks.
    const deadline = Date.now() + 10_000;
    let keptBytes = -1;
    for (let sameSize = 0; sameSize < 3; ) {
      const kept = (await readdir(root)).filter(
        (name) => name.startsWith('.muxftp-') && name !== SERVED_ROOT_LOCK_NAME,
      );
      const size = kept.length === 1 ? (await stat(join(root, kept[0]!))).size : -1;
      const settled = /upload of big\.bin cut after/.test(serving.stderr()) && size > 0 && size % BLOCK === 0;
      sameSize = settled && size === keptBytes ? sameSize + 1 : 0;
      keptBytes = size;
      if (Date.now() > deadline) throw new Error(`the server kept ${kept.length} files (${size} bytes)`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { code, shown } = await onTerminal(
      ['--server', `127.0.0.1:${port}`, 'put', '-c', '--limit-rate', '1MiB', 'big.bin'],
      dir,
    );
    expect(code).toBe(0);
    const keptMiB = keptBytes / MiB;
    expect(shown).toContain(`muxftp: put big.bin: continuing from ${keptMiB}.00 MiB`);
    expect(shown).toMatch(new RegExp(`muxftp: 1 file \\(9\\.00 MiB, ${9 - keptMiB}\\.00 MiB moved\\) in `));
    expect(summaryRateMiB(shown)).toBeLessThan(2);
    expect((await readFile(join(root, 'big.bin'))).equals(content)).toBe(true);
  });
});
