/**
 * A port for a server a test kills and starts again on the same port. A port picked by binding
 * port 0 comes from the kernel's ephemeral range, which is also where every outgoing connection's
 * local port comes from: in the moment between the kill and the restart, a client connection of
 * another test running in parallel can take that port, and the restart fails EADDRINUSE (seen in
 * retry.e2e: "serve exited with 1"). A free port below that range is never handed to a client.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Lowest port of the kernel's ephemeral range (Linux; 32768, its default, elsewhere). */
function ephemeralRangeStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const port = Number(low);
    return Number.isInteger(port) && port > 1024 ? port : 32768;
  } catch {
    return 32768;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 free right now and outside the ephemeral range (tries at most 50). */
export async function restartablePort(): Promise<number> {
  const high = ephemeralRangeStart() - 1;
  const low = Math.max(1025, high - 10_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port found in ${low}-${high} after 50 tries`);
}
