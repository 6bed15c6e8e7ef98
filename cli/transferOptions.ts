/**
 * The options put and get share, declared once so the two commands cannot drift apart: the same
 * flags, defaults, parsers and help, with only the side (remote or local) named differently.
 */
import type { Command } from 'commander';
import { DEFAULTS } from '../shared/defaults.js';
import { errnoReason } from '../shared/errnoReasons.js';
import type { IntegrityAlgorithm } from '../shared/integrity/algorithms.js';
import { readFileAtMostSync } from '../shared/readAtMost.js';
import { type FilterRule, filterRuleCollector, type OrderedValue } from './excludes.js';
import { EXIT_STATUS } from './exitStatus.js';
import {
  parseIntegrityAlgorithm,
  parseNonNegativeInteger,
  parsePositiveInteger,
  parseRate,
} from './optionParsers.js';
import { shellWord } from './pathArguments.js';

export interface TransferCommandOptions {
  /** The directory every source goes into (remote for put, local for get). */
  to?: string;
  parents?: boolean;
  recursive?: boolean;
  parallel: number;
  retries: number;
  checksum?: IntegrityAlgorithm;
  /** Skip a file whose copy at the destination has the same size and content digest. */
  skipIdentical?: boolean;
  /** Skip a file whose copy at the destination has the same size and modification time (nothing read). */
  skipUnchanged?: boolean;
  /** Skip a file the destination has already, whatever its size, time or content (rsync's --ignore-existing). */
  ignoreExisting?: boolean;
  /** With -r: patterns of names (or paths below the tree) left out of it (cli/excludes.ts). */
  exclude?: OrderedValue[];
  /** With -r: patterns of what is copied even so, when one comes before an --exclude that matches too. */
  include?: OrderedValue[];
  /** Files of more --exclude patterns, one a line. */
  excludeFrom?: OrderedValue[];
  /** The three above as rules, in their order on the command line (checkTransferOptions). */
  filters?: FilterRule[];
  /** Give each file its source's modification time (--no-times: false, the time of writing). */
  times: boolean;
  /** Give each file its source's permission bits less the umask (--no-perms: false, a new file's). */
  perms: boolean;
  /** Bytes/s each way for the whole command, all its transfers together (none when undefined or 0). */
  limitRate?: number;
  /** With -r: remove from each destination tree what its source does not have (cli/mirrorDeletions.ts). */
  delete?: boolean;
  /** Say what would be sent and deleted; change nothing on either side. */
  dryRun?: boolean;
}

/**
 * What of a missing destination directory (`--to DIR`, or a target ending in `/`) may be made:
 * nothing; with -r the directory itself, in a parent that exists, as `cp -r` and rsync make their
 * destination; with -p it and its parents.
 */
export type DestinationCreation = 'none' | 'itself' | 'with-parents';

export function destinationCreation(options: TransferCommandOptions): DestinationCreation {
  if (options.parents === true) return 'with-parents';
  return options.recursive === true ? 'itself' : 'none';
}

/**
 * Usage errors (exit 2) in the shared options, before anything connects; sets `filters` from
 * --include, --exclude and the lines of --exclude-from files, in the order given.
 */
