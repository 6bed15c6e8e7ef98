/**
 * The published package as a stranger gets it: `npm pack`, installed into a fresh project outside
 * the repo from the tarball alone (offline), used from an ESM script against an embedded server,
 * and type-checked from a TypeScript consumer. Only `muxftp` and `muxftp/server` may resolve.
 *
 * The install is offline: the consumer's lockfile takes muxftp's own dependencies from the repo's
 * lockfile (same versions, same integrity), so `npm ci --offline` finds every tarball in the npm
 * cache that the repo's own `npm ci` filled.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const registry = (process.env.npm_config_registry ?? 'https://registry.npmjs.org/').replace(/\/?$/, '/');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface LockEntry {
  dev?: boolean;
  [key: string]: unknown;
}

let project: string;
let tarball: string;

/** A lockfile for a project depending only on the tarball, with the repo's runtime dependencies. */
async function consumerLock(tarballName: string, tarballBytes: Buffer): Promise<object> {
  const repoLock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const manifest = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Record<string, unknown>;
  const packages: Record<string, unknown> = {
    '': { name: 'muxftp-consumer', dependencies: { muxftp: `file:${tarballName}` } },
    'node_modules/muxftp': {
      version: manifest.version,
      resolved: `file:${tarballName}`,
      integrity: `sha512-${createHash('sha512').update(tarballBytes).digest('base64')}`,
      license: manifest.license,
      dependencies: manifest.dependencies,
      bin: manifest.bin,
      engines: manifest.engines,
    },
  };
  for (const [path, entry] of Object.entries(repoLock.packages)) {
    if (path === '' || entry.dev === true || !path.startsWith('node_modules/')) continue;
    // The repo's lockfile leaves out registry URLs; without one npm would ask the registry for the
    // package's metadata. With it, the integrity finds the tarball in the cache.
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const file = `${name.split('/').pop()}-${String(entry.version)}.tgz`;
    packages[path] = { resolved: `${registry}${name}/-/${file}`, ...entry };
  }
  return { name: 'muxftp-consumer', lockfileVersion: 3, requires: true, packages };
}

const ESM_SCRIPT = `
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, RemoteError, ERROR_STATUS } from 'muxftp';
import { MuxServer, DiskStorage, MetricsExporter } from 'muxftp/server';

const root = await mkdtemp(join(tmpdir(), 'muxftp-consumer-root-'));
const local = await mkdtemp(join(tmpdir(), 'muxftp-consumer-local-'));
const server = new MuxServer({ storage: await DiskStorage.open({ root, durable: false }), port: 0, log: () => {} });
const { port } = await server.listen();
const exporter = new MetricsExporter(server, { port: 0 });
const metricsPort = (await exporter.listen()).port;
const client = await Client.connect({ host: '127.0.0.1', port });
const content = Buffer.alloc(300_000, 'muxftp');
await writeFile(join(local, 'up.bin'), content);
const put = await client.put('dir-less.bin', join(local, 'up.bin'));
const got = await client.get('dir-less.bin', join(local, 'down.bin'));
const same = (await readFile(join(local, 'down.bin'))).equals(content);
const onDisk = (await readFile(join(root, 'dir-less.bin'))).equals(content);
let missing;
try { await client.stat('nope'); } catch (error) { missing = error instanceof RemoteError ? error.code : String(error); }
await client.close();
const exposition = await (await fetch('http://127.0.0.1:' + metricsPort + '/metrics')).text();
const inLine = exposition.split('\\n').find((line) => line.startsWith('muxftp_transfer_bytes_total{direction="in"} '));
const metricsIn = inLine === undefined ? undefined : inLine.split(' ')[1];
await exporter.close();
await server.close();
const deep = {};
for (const specifier of ['muxftp/dist/client/client.js', 'muxftp/dist/server/server.js', 'muxftp/storage']) {
  try { await import(specifier); deep[specifier] = 'imported'; } catch (error) { deep[specifier] = error.code; }
}
await rm(root, { recursive: true, force: true });
await rm(local, { recursive: true, force: true });
console.log(JSON.stringify({ put: put.entry.size, got: got.size, digestsAgree: typeof put.digest === 'string' && put.algorithm === got.algorithm && put.digest === got.digest, metricsIn: Number(metricsIn), same, onDisk, missing, notFoundStatus: ERROR_STATUS.NOT_FOUND, deep }));
`;

