/** The remote file commands: ls, stat, rm, mkdir, rmdir, mv. Each runs over one connection. */

import { type Command, Option } from 'commander';
import { type Client, noReplaceUnsupported, type WireEntry } from '../../client/client.js';
import { DEFAULTS } from '../../shared/defaults.js';
import { type ErrorCode, MuxftpError } from '../../shared/errors.js';
import {
  INTEGRITY_ALGORITHMS,
  type IntegrityAlgorithm,
  isIntegrityAlgorithm,
} from '../../shared/integrity/algorithms.js';
import { printable } from '../../shared/printable.js';
import { planningLimit } from '../concurrency.js';
import { withClient } from '../connect.js';
import { formatEntryDetails, formatListing, formatSpace } from '../entryFormat.js';
import { gravest } from '../exitStatus.js';
import { type GlobalOptions, globalOptionsOf } from '../globalOptions.js';
import { type ListingOrder, sortByEntry, sortEntries, sortTree } from '../listingOrder.js';
import { cannotLook, mayNotList } from '../listPermission.js';
import { LostConnectionLines } from '../lostConnectionLines.js';
import { type ModeArgument, parseModeArgument } from '../modeArgument.js';
import { commanderParser, parsePositiveInteger } from '../optionParsers.js';
import { type ErrorInfo, errorInfo, type Output } from '../output.js';
import { remotePathRequired, shownArgument } from '../pathArguments.js';
import {
  isRemotePattern,
  literalRemoteArgument,
  matchRemotePattern,
  mayNameItself,
  remotePathsNamedBy,
} from '../remoteGlob.js';
import {
  joinRemote,
  normalRemote,
  remoteBaseName,
  remotePathFromArgument,
  tildePathWarning,
} from '../remotePath.js';
import { PartlyRemoved, refuseWithoutLinkMarks, removeRecursively } from '../remoteRemoval.js';
import { walkRemoteTree } from '../remoteTree.js';

/** One line of `--json` output for rm, mkdir and rmdir. */
interface PathOutcome {
  path: string;
  ok: boolean;
  error?: ErrorInfo;
}