export function checkTransferOptions(options: TransferCommandOptions, command: Command): void {
  const given = [
    ...(options.include ?? []).map((given) => ({ ...given, option: 'include' as const })),
    ...(options.exclude ?? []).map((given) => ({ ...given, option: 'exclude' as const })),
    ...(options.excludeFrom ?? []).map((given) => ({ ...given, option: 'exclude-from' as const })),
  ].sort((a, b) => a.place - b.place);
  if (given.length > 0 && options.recursive !== true) {
    const first = given[0]!.option;
    command.error(
      `error: --${first} ${first === 'include' ? 'picks from the trees -r walks' : 'leaves parts out of the trees -r walks'}: add -r`,
      { exitCode: EXIT_STATUS.usage },
    );
  }
  const filters: FilterRule[] = [];
  // Nothing but slashes: no name to match (picomatch threw on what was left, an internal error).
  const namesNothing = (pattern: string, where: string): void => {
    if (/^\/*$/.test(pattern))
      command.error(`error: ${where} names nothing: a pattern is a name, or a path below the tree`, {
        exitCode: EXIT_STATUS.usage,
      });
  };
  for (const { option, value } of given) {
    if (option !== 'exclude-from') {
      // rsync's '!' on the command line too: "a '!' token to clear the list" (its man page).
      if (value === '!') {
        filters.length = 0;
        continue;
      }
      namesNothing(value, `--${option} ${shellWord(value)}`);
      filters.push({ kind: option, pattern: value });
      continue;
    }
    let text: string;
    try {
      text = readFileAtMostSync(value, DEFAULTS.maxExcludeFileBytes, 'an exclude file').toString('utf8');
    } catch (error) {
      command.error(`error: cannot read --exclude-from ${value}: ${errnoReason(error)}`, {
        exitCode: EXIT_STATUS.usage,
      });
    }
    for (const rule of excludeFileLines(text)) {
      if (rule === 'clear') {
        filters.length = 0;
        continue;
      }
      namesNothing(rule.pattern, `--exclude-from ${value}: line ${rule.line}, ${shellWord(rule.pattern)},`);
      filters.push({ kind: rule.kind, pattern: rule.pattern });
    }
  }
  options.filters = filters;
  if (options.delete === true && options.recursive !== true)
    command.error('error: --delete mirrors the trees -r copies: add -r', { exitCode: EXIT_STATUS.usage });
  // Each other skip flag is asked only of a file that is there, which this one skips already.
  if (options.ignoreExisting === true && (options.skipUnchanged === true || options.skipIdentical === true))
    command.error(
      `error: --ignore-existing skips every file already there: ${options.skipUnchanged === true ? '--skip-unchanged' : '--skip-identical'} would have nothing left to decide`,
      { exitCode: EXIT_STATUS.usage },
    );
}

/** Adds the shared options to `put` (the target side is remote) or `get` (it is local). */
export function addTransferOptions(command: Command, direction: 'upload' | 'download'): Command {
  const side = direction === 'upload' ? 'remote' : 'local';
  const collectRule = filterRuleCollector();
  return command
    .option(`--to <${side}Dir>`, `${direction} into this ${side} directory`)
    .option('-p, --parents', `create the ${side} directory (and its parents) if missing`)
    .option(
      '-r, --recursive',
      `${direction} directories and everything in them (a missing ${side} directory to ${direction} into is made, in a parent that exists)`,
    )
    .option(
      '-j, --parallel <n>',
      'transfers at once, over one connection',
      parsePositiveInteger,
      DEFAULTS.parallel,
    )
    .option(
      '--retries <n>',
      `when the connection drops, reconnect and continue each unfinished transfer, up to n times (${direction === 'upload' ? 'not stdin, read once' : 'not stdout, written once'}; 0: off; refused SERVER_BUSY: tried again on the same connection when the server asks, for up to ${DEFAULTS.serverBusyRetryMs / 1000} s, uncounted)`,
      parseNonNegativeInteger,
      DEFAULTS.retries,
    )
    .option(
      '--checksum <algorithm>',
      'verify with this algorithm only (xxh128 or sha256; default: the server picks, xxh128 first)',
      parseIntegrityAlgorithm,
    )
    .option(
      '--exclude <pattern>',
      `with -r: leave out what matches, a directory with everything in it: a name at any depth ('*.tmp', 'node_modules'), or with a '/' a path below the tree ('build/cache'); rules apply within the trees given: a source whose own name one matches is copied all the same, and warned of (with --delete a tree so matched refuses the run); repeatable`,
      collectRule,
    )
    .option(
      '--include <pattern>',
      `with -r: keep what matches, written as for --exclude: the first --include or --exclude that matches decides, in the order given (--include '*/' --include '*.c' --exclude '*': the *.c files at any depth; --include '/docs/***' --exclude '*': docs and everything in it); a directory left out is not looked into, as in rsync; repeatable`,
      collectRule,
    )
    .option(
      '--exclude-from <file>',
      "with -r: --exclude each pattern in this file, one a line, in its place among the others (blank lines and lines starting with # or ; skipped; as in rsync, a line '+ PATTERN' is an --include, '- PATTERN' an --exclude, and '!' drops the rules before it); repeatable",
      collectRule,
    )
    .option(
      '--delete',
      `with -r: then remove from each ${side} tree what its source does not have, so it is a copy (not after any failure; excluded paths are kept)`,
    )
    .option(
      '-n, --dry-run',
      `say what would be ${direction === 'upload' ? 'sent' : 'fetched'} (and, with --delete, deleted), and change nothing on either side`,
    )
    .option(
      '--limit-rate <rate>',
      `at most this many bytes/s for all of the command's transfers together, e.g. 500KiB or 10MiB (0: no limit)`,
      parseLimitRate,
    )
    .option(
      '--no-times',
      `leave each ${side} file the time it was written (default: it gets its source's modification time)`,
    )
    .option(
      '--no-perms',
      `give each ${side} file the permissions a new file gets there (default: its source's read, write and execute bits, less the umask${direction === 'upload' ? '; the server keeps its own read and write' : ''})`,
    )
    .option(
      '--skip-unchanged',
      `skip files whose ${side} copy has the same size and modification time, reading nothing (rsync's quick check; with --skip-identical, the content decides when the times differ)`,
    )
    .option(
      '--skip-identical',
      `skip files whose ${side} copy has the same size and content digest (compared with the server's digest, not by time; not with ${direction === 'upload' ? 'stdin' : 'stdout'})`,
    )
    .option(
      '--ignore-existing',
      `skip each file that exists ${direction === 'upload' ? 'on the server' : 'locally'} already, whatever its size, time or content, and leave it as it is (rsync's --ignore-existing${direction === 'upload' ? '' : '; not with stdout'})`,
    );
}

/**
 * `--limit-rate`: a rate as `serve --max-rate` takes it; 0 is no limit, as curl's (and the
 * client's maxRate). Never undefined: commander stores a parser's undefined as ''.
 */
function parseLimitRate(value: string): number {
  return parseRate(value);
}

/**
 * The rules of an --exclude-from file, as rsync reads one: a pattern a line, blank lines and those
 * starting with `#` or `;` skipped; a line starting `- ` excludes the rest of it, one starting
 * `+ ` includes it (rsync's prefixes: an exclude file written for rsync, rsnapshot's say, has
 * them, and read as names `- /tmp` matched nothing and `+ /home` left nothing in, so --delete
 * removed what the file kept); a line `!` alone (`'clear'`) drops every rule before it, the
 * command line's too, as rsync's clears its list (read as a name, what it dropped was left out).
 */
function excludeFileLines(text: string): Array<(FilterRule & { line: number }) | 'clear'> {
  return text
    .split(/\r?\n/)
    .map((pattern, index) => ({ pattern, line: index + 1 }))
    .filter(({ pattern }) => pattern.trim() !== '' && !pattern.startsWith('#') && !pattern.startsWith(';'))
    .map(({ pattern, line }) => {
      if (pattern === '!') return 'clear';
      const prefix = /^([+-]) /.exec(pattern)?.[1];
      if (prefix === undefined) return { kind: 'exclude', pattern, line };
      return { kind: prefix === '+' ? 'include' : 'exclude', pattern: pattern.slice(2), line };
    });
}
