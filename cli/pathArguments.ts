/**
 * Path arguments as typed. An empty one (`muxftp rm "$DIR"` with DIR unset, most often) is
 * refused with INVALID_PATH, never read as the root or the working directory, which `/` and `.`
 * name; messages show it as '' so the line does not read `muxftp: rm : …`.
 */
import { MuxftpError } from '../shared/errors.js';
import { printable } from '../shared/printable.js';
import { remotePathFromArgument } from './remotePath.js';

export function emptyPathError(side: 'remote' | 'local'): MuxftpError {
  return new MuxftpError('INVALID_PATH', `empty ${side} path`);
}

/** The remote path `argument` names; INVALID_PATH when it is empty. */
export function remotePathRequired(argument: string): string {
  if (argument === '') throw emptyPathError('remote');
  return remotePathFromArgument(argument);
}

/** `argument` as a message shows it: '' when empty. */
export function shownArgument(argument: string): string {
  return argument === '' ? "''" : argument;
}

/**
 * The usage error for `put a b c` or `get a b c` without --to. To scp the last argument is the
 * directory the others go into; here a second argument alone is the first one's new name, and
 * three or more are none of those: the line says how to write either meaning.
 */
export function severalWithoutTo(command: 'put' | 'get', args: readonly string[]): string {
  const last = args.at(-1) ?? '';
  const into = last.endsWith('/') ? last : `${last}/`;
  const example = `\`${command} … --to ${printable(shellWord(into))}\``;
  // Where the last argument already is where the others would all go, the second way is the first.
  if (command === 'put') {
    const where = into === '/' ? 'at the root' : `into ${printable(into.slice(0, -1))}`;
    const all = into === '/' ? '' : '; `--to /` puts them all at the root';
    return `several local files need --to REMOTE_DIR (a second argument alone is a remote name): ${example} puts the others ${where}, as scp's last argument does${all}`;
  }
  const here = into === './' || into === '/';
  const where = into === '/' ? 'into /' : into === './' ? 'here' : `into ${printable(into.slice(0, -1))}`;
  const all = here ? '' : '; `--to .` gets them all here';
  return `several remote files need --to LOCAL_DIR (a second argument alone is a local name): ${example} gets the others ${where}, as scp's last argument does${all}`;
}

/** `word` as a POSIX shell reads it back: as it is when it is plain, else in single quotes. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * The hint for a transfer refused because a directory of the file's name is in the way at its
 * destination (`path`): `--to PATH/` puts it into that directory, said only when `alone` (one file
 * named alone: `--to` moves every file of a command, and takes the place of a name given).
 */
export function directoryInTheWayHint(command: 'put' | 'get', path: string, alone: boolean): string {
  const which = command === 'put' ? 'a directory on the server' : 'a local directory';
  return alone
    ? `${which} has that name: to ${command} the file into it, --to ${shellWord(`${path}/`)}`
    : `${which} has that name`;
}