const TS_CONSUMER = `

import { Client, type ClientOptions, type ErrorCode, type GetResult, ListingTooLongError, MuxftpError, type PutResult, RemoteError, ServerBusyError, type WireEntry } from 'muxftp';
// @ts-expect-error internal modules are not part of the package's API
import { FramedSocket } from 'muxftp/dist/shared/transport/framedSocket.js';
import { type ErrorDetails, type FsStorage, MemoryStorage, MuxServer, type ServerOptions, type Storage } from 'muxftp/server';

const storage: Storage = new MemoryStorage();
const serverOptions: ServerOptions = { storage, port: 0, maxConnections: 10 };
const options: ClientOptions = { host: '127.0.0.1', connectTimeoutMs: 1000 };

export async function roundTrip(): Promise<number> {
  const server = new MuxServer(serverOptions);
  const { port } = await server.listen();
  const client = await Client.connect({ ...options, port });
  const put: PutResult = await client.put('a.bin', Buffer.from('hi'));
  const got: GetResult = await client.get('a.bin', '/tmp/a.bin');
  const entries: WireEntry[] = await client.list('');
  // What the streams use of a client is not part of its type.
  // @ts-expect-error internal
  client.send(Buffer.alloc(1));
  const base: FsStorage = new MemoryStorage();
  const details: ErrorDetails | undefined = new MuxftpError('NOT_FOUND', 'x').details;
  const classes = [ListingTooLongError, ServerBusyError].length + (base && details ? 0 : 0);
  try {
    await client.delete('missing');
  } catch (error) {
    if (error instanceof RemoteError) {
      const code: ErrorCode = error.code;
      console.log(code, error.status);
    } else if (error instanceof MuxftpError) throw error;
  }
  await client.close();
  await server.close();
  return put.entry.size + got.size + entries.length + classes + (FramedSocket ? 0 : 1);
}
`;

