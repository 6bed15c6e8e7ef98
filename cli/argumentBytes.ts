/**
 * Arguments typed with bytes that are not UTF-8 (a Latin-1 name, `caf\xe9`). Node decodes argv as
 * UTF-8, each such byte becoming U+FFFD, so `put f "caf\xe9"` stored a file under a name no one
 * typed, and a local file so named read as "no such file". The bytes as typed are only readable
 * on Linux (/proc/self/cmdline); elsewhere none are found and the decoded names stand.
 */

import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';

const REPLACEMENT_CHARACTER = '\uFFFD';

/** The arguments after the script (`argv` as in process.argv) whose bytes as typed are not UTF-8. */
export function argumentsNotUtf8(argv: readonly string[]): string[] {
  const args = argv.slice(2);
  if (!args.some((arg) => arg.includes(REPLACEMENT_CHARACTER))) return [];
  let cmdline: Buffer;
  try {
    cmdline = readFileSync('/proc/self/cmdline');
  } catch {
    return [];
  }
  // NUL-terminated arguments; node's own options come before the script, so the last ones are ours.
  const typed: Buffer[] = [];
  let start = 0;
  for (let end = cmdline.indexOf(0); end !== -1; end = cmdline.indexOf(0, start)) {
    typed.push(cmdline.subarray(start, end));
    start = end + 1;
  }
  if (typed.length < args.length) return [];
  return typed.slice(typed.length - args.length).flatMap((bytes, i) => (isUtf8(bytes) ? [] : [args[i]!]));
}
