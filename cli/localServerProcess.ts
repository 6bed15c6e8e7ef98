/**
 * Child-process entry for `bench --local`: the `serve` command on in-memory storage, with limits
 * wide enough for any bench. A process of its own, so the server's RSS in the report is its own.
 */
import { MAX_TIMER_MS } from '../shared/timerDelay.js';
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
  // No idle limit: the bench's connections are its own, and `--op idle` holds some idle for the
  // whole run (at 600 s, a run past 10 min had them closed under it: IDLE_TIMEOUT errors). The
  // longest a timer holds (~24.8 days) is as good as none.
  '--idle-timeout',
  String(MAX_TIMER_MS / 1000),
  ...extra, // --tls-cert, --tls-key, --tls-only for bench --tls
]);
