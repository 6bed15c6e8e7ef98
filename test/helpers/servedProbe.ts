/**
 * "Other clients are still served": an unrelated connection that sends a cheap `stats` request,
 * waits for the answer, pauses, and sends the next, for as long as an attack runs. The worst round
 * trip is the longest any other client had to wait; a request still unanswered when the probe
 * stops counts for as long as it has been waiting.
 *
 * It also measures this process's CPU time (user + system, all threads) from each pause's start
 * to the next answer: the work done in front of that request, whether the loop was busy while
 * it was in flight or while its pause's timer was due (a round trip alone misses a stall that
 * falls in the pause, most of the probe's time). Other processes on a loaded machine do not add
 * to it, where they stretch the wall-clock figure many times over (CI has 2 shared cores).
 */
import { Client } from '../../client/client.js';

export interface ProbeResult {
  /** Requests answered. */
  answered: number;
  /** Requests that failed (the probe's own connection refused or dropped). */
  failed: number;
  /** Longest round trip seen, in ms, including a request still in flight at stop(). */
  worstMs: number;
  /**
   * Most CPU time this process spent from a pause's start to the next answer, in ms (a request
   * still unanswered at stop() included): a pause's own share is at most its interval's worth.
   */
  worstCpuMs: number;
}

export interface ServedProbe {
  stop(): Promise<ProbeResult>;
}

export async function probeOtherClients(port: number, intervalMs = 20): Promise<ServedProbe> {
  const client = await Client.connect({ host: '127.0.0.1', port });
  const result: ProbeResult = { answered: 0, failed: 0, worstMs: 0, worstCpuMs: 0 };
  let stopped = false;
  let inFlightSince: number | undefined;
  let cpuSince = process.cpuUsage();
  const noteCpu = (): void => {
    const used = process.cpuUsage(cpuSince);
    result.worstCpuMs = Math.max(result.worstCpuMs, (used.user + used.system) / 1000);
  };
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
      noteCpu();
      inFlightSince = undefined;
      if (result.failed > 0) return; // a refused probe is the answer; don't spin
      cpuSince = process.cpuUsage();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      if (inFlightSince !== undefined) {
        result.worstMs = Math.max(result.worstMs, performance.now() - inFlightSince);
      }
      noteCpu();
      // Give a stalled request a bounded chance to finish, then drop the connection either way.
      await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 1_000))]);
      await client.destroy();
      return { ...result };
    },
  };
}
