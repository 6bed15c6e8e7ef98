/**
 * The `muxftp` command line: assembles the commands, runs one, and turns the result into an exit
 * status (exitStatus.ts): 0 when everything asked for succeeded, 1 when anything failed, 2 for a
 * usage error, 3 when the connection failed.
 */
import { Command, CommanderError } from 'commander';
import { BUILD } from '../shared/buildInfo.js';
import { errnoReason } from '../shared/errnoReasons.js';
import { printable, printableLines } from '../shared/printable.js';
import { packageVersion } from '../shared/version.js';
import { argumentsNotUtf8 } from './argumentBytes.js';
import { CliError } from './cliError.js';
import { registerBenchCommand } from './commands/bench.js';
import { registerFileCommands } from './commands/files.js';
import { registerGetCommand } from './commands/get.js';
import { registerPutCommand } from './commands/put.js';
import { registerServeCommand } from './commands/serve.js';
import { registerUserCommand } from './commands/user.js';
import { EXIT_STATUS } from './exitStatus.js';
import { addGlobalOptions, SERVER_ENV } from './globalOptions.js';
import { Output } from './output.js';

export function createProgram(output: Output): Command {
  const program = new Command('muxftp');
  program
    .description('Multiplexed file transfers: many files at once over one TCP connection.')
    .version(BUILD === undefined ? packageVersion() : `${packageVersion()} (${BUILD})`, '-V, --version')
    // Settings before the commands: each command copies them when it is created.
    .exitOverride()
    .configureOutput({
      // An argument in it may be a file name a shell pattern expanded (`put *` meets `--a<ESC>…`).
      outputError: (message, write) =>
        write(printableLines(`muxftp: ${withOtherToolsHint(message.replace(/^error: /, ''))}`)),
    })
    .showHelpAfterError('(see muxftp --help, or muxftp <command> --help)')
    // A command's help lists --server, --json, --user... too: they are given after its name as often.
    .configureHelp({
      showGlobalOptions: true,
      // Each command as its own usage line says it (mv's `<from...> <to>`, stat's `<path>`),
      // not as commander would from its declared arguments.
      subcommandTerm: (command) => `${command.name()} ${command.usage()}`,
    })
    .addHelpText(
      'after',
      `\nThe server address comes from --server, else $${SERVER_ENV},\nelse 127.0.0.1:7421.\n` +
        'Exit status: 0 if everything succeeded, 1 if anything failed, 2 for a usage\n' +
        'error, 3 if the connection failed (no connect, no login, or lost for good;\n' +
        '3 over 1 when a run has both), 130 after Ctrl-C (143 after SIGTERM), 141\n' +
        'when the reader of stdout went away (| head).',
    );
  addGlobalOptions(program);
  registerServeCommand(program);
  registerPutCommand(program, output);
  registerGetCommand(program, output);
  registerFileCommands(program, output);
  registerBenchCommand(program, output);
  registerUserCommand(program, output);
  // Its subcommands are add, del, list: another tool's command name there (`user delete`) is
  // none of muxftp's file commands, which the table would point at; commander's suggestion stays.
  for (const command of program.commands.filter((c) => c.commands.length > 0))
    command.configureOutput({
      outputError: (message, write) =>
        write(
          printableLines(
            `muxftp: ${withOtherToolsHint(message.replace(/^error: /, ''), { commands: false })}`,
          ),
        ),
    });
  pointUsageErrorsAtOwnHelp(program);
  return program;
}

/** A usage error after a command's name points at that command's help (`muxftp chmod --help`). */
function pointUsageErrorsAtOwnHelp(parent: Command, path = 'muxftp'): void {
  for (const command of parent.commands) {
    const name = `${path} ${command.name()}`;
    command.showHelpAfterError(`(see ${name} --help)`);
    pointUsageErrorsAtOwnHelp(command, name);
  }
}

/**
 * What muxftp calls, or does instead of, the options people bring from rsync, curl and lftp: an
 * unknown option of theirs says where to look rather than only that it is unknown.
 */
const OTHER_TOOLS_OPTIONS: Readonly<Record<string, string>> = {
  '--bwlimit': '--limit-rate RATE',
  '--limit-rate': '--limit-rate RATE, on put and get',
  '--partial': "-c, --continue (and a cut transfer's whole blocks are kept by default)",
  '--append-verify': '-c, --continue (checked block by block)',
  '-C': '-c, --continue',
  '-P': 'progress bars show by themselves on a terminal; -c continues',
  '--progress': 'progress bars show by themselves on a terminal',
  '-a': 'times and permission bits are kept by default; -r for trees',
  '--archive': 'times and permission bits are kept by default; -r for trees',
  '-v': '-V, --version for the version; --json gives a result for each file',
  '--verbose': '--json gives a result for each file',
  '-R': '-r',
  '--include-from': '--include PATTERN, once for each (--exclude-from FILE reads excludes only)',
};

