/**
 * `muxftp serve --config FILE`, in the spirit of sshd_config and curl -K: one option a line, a
 * flag's long name without its dashes, whitespace, then its value as it would follow the flag on
 * the command line (the rest of the line, trimmed; in double quotes to keep spaces at its ends);
 * a flag that takes no value alone on its line; blank lines and lines starting with # skipped.
 *
 * Each value goes through the same commander parsers as on the command line: every line is
 * parsed as the argv it stands for by a serve command of its own, which also holds what the
 * command line and the lines above set, so commander's reasons (a bad value, a missing one, an
 * unknown option, options that cannot go together) come out naming the line at fault. What the
 * command line gave is kept over the file's (commander's 'cli' over 'config' value source).
 * Read once, at start: SIGHUP reads the users file and the certificate again, not this file.
 */
import { type Command, CommanderError } from 'commander';
import { errnoReason } from '../shared/errnoReasons.js';
import { readFileAtMost } from '../shared/readAtMost.js';
import { CliError } from './cliError.js';
import { EXIT_STATUS } from './exitStatus.js';

/** One option line of a config file. */
export interface ConfigLine {
  /** 1-based, as an editor counts. */
  line: number;
  key: string;
  /** undefined for a flag alone on its line. */
  value: string | undefined;
}

/** What is wrong with a config file's line. */
export class ConfigLineError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigLineError';
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A config file is a few dozen lines: past this, a mistake (`--config /dev/zero`), not read on. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** The option lines of a config file, in order; throws ConfigLineError for a line that is none. */
export function configLines(bytes: Uint8Array): ConfigLine[] {
  const lines: ConfigLine[] = [];
  let start = 0;
  for (let number = 1; start <= bytes.length; number++) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    let text: string;
    try {
      text = UTF8.decode(bytes.subarray(start, end));
    } catch {
      throw new ConfigLineError(number, 'not UTF-8');
    }
    start = end + 1;
    // A byte order mark an editor put first; \r of a file written on Windows.
    if (number === 1) text = text.replace(/^\uFEFF/, '');
    text = text.replace(/^[ \t]+|[ \t\r]+$/g, '');
    // Refused, not guessed at: a CR alone as a line end (the whole file one line, a comment if
    // it starts with #), a form feed. Blanks but space and tab are part of a name or value.
    if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(text.replaceAll('\t', ' ')))
      throw new ConfigLineError(number, 'a control character inside the line (lines end with LF or CRLF)');
    if (text === '' || text.startsWith('#')) continue;
    const [, key = '', rest = ''] = /^([^ \t]+)[ \t]*(.*)$/.exec(text) ?? [];
    let value: string | undefined = rest === '' ? undefined : rest;
    if (value?.startsWith('"')) {
      if (value.length < 2 || !value.endsWith('"'))
        throw new ConfigLineError(
          number,
          `${key}: a value that opens with " closes with " at the end of the line`,
        );
      value = value.slice(1, -1);
    } else if (value !== undefined) {
      // What a shell would read otherwise: refused, not served as a directory of that name.
      if (/(^|[ \t])#/.test(value))
        throw new ConfigLineError(
          number,
          `${key}: a comment goes on a line of its own (a # after a value is part of it: in double quotes if meant)`,
        );
      if (value.startsWith("'"))
        throw new ConfigLineError(number, `${key}: quote a value with double quotes ("…"), not single ones`);
      // No shell reads the file: `root ~/srv` made and served a directory named ~ in the working one.
      if (/^~|\$[{A-Za-z_]/.test(value))
        throw new ConfigLineError(
          number,
          `${key}: ~ and $VARIABLE are not expanded here (no shell reads the file): write the path in full (in double quotes if meant as written)`,
        );
    }
    lines.push({ line: number, key, value });
  }
  return lines;
}

/**
 * The file's options set on `command` (serve, its command line parsed) with the 'config' value
 * source, each option the command line gave left as it gave it. `checker` makes a fresh command
 * with serve's options and no action of consequence. A line that is wrong is a usage error (exit
 * 2) naming FILE:LINE and its option; a file that cannot be read, a CliError (exit 1) naming it.
 */
export async function applyServeConfig(
  command: Command,
  path: string,
  checker: () => Command,
): Promise<void> {
  const bytes = await readFileAtMost(path, MAX_CONFIG_BYTES, 'a config file').catch((error: Error) => {
    throw new CliError(`serve: cannot read --config ${path}: ${errnoReason(error)}`, { cause: error });
  });
  const usageError = (line: number, message: string): never =>
    command.error(`error: ${path}:${line}: ${message}`, {
      exitCode: EXIT_STATUS.usage,
      code: 'muxftp.serveConfig',
    });
  let lines: ConfigLine[];
  try {
    lines = configLines(bytes);
  } catch (error) {
    if (error instanceof ConfigLineError) return usageError(error.line, error.message);
    throw error;
  }
  // What the command line and the lines so far set (attribute name to value), for the next
  // line's checker: conflicts are commander's to find, across both.
  const held = new Map<string, unknown>();
  for (const option of command.options) {
    const name = option.attributeName();
    if (command.getOptionValueSource(name) === 'cli') held.set(name, command.getOptionValue(name));
  }
  const fromFile = new Map<string, unknown>();
  const seenOn = new Map<string, number>();
  for (const { line, key, value } of lines) {
    const refusal = keyRefusal(command, key, value, seenOn.get(key));
    if (refusal !== undefined) return usageError(line, `${key}: ${refusal}`);
    seenOn.set(key, line);
    const check = checker();
    for (const [name, heldValue] of held) check.setOptionValueWithSource(name, heldValue, 'cli');
    try {
      check.parse(value === undefined ? [`--${key}`] : [`--${key}`, value], { from: 'user' });
    } catch (error) {
      if (error instanceof CommanderError) {
        // A suggestion in the file's own spelling: `port`, not `--port`.
        const reason = error.message
          .replace(/^error: /, '')
          .replace(/\(Did you mean --(\S+)\?\)/, '(Did you mean $1?)')
          .replace(/unknown option '--([^']*)'/, "unknown option '$1'");
        return usageError(line, `${key}: ${reason}`);
      }
      throw error;
    }
    const name = check.options.find((option) => option.long === `--${key}`)!.attributeName();
    held.set(name, check.getOptionValue(name));
    fromFile.set(name, check.getOptionValue(name));
  }
  for (const [name, value] of fromFile)
    if (command.getOptionValueSource(name) !== 'cli') command.setOptionValueWithSource(name, value, 'config');
}

/**
 * Why a line's key is refused before commander sees it, or undefined: what commander would read
 * otherwise than it is written (`port=0` as --port, a flag's value as an operand), and what has
 * no place in the file.
 */
function keyRefusal(
  command: Command,
  key: string,
  value: string | undefined,
  seenOn: number | undefined,
): string | undefined {
  if (seenOn !== undefined) return `given again (first on line ${seenOn}): each option once`;
  if (key.startsWith('-')) return `write the option's name without its dashes (${key.replace(/^-+/, '')})`;
  if (key.includes('='))
    return `the value follows the option's name after a space (${key.replace('=', ' ')}), not after =`;
  if (key === 'config') return 'a config file cannot name another: give --config once, on the command line';
  const option = command.options.find((o) => o.long === `--${key}`);
  if (option?.isBoolean() === true && value !== undefined)
    return `takes no value: the name alone on its line turns it on (got '${value}')`;
  return undefined;
}
