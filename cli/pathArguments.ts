/**
 * Path arguments as typed. An empty one (`muxftp rm "$DIR"` with DIR unset, most often) is
 * refused with INVALID_PATH, never read as the root or the working directory, which `/` and `.`
 * name; messages show it as '' so the line does not read `muxftp: rm : …`.
 */
import { MuxftpError } from '../shared/errors.js';
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
