/**
 * Child-process entry for `bench --local`: the `serve` command on in-memory storage, with limits
 * wide enough for any bench. A process of its own, so the server's RSS in the report is its own.
 */
import { main } from './main.js';

// The bench that started this holds the other end of stdin: when it is gone, stop as on SIGTERM.
// Unref'd: a server that stopped otherwise exits without waiting for it.
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.resume();
(process.stdin as { unref?: () => void }).unref?.();

const [node = process.execPath, script = '', ...extra] = process.argv;
process.exitCode = await main([
  node,
  script,
  'serve',
  '--memory',
  '--port',
  '0',
  '--max-connections',
  '100000',
  '--idle-timeout',
  '600',
  ...extra, // --tls-cert, --tls-key, --tls-only for bench --tls
]);
