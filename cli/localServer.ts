/** `bench --local`: a throwaway muxftp server in a child process, for the bench engine to run against. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { LocalServer } from '../client/bench/runner.js';
import { CliError } from './cliError.js';
import { makeThrowawayCertificate, type ThrowawayCertificate } from './throwawayCertificate.js';

/** With `tls`, the server takes TLS connections with a throwaway certificate its clients trust. */
export async function startLocalServer(options: { tls?: boolean } = {}): Promise<LocalServer> {
  const certificate: ThrowawayCertificate | undefined = options.tls
    ? await makeThrowawayCertificate()
    : undefined;
  try {
    return await startChild(certificate);
  } catch (error) {
    await certificate?.remove();
    throw error;
  }
}

async function startChild(certificate: ThrowawayCertificate | undefined): Promise<LocalServer> {
  // A sibling module of this one, compiled beside it (as the bench engine's worker.js is).
  const entry = fileURLToPath(new URL('./localServerProcess.js', import.meta.url));
  const tlsArgs = certificate
    ? ['--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath, '--tls-only']
    : [];
  // Its stdin is a pipe from this process: it ends when the bench is gone however it went
  // (SIGKILL, the OOM killer), and the server stops then (it served on, for ever).
  const child: ChildProcess = spawn(process.execPath, [entry, ...tlsArgs], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // What it says until it listens, the reason it refused to start (`ulimit -n` too low): kept
  // short. Closed once it listens: its log (a line per transfer) is not the bench's to read, and
  // serve goes on when its stderr is gone.
  let said = '';
  const onStderr = (chunk: Buffer) => {
    said = (said + chunk.toString()).slice(-2048);
  };
  child.stderr!.on('data', onStderr);
  const exited = once(child, 'exit');
  const [line] = (await Promise.race([once(child.stdout!, 'data'), exited.then(() => [''])])) as [
    Buffer | string,
  ];
  const port = Number(/:(\d+) /.exec(String(line))?.[1]);
  if (!Number.isInteger(port) || port === 0) {
    child.kill('SIGKILL');
    throw new CliError(
      `could not start a local server: ${startFailure(said) || String(line).trim() || 'it exited'}`,
    );
  }
  child.stderr!.off('data', onStderr);
  child.stderr!.destroy();
  // The server has read its certificate and key; the clients trust the PEM kept in memory. Removed
  // now, a bench that ends without its clean-up (SIGKILL, a second Ctrl-C) leaves no private key
  // in the temporary directory: each such run left a muxftp-bench-tls-* directory behind.
  await certificate?.remove().catch(() => {});
  return {
    port,
    ...(certificate ? { tls: { ca: certificate.pem, rejectUnauthorized: true } } : {}),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/**
 * Why the server child said it could not start, from the end of its stderr: its last `muxftp: `
 * line (a refusal, or an internal error above its stack), else a crash's `…Error: …` line. The
 * last line alone was a stack frame or node's `Node.js v20.x` under a crash.
 */
function startFailure(said: string): string {
  const lines = said
    .split('\n')
    .map((text) => text.trim())
    .filter((text) => text !== '');
  const ours = lines
    .filter((text) => text.startsWith('muxftp: ') && !text.startsWith('muxftp: warning: '))
    .at(-1);
  if (ours !== undefined) return ours.slice('muxftp: '.length);
  return lines.find((text) => /^[\w.]*Error\b/.test(text)) ?? lines.at(-1) ?? '';
}
