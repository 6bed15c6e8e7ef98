/**
 * `--exclude PATTERN` and `--include PATTERN` for the trees `put -r` and `get -r` walk, as rsync's
 * (whose exclude.c holds its include rules too): the rules are checked in the order the command
 * line gives them, --exclude-from's patterns in that option's place, and the first that matches
 * an entry decides; an entry no rule matches is copied. A pattern without '/' is matched against
 * the name of every file and directory at any depth (`*.tmp`, `node_modules`); one with '/'
 * against the path below the tree given (`build/cache`, `docs/*.md`). A trailing '/' (`cache/`)
 * matches directories only, and is not a '/' that anchors the pattern, as in rsync. A directory
 * left out is left out with everything in it, and not even listed: as in rsync, an --include of
 * what is inside it decides nothing. Globs as picomatch has them, `*` matching names that start
 * with a dot as well (`--exclude '*'` means everything), but `**` and a trailing `dir/***` as
 * rsync has them (patternMatcher).
 */
import picomatch from 'picomatch';
import { CliError } from './cliError.js';
import { EXIT_STATUS } from './exitStatus.js';
import { shellWord } from './pathArguments.js';
import { shellGlob } from './shellGlobs.js';

/** One --include or --exclude pattern (an --exclude-from line is an --exclude), as given. */
export interface FilterRule {
  kind: 'include' | 'exclude';
  pattern: string;
}

/**
 * Whether the entry at `relative` ('/'-separated, below the tree's root) is left out; `isDirectory`
 * undefined when its kind could not be learnt (then left out if it would be as either).
 */
export type Excluded = (relative: string, isDirectory: boolean | undefined, peek?: boolean) => boolean;

/** Excluded, which also remembers which of its rules matched something. */
export interface Excludes extends Excluded {
  /** The rules that have matched nothing so far, in order. */
  unmatched(): FilterRule[];
  /**
   * The --exclude that would leave out a source given by its own `name`, as rsync matches the
   * names it is given (the first rule that matches deciding, an anchored `/name` matching too),
   * leaving aside for a directory rules of `*` alone (`--include '/docs/***' --exclude '*'`),
   * which speak of what is inside it; the rule that decides counts as matched. undefined when
   * none does, or an --include.
   */
  leavesOutSource(name: string, isDirectory: boolean): FilterRule | undefined;
}

interface CompiledRule {
  kind: FilterRule['kind'];
  matches: (text: string, isDirectory: boolean) => boolean;
  /** Matched against the path below the tree's root, not the last name. */
  byPath: boolean;
}

