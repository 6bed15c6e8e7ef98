/**
 * `npm run docs` (TypeDoc, typedoc.json) fails on any warning, and warns for every exported symbol
 * without a doc comment and every broken {@link}: this runs it into a temporary directory.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
let out: string | undefined;

afterAll(async () => {
  if (out !== undefined) await rm(out, { recursive: true, force: true });
});

it('generates the API reference of both entry points with every export documented', async () => {
  out = await mkdtemp(join(tmpdir(), 'muxftp-apidocs-'));
  const typedoc = join(repo, 'node_modules/typedoc/bin/typedoc');
  // typedoc.json's own settings, as `npm run docs` runs them; only the output goes elsewhere.
  const result = await run(process.execPath, [typedoc, '--out', out], {
    cwd: repo,
  }).catch((error: { stdout?: string; stderr?: string }) => ({
    stdout: `${error.stdout}${error.stderr}`,
    failed: true,
  }));
  expect('failed' in result ? result.stdout : '').toBe('');
  expect(await readdir(join(out, 'muxftp/classes'))).toContain('Client.md');
  expect(await readdir(join(out, 'muxftp/server/classes'))).toContain('MuxServer.md');
}, 60_000);
