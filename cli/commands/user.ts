/**
 * `muxftp user add|del|list --users FILE`: edits the users file `serve --users` reads. The
 * password is read with echo off on a terminal, or as the first line of stdin otherwise — never
 * from the command line, where other users could see it in the process list.
 */
import { type Command, Option } from 'commander';
import { checkNewPasswordText, hashPassword, MAX_PASSWORD_BYTES } from '../../server/auth/passwords.js';
import {
  addUser,
  checkCanAdd,
  checkUserName,
  listUsers,
  PERMISSIONS,
  type Permission,
  parsePermissions,
  READ_ONLY_PERMISSIONS,
  readUsersFile,
  removeUser,
  updateUsersFile,
} from '../../server/auth/usersFile.js';
import { DEFAULTS } from '../../shared/defaults.js';
import { formatBytes, formatRate } from '../../shared/humanUnits.js';
import { CliError } from '../cliError.js';
import { EXIT_STATUS } from '../exitStatus.js';
import { outputOptionsOf } from '../globalOptions.js';
import { commanderParser, parseHomeDirectory, parseQuota, parseUserRate } from '../optionParsers.js';
import type { Output } from '../output.js';
import { inTerminalForeground, promptHidden, readFirstLine, sayAtPrompt } from '../passwordPrompt.js';

interface AddFlags {
  users: string;
  home?: string;
  perm?: Permission[];
  readOnly?: boolean;
  quota?: number;
  maxRate?: number;
  replace?: boolean;
}

const USER_NAME_HELP = 'the user name: 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)';

/**
 * A user name the users file cannot hold (`a b`, `../x`, `anonymous`): a usage error (exit 2), as
 * a bad --quota or --perm is, before the file is read or a password asked for. It failed as
 * LOCAL_IO_ERROR, exit 1, which says a file could not be read or written.
 */
const parseUserNameArgument = commanderParser((name: string) => {
  checkUserName(name);
  return name;
});

const usersOption = () => new Option('--users <file>', 'the users file').makeOptionMandatory();

export function registerUserCommand(program: Command, output: Output): void {
  const user = program
    .command('user')
    .summary('add, remove or list the users of a users file')
    .description(
      "Edit the users file that `muxftp serve --users FILE` reads (JSON; made mode 600, an edit keeps a 640 file's group read).",
    )
    // As for serve: the global options are the client's (--server, --user, --tls...), none applies
    // here; each subcommand declares the one that does, --json. Set before the subcommands, which copy it.
    .configureHelp({ showGlobalOptions: false });

  user
    .command('add')
    .argument('<name>', USER_NAME_HELP, parseUserNameArgument)
    .description(
      `Add a user. The password (at least ${DEFAULTS.minNewPasswordChars} characters) is asked for on a terminal (twice), or read from the first line of stdin.`,
    )
    .addOption(usersOption())
    .option(
      '--home <dir>',
      "the user's root, a directory under the served root, /shared or shared (default: the user's name)",
      parseHomeDirectory,
    )
    .option(
      '--perm <list>',
      `comma-separated permissions: ${PERMISSIONS.join(',')} (default: all)`,
      commanderParser(parsePermissions),
    )
    .option('--read-only', `only ${READ_ONLY_PERMISSIONS.join(' and ')}`)
    .option('--quota <size>', 'bytes the user may store under home, e.g. 10GiB', parseQuota)
    .option(
      '--max-rate <rate>',
      "bytes/s for all the user's connections, each direction, e.g. 10MiB (default: the server's --max-user-rate)",
      parseUserRate,
    )
    .option('--replace', 'write an existing user anew (options not given take their defaults)')
    .option(
      '--json',
      'print the result as JSON: {"ok": true, "added"|"updated": NAME}, or {"ok": false, "error"}',
    )
    .action(async (name: string, flags: AddFlags, command: Command) => {
      output.configure(outputOptionsOf(command));
      if (flags.perm !== undefined && flags.readOnly) {
        command.error('error: user add: give --perm or --read-only, not both', {
          exitCode: EXIT_STATUS.usage,
        });
      }
      try {
        const file = await refusal(() =>
          readUsersFile(flags.users, { missingIsEmpty: true, anyScryptCost: true }),
        );
        // Refused before the password is typed (twice), not after.
        await refusal(() => checkCanAdd(file, name, { replace: flags.replace === true }));
        const password = await readNewPassword(name);
        await refusal(() => checkNewPasswordText(password));
        const passwordHash = await hashPassword(password);
        // The file as it is now, not as it was before the password was typed: edits made
        // meanwhile (another `user add`) are kept.
        let replaced = false;
        await refusal(() =>
          updateUsersFile(
            flags.users,
            (current) => {
              // --replace of a name not there (a typo in it) adds that user: said so, not "updated".
              replaced = Object.hasOwn(current.users, name);
              return addUser(
                current,
                {
                  name,
                  passwordHash,
                  permissions: flags.readOnly ? [...READ_ONLY_PERMISSIONS] : (flags.perm ?? [...PERMISSIONS]),
                  // '/shared' as `user list` shows it: a leading / means the served root, as for remote paths.
                  ...(flags.home !== undefined ? { home: flags.home.replace(/^\/+/, '') } : {}),
                  ...(flags.quota !== undefined ? { quota: flags.quota } : {}),
                  ...(flags.maxRate !== undefined ? { maxRate: flags.maxRate } : {}),
                },
                { replace: flags.replace === true },
              );
            },
            { missingIsEmpty: true, onStaleLock: staleLockWarning(output) },
          ),
        );
        if (output.json) output.printJson({ ok: true, [replaced ? 'updated' : 'added']: name });
        else output.printLine(`${replaced ? `updated ${name} in` : `added ${name} to`} ${flags.users}`);
      } catch (error) {
        // Ctrl-C at the password prompt (raw mode: no SIGINT) exits as Ctrl-C does everywhere (the
        // error's own exit status); Ctrl-D (no password given) fails as other errors do.
        output.commandFailed(error, `user add ${name}`);
      }
    });

  user
    .command('del')
    .argument('<name>', USER_NAME_HELP, parseUserNameArgument)
    .description('Remove a user (their files stay where they are).')
    .addOption(usersOption())
    .option('--json', 'print the result as JSON: {"ok": true, "removed": NAME}, or {"ok": false, "error"}')
    .action(async (name: string, flags: { users: string }, command: Command) => {
      output.configure(outputOptionsOf(command));
      try {
        await refusal(() =>
          updateUsersFile(flags.users, (file) => removeUser(file, name), {
            onStaleLock: staleLockWarning(output),
          }),
        );
        if (output.json) output.printJson({ ok: true, removed: name });
        else output.printLine(`removed ${name} from ${flags.users}`);
      } catch (error) {
        output.commandFailed(error, `user del ${name}`);
      }
    });

  user
    .command('list')
    .description('List the users: name, home, permissions, quota and rate (never the hashes).')
    .addOption(usersOption())
    .option('--json', 'print them as JSON')
    .action(async (flags: { users: string }, command: Command) => {
      const global = outputOptionsOf(command);
      output.configure(global);
      try {
        const users = listUsers(await refusal(() => readUsersFile(flags.users)));
        if (global.json) {
          output.printJson(users);
          return;
        }
        for (const u of users) {
          const extras = [
            u.quota !== undefined ? `quota ${formatBytes(u.quota)}` : '',
            u.maxRate !== undefined ? `rate ${formatRate(u.maxRate)}` : '',
          ].filter(Boolean);
          output.printLine(
            `${u.name}\thome /${u.home}\t${u.permissions.join(',') || '-'}${extras.length ? `\t${extras.join(' ')}` : ''}`,
          );
        }
      } catch (error) {
        output.commandFailed(error, 'user list');
      }
    });
}

