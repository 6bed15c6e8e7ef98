/**
 * The CLI loads only what the command needs: put, get, ls and the rest never load the server,
 * its storage, metrics or the load generator (most of the start-up time before: 0.19 s for
 * `--version`, 0.11 s after; measured, not asserted). Each module the CLI resolves is recorded
 * by a module hook in a child process.
 */
import { execFile, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MAIN = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')).href;

/** Runs `muxftp <args>` in-process in a child that prints every module URL it resolves. */
async function modulesLoadedBy(args: string[], cwd?: string): Promise<string[]> {
  const hook = `export async function resolve(specifier, context, next) {
    const result = await next(specifier, context);
    process.stderr.write('LOADED ' + result.url + '\\n');
    return result;
  }`;
  const script = `
    import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
    const { main } = await import(${JSON.stringify(MAIN)});
    process.exitCode = await main(['node', 'muxftp', ...${JSON.stringify(args)}]);`;
  // A failing command (exit code 1) still tells what it loaded.
  const { stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    timeout: 20_000,
    cwd,
  }).catch((error: { stderr?: string }) => ({ stderr: error.stderr ?? '' }));
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('LOADED '))
    .map((line) => line.slice('LOADED '.length));
}

const HEAVY = [
  /\/node_modules\/(prom-client|memfs|hdr-histogram-js|uplot)\//,
  /\/dist\/server\/server\.js$/,
  /\/dist\/storage\/(disk|memory|fsStorage|index)\.js$/,
  /\/dist\/client\/bench\/runner\.js$/,
];

let server: TestServer | undefined;
const tempDirs = new TempDirs('muxftp-startup-');
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

describe('CLI start-up', () => {
  it('loads neither the server nor the load generator for client commands', async () => {
    const loaded = await modulesLoadedBy(['put', '--help']);
    expect(loaded.some((url) => url.endsWith('/dist/cli/commands/put.js'))).toBe(true);
    expect(loaded.filter((url) => HEAVY.some((heavy) => heavy.test(url)))).toEqual([]);
  });

  it('nor while put, get and ls run against a server (what their actions import too)', async () => {
    server = await startServer();
    const local = await tempDirs.make();
    await writeFile(join(local, 'up.txt'), 'up\n');
    const at = ['--server', `127.0.0.1:${server.port}`];
    for (const args of [['put', 'up.txt'], ['get', 'up.txt', 'down.txt'], ['ls']]) {
      const loaded = await modulesLoadedBy([...args, ...at], local);
      expect({ args, heavy: loaded.filter((url) => HEAVY.some((heavy) => heavy.test(url))) }).toEqual({
        args,
        heavy: [],
      });
    }
    // put and get did run, each way.
    const client = await server.connect();
    expect((await client.getBuffer('up.txt')).toString()).toBe('up\n');
    expect(await readFile(join(local, 'down.txt'), 'utf8')).toBe('up\n');
  });

  it("loads put's and get's transfer code only when one of them runs", async () => {
    // ls, stat, rm and the rest started 30-60 ms sooner without it (measured, not asserted).
    const TRANSFERS = [/\/dist\/cli\/commands\/(put|get)Run\.js$/, /\/dist\/cli\/transferRunner\.js$/];
    server = await startServer();
    const at = ['--server', `127.0.0.1:${server.port}`];
    for (const args of [['ls'], ['stat', '/'], ['--version']]) {
      const loaded = await modulesLoadedBy([...args, ...at]);
      expect(loaded.some((url) => url.endsWith('/dist/cli/main.js'))).toBe(true);
      expect({ args, transfers: loaded.filter((url) => TRANSFERS.some((t) => t.test(url))) }).toEqual({
        args,
        transfers: [],
      });
    }
    const loaded = await modulesLoadedBy(['get', 'nothing-here', ...at], await tempDirs.make());
    expect(loaded.some((url) => url.endsWith('/dist/cli/commands/getRun.js'))).toBe(true);
  });

  it('loads the server when serve runs', async () => {
    // A bad option value fails after the action has started: enough to see what it loads.
    const loaded = await modulesLoadedBy(['serve', '--root', '/dev/null/not-a-dir', '--port', '0']);
    expect(loaded.some((url) => url.endsWith('/dist/server/server.js'))).toBe(true);
  });
});

