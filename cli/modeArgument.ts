/**
 * `chmod`'s mode, as chmod(1) takes it: octal bits (`755`, `0644`) given whole, or symbolic
 * changes made to each path's current bits (`u+x`, `go-w`, `a=r`, `u=rw,go=r`, `+x`). Who is u, g,
 * o or a; none means a (the umask chmod(1) would consult here is the server's, which the client
 * cannot see). Permissions are r, w and x: no setuid, setgid or sticky bits, which muxftp never sets.
 */
import { InvalidArgumentError } from 'commander';
import { PERMISSION_BITS } from '../shared/fileModes.js';

export type ModeArgument =
  /** Octal: the bits, whatever the path has. */
  | { readonly bits: number }
  /** Symbolic: what the path's current bits become. */
  | { readonly change: (current: number) => number };

const WHO: Readonly<Record<string, number>> = { u: 0o700, g: 0o070, o: 0o007, a: 0o777 };
const WHAT: Readonly<Record<string, number>> = { r: 0o444, w: 0o222, x: 0o111 };

export function parseModeArgument(value: string): ModeArgument {
  if (/^0?[0-7]{1,3}$/.test(value)) return { bits: Number.parseInt(value, 8) };
  const clauses = value.split(',').map((clause) => {
    const parsed = /^([ugoa]*)([-+=])([rwx]*)$/.exec(clause);
    if (parsed === null)
      throw new InvalidArgumentError(
        'expected octal bits (755, 0644) or symbolic changes (u+x, go-w, a=r, u=rw,go=r).',
      );
    const [, who, op, what] = parsed as unknown as [string, string, string, string];
    const whose = who === '' ? WHO.a! : [...who].reduce((bits, c) => bits | WHO[c]!, 0);
    const bits = [...what].reduce((all, c) => all | WHAT[c]!, 0) & whose;
    return (current: number): number =>
      op === '+' ? current | bits : op === '-' ? current & ~bits : (current & ~whose) | bits;
  });
  return {
    change: (current) => clauses.reduce((bits, clause) => clause(bits), current) & PERMISSION_BITS,
  };
}