describe('the npm package', () => {
  beforeAll(async () => {
    project = await mkdtemp(join(tmpdir(), 'muxftp-pack-'));
    // dist/ is built by `npm test` before vitest runs; --ignore-scripts keeps `prepare` from
    // rebuilding dist/ under the other test files running at the same time.
    const { stdout } = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', project], {
      cwd: repo,
    });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    if (packed === undefined) throw new Error('npm pack reported no tarball');
    tarball = packed.filename;
    const bytes = await readFile(join(project, tarball));
    await writeFile(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'muxftp-consumer',
        private: true,
        type: 'module',
        dependencies: { muxftp: `file:${tarball}` },
      }),
    );
    await writeFile(join(project, 'package-lock.json'), JSON.stringify(await consumerLock(tarball, bytes)));
    await run(npm, ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
      cwd: project,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
  }, 60_000);

  afterAll(async () => {
    if (project !== undefined) await rm(project, { recursive: true, force: true });
  });

  it('ships the build and the bin, and neither sources nor tests', async () => {
    const { stdout } = await run('tar', ['-tzf', join(project, tarball)]);
    const files = stdout.split('\n').filter(Boolean);
    expect(files).toContain('package/dist/client/index.js');
    expect(files).toContain('package/dist/client/index.d.ts');
    expect(files).toContain('package/dist/server/index.js');
    expect(files).toContain('package/dist/server/index.d.ts');
    expect(files).toContain('package/bin/muxftp.js');
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.includes('/test/'))).toEqual([]);
    // The licence travels with every copy; the spec and design the README links to come along.
    expect(files).toContain('package/LICENSE');
    expect(files).toContain('package/docs/PROTOCOL.md');
    // No source maps of sources not shipped; no declarations of the CLI, which nothing imports.
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('package/dist/cli/') && f.endsWith('.d.ts'))).toEqual([]);
  });

  // node 20.19 and later require() ES modules without top-level await: the package has none.
  const requiresEsm = (process.features as { require_module?: boolean }).require_module === true;
  it.skipIf(!requiresEsm)('a CommonJS program can require() both entry points', async () => {
    await writeFile(
      join(project, 'required.cjs'),
      `const { Client, contentDigest } = require('muxftp');
      const { MuxServer, MemoryStorage } = require('muxftp/server');
      (async () => {
        const server = new MuxServer({ storage: new MemoryStorage(), port: 0, log: () => {} });
        const { port } = await server.listen();
        const client = await Client.connect({ host: '127.0.0.1', port });
        const put = await client.put('c.bin', Buffer.from('from commonjs'));
        await client.close();
        await server.close();
        const own = (await contentDigest(put.algorithm, Buffer.from('from commonjs'))).toString('hex');
        console.log(JSON.stringify({ size: put.entry.size, agrees: own === put.digest }));
      })();`,
    );
    const { stdout } = await run(process.execPath, ['required.cjs'], { cwd: project, timeout: 20_000 });
    expect(JSON.parse(stdout)).toEqual({ size: 13, agrees: true });
  });

  it('uploads and downloads through both entry points from an ESM script; nothing else resolves', async () => {
    await writeFile(join(project, 'roundtrip.mjs'), ESM_SCRIPT);
    const { stdout } = await run(process.execPath, ['roundtrip.mjs'], { cwd: project, timeout: 20_000 });
    expect(JSON.parse(stdout)).toEqual({
      put: 300_000,
      got: 300_000,
      digestsAgree: true,
      metricsIn: 300_000,
      same: true,
      onDisk: true,
      missing: 'NOT_FOUND',
      notFoundStatus: 203,
      deep: {
        'muxftp/dist/client/client.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        'muxftp/dist/server/server.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        'muxftp/storage': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      },
    });
  });

  it('type-checks a TypeScript consumer with tsc --noEmit against the shipped declarations', async () => {
    await writeFile(join(project, 'consumer.ts'), TS_CONSUMER);
    // And README's Library examples, as written there.
    const readme = await readFile(join(repo, 'README.md'), 'utf8');
    const library = readme.slice(readme.indexOf('## Library'), readme.indexOf('## Protocol and design'));
    const examples = [...library.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
    expect(examples.length).toBe(2);
    const exampleFiles = examples.map((_, index) => `readme${index + 1}.ts`);
    for (const [index, example] of examples.entries())
      await writeFile(join(project, exampleFiles[index]!), example);
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(repo, 'node_modules/@types')],
        },
        files: ['consumer.ts', ...exampleFiles],
      }),
    );
    const tsc = join(repo, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '--noEmit', '-p', project], { cwd: project }).catch(
      (error: { stdout?: string; code?: number }) => ({
        stdout: error.stdout ?? String(error),
        failed: true,
      }),
    );
    expect(result.stdout).toBe('');
    expect('failed' in result).toBe(false);
  }, 60_000);

  it('type-checks a CommonJS TypeScript consumer (module commonjs: node10 resolution, which reads no exports)', async () => {
    const dir = join(project, 'cjs-consumer');
    await mkdir(dir);
    await writeFile(
      join(dir, 'consumer.ts'),
      `import { Client, type PutResult } from 'muxftp';
import { MemoryStorage, MuxServer } from 'muxftp/server';
export async function roundTrip(): Promise<number> {
  const server = new MuxServer({ storage: new MemoryStorage(), port: 0 });
  const client = await Client.connect({ port: (await server.listen()).port });
  const put: PutResult = await client.put('a.bin', Buffer.from('hi'));
  await client.close();
  await server.close();
  return put.entry.size;
}
`,
    );
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'CommonJS',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(repo, 'node_modules/@types')],
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = join(repo, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '--noEmit', '-p', dir], { cwd: dir }).catch(
      (error: { stdout?: string; code?: number }) => ({
        stdout: error.stdout ?? String(error),
        failed: true,
      }),
    );
    // Before: "Cannot find module 'muxftp' or its corresponding type declarations", both entries.
    expect(result.stdout).toBe('');
    expect('failed' in result).toBe(false);
  }, 60_000);

  it('installs the muxftp command unchanged, and its bench finds its worker and uPlot', async () => {
    const bin = join(project, 'node_modules/.bin/muxftp');
    const { stdout } = await run(bin, ['--help'], { cwd: project });
    expect(stdout).toContain('serve');
    expect(stdout).toContain('put');
    const bench = await run(
      bin,
      [
        'bench',
        '--local',
        '--op',
        'upload',
        '--clients',
        '2',
        '--files',
        '4',
        '--size',
        '64KiB',
        '--workers',
        '1',
        '--html',
        'report.html',
        '--json',
      ],
      { cwd: project, timeout: 30_000 },
    );
    expect(JSON.parse(bench.stdout)).toMatchObject({ ops: 4, verified: 4, error_count: 0 });
    const html = await readFile(join(project, 'report.html'), 'utf8');
    expect(html).toContain('uPlot');
  }, 60_000);
});