describe('the muxftp launcher (bin/muxftp.js)', () => {
  /** A copy of the package's bin/, package.json and (with `built`) dist/, without node_modules. */
  async function copyWithoutDependencies(built: boolean): Promise<string> {
    const dir = await tempDirs.make();
    const from = join(import.meta.dirname, '..');
    for (const part of ['bin', 'package.json', ...(built ? ['dist'] : [])])
      await cp(join(from, part), join(dir, part), { recursive: true });
    return dir;
  }

  async function launch(
    dir: string,
    nodeArgs: string[] = [],
  ): Promise<{ code: unknown; stdout: string; stderr: string }> {
    return promisify(execFile)(process.execPath, [...nodeArgs, join(dir, 'bin', 'muxftp.js'), '--version'], {
      timeout: 20_000,
      cwd: dir,
    }).then(
      ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
      (error: { code?: unknown; stderr?: string }) => ({
        code: error.code,
        stdout: '',
        stderr: error.stderr ?? '',
      }),
    );
  }

  // Where the tests run from a git checkout of the package (with git), as CI's does.
  // Its own checkout, as scripts/buildInfo.mjs asks: a copy inside another repository (whose
  // toplevel git names) gets no build named, and the test failed there.
  const toplevel = spawnSync('git', ['rev-parse', '--show-toplevel'], {
    cwd: join(import.meta.dirname, '..'),
    encoding: 'utf8',
  });
  const inGitCheckout =
    toplevel.status === 0 &&
    realpathSync(toplevel.stdout.trim()) === realpathSync(join(import.meta.dirname, '..'));
  it.skipIf(!inGitCheckout)(
    'names the commit of a build that scripts/buildInfo.mjs marked (npm run build), not of a bare tsc',
    async () => {
      const root = join(import.meta.dirname, '..');
      const git = (args: string[]) =>
        promisify(execFile)('git', args, { cwd: root, timeout: 10_000 }).then(({ stdout }) => stdout.trim());
      const dir = await copyWithoutDependencies(true);
      await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
      const version = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version as string;
      // As tsc compiles shared/buildInfo.ts (the copy may be of either: write tsc's form).
      await writeFile(join(dir, 'dist', 'shared', 'buildInfo.js'), 'export const BUILD = undefined;\n');
      expect(await launch(dir)).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
      await promisify(execFile)(
        process.execPath,
        [join(root, 'scripts', 'buildInfo.mjs'), join(dir, 'dist')],
        {
          timeout: 20_000,
        },
      );
      const [commit, date] = (await git(['log', '-1', '--format=%h %cs'])).split(' ');
      const { code, stdout } = await launch(dir);
      expect(code).toBe(0);
      expect(stdout).toMatch(
        new RegExp(`^${version.replaceAll('.', '\\.')} \\(git ${commit}(-dirty)?, ${date}\\)\n$`),
      );
    },
  );

  it.skipIf(!inGitCheckout)(
    "names this package's commit when run with another repository's GIT_DIR (a git hook's)",
    async () => {
      const root = join(import.meta.dirname, '..');
      const run = promisify(execFile);
      const git = (cwd: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
        run('git', args, { cwd, env, timeout: 10_000 }).then(({ stdout }) => stdout.trim());
      // Another repository, with a commit of its own dated long ago.
      const other = await tempDirs.make();
      await git(other, ['init', '-q']);
      const dated = { ...process.env, GIT_COMMITTER_DATE: '2001-02-03T04:05:06Z' };
      await git(
        other,
        [
          '-c',
          'user.name=t',
          '-c',
          'user.email=t@t',
          '-c',
          'commit.gpgsign=false',
          'commit',
          '-q',
          '--allow-empty',
          '-m',
          'other',
        ],
        dated,
      );
      const out = await tempDirs.make();
      await mkdir(join(out, 'shared'));
      await run(process.execPath, [join(root, 'scripts', 'buildInfo.mjs'), out], {
        timeout: 40_000,
        env: { ...process.env, GIT_DIR: join(other, '.git'), GIT_INDEX_FILE: join(other, '.git', 'index') },
      });
      const [commit, date] = (await git(root, ['log', '-1', '--format=%h %cs'])).split(' ');
      const written = await readFile(join(out, 'shared', 'buildInfo.js'), 'utf8');
      expect(written).toMatch(new RegExp(`^export const BUILD = "git ${commit}(-dirty)?, ${date}";\n$`));
    },
  );

  it('says a missing dependency is missing, not that the CLI is unbuilt', async () => {
    // commander, missing, is named as imported from dist/cli/main.js: that was read as "not built",
    // and `npm run build` then changed nothing.
    const { code, stderr } = await launch(await copyWithoutDependencies(true));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^muxftp: a dependency is missing; .*Cannot find package 'commander'/);
  });

  it('says an unbuilt CLI is unbuilt', async () => {
    const { code, stderr } = await launch(await copyWithoutDependencies(false));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^muxftp: the CLI is not built; run npm run build \(Cannot find module /);
  });

  it('says an unbuilt CLI is unbuilt where Node gives the error no url (older Node 20s)', async () => {
    // Node 20s before nodejs/node#49038 (engines: >=20) throw it without `url`: a missing dist/ was
    // said to be a missing dependency. A resolve hook drops the url as those did.
    const dir = await copyWithoutDependencies(false);
    const hook = `export async function resolve(s, c, next) { try { return await next(s, c); } catch (e) { delete e.url; throw e; } }`;
    await writeFile(join(dir, 'hook.mjs'), hook);
    await writeFile(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module';\nregister(new URL('./hook.mjs', import.meta.url));\n`,
    );
    const { code, stderr } = await launch(dir, ['--import', pathToFileURL(join(dir, 'register.mjs')).href]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^muxftp: the CLI is not built; run npm run build \(Cannot find module /);
  });
});