export function registerFileCommands(program: Command, output: Output): void {
  const begin = (command: Command): GlobalOptions => {
    const global = globalOptionsOf(command);
    output.configure(global);
    return global;
  };

  program
    .command('ls')
    .summary('list remote directories')
    .description(
      "List a remote directory: type, permission bits (with -l), size in bytes (-H: KiB, MiB…), modification time, name (directories end in /). A file is shown by the path given, and a pattern ('logs/*.log', quoted) lists the entries it matches by path, as ls(1) does. Sorted by name, as ls(1): newest first with -t, largest first with -S (ties by name), the other way with --reverse; with -r, within each directory. --json keeps the order. Several paths, as ls(1): the files first, then each directory under a 'PATH:' line, both in the order entries are (--json: as given); one that fails is a line on stderr, the others are still listed.",
    )
    .argument('[path...]', 'remote directories or files (default: the root)')
    .option(
      '-r, --recursive',
      'also list every directory below it, each entry by its path relative to the one given',
    )
    // ls(1)'s spelling of it, for the fingers that know it.
    .addOption(new Option('-R').hideHelp())
    .option(
      '--max-depth <n>',
      'with -r (implied): go at most n levels below the directory (1: its own entries)',
      commanderParser(parsePositiveInteger),
    )
    .option('-H, --human', HUMAN_SIZES)
    .addOption(new Option('-t', 'sort by modification time, newest first').conflicts('S'))
    .addOption(new Option('-S', 'sort by size, largest first (a directory as 0)').conflicts('t'))
    .option('--reverse', 'reverse the order (ls -r; here -r is --recursive)')
    .option('-l, --long', "also each entry's permission bits, as ls -l shows them (rwxr-xr-x)")
    // `ls -lh`, as everyone types it, lists: -h was help, which printed usage and exited 0.
    .addOption(new Option('-h').hideHelp())
    // `ls -la`: nothing is hidden from a listing (dot files included), so -a changes nothing; and
    // `ls -1`: one entry a line is all it prints (it was taken for a path named -1).
    .addOption(new Option('-a').hideHelp())
    .addOption(new Option('-1').hideHelp())
    .helpOption('--help', 'display help for command')
    .action(
      async (
        paths: string[],
        options: {
          recursive?: boolean;
          R?: boolean;
          maxDepth?: number;
          human?: boolean;
          h?: boolean;
          long?: boolean;
          t?: boolean;
          S?: boolean;
          reverse?: boolean;
        },
        command: Command,
      ) => {
        const global = begin(command);
        const format = { human: options.human === true || options.h === true, long: options.long === true };
        const operands = paths.length > 0 ? paths : ['/'];
        const several = operands.length > 1;
        const how: ListingRequest = {
          recursive: options.recursive === true || options.R === true || options.maxDepth !== undefined,
          maxDepth: options.maxDepth ?? Number.POSITIVE_INFINITY,
          order: {
            by: options.t === true ? 'time' : options.S === true ? 'size' : 'name',
            reverse: options.reverse === true,
          },
          directoryTimes: several && options.t === true && !output.json,
        };
        if (several)
          output.setJsonFailureShape((error) =>
            operands.map((path): PathOutcome => ({ path, ok: false, error: errorInfo(error) })),
          );
        await withClient(global, output, async (client) => {
          const listed: ListedOperand[] = [];
          // After a lost connection, what is left to list fails at once: one line for it, at the end.
          const lines = new LostConnectionLines(output, 'ls', 'not listed');
          // One at a time, in order: each failure is said as it comes, before any table (as ls(1)).
          for (const given of operands) {
            try {
              listed.push({ given, listing: await listingOf(client, given, how) });
            } catch (error) {
              lines.failure(`ls ${shownArgument(given)}`, error);
              listed.push({ given, error });
            }
          }
          if (several)
            printListings(listed, output, lines, { ...format, order: how.order, recursive: how.recursive });
          else printListing(listed[0]!, output, lines, { ...format, recursive: how.recursive });
          lines.end();
        });
      },
    );

  program
    .command('stat')
    .summary('show remote entries')
    .description(
      "Show remote entries: type, size, modification time; with --hash, a file's digest. Several paths: each in turn, a blank line between; one that fails is a line on stderr, the others still shown.",
    )
    // Required, though declared optional: `stat --hash FILE` hands it to --hash's value first.
    .usage('[options] <path...>')
    .argument('[path...]', 'remote files or directories (at least one; before or after --hash)')
    .option(
      '--hash [algorithm]',
      "also print the file's content digest: xxh128, or sha256 (Dropbox's content_hash, not sha256sum's); default: the connection's",
      // `stat --hash FILE`: commander hands the path to the optional value; give it back below.
      (value: string): IntegrityAlgorithm | { path: string } =>
        isIntegrityAlgorithm(value) ? value : { path: value },
    )
    .action(async (given: string[], options: { hash?: StatHashOption }, command: Command) => {
      const { paths, hash } = statArguments(given, options.hash, command);
      const several = paths.length > 1;
      if (several)
        output.setJsonFailureShape((error) =>
          paths.map((path): PathOutcome => ({ path, ok: false, error: errorInfo(error) })),
        );
      const global = begin(command);
      await withClient(global, output, async (client) => {
        // --json: `stat PATH` prints the entry with `ok: true` (its failure: `{ok: false, error}`);
        // several paths, one `{path, ok, entry | error}` each.
        const results: unknown[] = [];
        let printed = false;
        const lines = new LostConnectionLines(output, 'stat', 'not looked at');
        for (const path of paths) {
          try {
            const { remote, entry, digest } = await statOf(client, path, hash);
            const json = digest === undefined ? entry : { ...entry, ...digest };
            results.push(several ? { path, ok: true, entry: json } : { ok: true, ...json });
            if (output.json) continue;
            if (printed) output.printLine('');
            for (const line of formatEntryDetails(remote, entry)) output.printLine(line);
            if (digest !== undefined) output.printLine(`${digest.algorithm.padEnd(6)} ${digest.digest}`);
            printed = true;
          } catch (error) {
            const directory = error instanceof MuxftpError && error.code === 'IS_A_DIRECTORY';
            lines.failure(
              `stat ${shownArgument(path)}`,
              error,
              hash !== undefined && directory
                ? '--hash digests files only: stat it without --hash'
                : undefined,
            );
            const failed = { ok: false, error: errorInfo(error) };
            results.push(several ? { path, ...failed } : failed);
          }
        }
        lines.end();
        if (output.json) output.printJson(several ? results : results[0]);
      });
    });

  program
    .command('df')
    .summary('show the room left for uploads')
    .description(
      "Show the room left for your uploads: your account's quota (size, used including uploads in flight, available) and the disk under the server's files (size, available), each when the server has one.",
    )
    .option('-H, --human', HUMAN_SIZES)
    // `df -h`, as df(1) takes it (not help).
    .addOption(new Option('-h').hideHelp())
    .helpOption('--help', 'display help for command')
    .action(async (options: { human?: boolean; h?: boolean }, command: Command) => {
      const global = begin(command);
      await withClient(global, output, async (client) => {
        try {
          const report = await client.space();
          // `ok` as its failure has it, so `.ok` tells them apart.
          if (output.json) output.printJson({ ok: true, ...report });
          else
            for (const line of formatSpace(report, { human: options.human === true || options.h === true }))
              output.printLine(line);
        } catch (error) {
          output.failure('df', error);
          if (output.json) output.printJson({ ok: false, error: errorInfo(error) });
        }
      });
    });

  program
    .command('rm')
    .summary('remove remote files (-r: and directories)')
    .argument('<path...>', "remote files ('tmp/*.part': what the pattern matches); with -r, directories too")
    .option('-r, --recursive', 'remove directories and everything in them (never the root)')
    .option('-f, --force', 'a path that is not there (or a pattern that matches nothing) is no error')
    .action(async (paths: string[], options: { recursive?: boolean; force?: boolean }, command: Command) => {
      const remove =
        options.recursive === true
          ? (client: Client, path: string) => removeRecursively(client, path, removeEmptyDirectory)
          : (client: Client, path: string) => client.delete(path);
      const removeAsGiven = async (client: Client, path: string, argument: string) => {
        // As GNU rm: `rm -r d/.` is refused, not read as `rm -r d` (the user meant what is in d).
        if (/\/\.\/*$/.test(argument))
          throw new MuxftpError('INVALID_PATH', "refusing to remove '.' (name the directory itself)");
        // `d/` and `d/.` name a directory (through a link too): never the link itself.
        if (argument.endsWith('/') || argument.endsWith('/.')) {
          await requireDirectory(client, path);
          // Without -r a directory is refused; the server, given the path without its '/', would
          // remove a link to one.
          if (options.recursive !== true) throw new MuxftpError('IS_A_DIRECTORY', `is a directory: ${path}`);
        }
        await remove(client, path);
      };
      await eachPath(begin(command), output, 'rm', paths, removeAsGiven, {
        hints: {
          IS_A_DIRECTORY: 'add -r to remove it and everything in it',
        },
        expandPatterns: true,
        // As rm -f: a clean-up step says "if it is there" (a script's `rm -rf build`).
        missingIsFine: options.force === true,
      });
    });

  program
    .command('mkdir')
    .summary('create remote directories')
    .argument('<path...>', 'remote directories to create, in order')
    .option('-p, --parents', 'create missing parents too; no error if it exists')
    .action(async (paths: string[], options: { parents?: boolean }, command: Command) => {
      const parents = options.parents === true;
      for (const path of parents ? paths : []) {
        const tilde = tildePathWarning(path);
        if (tilde !== undefined) output.warning(tilde);
      }
      await eachPath(
        begin(command),
        output,
        'mkdir',
        paths,
        (client, path) =>
          client.mkdir(path, { parents }).catch(async (error: unknown) => {
            // -p of a directory that is there, refused to an account without the mkdir
            // permission (the server checks it before it looks): nothing to make, as mkdir(1) -p
            // succeeds on a read-only filesystem.
            const refused = error instanceof MuxftpError && error.code === 'PERMISSION_DENIED';
            if (refused && parents && (await client.stat(path).catch(() => undefined))?.type === 'dir')
              return;
            throw error;
          }),
        // Without -p a missing parent is NOT_FOUND (an existing path is ALREADY_EXISTS).
        { hints: parents ? {} : { NOT_FOUND: 'add -p to create its parents' } },
      );
    });

  program
    .command('chmod')
    // chmod -x f: a mode, as chmod(1) takes it, not an option.
    .allowUnknownOption()
    .summary('change the permissions of remote files and directories')
    .description(
      "Change the permission bits of remote files and directories, as chmod(1): octal bits (755, 0644) or symbolic changes to each one's bits (u+x, go-w, a=r, u=rw,go=r; +x with no u, g or o is a+x). The server always keeps its own read and write (and search of a directory). Needs the write permission.",
    )
    .argument('<mode>', 'octal bits, or symbolic changes (u+x, go-w)', parseModeArgument)
    .argument('<path...>', "remote files or directories ('bin/*.sh': what the pattern matches)")
    .option('-R, --recursive', 'also every file and directory below a directory, each from its own bits')
    .action(
      async (mode: ModeArgument, paths: string[], options: { recursive?: boolean }, command: Command) => {
        // Options it does not know pass as words (for the mode's sake): none may pass as a path,
        // but what follows the first `--` is a path, a later `--` too. Commander keeps that first
        // `--` among the words when an unknown word (the mode -w) came before it, and drops it
        // otherwise (`chmod 600 -- -f`), when no word before it started with '-': then the words
        // hold one `--` fewer than the program's (commander keeps them, untyped, as rawArgs), and
        // all are paths (`chmod 600 -- -- -f` names `--` and `-f`).
        const given = (command.parent as { rawArgs?: string[] } | null)?.rawArgs ?? [];
        const ends = (words: readonly string[]) => words.filter((word) => word === '--').length;
        const dropped = ends(given) > ends(paths);
        const end = dropped ? -1 : paths.indexOf('--');
        const option = (dropped ? [] : end === -1 ? paths : paths.slice(0, end)).find((word) =>
          word.startsWith('-'),
        );
        if (option !== undefined)
          command.error(`error: unknown option '${option}' (a path that starts with '-': /${option})`);
        if (end !== -1) paths.splice(end, 1);
        const changeMode = options.recursive === true ? changeModeBelow : changeModeOf;
        await eachPath(
          begin(command),
          output,
          'chmod',
          paths,
          async (client, path, argument) => {
            // `d/` names a directory, as for rm and mv (the slash is not sent: a file's bits changed).
            if (argument.endsWith('/')) await requireDirectory(client, path);
            await changeMode(client, path, mode);
          },
          { expandPatterns: true },
        );
      },
    );

  program
    .command('rmdir')
    .summary('remove empty remote directories')
    .argument('<path...>', 'remote directories, which must be empty')
    .action(async (paths: string[], _options: unknown, command: Command) => {
      await eachPath(begin(command), output, 'rmdir', paths, removeEmptyDirectory, {
        hints: { NOT_A_DIRECTORY: 'use rm for a file' },
      });
    });

  program
    .command('mv')
    .summary('move or rename remote files and directories')
    .description(
      "Move or rename a remote file or directory. As with mv(1), into <to> if that is a directory (or ends in /); else a file at <to> is replaced (not with --no-clobber). Several paths, or a pattern ('logs/*.log', quoted), move into <to>, which must then be a directory.",
    )
    .usage('[options] <from...> <to>')
    .argument('<from...>', 'remote paths to move, then <to>: the new path, or a directory to move them into')
    .option(
      '--no-clobber',
      'keep a file already where one would go: that path is not moved (ALREADY_EXISTS), the others are',
    )
    // mv(1)'s -n is --no-clobber, put's and get's -n a dry run: which one was meant is asked.
    .addOption(new Option('-n').hideHelp())
    // mv -f: replacing a file is what mv does already.
    .addOption(new Option('-f').hideHelp())
    .action(
      async (paths: string[], options: { clobber: boolean; n?: boolean; f?: boolean }, command: Command) => {
        if (options.n === true)
          command.error(
            "error: mv has no -n: --no-clobber keeps a file already at <to> (mv(1)'s -n); there is no dry run of mv",
          );
        if (options.f === true && !options.clobber)
          command.error('error: -f replaces a file at <to>, --no-clobber keeps it: give one of them');
        if (paths.length < 2) command.error("error: missing required argument 'to'");
        await move(begin(command), output, paths.slice(0, -1), paths.at(-1)!, {
          noReplace: !options.clobber,
        });
      },
    );
}

/** chmod of one path: octal bits as given, a symbolic change from its bits (a listing's, or a stat). */
async function changeModeOf(
  client: Client,
  path: string,
  mode: ModeArgument,
  listed?: WireEntry,
): Promise<void> {
  let bits: number;
  if ('bits' in mode) bits = mode.bits;
  else {
    const current = (listed ?? (await client.stat(path))).mode;
    // A server from before permission bits in entries: nothing to change from.
    if (current === undefined)
      throw new MuxftpError('UNSUPPORTED', 'the server shows no permission bits to change: give octal bits');
    bits = mode.change(current);
  }
  await client.setPermissions(path, bits);
}

/**
 * chmod -R: the path, then (a directory) every file and directory below it, as listed, each from
 * its own bits; a symbolic link there is left be and not walked into (as chmod -R does), and so
 * is anything else (`other`). Every one is tried; the gravest failure is reported (exitStatus.ts),
 * with how many there were.
 */
async function changeModeBelow(client: Client, path: string, mode: ModeArgument): Promise<void> {
  const top = await client.stat(path);
  await changeModeOf(client, path, mode, top);
  if (top.type !== 'dir') return;
  refuseWithoutLinkMarks(client, 'changing');
  const limit = planningLimit(DEFAULTS.parallel, client);
  const tree = await walkRemoteTree(client, path, limit, Number.POSITIVE_INFINITY, undefined, {
    intoLinks: false,
  });
  // Nothing below could be read: that failure, not "1 of the 1 below it kept their bits".
  const unlisted = tree.problems.find((problem) => problem.relative === '' && problem.listed !== true);
  if (unlisted !== undefined)
    throw new ExplainedFailure(unlisted.error, 'its own bits were changed; nothing below it could be listed');
  const below = tree.entries.filter(
    ({ entry }) => (entry.type === 'file' || entry.type === 'dir') && entry.link !== true,
  );
  const failures: unknown[] = tree.problems.map((problem) => problem.error);
  // In line as at most `limit` calls (ConcurrencyLimit.map), not one held per entry: a tree of
  // 50,000 files ran out of a 64 MB heap that ls -r of it fits in.
  await limit.map(below, ({ relative, entry }) =>
    changeModeOf(client, joinRemote(path, relative), mode, entry).catch((error: unknown) => {
      failures.push(error);
    }),
  );
  if (failures.length > 0) {
    // Counted among what was tried: one the walk could not read or name is one more below it.
    const of = `${failures.length} of the ${below.length + tree.problems.length} below it`;
    throw new ExplainedFailure(gravest(failures), `${of} kept their bits (the rest have the new ones)`);
  }
}

/**
 * `mv FROM... TO`. One path (a literal, or a pattern that matched one) moves to TO, or into it
 * when TO is a directory, as mv(1) does, and --json prints `{ok, error?}`. Several (arguments or
 * matches) each move into TO, which must be a directory (looked up once), and --json prints one
 * `{path, ok, error?}` per path, as rm does.
 */
async function move(
  global: GlobalOptions,
  output: Output,
  sources: string[],
  to: string,
  how: { noReplace: boolean },
): Promise<void> {
  if (sources.length > 1)
    output.setJsonFailureShape((error) =>
      sources.map((path): PathOutcome => ({ path, ok: false, error: errorInfo(error) })),
    );
  const lone = sources.length === 1 ? sources[0]! : undefined;
  await withClient(global, output, async (client) => {
    // Said once for the command, not once for each path.
    if (how.noReplace && client.serverInfo.renameNoReplace !== true) throw noReplaceUnsupported();
    let named = sources;
    if (lone !== undefined) {
      try {
        named = await remotePathsNamedBy(client, lone);
        if (named.length === 1) {
          const source = remotePathRequired(named[0]!);
          if (named[0]!.endsWith('/')) await requireDirectory(client, source);
          const target = await moveTarget(client, source, to);
          await refuseSamePath(client, source, target);
          await client.rename(source, target, how);
          if (output.json) output.printJson({ ok: true });
          return;
        }
      } catch (error) {
        // An account that may not look had TO taken as named: a directory there is not moved into.
        const hint =
          error instanceof MuxftpError &&
          error.code === 'ALREADY_EXISTS' &&
          !to.endsWith('/') &&
          mayNotList(client)
            ? `if ${shownArgument(to)} is a directory, give ${shownArgument(`${to}/`)} to move into it`
            : undefined;
        output.failure(`mv ${shownArgument(lone)}`, error, hint);
        if (output.json) output.printJson({ ok: false, error: errorInfo(error) });
        return;
      }
    }
    let into: Promise<string> | undefined;
    // Where this command has moved a path, and from where: a second source of the same name is
    // refused rather than replace the first (as GNU mv refuses to overwrite what it just moved).
    const movedHere = new Map<string, string>();
    const outcomes = await operateOnEach(
      client,
      output,
      'mv',
      named,
      async (source, argument) => {
        into ??= directoryTarget(client, to);
        const target = joinRemote(await into, remoteBaseName(source));
        const earlier = movedHere.get(target);
        if (earlier !== undefined) {
          throw new MuxftpError(
            'ALREADY_EXISTS',
            `will not replace ${shownArgument(target)}, just moved there from ${shownArgument(earlier)}`,
          );
        }
        if (argument.endsWith('/')) await requireDirectory(client, source);
        await refuseSamePath(client, source, target);
        await client.rename(source, target, how);
        movedHere.set(target, source);
      },
      { expandPatterns: lone === undefined },
    );
    if (output.json) output.printJson(outcomes);
  });
}

/**
 * A move of a path to itself (`mv a a`, `mv d/sub d`) moves nothing, which the server takes as
 * done (rename(2) does): refused as mv(1) refuses it, not reported as a move. A path not there is
 * said so (NOT_FOUND, mv(1)'s "cannot stat"), not as the same file: one stat, for such a move only.
 */
async function refuseSamePath(client: Client, source: string, target: string): Promise<void> {
  if (normalRemote(source) !== normalRemote(target)) return;
  await client.stat(source).catch((error: unknown) => {
    // Another refusal (an account that may not look) leaves "the same file".
    if (error instanceof MuxftpError && error.code === 'NOT_FOUND') throw error;
  });
  throw new MuxftpError(
    'INVALID_PATH',
    `${shownArgument(source)} and ${shownArgument(target)} are the same file: nothing moved`,
  );
}

/**
 * `to` of an `mv` of several paths: an existing directory (NOT_A_DIRECTORY, NOT_FOUND otherwise).
 * An account that may not look (no list) takes it for one: the server refuses each move into
 * anything else.
 */
async function directoryTarget(client: Client, to: string): Promise<string> {
  const target = remotePathToMoveTo(to);
  await requireDirectory(client, target).catch((error: unknown) => {
    if (!cannotLook(client, error)) throw error;
  });
  return target;
}

/** The remote path `to` names as where to move; an empty one is refused. */
function remotePathToMoveTo(to: string): string {
  if (to === '') throw new MuxftpError('INVALID_PATH', 'empty remote path to move it to');
  return remotePathFromArgument(to);
}

/**
 * Where `mv` puts `source`: inside `to` when that is a directory (or ends in '/', then it must be
 * one), as mv(1) and put do; else at `to` itself.
 */
async function moveTarget(client: Client, source: string, to: string): Promise<string> {
  const target = remotePathToMoveTo(to);
  const into = joinRemote(target, remoteBaseName(source));
  const entry = await client.stat(target).catch((error: unknown) => {
    if (error instanceof MuxftpError && error.code === 'NOT_FOUND' && !to.endsWith('/')) return undefined;
    // An account that may rename but not list: TO/ is moved into, TO to as named. A wrong guess
    // loses nothing: a rename replaces no directory, and nothing with a directory (ALREADY_EXISTS).
    if (cannotLook(client, error)) return to.endsWith('/') ? ('into' as const) : undefined;
    throw error;
  });
  if (entry === 'into') return into;
  if (entry === undefined) return target;
  if (entry.type === 'dir') return into;
  if (to.endsWith('/')) throw notADirectory(target);
  return target;
}

/** ls's and df's -H (and -h, as ls(1) and df(1) take it). */
const HUMAN_SIZES = 'sizes in B, KiB, MiB, GiB, as 1.21KiB (-h too; --json keeps bytes)';

/**
 * Why a directory that lists empty may not go: an upload's hidden temporary file is in it (rm -r
 * emptied it, then found it not empty). A server that says so itself (`details.keptBy`) is not
 * echoed, nor is it said of one that lists entries (another run put them there meanwhile).
 */
const UPLOAD_KEEPS_DIRECTORY = 'an upload in progress there counts, though ls does not show it';

/** A failure with what to say about it, for eachPath. */
class ExplainedFailure extends Error {
  constructor(
    readonly first: unknown,
    readonly hint: string,
  ) {
    super(String(first), { cause: first });
  }
}

/**
 * rmdir; a directory refused as not empty that lists empty is kept by an upload in progress, and
 * the failure says so (one that lists files is plainly not empty: no hint).
 */
async function removeEmptyDirectory(client: Client, path: string): Promise<void> {
  try {
    await client.rmdir(path);
  } catch (error) {
    if (!(error instanceof MuxftpError) || error.code !== 'DIRECTORY_NOT_EMPTY') throw error;
    // The server said what keeps it; one from before it did is asked what it lists.
    if (error.details?.keptBy !== undefined) throw error;
    const listed = await client.list(path).then(
      (entries) => entries.length,
      () => undefined,
    );
    throw listed === 0 ? new ExplainedFailure(error, UPLOAD_KEEPS_DIRECTORY) : error;
  }
}

/** How `ls` lists each of its paths. */
interface ListingRequest {
  /** -r: every directory below too, to `maxDepth` levels (1: the directory's own entries). */
  recursive: boolean;
  maxDepth: number;
  order: ListingOrder;
  /** Each directory's own time too: several are listed newest first under -t, as ls(1) does. */
  directoryTimes: boolean;
}

/** What `ls` found at one path. */
type Listing =
  /**
   * A file (its own entry: `ls FILE` shows it, as ls(1) does), or a pattern's matches (each named
   * by its path, as `ls -d` shows them).
   */
  | { kind: 'entries'; entries: WireEntry[]; file: boolean }
  /**
   * A directory's entries, each by its path relative to it (`-r`: the whole tree below it, each
   * directory's entries right after it); `problems`: the parts of the tree that could not be
   * listed or named, each a failure line after the table.
   */
  | {
      kind: 'directory';
      entries: Array<{ relative: string; entry: WireEntry }>;
      problems: Array<{ remote: string; error: MuxftpError }>;
      /** The directory's own time, when asked (ListingRequest.directoryTimes). */
      mtime: number | undefined;
    };

/** One path given to `ls`, and what was found there or why nothing was. */
type ListedOperand = { given: string } & ({ listing: Listing } | { error: unknown });

/**
 * What `ls` lists at one path given: a pattern's matches, a file's entry, or a directory's entries
 * (`-r`: the tree below it), sorted. `FILE/` fails, a trailing '/' naming a directory.
 */
async function listingOf(client: Client, given: string, how: ListingRequest): Promise<Listing> {
  const literal = literalRemoteArgument(given);
  if (isRemotePattern(given)) {
    // A name holding […] or {…} names itself where it is there, as rm, mv and get -r take it:
    // listed as any other path (it was shown as a match, and -r refused it).
    const matches = mayNameItself(given) ? await listMatches(client, given) : undefined;
    const itself = matches?.length === 1 && matches[0]!.name === remotePathFromArgument(literal);
    if (!itself) {
      if (how.recursive) throw new MuxftpError('INVALID_PATH', 'ls -r lists a directory, not a pattern');
      return {
        kind: 'entries',
        entries: sortEntries(matches ?? (await listMatches(client, given)), how.order),
        file: false,
      };
    }
  }
  const path = remotePathRequired(literal);
  const directoryOnly = literal.endsWith('/');
  const timeOf = async (): Promise<number | undefined> =>
    how.directoryTimes ? (await client.stat(path)).mtime : undefined;
  if (!how.recursive) {
    try {
      const entries = sortEntries(await client.list(path), how.order);
      return {
        kind: 'directory',
        entries: entries.map((entry) => ({ relative: entry.name, entry })),
        problems: [],
        mtime: await timeOf(),
      };
    } catch (error) {
      if (error instanceof MuxftpError && error.code === 'NOT_A_DIRECTORY' && !directoryOnly)
        return { kind: 'entries', entries: [await client.stat(path)], file: true };
      throw error;
    }
  }
  const tree = await walkRemoteTree(client, path, planningLimit(DEFAULTS.parallel, client), how.maxDepth);
  const top = tree.problems.find((problem) => problem.relative === '');
  if (top !== undefined) {
    // PATH itself could not be listed: a file is shown as plain `ls FILE` shows it.
    if (top.error.code !== 'NOT_A_DIRECTORY' || directoryOnly) throw top.error;
    return { kind: 'entries', entries: [await client.stat(path)], file: true };
  }
  return {
    kind: 'directory',
    entries: sortTree(tree.entries, how.order),
    problems: tree.problems.filter((problem) => problem.listed !== true),
    mtime: await timeOf(),
  };
}

/**
 * A file's or a pattern's entries as the table shows them: a file by its path as given (`ls a/x`
 * shows `a/x`, as ls(1) does), a pattern's matches by theirs.
 */
const shownEntries = (given: string, listing: Extract<Listing, { kind: 'entries' }>): WireEntry[] =>
  listing.file
    ? listing.entries.map((entry) => ({ ...entry, name: literalRemoteArgument(given) }))
    : listing.entries;

/** A directory's entries as the table shows them: each named by its path relative to it. */
const byRelativePath = (listing: Extract<Listing, { kind: 'directory' }>): WireEntry[] =>
  listing.entries.map(({ relative, entry }) => ({ ...entry, name: relative }));

/** A directory's entries as --json prints them: `-r` adds each one's `path` below the directory. */
const entriesAsJson = (listing: Listing, recursive: boolean): WireEntry[] =>
  listing.kind === 'entries'
    ? listing.entries
    : listing.entries.map(({ relative, entry }) => (recursive ? { ...entry, path: relative } : entry));

/**
 * `ls PATH`: its table (--json: its entries), and after it a failure line for each part of a
 * tree that could not be listed: what could be is still shown, and the command fails.
 */
function printListing(
  operand: ListedOperand,
  output: Output,
  lines: LostConnectionLines,
  options: { human: boolean; long: boolean; recursive: boolean },
): void {
  if (!('listing' in operand)) {
    if (output.json) output.printJson({ ok: false, error: errorInfo(operand.error) });
    return;
  }
  const { listing } = operand;
  if (output.json) output.printJson(entriesAsJson(listing, options.recursive));
  else {
    const entries =
      listing.kind === 'entries' ? shownEntries(operand.given, listing) : byRelativePath(listing);
    for (const line of formatListing(entries, options)) output.printLine(line);
  }
  if (listing.kind === 'directory')
    for (const problem of listing.problems) lines.failure(`ls ${problem.remote}`, problem.error);
}

/**
 * `ls PATH...`, as ls(1) lays out several: the files (and patterns' matches) first, in one table,
 * each named by its path and sorted; then each directory under a `PATH:` line, a blank line
 * between, sorted as entries are (by the path as given; -t by its time; -S: all as size 0). --json:
 * one `{path, ok, entries}` (what `ls PATH` alone prints) or `{path, ok: false, error}` per path,
 * in the order given, for a script to pair with its arguments; a tree listed in part is
 * `ok: false` with the entries it did list and the first `error`.
 */
function printListings(
  operands: readonly ListedOperand[],
  output: Output,
  lines: LostConnectionLines,
  options: { human: boolean; long: boolean; order: ListingOrder; recursive: boolean },
): void {
  if (output.json) {
    output.printJson(
      operands.map(({ given, ...found }) => {
        if (!('listing' in found)) return { path: given, ok: false, error: errorInfo(found.error) };
        const entries = entriesAsJson(found.listing, options.recursive);
        const problem = found.listing.kind === 'directory' ? found.listing.problems[0] : undefined;
        return problem === undefined
          ? { path: given, ok: true, entries }
          : { path: given, ok: false, entries, error: errorInfo(problem.error) };
      }),
    );
  }
  const files: WireEntry[] = [];
  for (const operand of operands)
    if ('listing' in operand && operand.listing.kind === 'entries')
      files.push(...shownEntries(operand.given, operand.listing));
  let printed = false;
  if (!output.json && files.length > 0) {
    for (const line of formatListing(sortEntries(files, options.order), options)) output.printLine(line);
    printed = true;
  }
  const directories: Array<{ given: string; listing: Extract<Listing, { kind: 'directory' }> }> = [];
  for (const operand of operands)
    if ('listing' in operand && operand.listing.kind === 'directory')
      directories.push({ given: operand.given, listing: operand.listing });
  const inOrder = output.json
    ? directories
    : sortByEntry(directories, options.order, ({ given, listing }) => ({
        name: given,
        type: 'dir',
        size: 0,
        mtime: listing.mtime ?? 0,
      }));
  for (const { given, listing } of inOrder) {
    if (!output.json) {
      if (printed) output.printLine('');
      output.printLine(`${printable(given)}:`);
      for (const line of formatListing(byRelativePath(listing), options)) output.printLine(line);
      printed = true;
    }
    for (const problem of listing.problems) lines.failure(`ls ${problem.remote}`, problem.error);
  }
}

/** The entries a pattern matches (as `ls -d` shows them), each named by its path. */
async function listMatches(client: Client, pattern: string): Promise<WireEntry[]> {
  return (await matchRemotePattern(client, pattern)).map(({ argument, entry }) => ({
    ...entry,
    name: remotePathFromArgument(argument),
  }));
}

function notADirectory(path: string): MuxftpError {
  return new MuxftpError('NOT_A_DIRECTORY', `not a directory: ${path}`);
}

/**
 * A path given with a trailing '/' names a directory, as in POSIX: `rm f/`, `mv f/ x` of a file
 * fail NOT_A_DIRECTORY instead of acting on the file.
 */
async function requireDirectory(client: Client, path: string): Promise<void> {
  if ((await client.stat(path)).type !== 'dir') throw notADirectory(path);
}

/** How eachPath treats its paths and their failures. */
interface EachPathOptions {
  /** A line added to a failure of these codes, saying what to do about it. */
  hints?: Partial<Record<ErrorCode, string>>;
  /** Wildcards in the paths are expanded (cli/remoteGlob.ts); each match is a path of its own. */
  expandPatterns?: boolean;
  /** A path not there (NOT_FOUND), or a pattern matching nothing, succeeds with nothing done. */
  missingIsFine?: boolean;
}

/**
 * Runs `operate` on each path in order (so `mkdir a a/b` works), reporting each failure, with
 * what to do instead when `hints` has a line for its code (rm of a directory: use rmdir).
 */
async function eachPath(
  global: GlobalOptions,
  output: Output,
  name: string,
  paths: string[],
  operate: (client: Client, remotePath: string, argument: string) => Promise<void>,
  options: EachPathOptions = {},
): Promise<void> {
  output.setJsonFailureShape((error) =>
    paths.map((path): PathOutcome => ({ path, ok: false, error: errorInfo(error) })),
  );
  const outcomes = await withClient(global, output, (client) =>
    operateOnEach(client, output, name, paths, (path, argument) => operate(client, path, argument), options),
  );
  if (output.json) output.printJson(outcomes);
}

/** eachPath's work on one connection: the outcome of each path, each failure reported as it comes. */
async function operateOnEach(
  client: Client,
  output: Output,
  name: string,
  paths: string[],
  operate: (remotePath: string, argument: string) => Promise<void>,
  { hints = {}, expandPatterns = false, missingIsFine = false }: EachPathOptions,
): Promise<PathOutcome[]> {
  const results: PathOutcome[] = [];
  // After a lost connection, each path left fails at once: one line for them, at the end.
  const lines = new LostConnectionLines(output, name, NOT_DONE[name] ?? 'not done');
  const failed = (path: string, thrown: unknown): void => {
    if (missingIsFine && thrown instanceof MuxftpError && thrown.code === 'NOT_FOUND') {
      results.push({ path, ok: true });
      return;
    }
    const explained = thrown instanceof PartlyRemoved || thrown instanceof ExplainedFailure;
    const error = explained ? thrown.first : thrown;
    // A server that says what keeps a directory says it in its message: no hint to add.
    const saidWhy = error instanceof MuxftpError && error.details?.keptBy !== undefined;
    const hint = explained
      ? thrown.hint
      : error instanceof MuxftpError && !saidWhy
        ? hints[error.code]
        : undefined;
    lines.failure(`${name} ${shownArgument(path)}`, error, hint);
    results.push({ path, ok: false, error: errorInfo(error) });
  };
  for (const given of paths) {
    let named = [given];
    if (expandPatterns) {
      try {
        named = await remotePathsNamedBy(client, given);
      } catch (thrown) {
        failed(given, thrown);
        continue;
      }
    }
    for (const path of named) {
      try {
        await operate(remotePathRequired(path), path);
        results.push({ path, ok: true });
      } catch (thrown) {
        failed(path, thrown);
      }
    }
  }
  lines.end();
  return results;
}

/** What the line after a lost connection says of the paths each command did not get to. */
const NOT_DONE: Readonly<Record<string, string>> = {
  rm: 'not removed',
  rmdir: 'not removed',
  mkdir: 'not made',
  chmod: 'not changed',
  mv: 'not moved',
};

/**
 * A word after --hash that was meant as a digest algorithm: a hash family's name and its number
 * (md5, sha1, sha265, blake3), not a path that starts as one does (`shared`).
 */
const LIKE_AN_ALGORITHM = /^(xxh|sha|md|blake|crc|adler|murmur)[a-z-]*\d+$/i;

/** What `--hash` was given: an algorithm, nothing (true), or a word that is not one (a path). */
type StatHashOption = IntegrityAlgorithm | true | { path: string };

/**
 * The paths and digest algorithm of `stat`, however the words came: `stat P --hash [A]` and
 * `stat --hash [A] P`, where commander's optional value would otherwise swallow P in `stat --hash P`.
 */
function statArguments(
  given: string[],
  hash: StatHashOption | undefined,
  command: Command,
): { paths: string[]; hash: IntegrityAlgorithm | true | undefined } {
  const swallowed = typeof hash === 'object' ? hash.path : undefined;
  // Both paths and a --hash value that names no algorithm: a word like one (`md5`, `sha265`) was
  // meant as one; anything else is the first of several paths (`stat --hash Makefile LICENSE`).
  if (given.length > 0 && swallowed !== undefined && LIKE_AN_ALGORITHM.test(swallowed)) {
    command.error(
      `error: option '--hash [algorithm]' argument '${swallowed}' is invalid. expected one of ${INTEGRITY_ALGORITHMS.join(', ')} (if ${swallowed} is a path, put --hash after the paths).`,
    );
  }
  const paths = swallowed === undefined ? given : [swallowed, ...given];
  if (paths.length === 0) command.error("error: missing required argument 'path'");
  return { paths, hash: swallowed !== undefined ? true : (hash as IntegrityAlgorithm | true | undefined) };
}

/**
 * `stat PATH`: its entry, and with `hash` its content digest; `PATH/` of a file fails
 * NOT_A_DIRECTORY, a trailing '/' naming a directory.
 */
async function statOf(
  client: Client,
  path: string,
  hash: IntegrityAlgorithm | true | undefined,
): Promise<{ remote: string; entry: WireEntry; digest?: { algorithm: IntegrityAlgorithm; digest: string } }> {
  const remote = remotePathRequired(path);
  if (hash !== undefined) {
    // `FILE/` names no file to digest (the slash is not sent): a directory is the server's to refuse.
    if (path.endsWith('/')) await requireDirectory(client, remote);
    const result = await client.digest(remote, hash === true ? client.integrity : hash);
    return { remote, entry: result.entry, digest: { algorithm: result.algorithm, digest: result.digest } };
  }
  const entry = await client.stat(remote);
  if (path.endsWith('/') && entry.type !== 'dir') throw notADirectory(remote);
  return { remote, entry };
}