/** The warning for a users-file lock a killed edit left, which this edit took over. */
function staleLockWarning(output: Output): (lock: string, pid: number) => void {
  return (lock, pid) =>
    output.warning(`removed ${lock}, left by an edit that is no longer running (pid ${pid})`);
}

/**
 * The users file's refusals (missing or not JSON, a user that exists already or not at all, a bad
 * name) and the password's (empty, too short or long) are the user's to fix: one line, not a bug's stack.
 */
async function refusal<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/** Tries at a new password on a terminal, as passwd(1) gives. */
const NEW_PASSWORD_TRIES = 3;

/**
 * On a terminal: asked twice, with echo off; one refused (empty, too short or long) is said at once, not
 * after asking it again, and a slip gets another try. Otherwise: the first line of stdin.
 */
async function readNewPassword(name: string): Promise<string> {
  // There, turning echo off (or reading the terminal) would stop the process for good.
  if (process.stdin.isTTY && !inTerminalForeground())
    throw new CliError(
      'no password: the process is in the background of its terminal, as under timeout without --foreground (give it on stdin: echo … | muxftp user add …)',
    );
  if (process.stdin.isTTY) {
    for (let attempt = 1; ; attempt++) {
      const first = await promptHidden(`new password for ${name}: `);
      let problem: string | undefined;
      try {
        checkNewPasswordText(first);
      } catch (error) {
        problem = (error as Error).message;
      }
      // (Ctrl-C or Ctrl-D at a prompt rejects it: no more tries.)
      if (problem === undefined && (await promptHidden('again: ')) !== first)
        problem = 'the passwords do not match';
      if (problem === undefined) return first;
      if (attempt === NEW_PASSWORD_TRIES) throw new CliError(problem);
      sayAtPrompt(`muxftp: ${problem}: try again`);
    }
  }
  // At most a line a password can be (and its line ending): a longer one is refused as too long.
  const password = await readFirstLine(process.stdin, MAX_PASSWORD_BYTES);
  if (password === '') throw new CliError('no password on stdin (the first line is the password)');
  return password;
}
