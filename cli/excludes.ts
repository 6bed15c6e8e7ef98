/**
 * `--exclude PATTERN` for the trees `put -r` and `get -r` walk, as tar's and rsync's: a pattern
 * without '/' is matched against the name of every file and directory at any depth (`*.tmp`,
 * `node_modules`); one with '/' against the path below the tree given (`build/cache`, `docs/*.md`).
 * An excluded directory is left out with everything in it, and not even listed. Globs as
 * picomatch has them, `*` matching names that start with a dot as well (`--exclude '*'`
 * means everything).
 */
import picomatch from 'picomatch';

/** Whether the entry at `relative` ('/'-separated, below the tree's root) is left out. */
export type Excluded = (relative: string) => boolean;

export function compileExcludes(patterns: readonly string[] | undefined): Excluded | undefined {
  if (patterns === undefined || patterns.length === 0) return undefined;
  const options = { dot: true, noextglob: true, nonegate: true };
  const byName = patterns.filter((p) => !p.includes('/')).map((p) => picomatch(p, options));
  const byPath = patterns
    .filter((p) => p.includes('/'))
    .map((p) => picomatch(p.replace(/^\/+|\/+$/g, ''), options));
  return (relative) => {
    const name = relative.slice(relative.lastIndexOf('/') + 1);
    return byName.some((matches) => matches(name)) || byPath.some((matches) => matches(relative));
  };
}

/** commander's collector for a repeatable option. */
export function collectExcludes(pattern: string, previous: string[] = []): string[] {
  return [...previous, pattern];
}