export function compileExcludes(rules: readonly FilterRule[] | undefined): Excludes | undefined {
  if (rules === undefined || rules.length === 0) return undefined;
  const compiled: CompiledRule[] = rules.map(({ kind, pattern }) => {
    const directoriesOnly = /[^/]\/+$/.test(pattern);
    const given = directoriesOnly ? pattern.replace(/\/+$/, '') : pattern;
    // As rsync: a backslash escapes only in a pattern with a wildcard (here `{` too, as braces
    // expand); without one it is itself (`we\ird` is that name on a server, not `weird`).
    const body = /[*?[{]/.test(pattern) ? given : given.replaceAll('\\', '\\\\');
    const matches = patternMatcher(body.replace(/^\/+/, '/').replace(/\/+$/, ''));
    return {
      kind,
      matches: directoriesOnly ? (text, isDirectory) => isDirectory && matches(text, true) : matches,
      byPath: body.includes('/'),
    };
  });
  const matched = new Set<number>();
  // `peek`: a look ahead of the entry's kind, which leaves nothing out yet (so counts no match).
  const excludedAs = (relative: string, isDirectory: boolean, peek: boolean): boolean => {
    const name = relative.slice(relative.lastIndexOf('/') + 1);
    let decided: FilterRule['kind'] | undefined;
    // Every rule that matches is credited, not only the first, which decides: `.git` beside
    // `.git/` in one exclude file is no pattern that matched nothing.
    for (const [index, rule] of compiled.entries()) {
      if (!rule.matches(rule.byPath ? relative : name, isDirectory)) continue;
      decided ??= rule.kind;
      if (peek) break;
      matched.add(index);
    }
    return decided === 'exclude';
  };
  const excluded: Excluded = (relative, isDirectory, peek = false) => {
    if (isDirectory !== undefined) return excludedAs(relative, isDirectory, peek);
    // Both looked at, so each rule that would match either way is credited.
    const asDirectory = excludedAs(relative, true, peek);
    return excludedAs(relative, false, peek) || asDirectory;
  };
  const leavesOutSource = (name: string, isDirectory: boolean): FilterRule | undefined => {
    for (const [index, rule] of compiled.entries()) {
      if (isDirectory && /^\/?\*+\/?$/.test(rules[index]!.pattern)) continue;
      if (!rule.matches(name, isDirectory)) continue;
      matched.add(index);
      return rule.kind === 'exclude' ? rules[index] : undefined;
    }
    return undefined;
  };
  return Object.assign(excluded, {
    unmatched: () => rules.filter((_, index) => !matched.has(index)),
    leavesOutSource,
  });
}

/** A source as given to put -r or get -r (a pattern's match as matched). */
export interface GivenSource {
  argument: string;
  /** A directory walked as a tree (else a file). */
  tree: boolean;
}

/**
 * The name rsync matches its rules against for a source given: its last name; none for one
 * written as a directory's contents (`src/.`, `.`, `..`, the root), which go into the destination
 * unnamed. `src/` is named `src`: unlike rsync's, it is copied as `src` (README, put/get -r).
 */
function ownName(argument: string): string | undefined {
  const path = argument.replace(/\/+$/, '');
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name === '' || name === '.' || name === '..' ? undefined : name;
}

/**
 * The rules apply within the trees named, each its own root (`put -r site --include '/docs/***'
 * --exclude '*'` sends site): an --exclude that matches a source's own name (`put -r *
 * --exclude node_modules`, `get -r 'g/*' --exclude src`), which rsync would leave out, leaves it
 * in here. With --delete, a tree so matched refuses the run before anything is done (a usage
 * error, exit 2): mirrored whole, it deleted from its destination what the rule was to keep
 * there. Otherwise each source so matched is warned of (the rule is no "matched nothing").
 */
export function refuseOrWarnOfExcludedSources(
  excludes: Excludes | undefined,
  given: readonly GivenSource[],
  deleting: boolean,
  warn: (message: string) => void,
): void {
  if (excludes === undefined) return;
  const found = given.flatMap((source) => {
    const name = ownName(source.argument);
    const rule = name === undefined ? undefined : excludes.leavesOutSource(name, source.tree);
    return rule === undefined ? [] : [{ ...source, rule }];
  });
  const said = (source: GivenSource, rule: FilterRule): string =>
    `--exclude ${shellWord(rule.pattern)} matches ${shellWord(source.argument)} itself, a ${source.tree ? 'tree' : 'file'} given: rules apply within the trees given, not to them`;
  const tree = deleting ? found.find((source) => source.tree) : undefined;
  if (tree !== undefined)
    throw new CliError(
      `--delete: ${said(tree, tree.rule)}, so ${shellWord(tree.argument)} would be mirrored whole, deleting what the rule keeps in its destination; leave ${shellWord(tree.argument)} out of the sources, or to mirror it, the rules applying within it, give --include ${shellWord(`/${ownName(tree.argument)}/`)} before them (nothing done)`,
      { exitCode: EXIT_STATUS.usage, code: 'INVALID_PATH' },
    );
  for (const { rule, ...source } of found)
    warn(
      `${said(source, rule)}: ${shellWord(source.argument)} is copied all the same (leave it out of the sources)`,
    );
}

const globOptions = { dot: true, noextglob: true, nonegate: true };

/**
 * One pattern (no '/' at its end; one at its start anchors it) as rsync's wildmatch reads it, where picomatch's globstar
 * reads it otherwise: rsync's `**` is any text, slashes included, so `a/**` needs a name after
 * `a/` (picomatch's also matches `a`), and `**` between two names one name at least (picomatch's
 * `a`, `**`, `b` joined by '/' matches `a/b`);
 * a trailing `dir/***` is rsync's "the directory and everything in it" (`dir/` and `dir/**`).
 */
function patternMatcher(pattern: string): (text: string, isDirectory: boolean) => boolean {
  const everything = /^(.+)\/\*\*(\*?)$/.exec(pattern);
  if (everything === null) {
    const matches = globMatcher(pattern);
    return (text) => matches(text);
  }
  const [, dir = '', andItself] = everything;
  const itself = globMatcher(dir);
  // Below a directory `dir` matches: some '/' of the path has such a directory before it.
  const below = (text: string): boolean => {
    for (let slash = text.indexOf('/'); slash > 0; slash = text.indexOf('/', slash + 1))
      if (itself(text.slice(0, slash))) return true;
    return false;
  };
  return andItself === '*' ? (text, isDirectory) => (isDirectory && itself(text)) || below(text) : below;
}

/**
 * picomatch's matcher of a pattern, anchored or not, with each `**` between two '/' (or after
 * the anchor) as `*` then `**`: rsync's stands for one name or more there; the rest as a shell's
 * (shellGlob: `[!…]`, and `(` `)` `|` `+` as themselves).
 */
const globMatcher = (pattern: string): picomatch.Matcher =>
  picomatch(shellGlob(pattern.replace(/(?<=[^/]|^)\/\*\*(?=\/)/g, '/*/**').replace(/^\//, '')), globOptions);

/**
 * Warns of each rule that matched nothing in the trees walked: tar warns so of an exclude, and a
 * pattern written with the tree's own name in front (`--exclude src/b` for `put -r src`), as tar
 * and rsync take it, matched nothing here without a word.
 */
export function warnOfUnmatchedExcludes(
  excludes: Excludes | undefined,
  /** The trees given (`put -r site` → site): a pattern starting with one's name gets the hint. */
  treeNames: readonly string[],
  warn: (message: string) => void,
): void {
  const names = new Set(treeNames.map((name) => name.replace(/\/+$/, '').split('/').pop()));
  for (const { kind, pattern } of excludes?.unmatched() ?? []) {
    const [first, ...rest] = pattern.replace(/^\/+/, '').split('/');
    // Only where the pattern starts with a tree's own name: for `b/z.c` inside `a`, `/z.c` was wrong.
    const below = names.has(first) ? rest.join('/') : '';
    // The same path below the tree: a lone name would match at any depth, so it gets its anchor.
    const anchored = below.replace(/\/+$/, '').includes('/') ? below : `/${below}`;
    const hints = [
      // What is inside a directory left out is never looked at: the likeliest reason an --include missed.
      kind === 'include' ? 'nothing in a directory left out is looked at' : undefined,
      below === ''
        ? undefined
        : `one with a / is matched below each tree given: for ${pattern}, write ${anchored}`,
    ].filter((hint) => hint !== undefined);
    warn(`--${kind} ${pattern} matched nothing${hints.length === 0 ? '' : ` (${hints.join('; ')})`}`);
  }
}

/** One value of --include, --exclude or --exclude-from, and its place among all of theirs. */
export interface OrderedValue {
  value: string;
  place: number;
}

/**
 * commander's collector for --include, --exclude and --exclude-from, one for the three of a
 * command: commander keeps each option's values apart, and their order on the command line is
 * what decides between an --include and an --exclude.
 */
export function filterRuleCollector(): (value: string, previous?: OrderedValue[]) => OrderedValue[] {
  let places = 0;
  return (value, previous = []) => [...previous, { value, place: places++ }];
}