/**
 * What muxftp does for the commands people bring from lftp, ftp, sftp and git: commander's
 * spelling suggestion alone said `del`: help, `pull`: put, `cat`: stat, and nothing for most.
 */
const OTHER_TOOLS_COMMANDS: Readonly<Record<string, string>> = {
  upload: 'put',
  push: 'put',
  mput: 'put, several files with --to DIR/',
  reput: 'put -c',
  download: 'get',
  pull: 'get',
  mget: 'get, several files with --to DIR/',
  reget: 'get -c',
  cat: 'get FILE -, to stdout',
  delete: 'rm',
  del: 'rm',
  mdelete: 'rm',
  mrm: 'rm',
  rename: 'mv',
  move: 'mv',
  list: 'ls',
  dir: 'ls',
  nlist: 'ls',
  mirror: 'put -r or get -r, with --delete to remove what the source lacks',
  sync: 'put -r or get -r, with --skip-unchanged (and --delete)',
  cp: 'no copy on the server: get the file, then put it',
  copy: 'no copy on the server: get the file, then put it',
  cd: 'no working directory: each remote path starts at the root (your home once logged in)',
  pwd: 'no working directory: each remote path starts at the root (your home once logged in)',
  open: 'no session to open: each command takes --server HOST:PORT (or $MUXFTP_SERVER)',
  connect: 'no session to open: each command takes --server HOST:PORT (or $MUXFTP_SERVER)',
  md5sum: 'stat --hash, or stat --hash sha256; no md5',
  sha256sum: "stat --hash sha256 (Dropbox's content_hash, not sha256sum's digest)",
  hash: 'stat --hash',
  checksum: 'stat --hash',
  size: 'stat',
  version: '--version, -V',
};

/**
 * `message` (commander's, without "error: ") with a pointer added for another tool's option or
 * command, in place of commander's spelling suggestion (for --include-from it was --exclude-from:
 * the opposite).
 */
function withOtherToolsHint(message: string, { commands = true } = {}): string {
  const [, kind, word] = /^unknown (option|command) '([^'=]*)/.exec(message) ?? [];
  if (kind === 'command' && !commands) return message;
  const table = kind === 'option' ? OTHER_TOOLS_OPTIONS : OTHER_TOOLS_COMMANDS;
  const instead = word === undefined || !Object.hasOwn(table, word) ? undefined : table[word];
  if (instead === undefined) return message;
  return message.replace(/\s*\(Did you mean [^)]*\)/, '').replace(/\n?$/, ` (muxftp: ${instead})\n`);
}

/** Runs the CLI on `argv` (as in process.argv) and resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const output = new Output(process.stdout, process.stderr);
  const program = createProgram(output);
  // `muxftp ls | head`, `muxftp get f - | head -c 10`: once the reader has gone, stop quietly as
  // cat does; without a listener the write's EPIPE crashed the process with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    // Progress bars on stderr go first: the exit would leave them drawn, the cursor hidden and the
    // line below queued for their next frame, never written.
    output.releaseTerminal();
    // Anything else (a full disk under `> file`) is said in words, once, and fails the command.
    if (error.code !== 'EPIPE')
      output.failure(
        undefined,
        new CliError(`cannot write stdout: ${errnoReason(error)}`, { showsCode: true }),
      );
    process.exit(error.code === 'EPIPE' ? EXIT_STATUS.brokenPipe : output.exitCode);
  });
  // Every path crosses the wire as UTF-8; a name typed in another encoding is refused, not renamed.
  const notUtf8 = argv === process.argv ? argumentsNotUtf8(argv) : [];
  if (notUtf8.length > 0) {
    for (const arg of notUtf8)
      process.stderr.write(
        `muxftp: argument '${printable(arg)}' is not UTF-8 (shown with U+FFFD for each byte that is not): muxftp names files in UTF-8 only\n`,
      );
    return EXIT_STATUS.usage;
  }
  try {
    await program.parseAsync([...argv], { from: 'node' });
    return output.exitCode;
  } catch (error) {
    // Commander has printed help, the version, or the usage error already.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_STATUS.usage;
    output.commandFailed(error);
    return output.exitCode;
  }
}
