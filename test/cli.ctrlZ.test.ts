/**
 * Ctrl-Z while the bars show, on a pseudo-terminal (python3's pty), as a user at a terminal does
 * it. In an interactive bash, then `fg`: the bars hide the cursor, so it must be there in the
 * shell the process stopped into and hidden again once it goes on, and the frame after `fg`
 * starts below what the shell printed meanwhile, not over it. With no job-control shell (ssh -t
 * host muxftp …, tmux new 'muxftp …'), where nothing could `fg` it, Ctrl-Z does not stop it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliShellLine } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const tempDirs = new TempDirs('muxftp-ctrl-z-');
let env: TestServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
  await tempDirs.removeAll();
});

/**
 * On a 100x30 terminal, runs `command` (argv[1]) as argv[4] says: typed into `bash -i` ('shell'),
 * or as the terminal's own process ('alone', its process group orphaned: no job-control shell).
 * Types Ctrl-Z once it has drawn `drawn` (argv[2]) three times; in bash, `fg` once bash says it
 * stopped, `exit` once it has printed `finished` (argv[3]). Prints what the terminal showed,
 * where `fg` was typed, and which steps were seen, each waited for a bounded time (43 s in all).
 */
const DRIVER = `
import json, os, pty, select, sys, time, fcntl, termios, struct
command, drawn, finished, mode = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4]
# Nothing of the caller's shell set-up (PROMPT_COMMAND, inputrc) prints around the prompt, and
# nothing typed here goes into the caller's ~/.bash_history.
env = {'PATH': os.environ['PATH'], 'HOME': os.environ.get('HOME', '/'), 'TERM': 'xterm', 'PS1': '$ ', 'INPUTRC': '/dev/null', 'HISTFILE': '/dev/null'}
pid, fd = pty.fork()
if pid == 0:
    if mode == 'shell': os.execvpe('bash', ['bash', '--norc', '--noprofile', '-i'], env)
    else: os.execvpe('sh', ['sh', '-c', 'exec ' + command], env)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))
out, seen = b'', {}
def until(done, seconds):
    global out
    start = time.time()
    while time.time() - start < seconds and not done():
        if select.select([fd], [], [], 0.05)[0]:
            try: chunk = os.read(fd, 65536)
            except OSError: break
            if not chunk: break
            out += chunk
    return done()
if mode == 'shell':
    until(lambda: b'$ ' in out, 5)
    os.write(fd, (command + '\\n').encode())
seen['bars'] = until(lambda: out.count(drawn) >= 3, 10)
os.write(fd, b'\\x1a')
at_fg = len(out)
if mode == 'shell':
    seen['stopped'] = until(lambda: b'Stopped' in out, 5)
    until(lambda: False, 0.3)
    at_fg = len(out)
    os.write(fd, b'fg\\n')
    seen['finished'] = until(lambda: finished in out[at_fg:] and out.endswith(b'$ '), 15)
    os.write(fd, b'exit\\n')
else:
    seen['finished'] = until(lambda: finished in out[at_fg:], 15)
until(lambda: False, 0.3)
for _ in range(40):
    if os.waitpid(pid, os.WNOHANG) != (0, 0): break
    time.sleep(0.05)
else:
    os.kill(pid, 9); os.waitpid(pid, 0)
# Where fg was typed, in characters of what was shown (the bars' blocks are several bytes each).
at_fg = len(out[:at_fg].decode('utf8', 'replace'))
sys.stdout.write(json.dumps({'seen': seen, 'atFg': at_fg, 'out': out.decode('utf8', 'replace')}))
`;

const ESC = String.fromCharCode(27);
const SHOW = `${ESC}[?25h`;
const HIDE = `${ESC}[?25l`;

