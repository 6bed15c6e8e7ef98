/**
 * "Other clients are still served": an unrelated connection that sends a cheap `stats` request,
 * waits for the answer, pauses, and sends the next, for as long as an attack runs. The worst round
 * trip is the longest any other client had to wait; a request still unanswered when the probe
 * stops counts for as long as it has been waiting.
 */
import { Client } from '../../client/client.js';

export interface ProbeResult {
  /** Requests answered. */
  answered: number;
  /** Requests that failed (the probe's own connection refused or dropped). */
  failed: number;
  /** Longest round trip seen, in ms, including a request still in flight at stop(). */
  worstMs: number;
}

export interface ServedProbe {
  stop(): Promise<ProbeResult>;
}

export async function probeOtherClients(port: number, intervalMs = 20): Promise<ServedProbe> {
  const client = await Client.connect({ host: '127.0.0.1', port });
  const result: ProbeResult = { answered: 0, failed: 0, worstMs: 0 };
  let stopped = false;
  let inFlightSince: number | undefined;
  const loop = (async () => {
    while (!stopped) {
      inFlightSince = performance.now();
      try {
        await client.stats();
        result.answered++;
      } catch {
        result.failed++;
      }
      result.worstMs = Math.max(result.worstMs, performance.now() - inFlightSince);
      inFlightSince = undefined;
      if (result.failed > 0) return; // a refused probe is the answer; don't spin
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      if (inFlightSince !== undefined) {
        result.worstMs = Math.max(result.worstMs, performance.now() - inFlightSince);
      }
      // Give a stalled request a bounded chance to finish, then drop the connection either way.
      await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 1_000))]);
      await client.destroy();
      return { ...result };
    },
  };
}
