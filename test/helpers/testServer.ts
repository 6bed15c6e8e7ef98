/** Starts a real MuxServer on 127.0.0.1 port 0 for a test, and tears everything down after. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientOptions } from '../../client/client.js';
import type { ServerOptions } from '../../server/options.js';
import { MuxServer } from '../../server/server.js';
import { DiskStorage } from '../../storage/disk.js';
import { MemoryStorage } from '../../storage/memory.js';
import type { Storage } from '../../storage/types.js';

export interface TestServer {
  server: MuxServer;
  port: number;
  storage: Storage;
  /** The disk root, for backends on disk. */
  root: string | undefined;
  logs: string[];
  connect(options?: ClientOptions): Promise<Client>;
  stop(): Promise<void>;
}

export async function startServer(
  options: Partial<ServerOptions> & { backend?: 'memory' | 'disk' } = {},
): Promise<TestServer> {
  const { backend = 'memory', ...serverOptions } = options;
  let root: string | undefined;
  let storage: Storage;
  if (serverOptions.storage !== undefined) {
    storage = serverOptions.storage; // the test's own; `backend` does not apply
  } else if (backend === 'disk') {
    root = await mkdtemp(join(tmpdir(), 'muxftp-e2e-'));
    storage = await DiskStorage.open({ root, durable: false });
  } else {
    storage = new MemoryStorage();
  }
  const logs: string[] = [];
  const server = new MuxServer({
    storage,
    host: '127.0.0.1',
    port: 0,
    log: (line) => logs.push(line),
    ...serverOptions,
  });
  let port: number;
  try {
    ({ port } = await server.listen());
  } catch (error) {
    // Nothing will call stop(): let go of what was opened for this server here.
    await storage.close();
    if (root) await rm(root, { recursive: true, force: true });
    throw error;
  }
  const clients: Client[] = [];
  return {
    server,
    port,
    storage,
    root,
    logs,
    async connect(clientOptions = {}) {
      const client = await Client.connect({ host: '127.0.0.1', port, ...clientOptions });
      clients.push(client);
      return client;
    },
    async stop() {
      try {
        await Promise.all(clients.map((c) => c.destroy()));
        await server.close(0);
        await storage.close();
      } finally {
        // Even when a failed test left the server in a bad state, its files go.
        if (root) await rm(root, { recursive: true, force: true });
      }
    },
  };
}
