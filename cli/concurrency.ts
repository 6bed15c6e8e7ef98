import { ConcurrencyLimit } from '../shared/concurrencyLimit.js';
import { DEFAULTS } from '../shared/defaults.js';

/**
 * The cap for a command's planning requests (stat, listing, mkdir): DEFAULTS.planningRequests, or
 * `parallel` if higher, within the server's maxStreams.
 */
export function planningLimit(
  parallel: number,
  client: { serverInfo: { limits: { maxStreams: number } } },
): ConcurrencyLimit {
  return new ConcurrencyLimit(
    Math.min(Math.max(parallel, DEFAULTS.planningRequests), client.serverInfo.limits.maxStreams),
  );
}
