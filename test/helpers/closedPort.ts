import { createServer } from 'node:net';

/**
 * A port on 127.0.0.1 that nothing listens on (bound, then let go): a connect to it is refused.
 * Not for a server to start on later (restartPort.ts is).
 */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
