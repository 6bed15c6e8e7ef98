/**
 * bench/fuzz.mjs, bounded: mutated and random frames from many connections against a real
 * `muxftp serve` child process while a verifier transfers files and checks them by hash. Needs
 * dist/ (npm test builds it). `npm run fuzz` runs the same script longer.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('bench/fuzz.mjs', () => {
  it('finds no crash, no corrupted file and no internal error in a bounded run', async () => {
    const child = spawn(
      process.execPath,
      [join(REPO, 'bench', 'fuzz.mjs'), '--sessions', '150', '--duration', '8s', '--seed', '1234'],
      // Its own process group, so a hung run is killed together with the server it started.
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // Bounded: a run that hangs is killed rather than outliving the test.
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 25_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve)).finally(() =>
      clearTimeout(timer),
    );
    expect(stderr).toBe('');
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({ crashes: 0, corrupted: [], verifierErrors: [] });
    expect(code).toBe(0);
    expect(report.sessions).toBe(150);
    expect(report.verifiedTransfers).toBeGreaterThan(0);
    // The fuzz reached the server's checks at both levels, not just its handshake.
    const codes = Object.keys(report.errorCodes);
    expect(codes.some((c) => c.startsWith('connection:'))).toBe(true);
    expect(codes.some((c) => c.startsWith('stream:'))).toBe(true);
    expect(codes.filter((c) => c.includes('INTERNAL_ERROR'))).toEqual([]);
  }, 30_000);
});
