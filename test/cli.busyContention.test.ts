/**
 * Two `muxftp get` runs contending for a small `--max-open-files`: the server serves one or two
 * files at a time and refuses the rest SERVER_BUSY, with a retry-after hint; each CLI tries a
 * refused file again on its connection after that hint, for up to DEFAULTS.serverBusyRetryMs, not
 * a count of backoffs. So every file arrives, though most wait far longer than `--retries 1`'s
 * backoff (0.5-1 s): served two at a time, half a second each, the last of 24 start some 7 s in.
 * Real server on 127.0.0.1, two real CLI processes, real files. Needs dist/ (npm run build).
 */

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../shared/defaults.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const KiB = 1024;

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-busy-contention-');

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

describe('two CLIs contending for --max-open-files', () => {
  it('every file of both arrives, each refused file tried again while the server is busy', async () => {
    // Each connection moves 256 KiB/s: a 128 KiB file takes half a second alone on it, and two
    // files can be open at once on the whole server.
    server = await startServer({ maxOpenFiles: 2, maxRateBytesPerSecond: 256 * KiB });
    // More files at once than node's default of 10 listeners on one AbortSignal (each waiting
    // file listens on the run's): no MaxListenersExceededWarning for them.
    const files = Array.from({ length: 12 }, (_, i) => ({
      name: `f${i}.bin`,
      content: randomBytes(128 * KiB),
    }));
    // Straight into the storage: through a connection they would go at its rate too.
    for (const { name, content } of files) {
      const upload = await server.storage.createUpload(name);
      await upload.write([content]);
      await upload.commit();
    }
    const busyBefore = server.server.counters.errors.get('SERVER_BUSY') ?? 0;

    const started = performance.now();
    const runs = await Promise.all(
      ['a', 'b'].map(async (who) => {
        const cwd = await tempDirs.make();
        const args = ['--server', `127.0.0.1:${server!.port}`, 'get', ...files.map((f) => f.name)];
        const run = await runCli([...args, '--to', 'out/', '-p', '-j', '12', '--retries', '1'], cwd, {
          timeoutMs: 60_000,
        });
        return { who, cwd, ...run };
      }),
    );
    const durationMs = performance.now() - started;

    for (const { cwd, code, stderr } of runs) {
      const arrived = await Promise.all(
        files.map(({ name, content }) =>
          readFile(join(cwd, 'out', name)).then(
            (bytes) => bytes.equals(content),
            () => false,
          ),
        ),
      );
      expect(arrived.filter((ok) => !ok).length).toBe(0);
      expect(code).toBe(0);
      expect(stderr).not.toMatch(/failed|retry \d|MaxListenersExceededWarning/);
      // It waits for the server's hint, not a backoff; and says so once per busyNoticeIntervalMs
      // for the whole command, not once per refused file (each CLI has several refused).
      const notices = stderr.match(/trying again/g) ?? [];
      expect(stderr).toMatch(
        new RegExp(
          `trying again in 0\\.[5-8] s \\(for up to ${DEFAULTS.serverBusyRetryMs / 1000} s while the server is busy; other files it refuses meanwhile wait the same way without a line each\\)`,
        ),
      );
      expect(notices.length).toBeGreaterThanOrEqual(1);
      expect(notices.length).toBeLessThanOrEqual(Math.ceil(durationMs / DEFAULTS.busyNoticeIntervalMs));
    }
    // Most of the 24 were refused, many times over.
    expect((server.server.counters.errors.get('SERVER_BUSY') ?? 0) - busyBefore).toBeGreaterThan(20);
  }, 90_000);
});
