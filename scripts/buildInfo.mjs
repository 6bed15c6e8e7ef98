// Writes which commit a build is made from into OUTDIR/shared/buildInfo.js, for `muxftp --version`:
// `npm run build` runs it after tsc (node scripts/buildInfo.mjs OUTDIR). Outside a git checkout of
// this package, or without git, tsc's output stays (no build named). The description is
// shared/buildInfo.ts's.
import { execFileSync } from 'node:child_process';
import { realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const outDir = process.argv[2];
if (outDir === undefined) throw new Error('usage: node scripts/buildInfo.mjs OUTDIR');
const packageDir = realpathSync(fileURLToPath(new URL('..', import.meta.url)));

// What tells git where a repository is, not found from its directory: set by a git hook or
// `git rebase --exec` of another repository npm runs in (an install of muxftp from git in a
// project's hook), they named that repository's commit, or its index's changes as ours.
const REPOSITORY_ENV = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_IMPLICIT_WORK_TREE',
  'GIT_PREFIX',
  'GIT_NAMESPACE',
  'GIT_SHALLOW_FILE',
  'GIT_GRAFT_FILE',
  'GIT_QUARANTINE_PATH',
];
const env = { ...process.env };
for (const name of REPOSITORY_ENV) delete env[name];

/** @param {string[]} args */
const git = (args) =>
  execFileSync('git', args, {
    cwd: packageDir,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    // A git that hangs (a stuck filesystem) does not hold the build for ever: no build is named.
    timeout: 30_000,
  }).trim();

let build;
try {
  // Only this package's own repository, not one it sits in (an unpacked tarball in a project).
  if (realpathSync(git(['rev-parse', '--show-toplevel'])) === packageDir) {
    const [commit, date] = git(['log', '-1', '--format=%h %cs']).split(' ');
    const sources = ['cli', 'server', 'client', 'shared', 'storage'];
    const dirty = git(['status', '--porcelain', '--', ...sources]) !== '';
    build = `git ${commit}${dirty ? '-dirty' : ''}, ${date}`;
  }
} catch {
  // Not a git checkout, or no git: nothing to name.
}
if (build !== undefined)
  writeFileSync(join(outDir, 'shared', 'buildInfo.js'), `export const BUILD = ${JSON.stringify(build)};\n`);
