/**
 * The server's log lines to stderr go out together once per turn of the loop (server/stderrLines.ts),
 * in order, and none is lost when the process exits right after logging it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { logJsonToStderr } from '../server/logEvents.js';
import { logToStderr } from '../server/options.js';
import { CLI_BIN } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';

const DIST = path.resolve(import.meta.dirname, '..', 'dist', 'server');
const tempDirs = new TempDirs('muxftp-stderr-lines-');
afterAll(() => tempDirs.removeAll());

describe('log lines to stderr', () => {
  it('are held for the rest of the turn and written together in the next', async () => {
    logToStderr('stderrLines.test: first of one turn');
    logJsonToStderr({ event: 'test', text: 'stderrLines.test: second of one turn' });
    expect(process.stderr.writableCorked).toBe(1);
    expect(process.stderr.writableLength).toBeGreaterThan(0);
    await nextTurn();
    expect(process.stderr.writableCorked).toBe(0);
  });

  it('are all written, in order, when the process exits right after them', async () => {
    const options = pathToFileURL(path.join(DIST, 'options.js')).href;
    const events = pathToFileURL(path.join(DIST, 'logEvents.js')).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { logToStderr } = await import(${JSON.stringify(options)});
         const { logJsonToStderr } = await import(${JSON.stringify(events)});
         for (let i = 0; i < 100; i++) logToStderr('line ' + i);
         logJsonToStderr({ event: 'last', text: 'the last' });
         process.exit(3);`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    expect(code).toBe(3);
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(101);
    expect(lines.slice(0, 100).map((line) => line.replace(/^\S+ /, ''))).toEqual(
      Array.from({ length: 100 }, (_, i) => `line ${i}`),
    );
    expect(JSON.parse(lines[100]!)).toMatchObject({ event: 'last', msg: 'the last' });
  });

  it('are dropped, counted, past a backlog a reader that stopped reading left: not held without bound', async () => {
    const options = pathToFileURL(path.join(DIST, 'options.js')).href;
    const events = pathToFileURL(path.join(DIST, 'logEvents.js')).href;
    // 10 MB of lines over 100 turns to a pipe nobody reads (a paused pager, a stalled log
    // shipper); then, once the reader is back and has read it all, one more of each format.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { logToStderr } = await import(${JSON.stringify(options)});
         const { logJsonToStderr } = await import(${JSON.stringify(events)});
         const { setImmediate: turn, setTimeout: sleep } = await import('node:timers/promises');
         const { writeSync } = await import('node:fs');
         const line = 'x'.repeat(200);
         for (let t = 0; t < 100; t++) {
           for (let i = 0; i < 500; i++) logToStderr(line);
           await turn();
         }
         writeSync(1, process.stderr.writableLength + '\\n');
         while (process.stderr.writableLength > 0) await sleep(10);
         logJsonToStderr({ event: 'after', text: 'after' });
         logToStderr('after');
         await turn();
         while (process.stderr.writableLength > 0) await sleep(10);
         process.exit(0);`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      child.stderr.pause();
      let stdout = '';
      for await (const chunk of child.stdout.setEncoding('utf8')) {
        stdout += chunk;
        if (stdout.includes('\n')) break;
      }
      // Held in memory: what was not dropped (at most the cap and a turn's lines).
      expect(Number(stdout.trim())).toBeLessThan(2 * 1024 * 1024);
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      child.stderr.resume();
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      const lines = stderr.trimEnd().split('\n');
      expect(lines.length).toBeLessThan(50_000);
      const dropped = lines.filter((line) => line.includes('log lines not written'));
      expect(dropped).toHaveLength(1);
      const count = Number(/(\d+) log lines not written/.exec(dropped[0]!)?.[1]);
      expect(count + lines.length - 1 - 2).toBe(50_000);
      expect(JSON.parse(dropped[0]!)).toMatchObject({ event: 'log_dropped', level: 'warn', count });
      expect(lines.at(-2)).toMatch(/"event":"after"/);
      expect(lines.at(-1)).toMatch(/^\S+ after$/);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  }, 30_000);

  it("come before serve's listening line on stdout, where both go to one place", async () => {
    const root = await tempDirs.make();
    // 2>&1, as a terminal or journald has them: the warning logged before the line is shown before it.
    const child = spawn(
      'sh',
      ['-c', 'exec "$0" "$1" serve --root "$2" --port 0 --fsync never 2>&1', process.execPath, CLI_BIN, root],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    let output = '';
    try {
      for await (const chunk of child.stdout.setEncoding('utf8')) {
        output += chunk;
        if (output.includes('muxftp listening on')) break;
      }
    } finally {
      child.kill('SIGINT');
      await once(child, 'exit').catch(() => {});
      clearTimeout(timer);
    }
    const warned = output.indexOf('fsync never: uploads are not flushed');
    expect(warned).toBeGreaterThanOrEqual(0);
    expect(warned).toBeLessThan(output.indexOf('muxftp listening on'));
  });
});