/** `args` run as DRIVER says: which steps were seen, and what the terminal showed, split at `fg`. */
async function typedCtrlZ(
  mode: 'shell' | 'alone',
  args: string[],
  cwd: string,
  drawn: string,
  finished: string,
): Promise<{ seen: Record<string, boolean>; beforeFg: string; afterFg: string }> {
  const child = spawn('python3', ['-c', DRIVER, cliShellLine(args), drawn, finished, mode], {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 55_000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  const { seen, atFg, out } = JSON.parse(stdout) as {
    seen: Record<string, boolean>;
    atFg: number;
    out: string;
  };
  return { seen, beforeFg: out.slice(0, atFg), afterFg: out.slice(atFg) };
}

/** In bash: Ctrl-Z, then fg; the cursor given to the shell, then hidden again, then given back at the end. */
async function stoppedAndContinued(args: string[], cwd: string, drawn: string, finished: string) {
  const { seen, beforeFg, afterFg } = await typedCtrlZ('shell', args, cwd, drawn, finished);
  expect(seen).toEqual({ bars: true, stopped: true, finished: true });
  const beforeStop = beforeFg.slice(0, beforeFg.indexOf('Stopped'));
  // Before: the cursor stayed hidden in the shell the process stopped into.
  expect(beforeStop).toContain(HIDE);
  expect(beforeStop.lastIndexOf(SHOW)).toBeGreaterThan(beforeStop.lastIndexOf(HIDE));
  expect(afterFg).toContain(HIDE);
  expect(afterFg.lastIndexOf(SHOW)).toBeGreaterThan(afterFg.lastIndexOf(HIDE));
  return { beforeStop, afterFg };
}

describe.skipIf(
  spawnSync('python3', ['-c', 'import pty']).status !== 0 || spawnSync('bash', ['-c', ':']).status !== 0,
)('Ctrl-Z while the bars show', () => {
  /** A disk server and a local file of 3 MiB; `put` of it at 1 MiB/s: three seconds of bars. */
  async function slowPut(): Promise<{ args: string[]; local: string; content: Buffer }> {
    env = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const content = randomBytes(3 * 1024 * 1024);
    await writeFile(join(local, 'slow.bin'), content);
    const args = ['put', 'slow.bin', 'slow.bin', '--limit-rate', '1MiB', '--server', `127.0.0.1:${env.port}`];
    return { args, local, content };
  }

  it('put, then fg: the shell has its cursor, fg hides it again, and the next frame is drawn below what the shell printed', async () => {
    const { args, local, content } = await slowPut();
    const { afterFg } = await stoppedAndContinued(args, local, 'total', 'muxftp: 1 file');
    // The first frame after fg: drawn from the line it is on. Before: it moved up by the last
    // frame's lines, over the shell's echo of the command.
    const echoed = afterFg.indexOf('\n', afterFg.indexOf('--limit-rate'));
    const firstFrame = afterFg.slice(echoed, afterFg.indexOf('total', echoed));
    expect(echoed).toBeGreaterThan(0);
    expect(firstFrame).not.toMatch(new RegExp(`${ESC}\\[\\d+A`));
    expect(afterFg).toMatch(/muxftp: 1 file \(3\.00 MiB\) in /);
    expect(Buffer.compare(await readFile(join(env!.root!, 'slow.bin')), content)).toBe(0);
  }, 60_000);

  it('put with no job-control shell (nothing could fg it): Ctrl-Z does not stop it', async () => {
    const { args, local, content } = await slowPut();
    const { seen, afterFg } = await typedCtrlZ('alone', args, local, 'total', 'muxftp: 1 file');
    // Before (a SIGSTOP of its own): stopped for good, the terminal's Ctrl-C not heard.
    expect(seen).toEqual({ bars: true, finished: true });
    expect(afterFg.lastIndexOf(SHOW)).toBeGreaterThan(afterFg.lastIndexOf(HIDE));
    // Not stopped, the bars go on drawing over their last frame: each moves up by its lines.
    // Before: the frame after the Ctrl-Z started below it, and a stale copy stayed on screen.
    const handled = afterFg.indexOf(SHOW); // the Ctrl-Z's: the cursor shown, then hidden at once
    expect(handled).toBeGreaterThanOrEqual(0);
    expect(afterFg.slice(handled, afterFg.indexOf('total', handled))).toMatch(new RegExp(`${ESC}\\[1A`));
    expect(Buffer.compare(await readFile(join(env!.root!, 'slow.bin')), content)).toBe(0);
  }, 60_000);

  it("bench, then fg: the same for its bar, line wrapping given back too, and its run's report after fg", async () => {
    const local = await tempDirs.make();
    const args = ['bench', '--local', '--duration', '5s', '--clients', '1'];
    const { beforeStop, afterFg } = await stoppedAndContinued(args, local, ' ops ', 'load gen');
    // The bar turns wrapping off: the shell gets it back, fg turns it off again, the end on.
    expect(beforeStop.lastIndexOf(`${ESC}[?7h`)).toBeGreaterThan(beforeStop.lastIndexOf(`${ESC}[?7l`));
    expect(afterFg).toContain(`${ESC}[?7l`);
    expect(afterFg.lastIndexOf(`${ESC}[?7h`)).toBeGreaterThan(afterFg.lastIndexOf(`${ESC}[?7l`));
    expect(afterFg).toMatch(/operations +\d+ \(\d+ verified, 0 errors\)/);
  }, 60_000);
});
