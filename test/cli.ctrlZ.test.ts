/**
 * Ctrl-Z while the bars show, then `fg`, in an interactive bash on a pseudo-terminal (python3's
 * pty), as a user at a terminal does it. The bars hide the cursor: it must be there in the shell
 * the process stopped into, and hidden again once it goes on; the frame after `fg` starts below
 * what the shell printed meanwhile, not over it.
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
 * Types `command` (argv[1]) into `bash -i` on a 100x30 terminal, Ctrl-Z once its bars have shown
 * three times `drawn` (argv[2]), `fg` once bash says it stopped, `exit` once it has printed
 * `finished` (argv[3]): what the terminal showed, where `fg` was typed, and which steps were seen
 * (each waited for a bounded time).
 */
const DRIVER = `
import json, os, pty, select, sys, time, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execvpe('bash', ['bash', '--norc', '--noprofile', '-i'], {**os.environ, 'PS1': '$ ', 'TERM': 'xterm'})
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
until(lambda: b'$ ' in out, 10)
os.write(fd, (sys.argv[1] + '\\n').encode())
seen['bars'] = until(lambda: out.count(sys.argv[2].encode()) >= 3, 15)
os.write(fd, b'\\x1a')
seen['stopped'] = until(lambda: b'Stopped' in out, 10)
until(lambda: False, 0.3)
at_fg = len(out)
os.write(fd, b'fg\\n')
seen['finished'] = until(lambda: sys.argv[3].encode() in out[at_fg:] and out.endswith(b'$ '), 20)
os.write(fd, b'exit\\n')
until(lambda: False, 0.5)
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

/** `args` typed into bash as DRIVER says: what the terminal showed, split at the stop and at `fg`. */
async function stoppedAndContinued(
  args: string[],
  cwd: string,
  drawn: string,
  finished: string,
): Promise<{ beforeStop: string; afterFg: string }> {
  const child = spawn('python3', ['-c', DRIVER, cliShellLine(args), drawn, finished], {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  const { seen, atFg, out } = JSON.parse(stdout) as {
    seen: Record<string, boolean>;
    atFg: number;
    out: string;
  };
  expect(seen).toEqual({ bars: true, stopped: true, finished: true });
  const beforeStop = out.slice(0, out.indexOf('Stopped'));
  const afterFg = out.slice(atFg);
  // Before: the cursor stayed hidden in the shell the process stopped into.
  expect(beforeStop).toContain(HIDE);
  expect(beforeStop.lastIndexOf(SHOW)).toBeGreaterThan(beforeStop.lastIndexOf(HIDE));
  // Hidden again on fg, and given back at the end.
  expect(afterFg).toContain(HIDE);
  expect(afterFg.lastIndexOf(SHOW)).toBeGreaterThan(afterFg.lastIndexOf(HIDE));
  return { beforeStop, afterFg };
}

describe.skipIf(
  spawnSync('python3', ['-c', 'import pty']).status !== 0 || spawnSync('bash', ['-c', ':']).status !== 0,
)('Ctrl-Z and fg while the bars show', () => {
  it('put: gives the shell its cursor, hides it again on fg, and draws the next frame below what the shell printed', async () => {
    env = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const content = randomBytes(2 * 1024 * 1024);
    await writeFile(join(local, 'slow.bin'), content);
    // 1 MiB/s: two seconds of bars, long enough to stop it once they show.
    const args = ['put', 'slow.bin', 'slow.bin', '--limit-rate', '1MiB', '--server', `127.0.0.1:${env.port}`];
    const { afterFg } = await stoppedAndContinued(args, local, 'total', 'muxftp: 1 file');
    // The first frame after fg: drawn from the line it is on. Before: it moved up by the last
    // frame's lines, over the shell's echo of the command.
    const echoed = afterFg.indexOf('\n', afterFg.indexOf('--limit-rate'));
    const firstFrame = afterFg.slice(echoed, afterFg.indexOf('total', echoed));
    expect(echoed).toBeGreaterThan(0);
    expect(firstFrame).not.toMatch(new RegExp(`${ESC}\\[\\d+A`));
    expect(afterFg).toMatch(/muxftp: 1 file \(2\.00 MiB\) in /);
    expect(Buffer.compare(await readFile(join(env.root!, 'slow.bin')), content)).toBe(0);
  });

  it("bench: the same for its bar, and its run's report after fg", async () => {
    const local = await tempDirs.make();
    const args = ['bench', '--local', '--duration', '3s', '--clients', '1'];
    const { afterFg } = await stoppedAndContinued(args, local, ' ops ', 'load gen');
    expect(afterFg).toMatch(/operations +\d+ \(\d+ verified, 0 errors\)/);
  });
});
