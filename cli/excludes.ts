/**
 * `--exclude PATTERN` for the trees `put -r` and `get -r` walk, as tar's and rsync's: a pattern
 * without '/' is matched against the name of every file and directory at any depth (`*.tmp`,
 * `node_modules`); one with '/' against the path below the tree given (`build/cache`, `docs/*.md`).
 * A trailing '/' (`cache/`) matches directories only, and is not a '/' that anchors the pattern,
 * as in rsync. An excluded directory is left out with everything in it, and not even listed.
 * Globs as picomatch has them, `*` matching names that start with a dot as well (`--exclude '*'`
 * means everything).
 */
import picomatch from 'picomatch';

/**
 * Whether the entry at `relative` ('/'-separated, below the tree's root) is left out; `isDirectory`
 * undefined when its kind could not be learnt (then left out if it would be as either).
 */
export type Excluded = (relative: string, isDirectory: boolean | undefined, peek?: boolean) => boolean;

/** Excluded, which also remembers which of its patterns left something out. */
export interface Excludes extends Excluded {
  /** The patterns that have matched nothing so far, as given. */
  unmatched(): string[];
}

interface ExcludePattern {
  matches: (text: string) => boolean;
  /** Matched against the path below the tree's root, not the last name. */
  byPath: boolean;
  directoriesOnly: boolean;
}

export function compileExcludes(patterns: readonly string[] | undefined): Excludes | undefined {
  if (patterns === undefined || patterns.length === 0) return undefined;
  const options = { dot: true, noextglob: true, nonegate: true };
  const compiled: ExcludePattern[] = patterns.map((pattern) => {
    const directoriesOnly = /[^/]\/+$/.test(pattern);
    const body = directoriesOnly ? pattern.replace(/\/+$/, '') : pattern;
    return {
      matches: picomatch(body.replace(/^\/+|\/+$/g, ''), options),
      byPath: body.includes('/'),
      directoriesOnly,
    };
  });
  const matched = new Set<number>();
  // `peek`: a look ahead of the entry's kind, which leaves nothing out yet (so counts no match).
  const excluded: Excluded = (relative, isDirectory, peek = false) => {
    const name = relative.slice(relative.lastIndexOf('/') + 1);
    let out = false;
    // Every pattern that matches is credited, not only the first: `.git` beside `.git/` in one
    // exclude file is no pattern that matched nothing.
    for (const [index, pattern] of compiled.entries()) {
      if (pattern.directoriesOnly && isDirectory === false) continue;
      if (!pattern.matches(pattern.byPath ? relative : name)) continue;
      out = true;
      if (peek) break;
      matched.add(index);
    }
    return out;
  };
  return Object.assign(excluded, {
    unmatched: () => patterns.filter((_, index) => !matched.has(index)),
  });
}

/**
 * Warns of each pattern that left nothing out of the trees walked: tar warns so, and a pattern
 * written with the tree's own name in front (`--exclude src/b` for `put -r src`), as tar and
 * rsync take it, matched nothing here without a word.
 */
export function warnOfUnmatchedExcludes(
  excludes: Excludes | undefined,
  warn: (message: string) => void,
): void {
  for (const pattern of excludes?.unmatched() ?? []) {
    const below = pattern.replace(/^\/+/, '').split('/').slice(1).join('/');
    // The same path below the tree: a lone name would match at any depth, so it gets its anchor.
    const anchored = below.replace(/\/+$/, '').includes('/') ? below : `/${below}`;
    const hint =
      below === ''
        ? ''
        : ` (one with a / is matched below each tree given: for ${pattern}, write ${anchored})`;
    warn(`--exclude ${pattern} matched nothing${hint}`);
  }
}

/** commander's collector for a repeatable option. */
export function collectExcludes(pattern: string, previous: string[] = []): string[] {
  return [...previous, pattern];
}
