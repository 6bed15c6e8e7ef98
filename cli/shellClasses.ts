/**
 * A shell's `[!…]`, the class of what it does not list (sh, fnmatch, tar, rsync's wildmatch), as
 * picomatch spells it, `[^…]`: picomatch reads `[!a]` as the class of `!` and `a`, so `[!a]*`
 * matched the names starting with `a`, the very ones it means to leave out. Escaped (`\[!`) or
 * inside a class (`[[!]`), a `!` stays what it is; a `]` right after the opening is one of the
 * class (`[!]a]`), as in a shell.
 */
export function withShellNegation(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      out += pattern.slice(i, i + 2);
      i++;
    } else if (!inClass && c === '[' && closes(pattern, i)) {
      inClass = true;
      const negated = pattern[i + 1] === '!';
      out += negated ? '[^' : '[';
      if (negated) i++;
      if (pattern[i + 1] === ']') {
        out += ']';
        i++;
      }
    } else {
      if (c === ']') inClass = false;
      out += c;
    }
  }
  return out;
}

/** Whether the `[` at `open` starts a class: a `]` closes it after one character of it at least. */
function closes(pattern: string, open: number): boolean {
  const first = pattern[open + 1] === '!' ? open + 2 : open + 1;
  return pattern.indexOf(']', first + 1) !== -1;
}
