/**
 * What a test file that talks to its test server through raw peers lets go of after each test:
 * the peers are destroyed first (so the server's close has none of their connections to wait
 * out), then the server is stopped. Empties `peers`; resolves to undefined, for the file's server
 * variable:
 *
 *   afterEach(async () => {
 *     env = await stopServerAndPeers(env, peers);
 *   });
 */
import type { FrameProxy } from './frameProxy.js';
import type { RawPeer } from './rawPeer.js';
import type { TestServer } from './testServer.js';

export async function stopServerAndPeers(
  server: TestServer | undefined,
  peers: RawPeer[],
): Promise<undefined> {
  for (const peer of peers.splice(0)) peer.destroy();
  await server?.stop();
  return undefined;
}

/**
 * The same for a test file whose clients reach its server through a FrameProxy: the proxy closes
 * first (and its connections with it), then the server is stopped. Resolves to undefined, for
 * both variables: `proxy = server = await stopProxyAndServer(proxy, server);`.
 */
export async function stopProxyAndServer(
  proxy: FrameProxy | undefined,
  server: TestServer | undefined,
): Promise<undefined> {
  await proxy?.close();
  await server?.stop();
  return undefined;
}
