/**
 * What one test starts — servers, `muxftp` child processes, clients, peers, proxies, timers,
 * temporary directories — let go of when that test ends, passed, failed or timed out (vitest's
 * onTestFinished). Tests that run at once (describe.concurrent) each hold their own, so none
 * reaches another's, where a file's afterEach would let go of all of them:
 *
 *   it('…', async (test) => {
 *     const own = ownFor(test);
 *     const root = await own.tempDir();
 *     const { port } = await startServeChild(['--root', root], own.children);
 *     const client = own.destroys(await Client.connect({ host: '127.0.0.1', port }));
 *
 * Let go of in the reverse of the order taken (as Go's t.Cleanup): a client before the server it
 * talks to, a server before the directories it serves, a mount after what was started on it.
 * Each release runs even when one before it threw; the first error is thrown after them all.
 */
import type { ChildProcess } from 'node:child_process';
import { basename } from 'node:path';
import type { TestContext } from 'vitest';
import type { ChildOwner } from './cliProcess.js';
import { TempDirs } from './tempDirs.js';
import { startServer, type TestServer } from './testServer.js';

export class OwnedByTest {
  readonly #releases: Array<() => unknown> = [];
  readonly #tempDirs: TempDirs;
  #tempDirsOwned = false;
  /** For startServeChild and runCli: each child handed to it is killed when the test ends (kills). */
  readonly children: ChildOwner = { add: (child) => this.kills(child) };

  constructor(test: TestContext) {
    // Named for the test file, so a directory left behind says whose it was.
    this.#tempDirs = new TempDirs(`muxftp-${basename(test.task.file.name, '.test.ts')}-`);
    test.onTestFinished(() => this.#releaseAll());
  }

  /** Calls `release` when the test ends, before what was taken earlier is let go of. */
  defer(release: () => unknown): void {
    this.#releases.push(release);
  }

  /** `thing` (a Client, a RawPeer), destroyed when the test ends. */
  destroys<T extends { destroy(): unknown }>(thing: T): T {
    this.defer(() => thing.destroy());
    return thing;
  }

  /** `thing` (a FrameProxy), closed when the test ends. */
  closes<T extends { close(): unknown }>(thing: T): T {
    this.defer(() => thing.close());
    return thing;
  }

  /**
   * `child`, killed (SIGKILL) when the test ends unless it has exited, and waited for, so that
   * nothing it holds (a port, a lock, files in a directory removed next) outlives the test.
   */
  kills<T extends ChildProcess>(child: T): T {
    this.defer(async () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    });
    return child;
  }

  /**
   * A new directory under the OS temp dir, removed with all in it when the test ends: all of
   * them after whatever was started once the first was made (the servers using them).
   */
  async tempDir(): Promise<string> {
    if (!this.#tempDirsOwned) {
      this.#tempDirsOwned = true;
      this.defer(() => this.#tempDirs.removeAll());
    }
    return this.#tempDirs.make();
  }

  /** A test server of this test's own (testServer.ts), stopped when the test ends. */
  async server(options?: Parameters<typeof startServer>[0]): Promise<TestServer> {
    const server = await startServer(options);
    this.defer(() => server.stop());
    return server;
  }

  async #releaseAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const release of this.#releases.splice(0).reverse()) {
      try {
        await release();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}

/** What `test` starts through the returned owner, let go of when it ends. */
export function ownFor(test: TestContext): OwnedByTest {
  return new OwnedByTest(test);
}
